//! The paper's qualitative results at reduced length (a faster learning rate, fewer steps).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::config::{
    ExperimentConfig, MethodConfig, Preset, Setting, SolverConfig,
};
use sparse_playground::core::results::Results;
use sparse_playground::core::run::Grouping;
use sparse_playground::{CpuBackend, Experiment};
use std::sync::Arc;

fn run(config: ExperimentConfig) -> Results {
    let checked = config.validate().expect("valid config");
    let mut exp = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
    while !exp.is_done() {
        exp.step(1000);
    }
    exp.results()
}

fn final_mean(results: &Results, name: &str, metric: &str) -> f64 {
    let m = results
        .methods
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name}"));
    let stat = match metric {
        "code" => m.summary.code_mcc,
        "dict" => m.summary.dict_mcc,
        _ => unreachable!(),
    };
    stat.expect("metric present").mean
}

/// Known dictionary: per-sample inference with the true dictionary far exceeds the SAE.
#[test]
fn known_dictionary_inference_beats_the_sae() {
    let mut cfg = Preset::KnownD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 3000,
                lr: 1e-2,
            },
        },
    ];
    cfg.train.steps = 3000;
    cfg.train.lr = 1e-2;
    cfg.train.log_every = 1000;
    cfg.runs = 2;
    let r = run(cfg);
    let sae = final_mean(&r, "SAE", "code");
    let sc = final_mean(&r, "Sparse coding", "code");
    assert!(
        sc > sae + 0.15,
        "inference with the true D {sc:.3} vs SAE {sae:.3}"
    );
    assert!(
        sc > 0.85,
        "inference with the true D should nearly recover the codes: {sc:.3}"
    );
}

/// Nothing known: sparse coding ends above the SAE in code and dictionary MCC.
#[test]
fn unknown_sparse_coding_beats_the_sae() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 3000,
                lr: 1e-2,
            },
        },
    ];
    cfg.train.steps = 5000;
    cfg.train.lr = 1e-2;
    cfg.train.log_every = 5000;
    cfg.runs = 2;
    let r = run(cfg);
    let (sae, sc) = (
        final_mean(&r, "SAE", "code"),
        final_mean(&r, "Sparse coding", "code"),
    );
    assert!(
        sc > sae + 0.05,
        "code MCC: sparse coding {sc:.3} vs SAE {sae:.3}"
    );
    let (sae_d, sc_d) = (
        final_mean(&r, "SAE", "dict"),
        final_mean(&r, "Sparse coding", "dict"),
    );
    assert!(
        sc_d > sae_d + 0.05,
        "dictionary MCC: sparse coding {sc_d:.3} vs SAE {sae_d:.3}"
    );
}

/// Known codes: a supervised encoder learns, and the step API logs at the promised points.
#[test]
fn known_codes_training_improves_and_logs_on_schedule() {
    let mut cfg = Preset::KnownZ.config();
    cfg.setting = Setting::KnownCodes;
    cfg.methods = vec![MethodConfig::Mlp {
        hidden: vec![32],
        bias: true,
    }];
    cfg.train.steps = 1500;
    cfg.train.lr = 1e-2;
    cfg.train.log_every = 400;
    cfg.runs = 1;
    let r = run(cfg);
    let log = &r.methods[0].runs[0].log;
    let steps: Vec<u64> = log.iter().map(|l| l.step).collect();
    assert_eq!(steps, vec![0, 400, 800, 1200, 1500]);
    assert!(
        log.last().unwrap().code_mcc > log[0].code_mcc + 0.2,
        "{log:?}"
    );
    assert!(log
        .iter()
        .all(|l| l.dict_mcc.is_none() && l.test_mse.is_none()));
    assert!(log.windows(2).all(|w| w[1].train_flops > w[0].train_flops));
}

/// SAE + ITO starts from exactly the SAE of the same seed (shared initialisation stream).
#[test]
fn sae_and_sae_ito_share_their_dictionary() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::Fista {
                steps: 100,
                nonneg: true,
                tol: None,
            },
        },
    ];
    cfg.train.steps = 200;
    cfg.train.log_every = 100;
    cfg.runs = 1;
    let r = run(cfg);
    let a = &r.methods[0].runs[0].log;
    let b = &r.methods[1].runs[0].log;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.dict_mcc, y.dict_mcc);
        assert_eq!(x.train_flops, y.train_flops);
    }
}

/// Minibatches train too, and the step API can be driven one step at a time.
#[test]
fn minibatch_training_and_single_steps() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: true },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Omp { k: None },
        },
    ];
    cfg.train.batch_size = Some(100);
    cfg.train.steps = 30;
    cfg.train.log_every = 10;
    cfg.runs = 1;
    let checked = cfg.validate().unwrap();
    let mut exp = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
    let mut calls = 0;
    while !exp.is_done() {
        let progress = exp.step(1);
        assert!(progress.iter().all(|p| p.step <= 30));
        calls += 1;
    }
    assert_eq!(calls, 30);
    let r = exp.results();
    for m in &r.methods {
        assert_eq!(m.runs[0].log.len(), 4);
        assert!(m.summary.code_mcc.unwrap().mean.is_finite());
    }
    // Same config, same numbers: the whole run is deterministic.
    let again = run(cfg);
    assert_eq!(
        again.methods[0].runs[0].log[3].code_mcc,
        r.methods[0].runs[0].log[3].code_mcc
    );
}

/// The paper's inference (10,000 Adam steps per evaluation by default) advances in the same
/// bounded increments as training, so a caller's time slice is never swallowed by one
/// evaluation, and the numbers do not depend on how the work is split.
#[test]
fn evaluations_advance_in_bounded_increments_with_the_same_numbers() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::Adam {
                steps: 300,
                lr: 3e-3,
            },
        },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 300,
                lr: 3e-3,
            },
        },
    ];
    cfg.data.num_samples = 256;
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.runs = 1;
    let checked = cfg.clone().validate().unwrap();
    let mut exp = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
    // The first evaluation alone is 300 steps of work: 7 steps leave it pending.
    let progress = exp.step(7);
    assert!(progress.iter().all(|p| p.step == 0 && p.new_records == 0));
    assert!(exp.runs().all(|r| r.member.log().is_empty()));
    assert!(exp.stacks().iter().all(|s| s.is_evaluating()));
    // Work counts training and inference steps: the bar moves while an evaluation runs.
    let total_work = 2 * (40 + 3 * 300);
    assert_eq!(exp.work(), (2 * 7, total_work));
    let mut calls = 1;
    let mut last_done = exp.work().0;
    while !exp.is_done() {
        exp.step(7);
        calls += 1;
        let (done, total) = exp.work();
        assert_eq!(total, total_work);
        assert!(
            done > last_done && done - last_done <= 2 * 7,
            "{last_done} -> {done}"
        );
        last_done = done;
    }
    assert_eq!(exp.work(), (total_work, total_work));
    assert!(exp.stacks().iter().all(|s| !s.is_evaluating()));
    // 2 runs x (40 training steps + 3 evaluations x 300 inference steps), 7 at a time.
    assert!(calls >= (40 + 3 * 300) / 7, "{calls} calls");
    let chunked = exp.results();
    let whole = run(cfg);
    for (a, b) in chunked.methods.iter().zip(&whole.methods) {
        let (la, lb) = (&a.runs[0].log, &b.runs[0].log);
        assert_eq!(la.len(), 3);
        for (ra, rb) in la.iter().zip(lb) {
            assert_eq!(ra.step, rb.step);
            assert_eq!(ra.code_mcc, rb.code_mcc, "{}", a.name);
            assert_eq!(ra.dict_mcc, rb.dict_mcc);
            assert_eq!(ra.test_mse, rb.test_mse);
            assert_eq!(ra.infer_flops, rb.infer_flops);
        }
    }
}

/// A UI's single step: every run trains to its next evaluation and scores it, in bounded slices,
/// and stops there; the numbers are those of an uninterrupted run.
#[test]
fn single_steps_stop_at_the_next_evaluation() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 50,
                lr: 3e-3,
            },
        },
    ];
    cfg.data.num_samples = 128;
    cfg.train.steps = 25;
    cfg.train.log_every = 10;
    cfg.runs = 2;
    let mut exp = Experiment::new(
        cfg.clone().validate().unwrap(),
        Arc::new(CpuBackend::new(1)),
    );
    for (expected_step, expected_logs) in [(10, 2), (20, 3), (25, 4)] {
        let stops = exp.next_evaluation_steps();
        assert!(stops.iter().all(|&s| s == expected_step), "{stops:?}");
        let mut slices = 0;
        while !exp.reached(&stops) {
            exp.step_until(3, &stops);
            slices += 1;
            assert!(slices < 1000, "a single step never completes");
        }
        assert!(slices > 1, "bounded slices");
        for stack in exp.stacks() {
            assert_eq!(stack.step(), expected_step);
            assert!(!stack.is_evaluating());
        }
        for run in exp.runs() {
            assert_eq!(run.member.log().len(), expected_logs);
            assert_eq!(run.member.log().last().unwrap().step, expected_step);
        }
    }
    assert!(exp.is_done());
    let stepped = exp.results();
    let whole = run(cfg);
    for (a, b) in stepped.methods.iter().zip(&whole.methods) {
        for (ra, rb) in a.runs.iter().zip(&b.runs) {
            let codes = |r: &sparse_playground::core::results::RunLog| {
                r.log
                    .iter()
                    .map(|l| (l.step, l.code_mcc, l.test_mse))
                    .collect::<Vec<_>>()
            };
            assert_eq!(codes(ra), codes(rb), "{}", a.name);
        }
    }
}

/// With the true dictionary nothing is trained: only the first evaluation infers codes, later
/// ones repeat it, and the work count agrees with what runs.
#[test]
fn known_dictionary_work_is_one_inference() {
    let mut cfg = Preset::KnownD.config();
    cfg.methods = vec![MethodConfig::SparseCoding {
        inference: SolverConfig::Adam {
            steps: 50,
            lr: 3e-3,
        },
    }];
    cfg.data.num_samples = 64;
    cfg.train.steps = 30;
    cfg.train.log_every = 10;
    cfg.runs = 1;
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    assert_eq!(exp.work(), (0, 30 + 50));
    while !exp.is_done() {
        exp.step(7);
    }
    assert_eq!(exp.work(), (80, 80));
    assert_eq!(exp.runs().next().unwrap().member.log().len(), 4);
}

/// Runs stacked together (one kernel call per operation for all seeds, as on a GPU) give the
/// very same numbers as each run advanced alone: every method, minibatches, every solver.
#[test]
fn stacks_equal_runs_advanced_one_by_one() {
    for setting in [
        Setting::Unknown,
        Setting::KnownDictionary,
        Setting::KnownCodes,
    ] {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = setting;
        cfg.methods = vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::TopkSae { k: 3, bias: false },
            MethodConfig::Mlp {
                hidden: vec![12, 8],
                bias: true,
            },
        ];
        if setting != Setting::KnownCodes {
            cfg.methods.push(MethodConfig::SparseCoding {
                inference: SolverConfig::Adam {
                    steps: 40,
                    lr: 3e-3,
                },
            });
            cfg.methods.push(MethodConfig::SparseCoding {
                inference: SolverConfig::Fista {
                    steps: 30,
                    nonneg: true,
                    tol: None,
                },
            });
            cfg.methods.push(MethodConfig::SparseCoding {
                inference: SolverConfig::Omp { k: None },
            });
        }
        if setting == Setting::Unknown {
            cfg.methods.push(MethodConfig::SaeIto {
                bias: false,
                inference: SolverConfig::Adam {
                    steps: 30,
                    lr: 3e-3,
                },
            });
        }
        cfg.data.num_samples = 96;
        cfg.train.steps = 24;
        cfg.train.log_every = 8;
        cfg.train.batch_size = Some(32);
        cfg.runs = 3;
        let checked = cfg.validate().unwrap();
        let results = |grouping| {
            let mut exp = Experiment::build(
                checked.clone(),
                Arc::new(CpuBackend::new(1)),
                grouping,
                None,
            );
            assert_eq!(
                exp.stacks().len(),
                match grouping {
                    Grouping::PerRun => cfg.methods.len() * 3,
                    Grouping::PerMethod => cfg.methods.len(),
                    Grouping::PerMethodUpTo(max) => cfg.methods.len() * 3usize.div_ceil(max),
                }
            );
            while !exp.is_done() {
                exp.step(5);
            }
            exp.results()
        };
        let (stacked, alone) = (results(Grouping::PerMethod), results(Grouping::PerRun));
        // Stacks of at most two (a GPU whose buffers hold two members) give the same too.
        let split = results(Grouping::PerMethodUpTo(2));
        for (a, b) in stacked
            .methods
            .iter()
            .zip(&alone.methods)
            .chain(split.methods.iter().zip(&alone.methods))
        {
            for (ra, rb) in a.runs.iter().zip(&b.runs) {
                assert_eq!(ra.seed, rb.seed);
                assert_eq!(ra.log.len(), 4, "{}", a.name);
                for (x, y) in ra.log.iter().zip(&rb.log) {
                    let (mut x, mut y) = (x.clone(), y.clone());
                    x.wall_s = 0.0;
                    y.wall_s = 0.0;
                    assert_eq!(x, y, "{:?}: {} seed {}", setting, a.name, ra.seed);
                }
            }
        }
    }
}

/// A subset of the runs (a pool worker's share) gives exactly those runs' numbers.
#[test]
fn a_share_of_the_runs_gives_their_numbers() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::Mlp {
            hidden: vec![16],
            bias: false,
        },
    ];
    cfg.data.num_samples = 64;
    cfg.train.steps = 10;
    cfg.train.log_every = 5;
    cfg.runs = 3;
    let checked = cfg.validate().unwrap();
    let run_all = |only: Option<&[(usize, u32)]>| {
        let mut exp = Experiment::build(
            checked.clone(),
            Arc::new(CpuBackend::new(1)),
            Grouping::PerMethod,
            only,
        );
        while !exp.is_done() {
            exp.step(100);
        }
        exp.results()
    };
    let whole = run_all(None);
    let share = run_all(Some(&[(1, 2), (0, 1)]));
    assert_eq!(share.methods.len(), 2);
    assert_eq!(share.methods[0].runs.len(), 1);
    assert_eq!(share.methods[0].runs[0].seed, whole.methods[0].runs[1].seed);
    let strip = |l: &[sparse_playground::core::results::LogRecord]| {
        l.iter()
            .map(|r| (r.step, r.code_mcc, r.dict_mcc, r.test_mse))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&share.methods[0].runs[0].log),
        strip(&whole.methods[0].runs[1].log)
    );
    assert_eq!(
        strip(&share.methods[1].runs[0].log),
        strip(&whole.methods[1].runs[2].log)
    );
}

/// An evaluation schedule (the quick presets') is followed exactly: evaluations at step 0, at
/// each listed step and at the last one; the work count agrees.
#[test]
fn evaluation_schedules_are_followed() {
    let mut cfg = Preset::QuickUnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 20,
                lr: 1e-2,
            },
        },
    ];
    cfg.data.num_samples = 64;
    cfg.train.steps = 100;
    cfg.train.eval_steps = vec![5, 20, 60];
    cfg.runs = 1;
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    let (_, total) = exp.work();
    assert_eq!(
        total,
        100 + 100 + 5 * 20,
        "training, plus 5 evaluations of sparse coding"
    );
    while !exp.is_done() {
        exp.step(7);
    }
    assert_eq!(exp.work(), (total, total));
    for run in exp.runs() {
        let steps: Vec<u64> = run.member.log().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![0, 5, 20, 60, 100], "{}", run.name);
    }
}

/// `train.per_method` trains methods of one kind exactly as if the whole experiment had their
/// learning rate and lambda, and leaves the other methods as they were.
#[test]
fn per_method_rates_apply_to_their_kind_only() {
    use sparse_playground::core::config::{MethodKind, TrainOverride};
    let base = || {
        let mut cfg = Preset::QuickUnknownZD.config();
        cfg.methods = vec![
            MethodConfig::Sae { bias: false },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Adam {
                    steps: 100,
                    lr: 1e-2,
                },
            },
        ];
        cfg.data.num_samples = 128;
        cfg.train.steps = 150;
        cfg.train.log_every = 50;
        cfg.train.eval_steps.clear();
        cfg.train.lr = 3e-3;
        cfg.train.l1_penalty = 0.01;
        cfg.runs = 1;
        cfg
    };
    let curves = |r: &Results, name: &str| -> Vec<(u64, f64, Option<f64>, f64)> {
        let m = r.methods.iter().find(|m| m.name == name).unwrap();
        m.runs[0]
            .log
            .iter()
            .map(|l| (l.step, l.code_mcc, l.test_mse, l.l0))
            .collect()
    };
    let mut with = base();
    with.train.per_method.insert(
        MethodKind::SparseCoding,
        TrainOverride {
            lr: Some(1e-2),
            l1_penalty: Some(0.05),
        },
    );
    let mut everywhere = base();
    everywhere.train.lr = 1e-2;
    everywhere.train.l1_penalty = 0.05;
    let (with, everywhere, plain) = (run(with), run(everywhere), run(base()));
    assert_eq!(
        curves(&with, "Sparse coding"),
        curves(&everywhere, "Sparse coding")
    );
    assert_eq!(curves(&with, "SAE"), curves(&plain, "SAE"));
    assert_ne!(
        curves(&with, "Sparse coding"),
        curves(&plain, "Sparse coding")
    );
}

/// The page's time estimate (`select::estimate_seconds`): every stack is timed on its own and
/// counted, a worker's share included, and a stack that ends inside its probe counts the time it
/// took (an estimate, never a missing one, for an experiment that has work to do).
#[test]
fn the_time_estimate_counts_every_stack() {
    use sparse_playground::core::run::default_clock;
    use sparse_playground::core::select::estimate_seconds;
    let checked = Preset::from_name("quick-unknown-zd")
        .unwrap()
        .config()
        .validate()
        .unwrap();
    let estimate = |only: Option<&[(usize, u32)]>| {
        pollster::block_on(estimate_seconds(
            &checked,
            Arc::new(CpuBackend::new(1)),
            Grouping::PerRun,
            only,
            default_clock,
        ))
        .expect("the CPU does not fail")
    };
    for only in [None, Some(&[(0usize, 0u32), (3, 1)][..])] {
        let s = estimate(only).expect("an estimate");
        assert!(s.is_finite() && s > 0.0, "{s}");
    }
    let mut tiny = Preset::from_name("quick-unknown-zd").unwrap().config();
    tiny.train.steps = 1;
    tiny.train.eval_steps.clear();
    let tiny = tiny.validate().unwrap();
    let s = pollster::block_on(estimate_seconds(
        &tiny,
        Arc::new(CpuBackend::new(1)),
        Grouping::PerRun,
        Some(&[(0, 0)]),
        default_clock,
    ))
    .unwrap()
    .expect("a stack that ends inside its probe counts its time");
    assert!(s.is_finite() && s > 0.0);
}
