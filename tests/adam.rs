//! Adam against hand-computed steps with PyTorch's semantics.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::{read_now, Backend, CpuBackend, Shape, Tensor};
use sparse_playground::core::adam::{AdamClock, AdamHyper};

/// Parameters and their two moments as backend tensors, and one Adam step of them.
struct Param {
    p: Tensor,
    m: Tensor,
    v: Tensor,
}

impl Param {
    fn new(b: &dyn Backend, values: &[f32]) -> Self {
        let shape = Shape::new(1, values.len(), 1);
        Self {
            p: b.upload(shape, values),
            m: b.zeros(shape),
            v: b.zeros(shape),
        }
    }

    fn update(&mut self, b: &dyn Backend, grad: &[f32], clock: &mut AdamClock) -> Vec<f32> {
        let g = b.upload(self.p.shape(), grad);
        b.adam(&mut self.p, &g, &mut self.m, &mut self.v, &[clock.tick()]);
        read_now(b, &self.p).unwrap()
    }
}

#[test]
fn two_adam_steps_match_hand_computation() {
    let backend = CpuBackend::new(1);
    let hyper = AdamHyper::with_lr(0.1);
    let mut clock = AdamClock::new(hyper);
    let mut state = Param::new(&backend, &[1.0, -2.0]);

    // Step 1, g = (0.5, -4): m = 0.1 g, v = 0.001 g^2; m_hat = g, v_hat = g^2,
    // so p -= lr * g / (|g| + eps) = lr * sign(g) (up to eps).
    let g1 = [0.5f32, -4.0];
    let p = state.update(&backend, &g1, &mut clock);
    let want1 = [
        1.0 - 0.1 * 0.5 / (0.5 + 1e-8),
        -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
    ];
    for (a, b) in p.iter().zip(want1) {
        assert!((f64::from(*a) - b).abs() < 1e-6, "{p:?}");
    }

    // Step 2, g = (1, 2): m = 0.9*0.1*g1 + 0.1*g2, v = 0.999*0.001*g1^2 + 0.001*g2^2,
    // m_hat = m / (1 - 0.81), v_hat = v / (1 - 0.998001).
    let g2 = [1.0f32, 2.0];
    let p = state.update(&backend, &g2, &mut clock);
    for i in 0..2 {
        let (a, b) = (f64::from(g1[i]), f64::from(g2[i]));
        let m = 0.9 * 0.1 * a + 0.1 * b;
        let v = 0.999 * 0.001 * a * a + 0.001 * b * b;
        let m_hat = m / (1.0 - 0.9f64.powi(2));
        let v_hat_sqrt = v.sqrt() / (1.0 - 0.999f64.powi(2)).sqrt();
        let want = want1[i] - 0.1 * m_hat / (v_hat_sqrt + 1e-8);
        assert!(
            (f64::from(p[i]) - want).abs() < 1e-5,
            "p[{i}] = {} want {want}",
            p[i]
        );
    }
    assert_eq!(clock.steps(), 2);
}

#[test]
fn zero_gradient_leaves_parameters_alone() {
    let backend = CpuBackend::new(1);
    let mut clock = AdamClock::new(AdamHyper::with_lr(1.0));
    let mut state = Param::new(&backend, &[0.3, -0.7, 5.0]);
    let p = state.update(&backend, &[0.0, 0.0, 0.0], &mut clock);
    assert_eq!(p, vec![0.3, -0.7, 5.0]);
}
