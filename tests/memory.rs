//! The memory estimate against what an experiment really allocates: a counting allocator
//! records the peak of live heap bytes while experiments are built, trained and evaluated.
//! The estimate must be an upper bound (the budget check relies on it) and not a wild one.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::config::{MethodConfig, Preset, Setting, SolverConfig};
use sparse_playground::{CpuBackend, Experiment};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak heap bytes above what was live before, while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

#[test]
fn the_estimate_bounds_what_runs_really_allocate() {
    let adam = SolverConfig::Adam { steps: 3, lr: 3e-3 };
    let mut cases: Vec<(&str, Vec<MethodConfig>, Option<usize>)> = vec![
        ("sae", vec![MethodConfig::Sae { bias: true }], None),
        (
            "topk",
            vec![MethodConfig::TopkSae { k: 4, bias: false }],
            None,
        ),
        (
            "mlp",
            vec![MethodConfig::Mlp {
                hidden: vec![128, 64],
                bias: true,
            }],
            None,
        ),
        (
            "sparse coding",
            vec![MethodConfig::SparseCoding {
                inference: adam.clone(),
            }],
            None,
        ),
        (
            "sae + ito (fista)",
            vec![MethodConfig::SaeIto {
                bias: false,
                inference: SolverConfig::Fista {
                    steps: 3,
                    nonneg: true,
                    tol: None,
                },
            }],
            None,
        ),
        (
            "minibatched mix",
            vec![
                MethodConfig::Sae { bias: false },
                MethodConfig::SparseCoding { inference: adam },
                MethodConfig::Mlp {
                    hidden: vec![96],
                    bias: false,
                },
            ],
            Some(512),
        ),
    ];
    // The other settings: supervised encoders, and inference on the true dictionary.
    cases.push((
        "known codes",
        vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::Mlp {
                hidden: vec![128],
                bias: true,
            },
        ],
        None,
    ));
    cases.push((
        "known dictionary",
        vec![
            MethodConfig::Sae { bias: false },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Adam { steps: 3, lr: 3e-3 },
            },
        ],
        None,
    ));
    let mut report = Vec::new();
    for (name, methods, batch) in cases {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = match name {
            "known codes" => Setting::KnownCodes,
            "known dictionary" => Setting::KnownDictionary,
            _ => Setting::Unknown,
        };
        cfg.data.num_atoms = 64;
        cfg.data.data_dim = 32;
        cfg.data.sparsity_k = 5;
        cfg.data.num_samples = 4096;
        cfg.methods = methods;
        cfg.train.steps = 4;
        cfg.train.log_every = 2;
        cfg.train.batch_size = batch;
        cfg.runs = 3;
        let checked = cfg.validate().unwrap();
        let estimate = checked.memory_estimate(1).total_bytes() as usize;
        let peak = peak_during(|| {
            let mut exp = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
            while !exp.is_done() {
                exp.step(1000);
            }
            let results = exp.results().to_json();
            assert!(!results.is_empty());
        });
        report.push(format!("{name}: peak {peak} B, estimate {estimate} B"));
        println!("{}", report.last().unwrap());
        assert!(
            peak <= estimate,
            "{name}: the estimate {estimate} B is below the real peak {peak} B"
        );
        assert!(
            estimate <= 2 * peak,
            "{name}: the estimate {estimate} B is over 2x the real peak {peak} B"
        );
    }
    println!("{}", report.join("\n"));
}
