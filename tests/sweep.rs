//! Sweeps: the grid and its cells, units run alone or sharded and merged give the same
//! results, invalid cells are reported not run, and the recovery experiment behaves as
//! compressed sensing says (near 1 well below the l1 curve, near 0 well above, falling in K).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::config::{MethodConfig, SolverConfig};
use sparse_playground::core::run::default_clock;
use sparse_playground::core::sweep::{
    Axis, Param, SweepConfig, SweepKind, SweepPreset, SweepResults, Unit, UnitRun,
};
use sparse_playground::core::theory::{rho_at, Signs};
use sparse_playground::CpuBackend;
use std::sync::Arc;

fn run_units(sweep: &SweepConfig, units: &[Unit]) -> SweepResults {
    let results = units
        .iter()
        .map(|&u| {
            let mut run = UnitRun::new(sweep, u, Arc::new(CpuBackend::new(1)), default_clock);
            run.run_to_end();
            let mut r = run.result();
            for m in &mut r.methods {
                if let Some(rec) = m.record.as_mut() {
                    rec.wall_s = 0.0;
                }
            }
            r
        })
        .collect();
    SweepResults::new(sweep.clone(), results)
}

fn small_experiment_sweep() -> SweepConfig {
    let mut s = SweepPreset::QuickScaling.config();
    s.base.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 30,
                nonneg: true,
                tol: None,
            },
        },
    ];
    s.base.data.num_samples = 64;
    s.base.train.steps = 30;
    s.base.train.log_every = 30;
    s.axes = vec![
        Axis::new(Param::N, vec![8.0, 16.0]),
        Axis::new(Param::K, vec![2.0, 12.0]),
    ];
    s.seeds = 2;
    s
}

#[test]
fn cells_take_their_values_and_invalid_ones_are_reported() {
    let s = small_experiment_sweep();
    s.validate().unwrap();
    assert_eq!(s.cell_count(), 4);
    assert_eq!(s.units().len(), 8);
    assert_eq!(s.cell_values(0), vec![(Param::N, 8.0), (Param::K, 2.0)]);
    assert_eq!(s.cell_values(3), vec![(Param::N, 16.0), (Param::K, 12.0)]);
    let c = s.unit_config(Unit { cell: 2, seed: 1 }).unwrap();
    assert_eq!((c.data.num_atoms, c.data.sparsity_k, c.runs), (16, 2, 1));
    assert_eq!(
        c.seed,
        s.base.seed + 1,
        "each seed regenerates data and initialisation"
    );
    // K = 12 > N = 8 is not an experiment: reported, not run.
    let err = s
        .unit_config(Unit { cell: 1, seed: 0 })
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.sparsity_k"), "{err}");
    let results = run_units(&s, &s.units());
    let invalid = results.units.iter().filter(|u| u.invalid.is_some()).count();
    assert_eq!(invalid, 2);
    for u in results.units.iter().filter(|u| u.invalid.is_none()) {
        assert_eq!(u.methods.len(), 2);
        for m in &u.methods {
            let rec = m.record.as_ref().expect("a final evaluation");
            assert_eq!(rec.step, 30);
            assert!(rec.code_mcc > 0.0 && rec.code_mcc <= 1.0);
        }
    }
}

#[test]
fn shards_merged_equal_the_whole_sweep() {
    let s = small_experiment_sweep();
    let whole = run_units(&s, &s.units());
    let shards: Vec<SweepResults> = (0..3).map(|i| run_units(&s, &s.shard(i, 3))).collect();
    assert_eq!(shards.iter().map(|r| r.units.len()).sum::<usize>(), 8);
    let merged = SweepResults::merge(shards).unwrap();
    assert_eq!(merged, whole);
    // Through JSON too, and results of another sweep refuse to merge.
    let back = SweepResults::from_json(&merged.to_json()).unwrap();
    assert_eq!(back, whole);
    let mut other = small_experiment_sweep();
    other.seeds = 1;
    assert!(SweepResults::merge(vec![whole.clone(), run_units(&other, &other.units())]).is_err());
}

#[test]
fn sweep_configs_round_trip_and_bad_ones_say_why() {
    for p in SweepPreset::ALL {
        let s = p.config();
        s.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name()));
        assert_eq!(SweepConfig::from_json(&s.to_json_pretty()).unwrap(), s);
    }
    let mut s = small_experiment_sweep();
    s.axes[0].values = vec![8.5];
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("whole numbers"));
    let mut s = small_experiment_sweep();
    s.axes.push(s.axes[0].clone());
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("swept twice"));
    let mut s = small_experiment_sweep();
    s.axes = vec![Axis::new(Param::Delta, vec![0.5])];
    assert!(s.validate().is_err(), "delta belongs to recovery sweeps");
    let mut s = small_experiment_sweep();
    s.axes[1].values = vec![100.0];
    assert!(s.validate().is_err(), "no valid cell at all");
    assert!(SweepConfig::from_json("[]").is_err());
    assert!(SweepConfig::from_json(r#"{"axes": [{"param": "Q", "values": [1]}]}"#).is_err());
}

/// FISTA on non-negative codes through a known Gaussian dictionary: far below the
/// non-negative l1 curve nearly every trial succeeds, far above it nearly none, and success
/// falls as K grows at fixed M and N (within noise).
#[test]
fn recovery_follows_the_phase_transition() {
    let mut s = SweepPreset::Phase.config();
    s.base.data.num_atoms = 64;
    s.base.data.num_samples = 20;
    s.axes = vec![
        Axis::new(Param::Delta, vec![0.5]),
        Axis::new(Param::Rho, vec![0.1, 0.3, 0.5, 0.7, 0.9]),
    ];
    s.recovery.solvers = vec![SolverConfig::Fista {
        steps: 1500,
        nonneg: true,
        tol: None,
    }];
    s.seeds = 2;
    assert_eq!(s.kind, SweepKind::Recovery);
    s.validate().unwrap();
    let results = run_units(&s, &s.units());
    let rate = |cell: usize| {
        let us: Vec<f64> = results
            .units
            .iter()
            .filter(|u| u.cell == cell)
            .map(|u| u.methods[0].recovery.unwrap().success_rate)
            .collect();
        us.iter().sum::<f64>() / us.len() as f64
    };
    let rates: Vec<f64> = (0..5).map(rate).collect();

    let curve = rho_at(0.5, Signs::NonNegative);
    assert!(curve > 0.5 && curve < 0.6);
    assert!(rates[0] > 0.9, "well below the curve: {rates:?}");
    assert!(rates[4] < 0.1, "well above the curve: {rates:?}");
    for w in rates.windows(2) {
        assert!(w[1] <= w[0] + 0.15, "success falls as K grows: {rates:?}");
    }
}

#[test]
fn sweep_links_round_trip_with_defaults_omitted() {
    use sparse_playground::core::share::{decode, decode_sweep, encode_sweep, is_sweep_link};
    for p in SweepPreset::ALL {
        let s = p.config();
        let link = encode_sweep(&s, &[]);
        assert!(is_sweep_link(&link));
        assert_eq!(
            link,
            format!("v=2&sweep={}&seed={}", p.name(), s.base.seed),
            "a preset is its name"
        );
        let (back, extra) = decode_sweep(&link).unwrap();
        assert_eq!(back, s);
        assert!(extra.is_empty());
        assert!(decode(&link).is_err(), "not an experiment link");
    }
    let mut s = small_experiment_sweep();
    s.recovery.solvers = vec![
        SolverConfig::Omp { k: Some(2) },
        SolverConfig::Fista {
            steps: 70,
            nonneg: false,
            tol: None,
        },
        SolverConfig::default(),
    ];
    s.recovery.success = sparse_playground::core::sweep::Success::Support;
    let link = encode_sweep(&s, &[("run", "1")]);
    assert!(link.contains("axes=N:8_16~K:2_12"), "{link}");
    let (back, extra) = decode_sweep(&link).unwrap();
    assert_eq!(back, s, "{link}");
    assert_eq!(extra, vec![("run".to_string(), "1".to_string())]);
    for bad in [
        "v=2&sweep=nope",
        "v=2&sweep=phase&axes=Q:1_2",
        "v=2&sweep=phase&axes=delta:0.5_x",
        "v=2&sweep=phase&seeds=0",
        "v=2&sweep=phase&success=maybe",
        "v=2&sweep=phase&solvers=lbfgs",
        "v=1&sweep=phase",
    ] {
        assert!(decode_sweep(bad).is_err(), "{bad}");
    }
}

#[test]
fn method_labels_name_each_method_once_for_the_whole_sweep() {
    let labels = |p: SweepPreset| p.config().method_labels();
    assert_eq!(
        labels(SweepPreset::QuickScaling),
        vec!["SAE", "MLP (h=32)", "Sparse coding"]
    );
    // The width sweep changes the MLP's name from cell to cell: it is named by its kind.
    assert_eq!(labels(SweepPreset::QuickWidth), vec!["MLP"]);
    // The TopK sweep keeps what stays the same: the TopK's place, not its k.
    assert_eq!(
        labels(SweepPreset::QuickTopk),
        vec![
            "TopK SAE",
            "Sparse coding (L1 then top-k)",
            "Sparse coding (top-k inside)"
        ]
    );
    let mut phase = SweepPreset::Phase.config();
    phase.recovery.solvers.push(SolverConfig::Fista {
        steps: 100,
        nonneg: false,
        tol: None,
    });
    let l = phase.method_labels();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_ne!(
        l[0], l[1],
        "signed and non-negative FISTA are told apart: {l:?}"
    );
    assert!(l[1].contains("signed"), "{l:?}");
}

/// The fuzz seeds of the sweep parsers are valid inputs (so fuzzing starts from inside the
/// language, not from its error paths).
#[test]
fn the_sweep_fuzz_seeds_are_valid() {
    use sparse_playground::core::share::decode_sweep;
    let dir = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(name)
    };
    for entry in std::fs::read_dir(dir("sweep_link")).unwrap() {
        let path = entry.unwrap().path();
        let link = std::fs::read_to_string(&path).unwrap();
        decode_sweep(&link).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for entry in std::fs::read_dir(dir("sweep_json")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let ok = SweepConfig::from_json(&text).is_ok() || SweepResults::from_json(&text).is_ok();
        assert!(ok, "{} is neither a sweep nor its results", path.display());
    }
}

/// A lambda or learning-rate axis sets that value for every method, per-method ones included;
/// the other per-method value stays.
#[test]
fn rate_axes_replace_per_method_rates() {
    use sparse_playground::core::config::{MethodKind, TrainOverride};
    let mut s = small_experiment_sweep();
    s.base.train.per_method.insert(
        MethodKind::SparseCoding,
        TrainOverride {
            lr: Some(3e-3),
            l1_penalty: Some(0.5),
        },
    );
    s.axes = vec![Axis::new(Param::Lambda, vec![0.1, 0.2])];
    let c = s.unit_config(Unit { cell: 1, seed: 0 }).unwrap();
    assert_eq!(c.train.l1_for(MethodKind::SparseCoding), 0.2);
    assert_eq!(c.train.l1_for(MethodKind::Sae), 0.2);
    assert_eq!(c.train.lr_for(MethodKind::SparseCoding), 3e-3);
    s.axes[0].param = Param::Lr;
    let c = s.unit_config(Unit { cell: 0, seed: 0 }).unwrap();
    assert_eq!(c.train.lr_for(MethodKind::SparseCoding), 0.1);
    assert_eq!(c.train.l1_for(MethodKind::SparseCoding), 0.5);
    // The paper's studies that train kinds differently say so in their paper-size presets.
    let lr = |p: SweepPreset, k| p.config().base.train.lr_for(k);
    assert_eq!(lr(SweepPreset::Scaling, MethodKind::SparseCoding), 3e-3);
    assert_eq!(lr(SweepPreset::Scaling, MethodKind::Sae), 1e-3);
    assert_eq!(lr(SweepPreset::Bias, MethodKind::Mlp), 1e-4);
    let topk = SweepPreset::Topk.config().base.train;
    assert_eq!(topk.l1_for(MethodKind::SparseCoding), 0.5);
    assert_eq!(topk.l1_for(MethodKind::TopkSae), topk.l1_penalty);
}

/// Axes taken together: the paper's width study runs three (N, M, K) shapes, not their 12
/// combinations; cells, links and validation follow.
#[test]
fn axes_taken_together_move_as_one() {
    use sparse_playground::core::share::{decode_sweep, encode_sweep};
    let s = SweepPreset::Width.config();
    s.validate().unwrap();
    assert_eq!(s.cell_count(), 3 * 6);
    let shapes: Vec<(usize, usize, usize)> = (0..s.cell_count())
        .map(|cell| {
            let c = s.unit_config(Unit { cell, seed: 0 }).unwrap();
            (c.data.num_atoms, c.data.data_dim, c.data.sparsity_k)
        })
        .collect();
    for (i, shape) in [(16, 8, 3), (32, 16, 6), (64, 16, 6)]
        .into_iter()
        .enumerate()
    {
        assert!(
            shapes[i * 6..(i + 1) * 6].iter().all(|&s| s == shape),
            "{shapes:?}"
        );
    }
    let hidden = s.unit_config(Unit { cell: 7, seed: 0 }).unwrap();
    assert_eq!(
        hidden.methods,
        vec![MethodConfig::Mlp {
            hidden: vec![32],
            bias: false
        }]
    );
    // In a link: `,` joins an axis to the one before it, `~` multiplies.
    let mut custom = small_experiment_sweep();
    custom.axes = vec![
        Axis::new(Param::N, vec![8.0, 16.0]),
        Axis {
            with_previous: true,
            ..Axis::new(Param::K, vec![2.0, 4.0])
        },
    ];
    custom.validate().unwrap();
    assert_eq!(custom.cell_count(), 2);
    let link = encode_sweep(&custom, &[]);
    assert!(link.contains("axes=N:8_16,K:2_4&"), "{link}");
    assert_eq!(decode_sweep(&link).unwrap().0, custom);
    // Refused: a different number of values, or no axis before (in a config file).
    for (axes, needle) in [
        ("N:8_16,K:2", "give 2 values, got 1"),
        ("N:8_16,", "write param:v_v_v"),
        (",K:2_4", "write param:v_v_v"),
    ] {
        let err = decode_sweep(&format!("v=2&sweep=quick-scaling&axes={axes}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{axes}: {err}");
    }
    custom.axes[0].with_previous = true;
    let err = custom.validate().unwrap_err().to_string();
    assert!(err.contains("no axis before it"), "{err}");
}

/// Encoders in a recovery sweep train in each cell on the known dictionary, so they need
/// training steps; a TopK SAE with k = 0 keeps each cell's K (as OMP takes K atoms), and the
/// sweep with them survives its link.
#[test]
fn recovery_encoders_train_and_a_topk_sae_takes_each_cells_k() {
    use sparse_playground::core::share::{decode_sweep, encode_sweep};
    let mut s = SweepPreset::Phase.config();
    s.base.data.num_atoms = 32;
    s.base.data.num_samples = 64;
    s.axes = vec![
        Axis::new(Param::Delta, vec![0.5]),
        Axis::new(Param::Rho, vec![0.125, 0.5]),
    ];
    s.base.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::TopkSae { k: 0, bias: false },
    ];
    assert_eq!(s.base.train.steps, 0, "the phase preset trains nothing");
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("base.train.steps"), "{err}");
    // A steps axis gives the steps instead.
    let mut with_axis = s.clone();
    with_axis
        .axes
        .push(Axis::new(Param::Steps, vec![10.0, 20.0]));
    with_axis.validate().unwrap();

    s.base.train.steps = 40;
    s.base.train.log_every = 40;
    s.validate().unwrap();
    for (cell, k) in [(0, 2), (1, 8)] {
        let cfg = s.unit_config(Unit { cell, seed: 0 }).unwrap();
        assert_eq!(cfg.data.sparsity_k, k);
        assert!(cfg
            .methods
            .contains(&MethodConfig::TopkSae { k, bias: false }));
        assert!(cfg.train.steps == 40, "the encoders train");
    }
    // A k axis still sets k.
    let mut k_axis = s.clone();
    k_axis.axes.push(Axis::new(Param::TopkK, vec![3.0]));
    let cfg = k_axis.unit_config(Unit { cell: 1, seed: 0 }).unwrap();
    assert!(cfg
        .methods
        .contains(&MethodConfig::TopkSae { k: 3, bias: false }));

    let (back, _) = decode_sweep(&encode_sweep(&s, &[])).unwrap();
    assert_eq!(back, s);
    let results = run_units(&s, &s.units());
    for u in &results.units {
        let names: Vec<&str> = u.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(u.methods.len(), 3, "SAE, TopK SAE and FISTA: {names:?}");
        for m in &u.methods {
            let r = m.recovery.unwrap();
            assert!((0.0..=1.0).contains(&r.success_rate), "{names:?}");
            assert!(r.mean_relative_error.is_finite());
        }
    }
}

/// The default phase diagram is right where theory applies: its FISTA stops on the duality gap
/// and converges in every cell, and cells well below the non-negative l1 curve (rho at most 0.6
/// of it) succeed in at least 8 of their 10 trials. With the old fixed 500 iterations the cell
/// at delta 0.2, rho 0.1 failed in 9 of 10 trials, far below the curve.
#[test]
fn the_phase_preset_converges_and_succeeds_well_below_the_curve() {
    use sparse_playground::core::sweep::Success;
    let mut s = SweepPreset::Phase.config();
    assert_eq!(s.base.data.num_atoms, 256);
    assert_eq!(s.recovery.encoder_success, Success::TopSupport);
    s.axes = vec![
        Axis::new(Param::Delta, vec![0.1, 0.2, 0.5, 0.8]),
        Axis::new(Param::Rho, vec![0.05, 0.1, 0.2]),
    ];
    s.validate().unwrap();
    let results = run_units(&s, &s.units());
    let mut below = 0;
    for u in &results.units {
        let rec = u.methods[0].recovery.unwrap();
        let values = s.cell_values(u.cell);
        assert_eq!(rec.converged, Some(true), "cell {values:?}: {rec:?}");
        assert!(rec.iterations.unwrap() <= 10_000);
        let (delta, rho) = (values[0].1, values[1].1);
        if rho <= 0.6 * rho_at(delta, Signs::NonNegative) {
            below += 1;
            assert!(
                rec.success_rate >= 0.8,
                "delta {delta}, rho {rho} is well below the curve: {rec:?}"
            );
        }
    }
    assert!(below >= 9, "most of these cells are well below the curve");

    // The same cell with FISTA stopped at a fixed 500 iterations: the false boundary.
    let mut fixed = s.clone();
    fixed.axes = vec![
        Axis::new(Param::Delta, vec![0.2]),
        Axis::new(Param::Rho, vec![0.1]),
    ];
    fixed.recovery.solvers = vec![SolverConfig::Fista {
        steps: 500,
        nonneg: true,
        tol: None,
    }];
    let r = run_units(&fixed, &fixed.units());
    let rec = r.units[0].methods[0].recovery.unwrap();
    assert!(rec.success_rate < 0.5 && rec.converged.is_none(), "{rec:?}");
}

/// Encoders are scored by whether their K largest latents are the true support (their codes
/// are neither exactly sparse nor within 1% of the true values), and each outcome names its
/// criterion.
#[test]
fn top_support_scores_the_atoms_picked_not_their_values() {
    use sparse_playground::core::sweep::{recovery, Success};
    use sparse_playground::core::Matrix;
    let truth = Matrix::from_column_slice(
        4,
        3,
        &[1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0],
    );
    // Column 0: right atoms, wrong values, small leaks; column 1: a leak as large as the
    // true entry (a tie); column 2: the wrong atom on top.
    let codes = Matrix::from_column_slice(
        4,
        3,
        &[0.6, 0.1, 0.9, 0.05, 0.0, 0.7, 0.7, 0.0, 0.2, 0.1, 0.0, 0.3],
    );
    let top = recovery(&truth, &codes, Success::TopSupport);
    assert!((top.success_rate - 1.0 / 3.0).abs() < 1e-12, "{top:?}");
    assert_eq!(top.criterion, Success::TopSupport);
    let rel = recovery(&truth, &codes, Success::default());
    assert_eq!(rel.success_rate, 0.0);
    assert!(matches!(rel.criterion, Success::RelativeError { .. }));
}

/// delta and rho are fractions: a link or config outside (0, 1] is refused with the reason.
#[test]
fn phase_axes_outside_the_unit_interval_are_refused() {
    use sparse_playground::core::share::decode_sweep;
    let err = decode_sweep("v=2&sweep=phase&axes=delta:0.1_2~rho:0.5").unwrap_err();
    assert!(err.to_string().contains("fraction"), "{err}");
    let err = decode_sweep("v=2&sweep=phase&axes=delta:0.5~rho:0_0.5").unwrap_err();
    assert!(err.to_string().contains("got 0"), "{err}");
    let err = decode_sweep("v=2&sweep=phase&bogus=1").unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

/// The units of a sweep that differ only in their data, seed, rates and k are computed as one stack per
/// method (`UnitStack`, the GPU's way of running sweeps), one member per unit on its own data:
/// on the CPU, which computes member by member, that gives each unit's numbers bit for bit.
/// Every setting, full batches and minibatches, encoders, sparse coding, the paper's inference,
/// FISTA (to a tolerance) and OMP; cells along lambda and the learning rate, each member at
/// its own rates, and along TopK's k; and the phase diagram's cells at one delta, K varying.
#[test]
fn stacked_units_give_the_numbers_of_units_run_one_by_one() {
    use sparse_playground::core::config::{MethodKind, Setting, TrainOverride};
    use sparse_playground::core::sweep::{stack_groups, UnitStack};
    let fista = |tol| SolverConfig::Fista {
        steps: 60,
        nonneg: true,
        tol,
    };
    let mut sweeps = Vec::new();
    for (setting, batch) in [
        (Setting::Unknown, None),
        (Setting::Unknown, Some(16)),
        (Setting::KnownDictionary, None),
        (Setting::KnownCodes, Some(16)),
    ] {
        let mut s = small_experiment_sweep();
        s.base.setting = setting;
        s.base.train.batch_size = batch;
        s.base.methods = match setting {
            Setting::KnownCodes => vec![
                MethodConfig::Sae { bias: true },
                MethodConfig::Mlp {
                    hidden: vec![8],
                    bias: false,
                },
            ],
            Setting::KnownDictionary => vec![
                MethodConfig::Sae { bias: false },
                MethodConfig::TopkSae { k: 3, bias: true },
                MethodConfig::SparseCoding {
                    inference: fista(Some(1e-4)),
                },
                MethodConfig::SparseCoding {
                    inference: SolverConfig::Omp { k: None },
                },
            ],
            Setting::Unknown => vec![
                MethodConfig::Sae { bias: false },
                MethodConfig::SaeIto {
                    bias: false,
                    inference: SolverConfig::Adam {
                        steps: 20,
                        lr: 0.01,
                    },
                },
                MethodConfig::SparseCoding {
                    inference: fista(None),
                },
            ],
        };
        s.axes[1] = Axis::new(Param::K, vec![2.0, 4.0]);
        s.axes.push(Axis::new(Param::Noise, vec![0.0, 0.05]));
        sweeps.push(s);
    }
    // Cells along lambda and the learning rate: each member trains, and infers its test
    // codes, at its own rates (LISTA and the paper's inference included).
    let mut rates = small_experiment_sweep();
    rates.base.methods = vec![
        MethodConfig::Sae { bias: true },
        MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::Adam {
                steps: 20,
                lr: 0.01,
            },
        },
        MethodConfig::Mlp {
            hidden: vec![8],
            bias: false,
        },
        MethodConfig::SparseCoding {
            inference: fista(Some(1e-4)),
        },
        MethodConfig::Lista { iterations: 2 },
    ];
    rates.axes[1] = Axis::new(Param::Lambda, vec![0.01, 0.3]);
    rates.axes.push(Axis::new(Param::Lr, vec![1e-3, 1e-2]));
    rates.seeds = 1;
    sweeps.push(rates.clone());
    // A known dictionary along lambda, sparse coding keeping a learning rate of its own.
    rates.base.setting = Setting::KnownDictionary;
    rates.base.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::TopkSae { k: 3, bias: true },
        MethodConfig::SparseCoding {
            inference: fista(Some(1e-4)),
        },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 20,
                lr: 0.01,
            },
        },
    ];
    rates.axes.truncate(2);
    // Cells along TopK's k: each member keeps its own k, in a TopK SAE and in the paper's
    // inference with a TopK after it or inside it.
    let mut topk = rates.clone();
    topk.base.setting = Setting::Unknown;
    topk.base.methods = vec![
        MethodConfig::TopkSae { k: 3, bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::AdamTopk {
                steps: 20,
                lr: 0.01,
                k: 3,
                inside: true,
            },
        },
        MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::AdamTopk {
                steps: 20,
                lr: 0.01,
                k: 3,
                inside: false,
            },
        },
    ];
    topk.axes[1] = Axis::new(Param::TopkK, vec![2.0, 5.0]);
    topk.seeds = 2;
    sweeps.push(topk.clone());
    topk.base.setting = Setting::KnownDictionary;
    topk.base.methods.truncate(2);
    sweeps.push(topk);
    rates.base.train.per_method.insert(
        MethodKind::SparseCoding,
        TrainOverride {
            lr: Some(5e-3),
            l1_penalty: None,
        },
    );
    sweeps.push(rates);
    let mut phase = SweepPreset::Phase.config();
    phase.base.data.num_atoms = 32;
    phase.base.data.num_samples = 32;
    phase.axes = vec![
        Axis::new(Param::Delta, vec![0.25, 0.5]),
        Axis::new(Param::Rho, vec![0.125, 0.25, 0.5]),
    ];
    phase.seeds = 2;
    sweeps.push(phase.clone());

    for s in &sweeps {
        s.validate().unwrap();
        let units = s.units();
        let one_by_one = run_units(s, &units);
        // N is the only axis that changes shapes here (delta in the phase diagram).
        let groups = stack_groups(s, &units, 64);
        assert_eq!(groups.len(), 2, "{:?}", s.axes);
        assert!(stack_groups(s, &units, 3).iter().all(|g| g.len() <= 3));
        let mut stacked = Vec::new();
        for group in &groups {
            let mut stack =
                UnitStack::new(s, group, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
            stack.run_to_end();
            assert!(stack.is_done() && stack.backend_failure().is_none());
            let mut results = stack.results();
            for m in results.iter_mut().flat_map(|r| &mut r.methods) {
                if let Some(rec) = m.record.as_mut() {
                    rec.wall_s = 0.0;
                }
            }
            stacked.extend(results);
        }
        let stacked = SweepResults::new(s.clone(), stacked);
        assert_eq!(stacked.units.len(), one_by_one.units.len());
        for (a, b) in stacked.units.iter().zip(&one_by_one.units) {
            assert!(a
                .methods
                .iter()
                .all(|m| m.record.is_some() && m.error.is_none()));
            assert_eq!(a, b, "{:?}: unit {} {}", s.base.setting, a.cell, a.seed);
        }
    }
    // Units that differ in more than their data are not one stack.
    let err = UnitStack::new(
        &phase,
        &[Unit { cell: 0, seed: 0 }, Unit { cell: 3, seed: 0 }],
        Arc::new(CpuBackend::new(1)),
        default_clock,
    )
    .unwrap_err();
    assert!(
        err.contains("more than its data, seed, rates and k"),
        "{err}"
    );
}
