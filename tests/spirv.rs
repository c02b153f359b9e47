//! What naga makes of the hot kernels, read without a GPU: the SPIR-V that wgpu hands to Vulkan
//! drivers. A register block written as an array indexed by loop variables becomes a
//! Function-storage array in SPIR-V (memory, not registers, unless a driver recovers it), which
//! cost a published wgpu kernel an order of magnitude; the GEMM keeps its accumulators and
//! operands in named vectors, and this test holds it to that.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::gpu::{gemm_source, train_source};
use sparse_playground::compute::EncoderTrainShape;

const OP_NAME: u32 = 5;
const OP_TYPE_ARRAY: u32 = 28;
const OP_TYPE_POINTER: u32 = 32;
const OP_FUNCTION: u32 = 54;
const OP_VARIABLE: u32 = 59;
const STORAGE_FUNCTION: u32 = 7;

fn spirv(source: &str) -> Vec<u32> {
    let module = naga::front::wgsl::parse_str(source).expect("the kernel parses");
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .expect("the kernel validates");
    let mut options = naga::back::spv::Options::default();
    // Names of functions and variables (OpName), so failures say where.
    options.flags.insert(naga::back::spv::WriterFlags::DEBUG);
    // wgpu's own policy for storage buffers when shaders are not trusted.
    options.bounds_check_policies.buffer = naga::proc::BoundsCheckPolicy::ReadZeroSkipWrite;
    naga::back::spv::write_vec(&module, &info, &options, None).expect("SPIR-V is written")
}

fn name_of(names: &std::collections::HashMap<u32, String>, id: u32) -> String {
    names.get(&id).cloned().unwrap_or_else(|| format!("%{id}"))
}

/// Every array-typed variable in Function storage, as (function, variable) names.
fn function_arrays(words: &[u32]) -> Vec<(String, String)> {
    let mut arrays = std::collections::HashSet::new();
    let mut pointers = std::collections::HashMap::new();
    let mut names = std::collections::HashMap::new();
    let mut function = 0;
    let mut found = Vec::new();
    let mut at = 5; // after the header
    while at < words.len() {
        let (op, len) = (words[at] & 0xffff, (words[at] >> 16) as usize);
        assert!(len > 0, "malformed SPIR-V at word {at}");
        let args = &words[at + 1..at + len];
        match op {
            OP_NAME => {
                let bytes: Vec<u8> = args[1..].iter().flat_map(|w| w.to_le_bytes()).collect();
                let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
                names.insert(args[0], String::from_utf8_lossy(text).into_owned());
            }
            OP_TYPE_ARRAY => {
                arrays.insert(args[0]);
            }
            OP_TYPE_POINTER if args[1] == STORAGE_FUNCTION => {
                pointers.insert(args[0], args[2]);
            }
            OP_FUNCTION => function = args[1],
            OP_VARIABLE
                if args[2] == STORAGE_FUNCTION
                    && pointers.get(&args[0]).is_some_and(|t| arrays.contains(t)) =>
            {
                found.push((name_of(&names, function), name_of(&names, args[1])));
            }
            _ => {}
        }
        at += len;
    }
    found
}

#[test]
fn the_scan_finds_a_register_array_left_in_memory() {
    // The pattern the GEMM used to have: a 4-wide accumulator array indexed by a loop variable.
    let source = "
        @group(0) @binding(0) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(64)
        fn kernel(@builtin(global_invocation_id) gid: vec3<u32>) {
            var acc: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) { acc[i] = f32(i) * out[gid.x]; }
            out[gid.x] = acc[gid.x % 4u];
        }";
    let found = function_arrays(&spirv(source));
    assert_eq!(found, vec![("kernel".to_string(), "acc".to_string())]);
}

#[test]
fn gemm_keeps_no_arrays_in_function_memory() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let source = gemm_source(ta, tb);
        let found = function_arrays(&spirv(&source));
        assert!(
            found.is_empty(),
            "gemm (a transposed {ta}, b transposed {tb}): arrays in function memory: {found:?}"
        );
        // One layout per case: the module reads A and B one way only.
        let one_way = |prefix: &str, case: bool| {
            let other = format!("{prefix}{}(", if case { "n" } else { "t" });
            !source
                .lines()
                .filter(|l| !l.trim_start().starts_with("fn ") && !l.trim_start().starts_with("//"))
                .any(|l| l.contains(&other))
        };
        assert!(one_way("a_", ta) && one_way("b_", tb), "gemm {ta} {tb}");
    }
}

/// The fused MLP training kernel spreads each stage over the workgroup and keeps nothing per
/// sample in registers: no array may land in function memory, at the paper's sizes and wide,
/// on the reconstruction and on the supervised objective.
#[test]
fn fused_mlp_training_keeps_no_arrays_in_function_memory() {
    for (hidden, latents, dim, chunk) in [(32, 16, 8, 32), (256, 16, 8, 4), (64, 64, 32, 8)] {
        for supervised in [false, true] {
            let shape = EncoderTrainShape {
                latents,
                dim,
                batch: 1024,
                hidden: Some(hidden),
                bias: true,
                learned: !supervised,
                topk: None,
                supervised,
            };
            for shared in [true, false] {
                let (source, entry) = train_source(&shape, chunk, shared, false);
                assert_eq!(entry, "train_mlp");
                let found = function_arrays(&spirv(&source));
                assert!(
                    found.is_empty(),
                    "train_mlp h={hidden} {latents}x{dim} shared={shared} \
                     supervised={supervised}: arrays in function memory: {found:?}"
                );
            }
        }
    }
}
