// Shared by every kernel module (prepended by gpu/mod.rs). Binding 0 is this dispatch's slice of
// the parameter arena (u32 words; f32 values as their bits), bindings 1..6 the tensors, all
// f32 storage (column numbers are stored as their bits and read with bitcast).
@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> b2: array<f32>;
@group(0) @binding(3) var<storage, read_write> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> b4: array<f32>;
@group(0) @binding(5) var<storage, read_write> b5: array<f32>;
@group(0) @binding(6) var<storage, read_write> b6: array<f32>;

const WG: u32 = 256u;

fn pf(i: u32) -> f32 {
    return bitcast<f32>(p[i]);
}

// The element of a 1-D dispatch spread over a 2-D grid of workgroups (x at most 65,535).
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// A per-member value from a list of `count` values starting at word `at` (one value: all).
fn member_value(at: u32, count: u32, member: u32) -> f32 {
    return pf(at + select(member, 0u, count == 1u));
}

// d|s|/ds with PyTorch's convention (0 at 0).
fn sign_of(s: f32) -> f32 {
    return select(select(0.0, -1.0, s < 0.0), 1.0, s > 0.0);
}

// NaN by its bits: WGSL lets a compiler assume floats are finite, so `v != v` may fold away.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}
