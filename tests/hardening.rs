//! Hostile and degenerate input: files that lie about their sizes, configs of the wrong shape,
//! links with options that do not apply, training that diverges, experiments too big for
//! their memory budget. Each is an error with a message; none is a panic or a wrong result.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use sparse_playground::core::config::{
    limits, BudgetScope, ConfigError, ExperimentConfig, MethodConfig, Preset, SolverConfig,
};
use sparse_playground::core::results::Results;
use sparse_playground::core::share::{decode, ShareError};
use sparse_playground::formats::npy::{self, NpyError};
use sparse_playground::{CpuBackend, Experiment};
use std::sync::Arc;

/// A `.npy` file with the given header dictionary and data bytes (version 1.0 preamble).
fn npy_file(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    // Pad so the data start at a multiple of 64, as numpy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn npy_reads_what_numpy_writes() {
    let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let c = npy_file(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        &f32_bytes(&values),
    );
    let a = npy::parse(&c).unwrap();
    assert_eq!((a.rows, a.cols), (2, 3));
    assert_eq!(a.values, values);
    // Fortran order: the same matrix stored column by column.
    let f = npy_file(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        &f32_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
    );
    assert_eq!(npy::parse(&f).unwrap().values, values);
    let d: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let one_d = npy_file(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
        &d,
    );
    let a = npy::parse(&one_d).unwrap();
    assert_eq!((a.rows, a.cols, a.values), (2, 1, vec![1.5, -2.0]));
    // And what we write reads back.
    let m = sparse_playground::core::Matrix::from_fn(3, 4, |r, c| (r * 10 + c) as f32);
    let mut bytes = Vec::new();
    npy::write_columns(&mut bytes, &m).unwrap();
    assert_eq!(npy::parse(&bytes).unwrap().into_columns(), m);
}

#[test]
fn npy_shapes_that_lie_are_refused_before_allocating() {
    let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let cases: Vec<(String, &str)> = vec![
        // rows x cols wraps around to 4 in 64-bit arithmetic: once a segfault.
        (
            "(4611686018427387905, 4)".to_string(),
            "more values than this machine",
        ),
        (
            "(18446744073709551615, 2)".to_string(),
            "machine can address",
        ),
        ("(3, 3)".to_string(), "describes 36 bytes"),
        ("(1, 1)".to_string(), "describes 4 bytes"),
        ("(4, 0)".to_string(), "empty"),
        ("(0, 4)".to_string(), "empty"),
        ("(2, 2, 1)".to_string(), "1-D or 2-D"),
        ("()".to_string(), "1-D or 2-D"),
        ("(2, -2)".to_string(), "bad dimension"),
        ("(99999999999999999999999, 1)".to_string(), "bad dimension"),
    ];
    for (shape, expect) in cases {
        let file = npy_file(
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"),
            &data,
        );
        let err = npy::parse(&file).expect_err(&shape).to_string();
        assert!(err.contains(expect), "shape {shape}: {err}");
    }
}

#[test]
fn npy_broken_files_are_errors() {
    let good = npy_file(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
        &f32_bytes(&[1.0, 2.0]),
    );
    // Every truncation of a good file is an error, never a panic.
    for len in 0..good.len() {
        assert!(npy::parse(&good[..len]).is_err(), "truncated to {len}");
    }
    // A header length far past the file (npyz alone would allocate it).
    let mut huge = b"\x93NUMPY\x02\x00".to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(npy::parse(&huge)
        .unwrap_err()
        .to_string()
        .contains("header"));
    let deep = npy_file(
        &format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': {}1{} }}",
            "(".repeat(200),
            ")".repeat(200)
        ),
        &f32_bytes(&[1.0, 2.0]),
    );
    assert!(npy::parse(&deep).is_err());
    let twice = npy_file(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'shape': (1, 2)}",
        &f32_bytes(&[1.0, 2.0]),
    );
    assert!(npy::parse(&twice).is_err());
    let ints = npy_file(
        "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }",
        &[0u8; 8],
    );
    assert!(matches!(npy::parse(&ints), Err(NpyError::DType(_))));
    let nan = npy_file(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
        &f32_bytes(&[1.0, f32::NAN]),
    );
    assert!(matches!(
        npy::parse(&nan),
        Err(NpyError::NonFinite { row: 0, col: 1, .. })
    ));
    assert!(npy::parse(b"").is_err());
    assert!(npy::parse(b"\x93NUMPY\x09\x00\x00\x00").is_err());
}

proptest! {
    /// Random bytes after a valid preamble, and random mutations of a valid file, never panic.
    #[test]
    fn npy_mutations_never_panic(
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..12),
        cut in 0usize..200,
    ) {
        let mut file = npy_file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            &f32_bytes(&[0.5; 12]),
        );
        for (at, byte) in flips {
            let at = at % file.len();
            file[at] = byte;
        }
        file.truncate(cut.max(1).min(file.len()));
        let _ = npy::parse(&file);
    }
}

#[test]
fn configs_of_the_wrong_shape_are_refused() {
    for (text, expect) in [
        ("[]", "JSON object"),
        ("[1, 2]", "JSON object"),
        ("42", "JSON object"),
        ("\"unknown\"", "JSON object"),
        ("null", "JSON object"),
        (r#"{"data": []}"#, "data"),
        (r#"{"train": [1000]}"#, "train"),
        (r#"{"metrics": 3}"#, "metrics"),
        (r#"{"methods": {"kind": "sae"}}"#, "methods"),
        (r#"{"methods": [[]]}"#, "methods[0]"),
        (
            r#"{"methods": [{"kind": "sae_ito", "inference": []}]}"#,
            "methods[0].inference",
        ),
    ] {
        let err = ExperimentConfig::from_json(text).expect_err(text);
        assert!(err.to_string().contains(expect), "{text}: {err}");
    }
    // The empty object is the documented way to ask for every default.
    assert_eq!(
        ExperimentConfig::from_json("{}").unwrap(),
        ExperimentConfig::default()
    );
    // A results file whose config is an array is refused too.
    let mut results: serde_json::Value = serde_json::from_str(&results_json()).unwrap();
    results["config"] = serde_json::json!([]);
    assert!(Results::from_json(&results.to_string()).is_err());
    assert!(Results::from_json("[]").is_err());
}

#[test]
fn link_options_that_do_not_apply_are_refused_with_the_key() {
    for link in [
        "v=1&methods=mlp:h32:k5",
        "v=1&methods=topk:k3:h32",
        "v=1&methods=sae:h32",
        "v=1&methods=sae:lr0.1",
        "v=1&methods=sc:b",
        "v=1&methods=sc:h4",
        "v=1&methods=ito:h4",
        "v=1&methods=topk:k3:k4",
        "v=1&methods=mlp:h32:h64",
        "v=1&methods=ito:b:b",
        "v=1&methods=sc:fista:s10:s20",
    ] {
        match decode(link) {
            Err(ShareError::BadValue { key, message, .. }) => {
                assert_eq!(key, "methods", "{link}: {message}");
            }
            other => panic!("{link}: expected a bad `methods` value, got {other:?}"),
        }
    }
}

fn results_json() -> String {
    let mut cfg = Preset::KnownZ.config();
    cfg.train.steps = 20;
    cfg.train.log_every = 10;
    cfg.runs = 2;
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    while !exp.is_done() {
        exp.step(50);
    }
    exp.results().to_json()
}

#[test]
fn diverging_training_stops_with_a_message_and_never_scores_well() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 20,
                nonneg: true,
                tol: None,
            },
        },
        MethodConfig::Sae { bias: false },
    ];
    cfg.train.lr = 10.0;
    cfg.train.steps = 3000;
    cfg.train.log_every = 1000;
    cfg.runs = 2;
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    while !exp.is_done() {
        exp.step(500);
    }
    let (done, total) = exp.work();
    assert_eq!(done, total, "a stopped run has no work left");
    let sc: Vec<_> = exp.runs().filter(|r| r.method_index == 0).collect();
    for run in &sc {
        let reason = run
            .member
            .failure()
            .expect("sparse coding at lr 10 diverges");
        assert!(reason.contains("diverged"), "{reason}");
        for record in run.member.log() {
            assert!(record.code_mcc.is_finite() && record.code_mcc <= 1.0);
        }
    }
    let results = exp.results();
    let sc_results = &results.methods[0];
    assert_eq!(sc_results.summary.failed_runs, 2);
    assert!(sc_results.summary.code_mcc.is_none(), "no final result");
    assert!(sc_results.runs.iter().all(|r| r.error.is_some()));
    // The error survives the results file's round trip.
    let back = Results::from_json(&results.to_json()).unwrap();
    assert_eq!(back, results);
}

#[test]
fn experiments_over_the_memory_budget_say_what_they_need() {
    // The issue's link: 16 wide MLPs x 2 runs.
    let mut cfg = Preset::UnknownZD.config();
    cfg.data.num_samples = 65_536;
    cfg.methods = vec![
        MethodConfig::Mlp {
            hidden: vec![256],
            bias: false
        };
        16
    ];
    cfg.runs = 2;
    let checked = cfg.validate().unwrap();
    let estimate = checked.memory_estimate(1);
    assert!(estimate.total_bytes() > limits::PAGE_MEMORY_BUDGET);
    let err = checked
        .check_memory(limits::PAGE_MEMORY_BUDGET, 1, BudgetScope::Page)
        .unwrap_err();
    let ConfigError::Invalid { field, message } = err else {
        panic!("expected an invalid field");
    };
    assert_eq!(field, "memory");
    for needle in [
        "GiB",
        "16 method(s) x 2 run(s)",
        "MLP (h=256)",
        "reduce",
        "command-line",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    let cli = checked
        .check_memory(1 << 20, 1, BudgetScope::CommandLine)
        .unwrap_err()
        .to_string();
    assert!(cli.contains("--memory-budget"), "{cli}");
    // On the page every worker generates its own copy of the data; the CLI's threads share it.
    let mut heavy = Preset::UnknownZD.config();
    heavy.data.num_atoms = 32;
    heavy.data.data_dim = 256;
    heavy.data.num_samples = 32_768;
    heavy.methods = vec![MethodConfig::Sae { bias: false }];
    heavy.runs = 4;
    let heavy = heavy.validate().unwrap();
    let (one, four) = (
        heavy.memory_estimate_spread(4, 1),
        heavy.memory_estimate_spread(4, 4),
    );
    assert_eq!(four.data_bytes, 4 * one.data_bytes);
    assert_eq!(four.model_bytes, one.model_bytes);
    heavy
        .check_memory(limits::PAGE_MEMORY_BUDGET, 1, BudgetScope::Page)
        .unwrap();
    heavy
        .check_memory(limits::PAGE_MEMORY_BUDGET, 4, BudgetScope::CommandLine)
        .unwrap();
    let page = heavy
        .check_memory(limits::PAGE_MEMORY_BUDGET, 4, BudgetScope::Page)
        .unwrap_err()
        .to_string();
    assert!(page.contains("a copy in each of 4 workers"), "{page}");
    // The paper's presets fit the page with room to spare.
    for p in Preset::ALL {
        let c = p.config().validate().unwrap();
        let e = c
            .check_memory(limits::PAGE_MEMORY_BUDGET, 1, BudgetScope::Page)
            .unwrap();
        assert!(e.total_bytes() < 128 << 20, "{}: {e:?}", p.name());
    }
}

#[test]
fn too_many_evaluations_are_refused() {
    let mut cfg = Preset::KnownZ.config();
    cfg.train.steps = limits::MAX_STEPS;
    cfg.train.log_every = 1;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("train.log_every"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// results -> JSON -> normalise -> results is the identity (the page's load path).
    #[test]
    fn results_round_trip_through_json(steps in 1u64..40, every in 1u64..20, runs in 1u32..3) {
        let mut cfg = Preset::KnownD.config();
        cfg.methods.truncate(2);
        cfg.data.num_samples = 64;
        cfg.train.steps = steps;
        cfg.train.log_every = every;
        cfg.runs = runs;
        let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
        while !exp.is_done() {
            exp.step(100);
        }
        let results = exp.results();
        let text = results.to_json();
        let back = Results::from_json(&text).unwrap();
        prop_assert_eq!(&back, &results);
        prop_assert_eq!(back.to_json(), text);
    }
}
