//! The wgpu backend (placeholder while the CPU path moves to tensors).

/// A tensor's storage on the GPU.
#[derive(Debug)]
pub struct DeviceBuffer {
    pub(crate) buffer: wgpu::Buffer,
}
