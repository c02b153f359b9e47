//! Adam with PyTorch's semantics (torch.optim.Adam, no weight decay, no amsgrad).
//!
//! Per step t (from 1): m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
//! p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). The bias corrections are computed in
//! f64 as PyTorch does in Python, the tensor arithmetic in f32 (the backends' `adam` kernels);
//! the moments live beside the parameters as backend tensors.

use crate::compute::AdamScalars;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamHyper {
    /// PyTorch's defaults with the given learning rate.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The step counter shared by every tensor of one optimiser.
#[derive(Clone, Debug)]
pub struct AdamClock {
    pub hyper: AdamHyper,
    step: u64,
}

impl AdamClock {
    pub fn new(hyper: AdamHyper) -> Self {
        Self { hyper, step: 0 }
    }

    /// Advance to the next step and return its scalars.
    pub fn tick(&mut self) -> AdamScalars {
        self.step += 1;
        let h = self.hyper;
        let t = self.step.min(i32::MAX as u64) as i32;
        let bias1 = 1.0 - h.beta1.powi(t);
        let bias2 = 1.0 - h.beta2.powi(t);
        AdamScalars {
            beta1: h.beta1 as f32,
            beta2: h.beta2 as f32,
            eps: h.eps as f32,
            step_size: (h.lr / bias1) as f32,
            bias2_sqrt: bias2.sqrt() as f32,
        }
    }

    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One clock per member of a stack, member i at `lrs[i]` (or `lrs[0]` for all).
    pub fn per_member(members: usize, lrs: &[f64]) -> Vec<AdamClock> {
        (0..members)
            .map(|i| AdamClock::new(AdamHyper::with_lr(lrs[if lrs.len() == 1 { 0 } else { i }])))
            .collect()
    }
}

/// One Adam step of every parameter of a stack with its gradient and moments, on the clocks'
/// next scalars (one set per member).
pub fn step_all(
    backend: &dyn crate::compute::Backend,
    clocks: &mut [AdamClock],
    params: Vec<&mut crate::compute::Tensor>,
    grads: &[crate::compute::Tensor],
    moments: &mut [(crate::compute::Tensor, crate::compute::Tensor)],
) {
    let scalars: Vec<AdamScalars> = clocks.iter_mut().map(AdamClock::tick).collect();
    for ((param, grad), (m, v)) in params.into_iter().zip(grads).zip(moments) {
        backend.adam(param, grad, m, v, &scalars);
    }
}
