//! The GPU backend through wgpu: WebGPU in the browser, Vulkan, Metal or DX12 natively.
//!
//! Tensors are storage buffers that stay on the device. A kernel call writes its parameters
//! (shapes, per-member scalars) into a host-side arena and records one compute pass into the
//! open command encoder; nothing waits. [`Backend::flush`] copies the arena to its device
//! buffer and submits; every dispatch finds its parameters at its own dynamic offset, so one
//! submission carries thousands of dispatches. Reads copy into a mappable buffer and map it
//! asynchronously. Pipelines are made once per kernel (lazily), bind groups once per set of
//! buffers (cached until a buffer is dropped). All kernels share one pipeline layout: the
//! parameters at binding 0 and up to six tensors at bindings 1 to 6 (unused ones are bound to
//! small placeholders).
//!
//! The WGSL sources live beside this file; each is compiled with `common.wgsl` prepended.
//! `fused.wgsl` (the per-sample solvers), `train.wgsl` (fused training of one-layer encoders),
//! `train_mlp.wgsl` (of MLP encoders with one hidden layer) and `train_sc.wgsl` (of sparse
//! coding) are compiled per shape.

use super::tensor::{
    per_member, AdamExpJob, Backend, BackendError, BackendKind, EncoderTrainJob, EncoderTrainShape,
    Epilogue, FistaJob, JumpReluScalars, Op, ReadSlot, Readback, Shape, SparseCodingTrainJob,
    Store, Tensor,
};
use super::AdamScalars;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

const COMMON: &str = include_str!("common.wgsl");
const ELEMENTWISE: &str = include_str!("elementwise.wgsl");
const COLUMNS: &str = include_str!("columns.wgsl");
const LOSS: &str = include_str!("loss.wgsl");
const GEMM_COMMON: &str = include_str!("gemm_common.wgsl");
const GEMM: &str = include_str!("gemm.wgsl");
const GEMM_VEC: &str = include_str!("gemm_vec.wgsl");
const FUSED: &str = include_str!("fused.wgsl");
const TRAIN_COMMON: &str = include_str!("train_common.wgsl");
const TRAIN: &str = include_str!("train.wgsl");
const TRAIN_MLP: &str = include_str!("train_mlp.wgsl");
const TRAIN_SC: &str = include_str!("train_sc.wgsl");

/// Bytes of parameters one dispatch may read (its window of the arena).
const PARAM_WINDOW: u64 = 64 * 1024;
/// The parameter arena: when a submission's parameters would pass this, it is flushed first.
const ARENA_BYTES: u64 = 8 * 1024 * 1024;
/// Tensors bound per dispatch at most (bindings 1 to 6).
const MAX_TENSORS: usize = 6;
/// Workgroup size of the 1-D kernels.
const WG: usize = 256;
/// Largest dictionary side the fused solvers keep in registers.
pub const FUSED_MAX_SIDE: usize = 64;
/// Training steps per dispatch of the fused encoder kernel at most: a dispatch stays a few
/// milliseconds on a GPU, and far below a driver's watchdog on a slow one.
const TRAIN_STEPS_PER_DISPATCH: usize = 200;
/// Mesa's llvmpipe (lavapipe) ends any loop of a shader after 65,535 iterations in one
/// invocation, counted over every entry into the loop (an infinite-loop guard), and silently
/// gives wrong results past it; software adapters keep each loop of the fused training kernel
/// under this many iterations per dispatch.
const SOFTWARE_LOOP_ITERATIONS: usize = 60_000;

/// The largest dictionary (values) that the fused solvers copy into each invocation on a
/// software adapter (`fused.wgsl`'s PRIVATE): llvmpipe keeps the copy in registers and stack
/// slots of every SIMD group, 32 bytes a value.
const PRIVATE_DICTIONARY_VALUES: usize = 1024;
/// The largest one-layer encoder (latents x dimensions) whose fused training kernel keeps
/// private copies and gradient sums in each invocation on a software adapter (`train.wgsl`'s
/// PRIVATE): four arrays of this many values per invocation.
const PRIVATE_TRAIN_VALUES: usize = 256;
/// The choices of the backend's per-adapter switches (`set_private_dictionaries`,
/// `set_private_training`, `set_blocked_thin_products`, `set_fused_mlp`).
const BY_ADAPTER: u8 = 0;
const NEVER: u8 = 1;
const ALWAYS: u8 = 2;
/// A setter's `None` (by adapter), `Some(false)` (never) or `Some(true)` (always).
fn adapter_choice(on: Option<bool>) -> u8 {
    match on {
        None => BY_ADAPTER,
        Some(false) => NEVER,
        Some(true) => ALWAYS,
    }
}

/// Whether a choice of [`BY_ADAPTER`], [`NEVER`] or [`ALWAYS`] is on, where by adapter it is
/// `default`.
fn chosen(choice: &std::sync::atomic::AtomicU8, default: bool) -> bool {
    match choice.load(Ordering::Relaxed) {
        NEVER => false,
        ALWAYS => true,
        _ => default,
    }
}

/// Submissions allowed in flight before the backend reports itself busy.
const MAX_IN_FLIGHT: usize = 2;

/// Whether kernels are trusted shader modules by default on `adapter`: natively on Vulkan,
/// whose driver still keeps buffer accesses in range (wgpu asks for robust buffer access), so
/// a kernel's mistake could not reach memory outside its bindings; elsewhere (Metal, DX12, a
/// browser) they keep every check.
fn trusts_shaders(adapter: &AdapterSummary) -> bool {
    !cfg!(target_arch = "wasm32") && adapter.api == "vulkan"
}

/// The runtime checks that trusted shader modules keep (see [`trusts_shaders`] and
/// [`GpuBackend::set_checked_shaders`]). Dropped:
/// - bounds checks: every index of every kernel is in range by construction (the host checks
///   each tensor's shape against the dispatch's parameters before recording it, and workgroup
///   arrays are sized by the same constants that bound their loops); a buffer access out of
///   range would still be clamped by the driver where it offers robust buffer access;
/// - loop bounding: every loop runs to a count from the dispatch's parameters;
/// - integer division checks: every divisor is a shape or a count the host has checked to be
///   positive, or a constant.
const TRUSTED_CHECKS: wgpu::ShaderRuntimeChecks = wgpu::ShaderRuntimeChecks {
    bounds_checks: false,
    force_loop_bounding: false,
    ray_query_initialization_tracking: true,
    task_shader_dispatch_tracking: true,
    mesh_shader_primitive_indices_clamp: true,
    int_div_checks: false,
};

/// A tensor's storage on the GPU. Dropping it forgets the bind groups that used it.
pub struct DeviceBuffer {
    pub(crate) buffer: wgpu::Buffer,
    id: u64,
    binds: Weak<Mutex<BindCache>>,
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer(#{}, {} bytes)",
            self.id,
            self.buffer.size()
        )
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if let Some(cache) = self.binds.upgrade() {
            if let Ok(mut c) = cache.lock() {
                c.forget(self.id);
            }
        }
    }
}

/// Bind groups by the ids of the buffers they bind (0 for a placeholder slot).
#[derive(Default)]
struct BindCache {
    groups: HashMap<[u64; MAX_TENSORS], wgpu::BindGroup>,
}

impl BindCache {
    fn forget(&mut self, id: u64) {
        self.groups.retain(|key, _| !key.contains(&id));
    }
}

/// What is being recorded for the next submission.
struct Recording {
    encoder: Option<wgpu::CommandEncoder>,
    /// The compute pass every dispatch of this submission goes into (ended by a copy or the
    /// submission): wgpu-core makes a command buffer per pass, so one pass per kernel cost
    /// far more than the kernels of a small problem.
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
}

/// What the backend has sent to the device so far: the plumbing a step costs, read by the
/// bench (differences over a step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GpuCounters {
    pub dispatches: u64,
    pub passes: u64,
    pub submissions: u64,
    pub reads: u64,
    pub read_bytes: u64,
    pub copies: u64,
}

impl GpuCounters {
    /// The counts from `before` to `self`.
    pub fn since(&self, before: &GpuCounters) -> GpuCounters {
        GpuCounters {
            dispatches: self.dispatches - before.dispatches,
            passes: self.passes - before.passes,
            submissions: self.submissions - before.submissions,
            reads: self.reads - before.reads,
            read_bytes: self.read_bytes - before.read_bytes,
            copies: self.copies - before.copies,
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!("the GPU backend passes kernel parameters in the host's byte order: little-endian");

/// A kernel's parameter words.
#[derive(Default, Clone)]
struct Params(Vec<u32>);

impl Params {
    fn u(mut self, v: usize) -> Self {
        self.0
            .push(u32::try_from(v).expect("a size past u32 reached a GPU kernel"));
        self
    }

    fn b(self, v: bool) -> Self {
        self.u(usize::from(v))
    }

    fn f(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }

    /// A per-member list: its length, then the values.
    fn list(mut self, values: &[f32]) -> Self {
        self = self.u(values.len());
        for &v in values {
            self = self.f(v);
        }
        self
    }

    /// A per-member list of counts: its length, then the counts.
    fn counts(mut self, values: &[usize]) -> Self {
        self = self.u(values.len());
        for &v in values {
            self = self.u(v);
        }
        self
    }

    fn values(mut self, values: &[f32]) -> Self {
        for &v in values {
            self = self.f(v);
        }
        self
    }

    fn adam(mut self, s: &[AdamScalars]) -> Self {
        self = self.u(s.len());
        for sc in s {
            self = self
                .f(sc.beta1)
                .f(sc.beta2)
                .f(sc.eps)
                .f(sc.step_size)
                .f(sc.bias2_sqrt);
        }
        self
    }
}

/// The adapter a GPU backend runs on, for the page and results files.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    /// vulkan, metal, dx12, webgpu, ...
    pub api: String,
    /// discrete, integrated, cpu (software), ...
    pub device_type: String,
    /// A software rasteriser (SwiftShader, llvmpipe): correct and slow.
    pub software: bool,
}

/// Kernels on the GPU (see the module documentation).
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    arena: wgpu::Buffer,
    placeholders: Vec<wgpu::Buffer>,
    recording: Mutex<Recording>,
    binds: Arc<Mutex<BindCache>>,
    error: Arc<Mutex<Option<String>>>,
    next_id: AtomicU64,
    align: u64,
    max_binding: u64,
    in_flight: Arc<AtomicUsize>,
    counters: Mutex<GpuCounters>,
    workgroup_bytes: u64,
    /// Whether fused training kernels are used where they fit (off: every step kernel by
    /// kernel, the reference they are tested against).
    fused_training: std::sync::atomic::AtomicBool,
    /// Whether shader modules are made with every runtime check wgpu can add (see
    /// [`GpuBackend::set_checked_shaders`]).
    checked_shaders: std::sync::atomic::AtomicBool,
    /// Whether the fused solvers copy the dictionary into each invocation
    /// ([`GpuBackend::set_private_dictionaries`]).
    private_dictionaries: std::sync::atomic::AtomicU8,
    /// Whether the fused training kernel of one-layer encoders keeps private copies and sums
    /// ([`GpuBackend::set_private_training`]).
    private_training: std::sync::atomic::AtomicU8,
    /// Which kernel takes the products too thin for tiles
    /// ([`GpuBackend::set_blocked_thin_products`]).
    thin_blocks: std::sync::atomic::AtomicU8,
    /// Whether MLP encoders train fused ([`GpuBackend::set_fused_mlp`]).
    fused_mlp: std::sync::atomic::AtomicU8,
    /// Partial results of reductions split across workgroups (`with_scratch`), kept between
    /// calls and grown when too small.
    scratch: Mutex<Option<Tensor>>,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

/// What a compute pipeline is, as the cache knows it: found on every dispatch without formatting
/// or allocating (its label is written once, when it is made).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PipelineKey {
    /// An entry point of one of the fixed modules.
    Module(&'static str, &'static str),
    /// A product kernel for one transpose case.
    Gemm(&'static str, bool, bool),
    /// A fused solver for dictionaries of dim x atoms, with a private copy of the dictionary
    /// in each invocation or not.
    Fused(&'static str, usize, usize, bool),
    /// A fused training kernel: its shape's sizes and switches, chunk and weight sharing.
    Train {
        entry: &'static str,
        latents: usize,
        dim: usize,
        hidden: usize,
        chunk: usize,
        bias: bool,
        learned: bool,
        shared: bool,
        supervised: bool,
        private: bool,
    },
    /// The fused sparse-coding kernel: latents, dim, chunk.
    SparseCoding(usize, usize, usize, bool),
}

fn grid(values: usize) -> (u32, u32, u32) {
    grid_of(values, WG)
}

/// The dimension the fused solvers are compiled for: `dim` rounded up to a multiple of 8 (at
/// most [`FUSED_MAX_SIDE`] for a dimension that is), so that the cells of a grid over many
/// dimensions share a few pipelines. Building one is most of a phase diagram's time on
/// lavapipe (which translates every pipeline's SPIR-V again, its shader cache notwithstanding).
fn fused_dim(dim: usize) -> usize {
    dim.next_multiple_of(8)
}

/// As [`grid`], for a kernel whose workgroups hold `size` invocations.
fn grid_of(values: usize, size: usize) -> (u32, u32, u32) {
    let groups = values.div_ceil(size).max(1);
    let x = groups.min(65_535);
    let y = groups.div_ceil(x);
    (x as u32, y as u32, 1)
}

/// A grid of `count` workgroups, spread over y past 65,535 (kernels with one workgroup per
/// item take their index as x + y * the grid's width and return past `count`).
fn workgroups(count: usize) -> (u32, u32, u32) {
    let x = count.clamp(1, 65_535);
    (x as u32, count.div_ceil(x).max(1) as u32, 1)
}

/// The longest walk of a column (rows times passes) that top-k leaves to one invocation.
const TOPK_SHORT_WALK: usize = 4_096;

/// Values per workgroup of the reductions split across workgroups (`WIDE_CHUNK` in
/// columns.wgsl, `LOSS_CHUNK` in loss.wgsl: 1,024 per invocation). Members longer than one
/// chunk are split: one workgroup would walk them alone (slow on a GPU, and on llvmpipe past its
/// loop guard, with wrong results, beyond about 16.7 M values).
const WIDE_CHUNK: usize = 262_144;

fn gemm_case(ta: bool, tb: bool) -> &'static str {
    match (ta, tb) {
        (false, false) => "nn",
        (true, false) => "tn",
        (false, true) => "nt",
        (true, true) => "tt",
    }
}

/// The whole WGSL of the matrix product for one transpose case (A transposed `ta`, B
/// transposed `tb`): the module the backend compiles, public so that tests can read the
/// SPIR-V naga makes of it.
pub fn gemm_source(ta: bool, tb: bool) -> String {
    let case = gemm_case(ta, tb);
    let body = GEMM
        .replace("{{TA}}", &case[..1])
        .replace("{{TB}}", &case[1..]);
    format!("{COMMON}\n{GEMM_COMMON}\n{body}")
}

/// The same for `gemm_block4` (`gemm_vec.wgsl`), which reads and writes vectors of four: the
/// declarations of b1..b4 (A, B, C, the epilogue's operand) in `common.wgsl` become arrays of
/// `vec4<f32>`.
pub fn gemm_vec_source(ta: bool, tb: bool) -> String {
    let case = gemm_case(ta, tb);
    let mut common = COMMON.to_string();
    for name in ["b1", "b2", "b3", "b4"] {
        let scalar = format!("{name}: array<f32>;");
        assert!(common.contains(&scalar), "common.wgsl declares {name}");
        common = common.replace(&scalar, &format!("{name}: array<vec4<f32>>;"));
    }
    let body = GEMM_VEC
        .replace("{{TA}}", &case[..1])
        .replace("{{TB}}", &case[1..]);
    format!("{common}\n{GEMM_COMMON}\n{body}")
}

/// The whole WGSL of the fused sparse-coding training kernel for `latents` atoms of `dim`
/// values with chunks of `chunk` samples, in its private form or not.
pub fn train_sc_source(latents: usize, dim: usize, chunk: usize, private: bool) -> String {
    let own = if private { latents * dim } else { 1 };
    let body = format!("{TRAIN_COMMON}\n{TRAIN_SC}")
        .replace("{{PRIVATE}}", &private.to_string())
        .replace("{{OWN}}", &own.to_string())
        .replace("{{NM}}", &(latents * dim).to_string())
        .replace("{{NC}}", &(latents * chunk).to_string())
        .replace("{{MC}}", &(dim * chunk).to_string())
        .replace("{{NN}}", &latents.to_string())
        .replace("{{MM}}", &dim.to_string())
        .replace("{{CH}}", &chunk.to_string())
        .replace("{{SUP}}", "false")
        .replace("{{N3}}", "1");
    format!("{COMMON}\n{body}")
}

/// The entry point of the fused training kernel for `shape`.
fn train_entry(shape: &EncoderTrainShape) -> &'static str {
    match shape.hidden {
        None => "train_encoder",
        Some(_) => "train_mlp",
    }
}

/// The whole WGSL of the fused training kernel for `shape` with chunks of `chunk` samples
/// (`train.wgsl` for one-layer encoders, `train_mlp.wgsl` for MLPs, with the layers' weights in
/// workgroup memory when `shared_weights`; for a one-layer encoder, in the `private` form
/// when asked) and its entry point: the module the backend compiles, public so that tests can
/// read the SPIR-V naga makes of it.
pub fn train_source(
    shape: &EncoderTrainShape,
    chunk: usize,
    shared_weights: bool,
    private: bool,
) -> (String, &'static str) {
    let (n, m) = (shape.latents, shape.dim);
    let h = shape.hidden.unwrap_or(0);
    let entry = train_entry(shape);
    let source = match shape.hidden {
        None => TRAIN,
        Some(_) => TRAIN_MLP,
    };
    let layers = shape.param_len() - if shape.learned { n * m } else { 0 };
    let body = format!("{TRAIN_COMMON}\n{source}")
        .replace("{{NM}}", &(n * m).to_string())
        .replace("{{NC}}", &(n * chunk).to_string())
        .replace("{{MC}}", &(m * chunk).to_string())
        .replace("{{MQ}}", &(m * chunk / 4).to_string())
        .replace("{{HQ}}", &(h * chunk / 4).to_string())
        .replace("{{NQ}}", &(n * chunk / 4).to_string())
        .replace("{{NN}}", &n.to_string())
        .replace("{{MM}}", &m.to_string())
        .replace("{{HH}}", &h.to_string())
        .replace("{{CH}}", &chunk.to_string())
        .replace("{{SUP}}", if shape.supervised { "true" } else { "false" })
        .replace("{{N3}}", &(3 * n).to_string())
        .replace("{{WSH}}", if shared_weights { "true" } else { "false" })
        .replace("{{PRIVATE}}", if private { "true" } else { "false" })
        .replace("{{OWN}}", &(if private { n * m } else { 1 }).to_string())
        .replace("{{OWNB}}", &(if private { n } else { 1 }).to_string())
        .replace(
            "{{PWS}}",
            &(if shared_weights { layers } else { 1 }).to_string(),
        );
    (format!("{COMMON}\n{body}"), entry)
}

/// Workgroup bytes of the fused MLP kernel for `shape` with chunks of `chunk` samples, the
/// layers' weights in workgroup memory or not.
fn mlp_workgroup_bytes(shape: &EncoderTrainShape, chunk: usize, shared_weights: bool) -> u64 {
    let (n, m, h) = (shape.latents, shape.dim, shape.hidden.unwrap_or(0));
    let layers = shape.param_len() - if shape.learned { n * m } else { 0 };
    let weights = if shared_weights { layers } else { 1 };
    4 * (weights + n * m + 3 * n + 128 + chunk * 2 * (n + m + h)) as u64
}

impl GpuBackend {
    /// Find an adapter and make a device with the limits the adapter offers. Fails when there
    /// is no adapter (no WebGPU in this browser, no Vulkan driver) or the device is refused.
    pub async fn request() -> Result<Self, BackendError> {
        #[cfg(target_arch = "wasm32")]
        let desc = {
            let mut d = wgpu::InstanceDescriptor::new_without_display_handle();
            d.backends = wgpu::Backends::BROWSER_WEBGPU;
            d
        };
        #[cfg(not(target_arch = "wasm32"))]
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| {
                // wgpu lists every backend it did not try; in a browser only WebGPU counts.
                BackendError(if cfg!(target_arch = "wasm32") {
                    "this browser offers no WebGPU adapter".to_string()
                } else {
                    format!("no GPU adapter: {e}")
                })
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        if limits.max_storage_buffers_per_shader_stage < 7 {
            return Err(BackendError(format!(
                "the adapter {} binds {} storage buffers per shader stage; 7 are needed",
                info.name, limits.max_storage_buffers_per_shader_stage
            )));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("sparse-playground"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| BackendError(format!("the GPU refused a device: {e}")))?;
        let software = info.device_type == wgpu::DeviceType::Cpu
            || ["swiftshader", "llvmpipe", "lavapipe", "warp"]
                .iter()
                .any(|s| info.name.to_lowercase().contains(s));
        let adapter = AdapterSummary {
            name: if info.name.is_empty() {
                "unnamed adapter".to_string()
            } else {
                info.name.clone()
            },
            api: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type).to_lowercase(),
            software,
        };
        Ok(Self::from_device(device, queue, adapter, &limits))
    }

    /// As [`request`](Self::request), blocking (natively only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn request_blocking() -> Result<Self, BackendError> {
        pollster::block_on(Self::request())
    }

    fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: AdapterSummary,
        limits: &wgpu::Limits,
    ) -> Self {
        let trusted = trusts_shaders(&adapter);
        let error: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| format!("the GPU reported an error: {e}"));
            }
        }));
        let sink = Arc::clone(&error);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| {
                    format!("the GPU device was lost ({reason:?}): {message}")
                });
            }
        });
        let storage = |binding: u32, read_only: bool, dynamic: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: dynamic,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![storage(0, true, true)];
        entries.extend((1..=MAX_TENSORS as u32).map(|b| storage(b, false, false)));
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("kernels"),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("kernels"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("parameter arena"),
            size: ARENA_BYTES + PARAM_WINDOW,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let placeholders = (0..MAX_TENSORS)
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("unused binding"),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Self {
            device,
            queue,
            adapter,
            layout,
            pipeline_layout,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            arena,
            placeholders,
            recording: Mutex::new(Recording {
                encoder: None,
                pass: None,
                params: Vec::new(),
            }),
            counters: Mutex::default(),
            binds: Arc::default(),
            error,
            next_id: AtomicU64::new(1),
            align: u64::from(limits.min_storage_buffer_offset_alignment).max(4),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            in_flight: Arc::default(),
            workgroup_bytes: u64::from(limits.max_compute_workgroup_storage_size),
            fused_training: std::sync::atomic::AtomicBool::new(true),
            checked_shaders: std::sync::atomic::AtomicBool::new(!trusted),
            private_dictionaries: std::sync::atomic::AtomicU8::new(BY_ADAPTER),
            private_training: std::sync::atomic::AtomicU8::new(BY_ADAPTER),
            thin_blocks: std::sync::atomic::AtomicU8::new(BY_ADAPTER),
            fused_mlp: std::sync::atomic::AtomicU8::new(BY_ADAPTER),
            scratch: Mutex::new(None),
        }
    }

    /// Use fused training kernels where they fit (the default), or run every training step
    /// kernel by kernel (the reference; for parity tests and the bench's comparison).
    pub fn set_fused_training(&self, on: bool) {
        self.fused_training.store(on, Ordering::Relaxed);
    }

    /// Make shader modules with every runtime check wgpu can add (`true`), or, natively, as
    /// trusted modules without them (`false`, the default on Vulkan; see [`TRUSTED_CHECKS`]).
    /// Pipelines made before the call are dropped, so the next dispatch of each compiles it
    /// again the new way. In a browser modules are always checked: WebGPU has no other kind.
    pub fn set_checked_shaders(&self, checked: bool) {
        let checked = checked || cfg!(target_arch = "wasm32");
        if self.checked_shaders.swap(checked, Ordering::Relaxed) != checked {
            self.modules.lock().expect("shader modules").clear();
            self.pipelines.lock().expect("pipelines").clear();
        }
    }

    /// Whether the fused solvers (the paper's inference, FISTA) give each invocation its own
    /// copy of a dictionary of up to 1,024 values (`fused.wgsl`'s PRIVATE): `None` on software
    /// adapters only (the default), `Some(on)` on any adapter or none (for parity tests and
    /// the bench's comparison). Both forms give the same bits.
    pub fn set_private_dictionaries(&self, on: Option<bool>) {
        self.private_dictionaries
            .store(adapter_choice(on), Ordering::Relaxed);
    }

    /// Whether the fused training kernel of one-layer encoders (`train.wgsl`) gives each
    /// invocation private copies of the step's parameters and private gradient sums over the
    /// batch, for the reconstruction objective at up to 256 latents x dimensions, and the fused
    /// sparse-coding kernel (`train_sc.wgsl`) a private dictionary and private sums of its
    /// gradient, at up to 256 atoms x dimensions: `None` on software adapters only (the
    /// default), `Some(on)` on any adapter or none (for parity tests and the bench's
    /// comparison). The two forms sum the gradients in different orders.
    pub fn set_private_training(&self, on: Option<bool>) {
        self.private_training
            .store(adapter_choice(on), Ordering::Relaxed);
    }

    /// Whether products too thin for tiles take `gemm_block` (an 8 x 8 block of the output per
    /// invocation: a quarter of the loads per multiply-add) rather than `gemm_simple` (one
    /// element per invocation: many more in flight): `None` the block on software adapters
    /// only (the default), `Some(on)` on any adapter or none (for parity tests and the
    /// bench). Both give the same bits.
    pub fn set_blocked_thin_products(&self, on: Option<bool>) {
        self.thin_blocks
            .store(adapter_choice(on), Ordering::Relaxed);
    }

    /// Whether MLP encoders train in the fused kernel (`train_mlp.wgsl`) where it fits: `None`
    /// on hardware adapters only (the default), `Some(on)` on any adapter or none (for
    /// parity tests and the bench). On a software adapter each stage of that kernel reads its
    /// operands from workgroup memory inside loops, a loop over the lanes per read in
    /// llvmpipe, and one workgroup per member leaves cores idle: kernel by kernel, with its
    /// blocked thin products, an MLP with 32 hidden units trained 3.4x faster on lavapipe.
    pub fn set_fused_mlp(&self, on: Option<bool>) {
        self.fused_mlp.store(adapter_choice(on), Ordering::Relaxed);
    }

    /// See [`Self::set_fused_mlp`].
    fn fused_mlp(&self) -> bool {
        chosen(&self.fused_mlp, !self.adapter.software)
    }

    /// Whether the fused training kernel for `shape` takes the private form (see
    /// [`Self::set_private_training`]).
    fn private_training(&self, shape: &EncoderTrainShape) -> bool {
        shape.hidden.is_none()
            && !shape.supervised
            && shape.latents * shape.dim <= PRIVATE_TRAIN_VALUES
            && self.by_adapter(&self.private_training)
    }

    /// Whether the fused sparse-coding kernel (`train_sc.wgsl`) takes its private form (the
    /// same switch as `train.wgsl`'s, for dictionaries of up to 256 values).
    fn private_sparse_coding(&self, latents: usize, dim: usize) -> bool {
        latents * dim <= PRIVATE_TRAIN_VALUES && self.by_adapter(&self.private_training)
    }

    /// Whether a choice that is on by default on software adapters only is on here.
    fn by_adapter(&self, choice: &std::sync::atomic::AtomicU8) -> bool {
        chosen(choice, self.adapter.software)
    }

    /// A shader module of this crate's WGSL, checked or trusted as
    /// [`set_checked_shaders`](Self::set_checked_shaders) says.
    fn shader(&self, label: &'static str, source: String) -> wgpu::ShaderModule {
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        if self.checked_shaders.load(Ordering::Relaxed) {
            return self.device.create_shader_module(desc);
        }
        // SAFETY: every module is this crate's own WGSL (no user text reaches a shader), and
        // TRUSTED_CHECKS drops only the checks whose conditions the host establishes for every
        // dispatch; the parity tests run the kernels both ways.
        unsafe {
            self.device
                .create_shader_module_trusted(desc, TRUSTED_CHECKS)
        }
    }

    /// Samples per chunk of the fused training kernel for `shape`, if it fits. One-layer
    /// encoders (`train.wgsl`): registers for a sample's signal, code and residual (sides up to
    /// [`FUSED_MAX_SIDE`]), and workgroup memory for the weight, dictionary, bias and a chunk's
    /// codes, gradients, residuals and signals. MLPs (`train_mlp.wgsl`): workgroup memory for
    /// the dictionary and a chunk's signals, residuals, hidden units, codes and both of their
    /// gradients (the weights stay in the state buffer).
    fn train_chunk(&self, shape: &EncoderTrainShape) -> Option<usize> {
        let (n, m) = (shape.latents, shape.dim);
        if n == 0 || m == 0 {
            return None;
        }
        match shape.hidden {
            None if n > FUSED_MAX_SIDE || m > FUSED_MAX_SIDE => None,
            None => [64, 32, 16, 8].into_iter().find(|ch| {
                4 * (2 * n * m + 4 * n + 128 + ch * 2 * (n + m)) as u64 <= self.workgroup_bytes
            }),
            Some(0) => None,
            // The weights in workgroup memory where they fit with chunks of 8 or more, else
            // in the state buffer (see `train_mlp_shares_weights`).
            Some(_) => [64, 32, 16, 8]
                .into_iter()
                .find(|&ch| mlp_workgroup_bytes(shape, ch, true) <= self.workgroup_bytes)
                .or_else(|| {
                    [64, 32, 16, 8, 4]
                        .into_iter()
                        .find(|&ch| mlp_workgroup_bytes(shape, ch, false) <= self.workgroup_bytes)
                }),
        }
    }

    /// Whether the fused MLP kernel with chunks of `chunk` keeps the layers' weights in
    /// workgroup memory.
    fn train_mlp_shares_weights(&self, shape: &EncoderTrainShape, chunk: usize) -> bool {
        shape.hidden.is_some() && mlp_workgroup_bytes(shape, chunk, true) <= self.workgroup_bytes
    }

    /// Training steps per dispatch of the fused kernel for `shape` (chunks of `chunk`
    /// samples, top-k `k`), or `None` where a software adapter's loop guard would cut even
    /// two steps short (see [`SOFTWARE_LOOP_ITERATIONS`]).
    fn train_steps_per_dispatch(
        &self,
        shape: &EncoderTrainShape,
        chunk: usize,
        k: usize,
    ) -> Option<usize> {
        if !self.adapter.software {
            return Some(TRAIN_STEPS_PER_DISPATCH);
        }
        // The most iterations any one loop of the kernel runs per step in one invocation,
        // counted as the guard counts them: a loop entered E times for I iterations each
        // counts E (I + 1) (its test runs once more than its body; the estimate that left
        // that out let a frozen-dictionary MLP run 78 steps per dispatch and come out 4%
        // off). Per chunk: the reductions over the chunk (in fours) of the values an
        // invocation owns, the top-k passes, the supervised sums of the latents it owns, and
        // (where the compiler keeps them as loops) a sample's products in `train.wgsl`, an
        // output's products over its share of a stage in `train_mlp.wgsl`.
        let (n, m) = (shape.latents, shape.dim);
        let owned = shape.param_len().div_ceil(64);
        // A stage of `train_mlp.wgsl` gives each invocation vec4 outputs (four samples).
        let stage = |rows: usize| (rows * chunk / 4).div_ceil(64);
        let (products, topk) = match shape.hidden {
            None => (n * (m + 1), k * (n + 1)),
            Some(h) => (
                [
                    stage(h) * (m.max(n) + 1),
                    stage(n) * (h.max(m) + 1),
                    stage(m) * (n + 1),
                ]
                .into_iter()
                .max()
                .unwrap_or(1),
                // One invocation per quad runs the top-k of its four samples.
                4 * (k + 1) * (n + 1),
            ),
        };
        let sums = if shape.supervised {
            n.div_ceil(64) * (chunk + 1)
        } else {
            0
        };
        let per_chunk = [owned * (chunk / 4 + 1), products, topk, sums]
            .into_iter()
            .max()
            .unwrap_or(1);
        // The supervised objective passes over the chunks twice.
        let passes = if shape.supervised { 2 } else { 1 };
        let per_step = if self.private_training(shape) {
            // The private form, counted loop by loop (the guard's count is one for all the
            // loops of an invocation): the copy and clearing of the step's parameters, the
            // chunks with a sample's top-k passes and its products, then the gradient in
            // rounds of NN values (a column of each, the owners' sums in fours over the
            // chunk), and Adam on the owned values.
            let plen = shape.param_len();
            let rounds = plen.div_ceil(n);
            let copy = (n * m + 1) + (n + 1);
            let chunks = (shape.batch.div_ceil(chunk) + 1) * (topk + products + 1);
            let gradient = (rounds + 1) + rounds * ((n + 1) + (chunk / 4 + 1));
            copy + chunks + gradient + (owned + 1) + 1
        } else {
            passes * (shape.batch.div_ceil(chunk) + 1) * per_chunk + 1
        };
        let steps = SOFTWARE_LOOP_ITERATIONS / per_step;
        // At one step per dispatch the fused kernel saves no dispatch, and its one workgroup per
        // member leaves the other cores idle where kernel by kernel spreads over them (an MLP
        // with 256 hidden units on lavapipe: 273 ms a step fused, 161 ms kernel by kernel).
        (steps > 1).then_some(steps.min(TRAIN_STEPS_PER_DISPATCH))
    }

    /// The fused training kernel for `shape` with chunks of `chunk` samples.
    fn train_pipeline(&self, shape: &EncoderTrainShape, chunk: usize) -> wgpu::ComputePipeline {
        let shared = self.train_mlp_shares_weights(shape, chunk);
        let private = self.private_training(shape);
        let entry = train_entry(shape);
        let key = PipelineKey::Train {
            entry,
            latents: shape.latents,
            dim: shape.dim,
            hidden: shape.hidden.unwrap_or(0),
            chunk,
            bias: shape.bias,
            learned: shape.learned,
            shared,
            supervised: shape.supervised,
            private,
        };
        self.pipeline_from(
            key,
            || {
                let (source, _) = train_source(shape, chunk, shared, private);
                self.shader(entry, source)
            },
            entry,
        )
    }

    /// Samples per chunk of the fused sparse-coding kernel for `latents` atoms of `dim` values,
    /// if it fits: registers for a sample's signal, code and residual (sides up to
    /// [`FUSED_MAX_SIDE`]), workgroup memory for the dictionary, its gradient and a chunk's
    /// codes and residuals.
    fn sc_train_chunk(&self, latents: usize, dim: usize) -> Option<usize> {
        if latents == 0 || dim == 0 || latents > FUSED_MAX_SIDE || dim > FUSED_MAX_SIDE {
            return None;
        }
        let fixed = 2 * latents * dim + 128;
        [64, 32, 16, 8]
            .into_iter()
            .find(|ch| 4 * (fixed + ch * (latents + dim)) as u64 <= self.workgroup_bytes)
    }

    /// Iterations of a fused per-sample solver (`adam_exp`, `fista`) per dispatch that a
    /// software adapter's loop guard allows (see [`SOFTWARE_LOOP_ITERATIONS`]); unbounded on
    /// hardware. An iteration enters the loop over the rows twice per atom and twice alone,
    /// and the loop over the atoms twice; each entry counts its iterations plus one. Counted
    /// over all of them: with the count of the busiest loop alone, FISTA at 51 x 64 ran 18
    /// iterations per dispatch and gave wrong codes on lavapipe.
    fn solver_iterations_per_dispatch(&self, dim: usize, atoms: usize) -> usize {
        if !self.adapter.software {
            return usize::MAX;
        }
        let per_iteration = (2 * atoms + 2) * (dim + 1) + 2 * (atoms + 1) + 1;
        // The dictionary's private copy is one more loop, once per dispatch.
        let copy = if self.private_dictionary(dim, atoms) {
            dim * atoms
        } else {
            0
        };
        ((SOFTWARE_LOOP_ITERATIONS - copy) / per_iteration).max(1)
    }

    /// Whether the fused solvers give each invocation its own copy of a `dim` x `atoms`
    /// dictionary (see `fused.wgsl`): up to [`PRIVATE_DICTIONARY_VALUES`] values, on software
    /// adapters unless [`Self::set_private_dictionaries`] says otherwise.
    fn private_dictionary(&self, dim: usize, atoms: usize) -> bool {
        dim * atoms <= PRIVATE_DICTIONARY_VALUES && self.by_adapter(&self.private_dictionaries)
    }

    /// Training steps per dispatch of the fused sparse-coding kernel (see
    /// [`Self::train_steps_per_dispatch`]).
    fn sc_steps_per_dispatch(
        &self,
        latents: usize,
        dim: usize,
        batch: usize,
        chunk: usize,
    ) -> Option<usize> {
        if !self.adapter.software {
            return Some(TRAIN_STEPS_PER_DISPATCH);
        }
        // Per chunk: a sample's products, and the reductions (in fours) of the dictionary
        // gradient values an invocation owns, counted as `train_steps_per_dispatch` counts.
        let per_chunk = (latents * (dim + 1)).max((latents * dim).div_ceil(64) * (chunk / 4 + 1));
        let per_step = if self.private_sparse_coding(latents, dim) {
            // The private form, every loop counted (the guard's count is one for all the loops
            // of an invocation), as if the compiler kept every one rolled: the atoms'
            // normalisation, the dictionary's copy, per sample its loads, both products, its
            // share of dD and its codes' Adam, then dD in rounds of NN values (a column of each,
            // the owners' sums in fours over the chunk), and Adam on the owned values.
            let normalize = latents.div_ceil(64) * 2 * (dim + 1) + latents.div_ceil(64) + 1;
            let copy = latents * dim + 1;
            let sample = 3 * latents * (dim + 1) + 3 * (latents + 1) + 3 * (dim + 1);
            let chunks = (batch.div_ceil(chunk) + 1) * (sample + 1);
            let rounds = (dim + 1) + dim * ((latents + 1) + (chunk / 4 + 1));
            normalize + copy + chunks + rounds + (latents * dim).div_ceil(64) + 2
        } else {
            (batch.div_ceil(chunk) + 1) * per_chunk + 1
        };
        let steps = SOFTWARE_LOOP_ITERATIONS / per_step;
        // At one step per dispatch the fused kernel saves no dispatch, and its one workgroup per
        // member leaves the other cores idle where kernel by kernel spreads over them (an MLP
        // with 256 hidden units on lavapipe: 273 ms a step fused, 161 ms kernel by kernel).
        (steps > 1).then_some(steps.min(TRAIN_STEPS_PER_DISPATCH))
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// The largest tensor (bytes) one binding can hold on this device.
    pub fn max_tensor_bytes(&self) -> u64 {
        self.max_binding
    }

    fn module(&self, name: &'static str) -> wgpu::ShaderModule {
        let mut modules = self.modules.lock().expect("shader modules");
        modules
            .entry(name)
            .or_insert_with(|| {
                let body = match name {
                    "elementwise" => ELEMENTWISE,
                    "columns" => COLUMNS,
                    "loss" => LOSS,
                    other => unreachable!("no shader module {other}"),
                };
                self.shader(name, format!("{COMMON}\n{body}"))
            })
            .clone()
    }

    fn pipeline_from(
        &self,
        key: PipelineKey,
        module: impl FnOnce() -> wgpu::ShaderModule,
        entry: &str,
    ) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().expect("pipelines");
        if let Some(p) = pipelines.get(&key) {
            return p.clone();
        }
        let module = module();
        let label = format!("{key:?}");
        let p = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&self.pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
        pipelines.insert(key, p.clone());
        p
    }

    fn pipeline(&self, module: &'static str, entry: &'static str) -> wgpu::ComputePipeline {
        self.pipeline_from(
            PipelineKey::Module(module, entry),
            || self.module(module),
            entry,
        )
    }

    /// The matrix product `entry` (`gemm` or `gemm_simple`) for one transpose case.
    /// c <- alpha op(a) op(b) + beta c, then the epilogue if any, for every member but those
    /// `skip` flags (their workgroups and invocations return at once, leaving their c as it
    /// was; empty: none).
    #[allow(
        clippy::too_many_arguments,
        reason = "the product, its epilogue and its skips"
    )]
    fn product(
        &self,
        alpha: f32,
        a: Op<'_>,
        b: Op<'_>,
        beta: f32,
        c: &mut Tensor,
        epilogue: Option<Epilogue<'_>>,
        skip: &[bool],
    ) {
        let cs = c.shape();
        let (m, k) = a.shape();
        let (k2, n) = b.shape();
        assert_eq!(
            k, k2,
            "gemm: inner dimensions differ ({m}x{k} times {k2}x{n})"
        );
        assert_eq!((m, n), (cs.rows, cs.cols), "gemm: output shape mismatch");
        let abc = broadcast(a.tensor.shape(), cs, "gemm (a)");
        let bbc = broadcast(b.tensor.shape(), cs, "gemm (b)");
        let mut p = Params::default()
            .u(m)
            .u(n)
            .u(k)
            .b(a.transposed)
            .b(b.transposed)
            .b(abc || a.tensor.stack() == 1)
            .b(bbc || b.tensor.stack() == 1)
            .f(alpha)
            .f(beta)
            .u(cs.stack);
        let (kind, operand, flags, scales) = match epilogue {
            None => (0, None, 0, None),
            Some(Epilogue::Activation { bias, relu }) => {
                if let Some(bias) = bias {
                    assert_eq!(
                        (bias.rows(), bias.cols()),
                        (cs.rows, 1),
                        "gemm_epilogue: the bias must be rows x 1"
                    );
                }
                (
                    1,
                    bias,
                    u32::from(bias.is_some()) | (u32::from(relu) << 1),
                    None,
                )
            }
            Some(Epilogue::Residual { x, scale }) => {
                assert_eq!(
                    (x.rows(), x.cols()),
                    (cs.rows, cs.cols),
                    "gemm_epilogue: the residual's x has another shape"
                );
                (2, Some(x), 0, Some(scale))
            }
            Some(Epilogue::Gradient {
                out,
                l1,
                through_relu,
            }) => {
                same("gemm_epilogue (gradient)", out.shape(), cs);
                let flags = u32::from(l1.is_some()) | (u32::from(through_relu) << 1);
                (3, Some(out), flags, l1)
            }
        };
        let operand_bc = operand
            .is_some_and(|t| broadcast(t.shape(), cs, "gemm_epilogue (operand)") || t.stack() == 1);
        assert!(
            skip.is_empty() || skip.len() == cs.stack,
            "gemm: one skip flag per member"
        );
        p = p
            .u(kind)
            .b(operand_bc)
            .u(flags as usize)
            .list(&scalars_list(scales.unwrap_or(&[0.0]), cs.stack))
            .u(skip.len());
        for &s in skip {
            p = p.b(s);
        }

        // 64 x 64 tiles pay where both sides of C and K are wide; the paper's thin shapes (a side
        // of 8 or 16) would leave most of a tile idle, so they take one invocation per element.
        let tiled = m >= 32 && n >= 32 && k >= 32;
        let (a_buf, b_buf, c_buf) = (a.tensor.device(), b.tensor.device(), c.device());
        let with_operand;
        let tensors: &[&DeviceBuffer] = match operand {
            Some(t) => {
                with_operand = [a_buf, b_buf, c_buf, t.device()];
                &with_operand
            }
            None => &[a_buf, b_buf, c_buf],
        };
        if tiled {
            let pipeline = self.gemm_pipeline("gemm", a.transposed, b.transposed);
            let groups = (
                n.div_ceil(64) as u32,
                m.div_ceil(64) as u32,
                cs.stack as u32,
            );
            self.dispatch(&pipeline, p, tensors, groups);
        } else if self.by_adapter(&self.thin_blocks) {
            // Four values per load where every vector is aligned (see gemm_vec.wgsl).
            let aligned = k % 4 == 0 && m % 4 == 0 && (!b.transposed || n % 4 == 0);
            let wide = aligned && m % 16 == 0 && n % 16 == 0 && k >= 16;
            let (entry, side, group) = match (aligned, wide) {
                (_, true) => ("gemm_block16", 16, 16),
                (true, false) => ("gemm_block4", 8, 64),
                _ => ("gemm_block", 8, 64),
            };
            let pipeline = self.gemm_pipeline(entry, a.transposed, b.transposed);
            let blocks = cs.stack * m.div_ceil(side) * n.div_ceil(side);
            self.dispatch(&pipeline, p, tensors, grid_of(blocks, group));
        } else {
            let pipeline = self.gemm_pipeline("gemm_simple", a.transposed, b.transposed);
            self.dispatch(&pipeline, p, tensors, grid(cs.len()));
        }
    }

    /// FISTA's update (`Backend::fista_update`), leaving the members `skip` flags alone:
    /// their codes come back from `s_prev` and their `y` stays.
    fn fista_update_skipping(
        &self,
        s: &mut Tensor,
        s_prev: &Tensor,
        y: &mut Tensor,
        (threshold, momentum): (&[f32], &[f32]),
        nonneg: bool,
        skip: &[bool],
    ) {
        let shape = s.shape();
        same("fista_update (s_prev)", s_prev.shape(), shape);
        same("fista_update (y)", y.shape(), shape);
        let (threshold, momentum) = if threshold.len() == 1 && momentum.len() == 1 {
            (threshold.to_vec(), momentum.to_vec())
        } else {
            (
                per_member(threshold, shape.stack).collect(),
                per_member(momentum, shape.stack).collect(),
            )
        };
        let p = Params::default()
            .u(shape.len())
            .u(shape.matrix_len())
            .b(nonneg)
            .list(&threshold)
            .values(&momentum)
            .u(skip.len());
        let p = skip.iter().fold(p, |p, &k| p.b(k));
        self.elementwise(
            "fista_update",
            shape.len(),
            p,
            &[s.device(), s_prev.device(), y.device()],
        );
    }

    /// FISTA kernel by kernel for dictionaries past the fused kernel, leaving the members of
    /// `job.skip` alone: their products return at once and the update puts their codes back,
    /// so a stack pays for its unconverged members only (the same arithmetic as the solver's
    /// own kernel-by-kernel loop, which runs where nothing is skipped).
    fn fista_by_kernels(&self, job: &mut FistaJob<'_>) {
        let members = job.dict.stack();
        let (dim, n) = (job.dict.rows(), job.x.cols());
        let mut recon = self.zeros(Shape::new(members, dim, n));
        let stride = job.momentum_stride(members);
        for mom in job.momentum.chunks(stride) {
            // r = g (D y - x), then s = y - D^T r and the proximal step.
            let residual = Epilogue::Residual {
                x: job.x,
                scale: job.step,
            };
            let (dict, y) = (Op::n(job.dict), Op::n(&*job.y));
            self.product(1.0, dict, y, 0.0, &mut recon, Some(residual), job.skip);
            std::mem::swap(job.s, job.s_prev);
            self.copy(job.y, job.s);
            let (dict_t, r) = (Op::t(job.dict), Op::n(&recon));
            self.product(-1.0, dict_t, r, 1.0, job.s, None, job.skip);
            let scalars = (job.threshold, mom);
            self.fista_update_skipping(job.s, job.s_prev, job.y, scalars, job.nonneg, job.skip);
        }
    }

    fn gemm_pipeline(&self, entry: &'static str, ta: bool, tb: bool) -> wgpu::ComputePipeline {
        self.pipeline_from(
            PipelineKey::Gemm(entry, ta, tb),
            || {
                // The kernels that read and write in fours have a module of their own.
                match entry {
                    "gemm_block4" | "gemm_block16" => {
                        self.shader("gemm_vec", gemm_vec_source(ta, tb))
                    }
                    _ => self.shader("gemm", gemm_source(ta, tb)),
                }
            },
            entry,
        )
    }

    /// The fused solver `entry` compiled for dictionaries of `dim` x `atoms`.
    fn fused_pipeline(
        &self,
        entry: &'static str,
        dim: usize,
        atoms: usize,
    ) -> wgpu::ComputePipeline {
        let private = self.private_dictionary(dim, atoms);
        self.pipeline_from(
            PipelineKey::Fused(entry, dim, atoms, private),
            || {
                let own = if private { dim * atoms } else { 1 };
                let body = FUSED
                    .replace("{{NN_MM}}", &(dim * atoms).to_string())
                    .replace("{{NN}}", &atoms.to_string())
                    .replace("{{MM}}", &dim.to_string())
                    .replace("{{PRIVATE}}", &private.to_string())
                    .replace("{{OWN}}", &own.to_string());
                self.shader("fused", format!("{COMMON}\n{body}"))
            },
            entry,
        )
    }

    fn new_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Run `f` with a scratch tensor of at least `floats` values (its contents are whatever the
    /// last user left).
    fn with_scratch<R>(&self, floats: usize, f: impl FnOnce(&Tensor) -> R) -> R {
        let mut slot = self.scratch.lock().expect("scratch");
        if slot.as_ref().is_none_or(|t| t.shape().len() < floats) {
            *slot = Some(self.zeros(Shape::new(1, floats.max(4_096), 1)));
        }
        f(slot.as_ref().expect("made above"))
    }

    fn tensor_of(&self, shape: Shape, buffer: wgpu::Buffer) -> Tensor {
        Tensor::new(
            shape,
            Store::Device(DeviceBuffer {
                buffer,
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                binds: Arc::downgrade(&self.binds),
            }),
        )
    }

    fn bind_group(&self, tensors: &[&DeviceBuffer]) -> wgpu::BindGroup {
        assert!(
            tensors.len() <= MAX_TENSORS,
            "too many tensors for one dispatch"
        );
        let mut key = [0u64; MAX_TENSORS];
        for (k, t) in key.iter_mut().zip(tensors) {
            *k = t.id;
        }
        let mut cache = self.binds.lock().expect("bind cache");
        if let Some(g) = cache.groups.get(&key) {
            return g.clone();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: 0,
                size: wgpu::BufferSize::new(PARAM_WINDOW),
            }),
        }];
        for slot in 0..MAX_TENSORS {
            let buffer = tensors
                .get(slot)
                .map_or(&self.placeholders[slot], |t| &t.buffer);
            entries.push(wgpu::BindGroupEntry {
                binding: slot as u32 + 1,
                resource: buffer.as_entire_binding(),
            });
        }
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        });
        cache.groups.insert(key, group.clone());
        group
    }

    /// Record one dispatch of `pipeline` with `params` over `tensors`.
    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: Params,
        tensors: &[&DeviceBuffer],
        groups: (u32, u32, u32),
    ) {
        // The words as the device reads them (every platform wgpu runs on is little-endian,
        // as WGSL's u32 is): no copy.
        let bytes: &[u8] = bytemuck::cast_slice(&params.0);
        if bytes.len() as u64 > PARAM_WINDOW {
            // Past the arena's window (per-member values of a very large stack): a buffer of
            // their own for this dispatch, bound in the window's place.
            return self.dispatch_large_params(pipeline, bytes, tensors, groups);
        }
        let group = self.bind_group(tensors);
        let mut rec = self.recording.lock().expect("recording");
        if rec.params.len() as u64 + PARAM_WINDOW > ARENA_BYTES {
            self.submit(&mut rec);
        }
        let offset = rec.params.len() as u64;
        rec.params.extend_from_slice(bytes);
        let padded = (offset + bytes.len().max(4) as u64).next_multiple_of(self.align);
        rec.params.resize(padded as usize, 0);
        let pass = self.pass(&mut rec);
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &group, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        self.count(|c| c.dispatches += 1);
    }

    fn count(&self, f: impl FnOnce(&mut GpuCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
        }
    }

    /// What was sent to the device so far (see [`GpuCounters`]).
    pub fn counters(&self) -> GpuCounters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    /// The open compute pass of this submission, begun if there is none.
    fn pass<'a>(&self, rec: &'a mut Recording) -> &'a mut wgpu::ComputePass<'static> {
        if rec.pass.is_none() {
            let encoder = rec.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime();
            rec.pass = Some(pass);
            self.count(|c| c.passes += 1);
        }
        rec.pass.as_mut().expect("a pass was just begun")
    }

    /// [`Self::dispatch`] for parameters larger than the arena's window: they get a buffer of
    /// their own (rare: only stacks of thousands of members with per-member values).
    fn dispatch_large_params(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bytes: &[u8],
        tensors: &[&DeviceBuffer],
        groups: (u32, u32, u32),
    ) {
        use wgpu::util::DeviceExt;
        let params = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("large parameters"),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        for slot in 0..MAX_TENSORS {
            let buffer = tensors
                .get(slot)
                .map_or(&self.placeholders[slot], |t| &t.buffer);
            entries.push(wgpu::BindGroupEntry {
                binding: slot as u32 + 1,
                resource: buffer.as_entire_binding(),
            });
        }
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        });
        let mut rec = self.recording.lock().expect("recording");
        let pass = self.pass(&mut rec);
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &group, &[0]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        self.count(|c| c.dispatches += 1);
    }

    /// The encoder for a copy: the open compute pass (if any) ends first.
    fn encoder<'a>(&self, rec: &'a mut Recording) -> &'a mut wgpu::CommandEncoder {
        rec.pass = None;
        self.count(|c| c.copies += 1);
        rec.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        })
    }

    fn submit(&self, rec: &mut Recording) {
        rec.pass = None;
        let Some(encoder) = rec.encoder.take() else {
            return;
        };
        self.count(|c| c.submissions += 1);
        if !rec.params.is_empty() {
            self.queue.write_buffer(&self.arena, 0, &rec.params);
            rec.params.clear();
        }
        self.queue.submit(Some(encoder.finish()));
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let counter = Arc::clone(&self.in_flight);
        self.queue.on_submitted_work_done(move || {
            counter.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn elementwise(
        &self,
        entry: &'static str,
        len: usize,
        params: Params,
        tensors: &[&DeviceBuffer],
    ) {
        let pipeline = self.pipeline("elementwise", entry);
        self.dispatch(&pipeline, params, tensors, grid(len));
    }
}

/// The broadcast flag of an input against the output's stack.
fn broadcast(input: Shape, out: Shape, what: &str) -> bool {
    assert!(
        input.stack == 1 || input.stack == out.stack,
        "{what}: a stack of {} cannot feed a stack of {}",
        input.stack,
        out.stack
    );
    input.stack == 1 && out.stack > 1
}

fn same(what: &str, a: Shape, b: Shape) {
    assert_eq!(a, b, "{what}: shapes differ");
}

/// Adam's scalars of a fused job (per step and member, step-major) as its kernel reads them
/// after the job's fixed parameters: five words per step, for one member when every member's
/// are the same (stride 1), else for each.
struct StepScalars<'a> {
    all: &'a [AdamScalars],
    members: usize,
    stride: usize,
}

impl<'a> StepScalars<'a> {
    fn new(all: &'a [AdamScalars], members: usize) -> Self {
        let shared = all
            .chunks(members)
            .all(|step| step.iter().all(|s| *s == step[0]));
        Self {
            all,
            members,
            stride: if shared { 1 } else { members },
        }
    }

    /// Steps whose scalars fit the parameter window beside `fixed` words (at least one).
    fn steps_per_window(&self, fixed: usize) -> usize {
        ((PARAM_WINDOW as usize / 4).saturating_sub(fixed) / (5 * self.stride)).max(1)
    }

    /// The scalars in blocks of `steps` steps (the last may be shorter), one per dispatch.
    fn blocks(&self, steps: usize) -> std::slice::Chunks<'a, AdamScalars> {
        self.all.chunks(steps * self.members)
    }

    /// `p` followed by the scalars of the steps of `block`.
    fn push(&self, mut p: Params, block: &[AdamScalars]) -> Params {
        for step in block.chunks(self.members) {
            for s in &step[..self.stride] {
                p = p.values(&[s.beta1, s.beta2, s.eps, s.step_size, s.bias2_sqrt]);
            }
        }
        p
    }
}

/// Workgroups for one per member: x up to 65,535, then rows of them in y.
fn member_groups(members: usize) -> (u32, u32, u32) {
    if members <= 65_535 {
        (members as u32, 1, 1)
    } else {
        (65_535, members.div_ceil(65_535) as u32, 1)
    }
}

fn scalars_list<T: Copy>(values: &[T], members: usize) -> Vec<T> {
    if values.len() == 1 {
        values.to_vec()
    } else {
        per_member(values, members).collect()
    }
}

#[allow(clippy::too_many_arguments, reason = "mirrors the trait's kernels")]
impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!("gpu ({}, {})", self.adapter.name, self.adapter.api)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn upload(&self, shape: Shape, values: &[f32]) -> Tensor {
        assert_eq!(
            values.len(),
            shape.len(),
            "upload: values do not fill the shape"
        );
        let buffer = self.new_buffer(4 * shape.len() as u64);
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(values));
        self.tensor_of(shape, buffer)
    }

    fn zeros(&self, shape: Shape) -> Tensor {
        // New buffers are zeroed by wgpu.
        self.tensor_of(shape, self.new_buffer(4 * shape.len() as u64))
    }

    fn write(&self, t: &mut Tensor, values: &[f32]) {
        assert_eq!(
            values.len(),
            t.shape().len(),
            "write: values do not fill the tensor"
        );
        // Through a staging copy recorded in order, so kernels recorded before still see the
        // old values (a queue write would land before the whole submission).
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("write"),
            size: (4 * values.len() as u64).max(4),
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::MAP_WRITE,
            mapped_at_creation: true,
        });
        staging
            .slice(..)
            .get_mapped_range_mut()
            .expect("a buffer mapped at creation")
            .copy_from_slice(bytemuck::cast_slice(values));
        staging.unmap();
        let mut rec = self.recording.lock().expect("recording");
        let size = 4 * values.len() as u64;
        self.encoder(&mut rec)
            .copy_buffer_to_buffer(&staging, 0, &t.device().buffer, 0, size);
    }

    fn read(&self, t: &Tensor) -> Readback {
        self.read_many(&[t])
            .pop()
            .expect("one read-back per tensor")
    }

    fn read_many(&self, ts: &[&Tensor]) -> Vec<Readback> {
        // Each tensor at its own offset of one staging buffer (copy offsets are multiples of 4).
        let lens: Vec<usize> = ts.iter().map(|t| t.shape().len()).collect();
        let total: usize = lens.iter().sum();
        let size = 4 * total as u64;
        self.count(|c| {
            c.reads += 1;
            c.read_bytes += size;
        });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read"),
            size: size.max(4),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        {
            let mut rec = self.recording.lock().expect("recording");
            let encoder = self.encoder(&mut rec);
            let mut at = 0u64;
            for (t, &len) in ts.iter().zip(&lens) {
                let bytes = 4 * len as u64;
                if bytes > 0 {
                    encoder.copy_buffer_to_buffer(&t.device().buffer, 0, &staging, at, bytes);
                }
                at += bytes;
            }
            self.submit(&mut rec);
        }
        let slots: Vec<Arc<Mutex<ReadSlot>>> = ts.iter().map(|_| Arc::default()).collect();
        let targets = slots.clone();
        let mapped = staging.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let values = match result {
                Ok(()) => match mapped.get_mapped_range(..) {
                    Ok(view) => {
                        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&view[..4 * total]);
                        drop(view);
                        mapped.unmap();
                        Ok(values)
                    }
                    Err(e) => Err(BackendError(format!("a GPU read failed: {e}"))),
                },
                Err(e) => Err(BackendError(format!("a GPU read failed: {e}"))),
            };
            let mut at = 0;
            for (target, len) in targets.iter().zip(lens) {
                let part = match &values {
                    Ok(v) => Ok(v[at..at + len].to_vec()),
                    Err(e) => Err(e.clone()),
                };
                at += len;
                ReadSlot::deliver(target, part);
            }
        });
        slots.into_iter().map(Readback::pending).collect()
    }

    fn flush(&self) {
        let mut rec = self.recording.lock().expect("recording");
        self.submit(&mut rec);
    }

    fn poll(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
    }

    fn wait(&self) {
        self.flush();
        #[cfg(not(target_arch = "wasm32"))]
        {
            if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert_with(|| format!("waiting for the GPU failed: {e}"));
                }
            }
        }
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT
    }

    fn health(&self) -> Result<(), BackendError> {
        match self.error.lock().ok().and_then(|e| e.clone()) {
            Some(message) => Err(BackendError(message)),
            None => Ok(()),
        }
    }

    fn copy(&self, src: &Tensor, dst: &mut Tensor) {
        let (s, d) = (src.shape(), dst.shape());
        assert_eq!((s.rows, s.cols), (d.rows, d.cols), "copy: shapes differ");
        // A kernel rather than a buffer copy, so that the compute pass stays open.
        let bc = broadcast(s, d, "copy");
        let p = Params::default().u(d.len()).u(d.matrix_len()).b(bc);
        self.elementwise("copy", d.len(), p, &[src.device(), dst.device()]);
    }

    fn copy_block(&self, src: &Tensor, src_at: usize, dst: &mut Tensor, dst_at: usize, len: usize) {
        super::cpu_tensor::check_block("copy_block", src, src_at, dst, dst_at, len);
        let total = dst.stack() * len;
        if total == 0 {
            return;
        }
        let p = Params::default()
            .u(total)
            .u(len)
            .u(src.shape().matrix_len())
            .u(src_at)
            .u(dst.shape().matrix_len())
            .u(dst_at);
        self.elementwise("copy_block", total, p, &[src.device(), dst.device()]);
    }

    fn fill(&self, t: &mut Tensor, value: f32) {
        let len = t.shape().len();
        self.elementwise(
            "fill",
            len,
            Params::default().u(len).f(value),
            &[t.device()],
        );
    }

    fn gemm(&self, alpha: f32, a: Op<'_>, b: Op<'_>, beta: f32, c: &mut Tensor) {
        self.product(alpha, a, b, beta, c, None, &[]);
    }

    fn gemm_epilogue(
        &self,
        alpha: f32,
        a: Op<'_>,
        b: Op<'_>,
        c: &mut Tensor,
        epilogue: Epilogue<'_>,
    ) {
        self.product(alpha, a, b, 0.0, c, Some(epilogue), &[]);
    }

    fn add_bias(&self, out: &mut Tensor, bias: &Tensor) {
        let (os, bs) = (out.shape(), bias.shape());
        assert_eq!(
            (bs.rows, bs.cols),
            (os.rows, 1),
            "add_bias: bias must be rows x 1"
        );
        let bc = broadcast(bs, os, "add_bias") || bs.stack == 1;
        let p = Params::default()
            .u(os.len())
            .u(os.rows)
            .u(os.matrix_len())
            .b(bc);
        self.elementwise("add_bias", os.len(), p, &[out.device(), bias.device()]);
    }

    fn sum_columns(&self, src: &Tensor, out: &mut Tensor) {
        let ss = src.shape();
        assert_eq!(
            out.shape(),
            Shape::new(ss.stack, ss.rows, 1),
            "sum_columns: out must be rows x 1"
        );
        let blocks = ss.rows.div_ceil(32);
        let count = ss.stack * blocks;
        let p = Params::default().u(count).u(ss.rows).u(ss.cols).u(blocks);
        let pipeline = self.pipeline("columns", "sum_columns");
        let tensors = [src.device(), out.device()];
        self.dispatch(&pipeline, p, &tensors, workgroups(count));
    }

    fn relu(&self, t: &mut Tensor) {
        let len = t.shape().len();
        self.elementwise("relu", len, Params::default().u(len), &[t.device()]);
    }

    fn relu_backward(&self, grad: &mut Tensor, out: &Tensor) {
        same("relu_backward", grad.shape(), out.shape());
        let len = grad.shape().len();
        self.elementwise(
            "relu_backward",
            len,
            Params::default().u(len),
            &[grad.device(), out.device()],
        );
    }

    fn topk_columns(&self, t: &mut Tensor, k: &[usize]) {
        let s = t.shape();
        let ks = scalars_list(k, s.stack);
        let most = ks.iter().copied().max().unwrap_or(0);
        if ks.iter().all(|&k| k >= s.rows) {
            return;
        }
        let cols = s.stack * s.cols;
        let ks: Vec<usize> = ks.iter().map(|&k| k.min(s.rows)).collect();
        let p = Params::default().u(cols).u(s.rows).u(s.cols).counts(&ks);
        // One invocation per column walks it k + 1 times: fine for the paper's short columns,
        // too long a walk (and past llvmpipe's loop guard) for real activations' widths, which
        // take a workgroup per column.
        if (most.min(s.rows) + 1) * s.rows <= TOPK_SHORT_WALK {
            let pipeline = self.pipeline("columns", "topk_columns_short");
            self.dispatch(&pipeline, p, &[t.device()], grid(cols));
        } else {
            let pipeline = self.pipeline("columns", "topk_columns");
            self.dispatch(&pipeline, p, &[t.device()], workgroups(cols));
        }
    }

    fn batch_topk(&self, t: &mut Tensor, keep: usize, threshold: &mut Tensor, decay: f32) {
        let s = t.shape();
        assert_eq!(
            threshold.shape(),
            Shape::new(s.stack, 1, 1),
            "batch_topk: one threshold per member"
        );
        assert!(s.stack <= 65_535, "batch_topk: one workgroup per member");
        let len = s.matrix_len();
        if len <= WIDE_CHUNK {
            let p = Params::default().u(len).u(keep).f(decay);
            let pipeline = self.pipeline("columns", "batch_topk");
            self.dispatch(
                &pipeline,
                p,
                &[t.device(), threshold.device()],
                (s.stack as u32, 1, 1),
            );
            return;
        }
        // Split across workgroups: four passes of histograms and choices, then the cut.
        let chunks = len.div_ceil(WIDE_CHUNK);
        let hist_at = 4 * s.stack;
        let params = |pass: usize| {
            Params::default()
                .u(len)
                .u(keep)
                .f(decay)
                .u(chunks)
                .u(hist_at)
                .u(pass)
                .u(s.stack)
        };
        let by_chunk = (chunks as u32, s.stack as u32, 1);
        self.with_scratch(hist_at + s.stack * chunks * 256, |scratch| {
            let tensors = [t.device(), threshold.device(), scratch.device()];
            let histogram = self.pipeline("columns", "wide_topk_histogram");
            let choose = self.pipeline("columns", "wide_topk_choose");
            for pass in 0..4 {
                self.dispatch(&histogram, params(pass), &tensors, by_chunk);
                self.dispatch(&choose, params(pass), &tensors, (s.stack as u32, 1, 1));
            }
            let apply = self.pipeline("columns", "wide_topk_apply");
            self.dispatch(&apply, params(4), &tensors, by_chunk);
            let update = self.pipeline("columns", "wide_topk_threshold");
            self.dispatch(&update, params(4), &tensors, grid(s.stack));
        });
    }

    fn threshold_rows(&self, t: &mut Tensor, theta: &Tensor, scale: f32) {
        let (s, ts) = (t.shape(), theta.shape());
        assert!(
            ts.stack == s.stack && ts.cols == 1 && (ts.rows == s.rows || ts.rows == 1),
            "threshold_rows: theta {ts:?} against {s:?}"
        );
        let p = Params::default()
            .u(s.len())
            .u(s.rows)
            .u(s.matrix_len())
            .u(ts.rows)
            .f(scale);
        self.elementwise("threshold_rows", s.len(), p, &[t.device(), theta.device()]);
    }

    fn jump_relu_threshold_grad(
        &self,
        pre: &Tensor,
        grad: &Tensor,
        theta: &Tensor,
        js: JumpReluScalars,
        out: &mut Tensor,
    ) {
        super::tensor::check_jump_relu_shapes(pre, grad, theta, out);
        let s = pre.shape();
        let count = s.stack * s.rows;
        let p = Params::default()
            .u(count)
            .u(s.rows)
            .u(s.cols)
            .f(js.bandwidth)
            .f(js.l0)
            .f(js.scale);
        let pipeline = self.pipeline("columns", "jump_relu_threshold_grad");
        self.dispatch(
            &pipeline,
            p,
            &[pre.device(), grad.device(), theta.device(), out.device()],
            grid(count),
        );
    }

    fn exp(&self, x: &Tensor, out: &mut Tensor) {
        same("exp", x.shape(), out.shape());
        let len = x.shape().len();
        self.elementwise(
            "exp_kernel",
            len,
            Params::default().u(len),
            &[x.device(), out.device()],
        );
    }

    fn mul(&self, grad: &mut Tensor, s: &Tensor) {
        same("mul", grad.shape(), s.shape());
        let len = grad.shape().len();
        self.elementwise(
            "mul",
            len,
            Params::default().u(len),
            &[grad.device(), s.device()],
        );
    }

    fn adam(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        s: &[AdamScalars],
    ) {
        let shape = param.shape();
        same("adam (grad)", grad.shape(), shape);
        same("adam (m)", m.shape(), shape);
        same("adam (v)", v.shape(), shape);
        let p = Params::default()
            .u(shape.len())
            .u(shape.matrix_len())
            .adam(&scalars_list(s, shape.stack));
        self.elementwise(
            "adam",
            shape.len(),
            p,
            &[param.device(), grad.device(), m.device(), v.device()],
        );
    }

    fn adam_log_codes(
        &self,
        log_codes: &mut Tensor,
        codes: &mut Tensor,
        grad_s: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        l1_scale: &[f32],
        s: &[AdamScalars],
    ) {
        let shape = log_codes.shape();
        for t in [codes.shape(), grad_s.shape(), m.shape(), v.shape()] {
            same("adam_log_codes", t, shape);
        }
        let p = Params::default()
            .u(shape.len())
            .u(shape.matrix_len())
            .adam(&scalars_list(s, shape.stack))
            .list(&scalars_list(l1_scale, shape.stack));
        self.elementwise(
            "adam_log_codes",
            shape.len(),
            p,
            &[
                log_codes.device(),
                codes.device(),
                m.device(),
                v.device(),
                grad_s.device(),
            ],
        );
    }

    fn normalize_columns(&self, t: &mut Tensor) {
        let s = t.shape();
        let cols = s.stack * s.cols;
        let p = Params::default().u(cols).u(s.rows);
        if s.rows <= 64 {
            let pipeline = self.pipeline("columns", "normalize_columns");
            self.dispatch(&pipeline, p, &[t.device()], grid(cols));
        } else {
            let pipeline = self.pipeline("columns", "normalize_long_columns");
            self.dispatch(&pipeline, p, &[t.device()], workgroups(cols));
        }
    }

    fn residual(&self, recon: &mut Tensor, x: &Tensor, scale: &[f32]) {
        let (rs, xs) = (recon.shape(), x.shape());
        assert_eq!(
            (rs.rows, rs.cols),
            (xs.rows, xs.cols),
            "residual: shapes differ"
        );
        let bc = broadcast(xs, rs, "residual") || xs.stack == 1;
        let p = Params::default()
            .u(rs.len())
            .u(rs.matrix_len())
            .b(bc)
            .list(&scalars_list(scale, rs.stack));
        self.elementwise("residual", rs.len(), p, &[recon.device(), x.device()]);
    }

    fn l1_subgradient(&self, grad: &mut Tensor, codes: &Tensor, scale: &[f32]) {
        let shape = grad.shape();
        same("l1_subgradient", codes.shape(), shape);
        let p = Params::default()
            .u(shape.len())
            .u(shape.matrix_len())
            .list(&scalars_list(scale, shape.stack));
        self.elementwise(
            "l1_subgradient",
            shape.len(),
            p,
            &[grad.device(), codes.device()],
        );
    }

    fn reconstruction_loss(
        &self,
        scaled_residual: &Tensor,
        codes: &Tensor,
        mse_scale: &[f32],
        l1_penalty: &[f32],
        out: &mut Tensor,
    ) {
        let (rs, cs) = (scaled_residual.shape(), codes.shape());
        assert_eq!(rs.stack, cs.stack, "reconstruction_loss: stacks differ");
        assert_eq!(rs.cols, cs.cols, "reconstruction_loss: batches differ");
        let mse = scalars_list(mse_scale, rs.stack);
        let l1 = scalars_list(l1_penalty, rs.stack);
        let p = Params::default()
            .u(rs.rows)
            .u(cs.rows)
            .u(rs.cols)
            .u(mse.len())
            .u(l1.len());
        let longest = rs.matrix_len().max(cs.matrix_len());
        if longest <= WIDE_CHUNK {
            let pipeline = self.pipeline("loss", "reconstruction_loss");
            self.dispatch(
                &pipeline,
                p.values(&mse).values(&l1),
                &[scaled_residual.device(), codes.device(), out.device()],
                (rs.stack as u32, 1, 1),
            );
            return;
        }
        // Split across workgroups: partial sums per chunk, then one workgroup per member.
        let chunks = longest.div_ceil(WIDE_CHUNK);
        let p = p.u(chunks).values(&mse).values(&l1);
        self.with_scratch(2 * rs.stack * chunks, |scratch| {
            let tensors = [
                scaled_residual.device(),
                codes.device(),
                scratch.device(),
                out.device(),
            ];
            let partial = self.pipeline("loss", "reconstruction_loss_chunks");
            let by_chunk = (chunks as u32, rs.stack as u32, 1);
            self.dispatch(&partial, p.clone(), &tensors, by_chunk);
            let finish = self.pipeline("loss", "reconstruction_loss_finish");
            self.dispatch(&finish, p, &tensors, (rs.stack as u32, 1, 1));
        });
    }

    fn cosine_loss(&self, pred: &Tensor, target: &Tensor, grad: &mut Tensor, loss: &mut Tensor) {
        let ps = pred.shape();
        same("cosine_loss (grad)", grad.shape(), ps);
        let bc = broadcast(target.shape(), ps, "cosine_loss (target)") || target.stack() == 1;
        let p = Params::default().u(ps.rows).u(ps.cols).b(bc);
        let pipeline = self.pipeline("loss", "cosine_loss");
        self.dispatch(
            &pipeline,
            p,
            &[pred.device(), target.device(), grad.device(), loss.device()],
            (ps.stack as u32, 1, 1),
        );
    }

    fn gather_columns(&self, src: &Tensor, idx: &Tensor, dst: &mut Tensor) {
        let (ss, ds) = (src.shape(), dst.shape());
        assert_eq!(ss.rows, ds.rows, "gather_columns: rows differ");
        assert_eq!(idx.rows(), ds.cols, "gather_columns: one index per column");
        let bc = broadcast(ss, ds, "gather_columns") || ss.stack == 1;
        let p = Params::default()
            .u(ds.len())
            .u(ds.rows)
            .u(ds.cols)
            .u(ss.cols)
            .b(bc);
        let pipeline = self.pipeline("columns", "gather_columns");
        self.dispatch(
            &pipeline,
            p,
            &[src.device(), idx.device(), dst.device()],
            grid(ds.len()),
        );
    }

    fn adam_columns(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        idx: &Tensor,
        s: &[AdamScalars],
    ) {
        let (ps, gs) = (param.shape(), grad.shape());
        assert_eq!(
            (ps.stack, ps.rows),
            (gs.stack, gs.rows),
            "adam_columns: shapes differ"
        );
        let p = Params::default()
            .u(gs.len())
            .u(gs.rows)
            .u(gs.cols)
            .u(ps.cols)
            .adam(&scalars_list(s, ps.stack));
        let pipeline = self.pipeline("columns", "adam_columns");
        self.dispatch(
            &pipeline,
            p,
            &[
                param.device(),
                grad.device(),
                m.device(),
                v.device(),
                idx.device(),
            ],
            grid(gs.len()),
        );
    }

    fn upload_indices(&self, stack: usize, indices: &[u32]) -> Tensor {
        assert!(
            stack > 0 && indices.len() % stack == 0,
            "upload_indices: ragged indices"
        );
        let shape = Shape::new(stack, indices.len() / stack, 1);
        let buffer = self.new_buffer(4 * indices.len() as u64);
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(indices));
        self.tensor_of(shape, buffer)
    }

    fn fista_update(
        &self,
        s: &mut Tensor,
        s_prev: &Tensor,
        y: &mut Tensor,
        threshold: &[f32],
        momentum: &[f32],
        nonneg: bool,
    ) {
        self.fista_update_skipping(s, s_prev, y, (threshold, momentum), nonneg, &[]);
    }

    fn adam_exp_fused(&self, job: &mut AdamExpJob<'_>) -> bool {
        let (members, dim, atoms) = (job.dict.stack(), job.dict.rows(), job.dict.cols());
        if dim > FUSED_MAX_SIDE || atoms > FUSED_MAX_SIDE || dim * atoms > 4096 {
            return false;
        }
        assert_eq!(
            job.scalars.len(),
            job.steps * members,
            "adam_exp: one set of Adam scalars per step and member"
        );
        let n = job.x.cols();
        let bc = job.x.stack() == 1;
        // The host's scalars, once per step when every member shares them.
        let scalars = StepScalars::new(job.scalars, members);
        // Steps per dispatch: as many as keep the parameters inside their window (and, on a
        // software adapter, its loop guard).
        let padded = fused_dim(dim);
        let steps_per = scalars
            .steps_per_window(7 + job.l1_scale.len())
            .min(self.solver_iterations_per_dispatch(padded, atoms));
        let pipeline = self.fused_pipeline("adam_exp", padded, atoms);
        for chunk in scalars.blocks(steps_per) {
            let steps = chunk.len() / members;
            let p = Params::default()
                .u(n)
                .u(steps)
                .b(bc)
                .f(job.mse_scale)
                .u(job.l1_scale.len())
                .u(scalars.stride)
                .u(dim)
                .values(job.l1_scale);
            let p = scalars.push(p, chunk);
            self.dispatch(
                &pipeline,
                p,
                &[
                    job.dict.device(),
                    job.x.device(),
                    job.log_codes.device(),
                    job.codes.device(),
                    job.m.device(),
                    job.v.device(),
                ],
                (n.div_ceil(64) as u32, members as u32, 1),
            );
        }
        true
    }

    fn fista_fused(&self, job: &mut FistaJob<'_>) -> bool {
        let (members, dim, atoms) = (job.dict.stack(), job.dict.rows(), job.dict.cols());
        if dim > FUSED_MAX_SIDE || atoms > FUSED_MAX_SIDE || dim * atoms > 4096 {
            // Past the fused kernel: the caller's kernel-by-kernel loop, or this backend's
            // own where converged members are to be skipped.
            if job.skip.is_empty() {
                return false;
            }
            self.fista_by_kernels(job);
            return true;
        }
        let n = job.x.cols();
        let bc = job.x.stack() == 1;
        // A member to skip takes the step 0, which the kernel reads as "leave it".
        let mut steps = scalars_list(job.step, members);
        if !job.skip.is_empty() {
            if steps.len() == 1 {
                steps = vec![steps[0]; members];
            }
            for (g, &skip) in steps.iter_mut().zip(job.skip) {
                if skip {
                    *g = 0.0;
                }
            }
        }
        let mut thresholds = scalars_list(job.threshold, members);
        if steps.len() == members && thresholds.len() == 1 {
            thresholds = vec![thresholds[0]; members];
        }
        assert_eq!(
            steps.len(),
            thresholds.len(),
            "fista: one step and threshold per member"
        );
        let padded = fused_dim(dim);
        let pipeline = self.fused_pipeline("fista", padded, atoms);
        let stride = job.momentum_stride(members);
        // Iterations in dispatches of at most 250, each a few milliseconds, whose momenta fit
        // the parameter window beside the per-member values (and, on a software adapter, its
        // loop guard).
        let iterations = self.solver_iterations_per_dispatch(padded, atoms).min(250);
        let per_dispatch = (iterations * stride)
            .min(8192 / stride * stride)
            .max(stride);
        for chunk in job.momentum.chunks(per_dispatch) {
            let p = Params::default()
                .u(n)
                .u(chunk.len() / stride)
                .b(bc)
                .b(job.nonneg)
                .u(steps.len())
                .u(stride)
                .u(dim)
                .values(&steps)
                .values(&thresholds)
                .values(chunk);
            self.dispatch(
                &pipeline,
                p,
                &[
                    job.dict.device(),
                    job.x.device(),
                    job.s.device(),
                    job.s_prev.device(),
                    job.y.device(),
                ],
                (n.div_ceil(64) as u32, members as u32, 1),
            );
        }
        true
    }

    fn encoder_train_fits(&self, shape: &EncoderTrainShape) -> bool {
        self.fused_training.load(Ordering::Relaxed)
            && (shape.hidden.is_none() || self.fused_mlp())
            && self.train_chunk(shape).is_some_and(|chunk| {
                self.train_steps_per_dispatch(shape, chunk, shape.topk.unwrap_or(0))
                    .is_some()
            })
    }

    fn encoder_train_fused(&self, job: &mut EncoderTrainJob<'_>) -> bool {
        let shape = job.shape;
        let Some(chunk) = self.train_chunk(&shape) else {
            return false;
        };
        let members = job.state.stack();
        let plen = shape.param_len();
        assert_eq!(
            (job.state.rows(), job.state.cols()),
            (4 * plen, 1),
            "train_encoder: the packed state holds four blocks of the parameters"
        );
        assert_eq!(
            job.scalars.len(),
            job.steps * members,
            "train_encoder: one set of Adam scalars per step and member"
        );
        assert_eq!(job.x.cols(), shape.batch, "train_encoder: the batch");
        assert_eq!(
            job.loss.stack(),
            members,
            "train_encoder: one loss per member"
        );
        // Lambdas and k: one for every member, or one each (all three lists then, of one length).
        let no_topk = [0];
        let topk = if shape.topk.is_some() {
            job.topk
        } else {
            &no_topk[..]
        };
        let each = [job.l1_scale, job.l1_penalty].iter().any(|l| l.len() > 1) || topk.len() > 1;
        let list = |values: &[f32]| -> Vec<f32> {
            if each {
                per_member(values, members).collect()
            } else {
                values.to_vec()
            }
        };
        let (l1_scale, penalty) = (list(job.l1_scale), list(job.l1_penalty));
        let topk: Vec<usize> = if each {
            per_member(topk, members).collect()
        } else {
            topk.to_vec()
        };
        let dict_bc = match (shape.learned, job.frozen, job.targets) {
            (true, None, None) => false,
            (false, Some(d), None) if !shape.supervised => {
                broadcast(d.shape(), job.state.shape(), "train_encoder (dictionary)")
            }
            (false, None, Some(t)) if shape.supervised => {
                assert_eq!(
                    (t.rows(), t.cols()),
                    (shape.latents, shape.batch),
                    "train_encoder: one target code per latent and sample"
                );
                broadcast(t.shape(), job.state.shape(), "train_encoder (targets)")
            }
            _ => {
                panic!(
                    "train_encoder: a frozen dictionary exactly when the shape's is not learned, \
                     targets exactly when it is supervised"
                )
            }
        };
        let scalars = StepScalars::new(job.scalars, members);
        let Some(most) = self.train_steps_per_dispatch(&shape, chunk, shape.topk.unwrap_or(0))
        else {
            return false;
        };
        let steps_per = scalars.steps_per_window(13 + 3 * l1_scale.len()).min(most);
        let pipeline = self.train_pipeline(&shape, chunk);
        let x_bc = broadcast(job.x.shape(), job.state.shape(), "train_encoder (signals)");
        let dispatches = job.steps.div_ceil(steps_per);
        for (d, block) in scalars.blocks(steps_per).enumerate() {
            let steps = block.len() / members;
            let p = Params::default()
                .u(shape.batch)
                .u(steps)
                .b(x_bc)
                .u(plen)
                .b(shape.bias)
                .b(shape.learned)
                .u(shape.topk.unwrap_or(0))
                .f(job.mse_scale)
                .b(job.want_loss && d + 1 == dispatches)
                .u(members)
                .b(dict_bc)
                .u(l1_scale.len())
                .u(scalars.stride)
                .values(&l1_scale)
                .values(&penalty);
            let p = topk.iter().fold(p, |p, &k| p.u(k));
            let p = scalars.push(p, block);
            let mut tensors = vec![job.x.device(), job.state.device(), job.loss.device()];
            if let Some(d) = job.frozen.or(job.targets) {
                tensors.push(d.device());
            }
            self.dispatch(&pipeline, p, &tensors, member_groups(members));
        }
        true
    }

    fn sparse_coding_train_fits(&self, latents: usize, dim: usize, batch: usize) -> bool {
        self.fused_training.load(Ordering::Relaxed)
            && self.sc_train_chunk(latents, dim).is_some_and(|chunk| {
                self.sc_steps_per_dispatch(latents, dim, batch, chunk)
                    .is_some()
            })
    }

    fn sparse_coding_train_fused(&self, job: &mut SparseCodingTrainJob<'_>) -> bool {
        let (latents, dim, n) = (job.latents, job.dim, job.x.cols());
        let Some(chunk) = self.sc_train_chunk(latents, dim) else {
            return false;
        };
        let Some(most) = self.sc_steps_per_dispatch(latents, dim, n, chunk) else {
            return false;
        };
        let members = job.codes.stack();
        assert_eq!(
            (job.dict.stack(), job.dict.rows(), job.codes.rows()),
            (members, 3 * latents * dim, 3 * latents * n),
            "train_sparse_coding: the packed states hold three blocks each"
        );
        assert_eq!(
            job.scalars.len(),
            job.steps * members,
            "train_sparse_coding: one set of Adam scalars per step and member"
        );
        assert_eq!(
            job.loss.stack(),
            members,
            "train_sparse_coding: one loss per member"
        );
        let l1_scale = scalars_list(job.l1_scale, members);
        let penalty = scalars_list(job.l1_penalty, members);
        let scalars = StepScalars::new(job.scalars, members);
        let steps_per = scalars.steps_per_window(8 + 2 * l1_scale.len()).min(most);
        let private = self.private_sparse_coding(latents, dim);
        let pipeline = self.pipeline_from(
            PipelineKey::SparseCoding(latents, dim, chunk, private),
            || {
                self.shader(
                    "train_sparse_coding",
                    train_sc_source(latents, dim, chunk, private),
                )
            },
            "train_sparse_coding",
        );
        let x_bc = broadcast(
            job.x.shape(),
            job.codes.shape(),
            "train_sparse_coding (signals)",
        );
        let dispatches = job.steps.div_ceil(steps_per);
        for (d, block) in scalars.blocks(steps_per).enumerate() {
            let steps = block.len() / members;
            let p = Params::default()
                .u(n)
                .u(steps)
                .b(x_bc)
                .u(members)
                .f(job.mse_scale)
                .b(job.want_loss && d + 1 == dispatches)
                .u(l1_scale.len())
                .u(scalars.stride)
                .values(&l1_scale)
                .values(&penalty);
            let p = scalars.push(p, block);
            self.dispatch(
                &pipeline,
                p,
                &[
                    job.x.device(),
                    job.dict.device(),
                    job.loss.device(),
                    job.codes.device(),
                ],
                member_groups(members),
            );
        }
        true
    }
}
