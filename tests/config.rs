//! Config validation: every bad input becomes a typed error naming the field, never a panic.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::config::{
    ConfigError, ExperimentConfig, MethodConfig, Preset, Setting, SolverConfig,
};

fn field_of(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { field, .. } => field,
        ConfigError::Parse(msg) => format!("parse: {msg}"),
    }
}

fn rejects(mutate: impl FnOnce(&mut ExperimentConfig), field: &str) {
    let mut cfg = Preset::UnknownZD.config();
    mutate(&mut cfg);
    let err = cfg.validate().expect_err("config should be rejected");
    let message = err.to_string();
    assert_eq!(field_of(err), field, "{message}");
    assert!(
        message.len() > field.len() + 10,
        "message explains: {message}"
    );
}

#[test]
fn k_above_n_is_rejected() {
    rejects(|c| c.data.sparsity_k = 17, "data.sparsity_k");
    rejects(|c| c.data.sparsity_k = 0, "data.sparsity_k");
}

#[test]
fn zero_sizes_are_rejected() {
    rejects(|c| c.data.num_atoms = 0, "data.num_atoms");
    rejects(|c| c.data.data_dim = 0, "data.data_dim");
    rejects(|c| c.data.num_samples = 0, "data.num_samples");
    rejects(|c| c.runs = 0, "runs");
    rejects(|c| c.train.log_every = 0, "train.log_every");
    rejects(|c| c.methods.clear(), "methods");
    rejects(
        |c| {
            c.methods = vec![MethodConfig::Mlp {
                hidden: vec![],
                bias: false,
            }]
        },
        "methods[0].hidden",
    );
    rejects(
        |c| {
            c.methods = vec![MethodConfig::Mlp {
                hidden: vec![0],
                bias: false,
            }]
        },
        "methods[0].hidden[0]",
    );
}

#[test]
fn nan_infinite_and_negative_rates_are_rejected() {
    rejects(|c| c.train.lr = f64::NAN, "train.lr");
    rejects(|c| c.train.lr = -1e-3, "train.lr");
    rejects(|c| c.train.lr = 0.0, "train.lr");
    rejects(|c| c.train.lr = f64::INFINITY, "train.lr");
    rejects(|c| c.train.l1_penalty = -0.1, "train.l1_penalty");
    rejects(|c| c.data.noise_std = f64::NAN, "data.noise_std");
    rejects(
        |c| {
            c.methods = vec![MethodConfig::SparseCoding {
                inference: SolverConfig::Adam {
                    steps: 10,
                    lr: f64::NAN,
                },
            }]
        },
        "methods[0].inference.lr",
    );
}

#[test]
fn absurd_sizes_are_rejected_before_any_allocation() {
    rejects(|c| c.data.num_atoms = 1_000_000, "data.num_atoms");
    rejects(|c| c.data.num_samples = usize::MAX, "data.num_samples");
    rejects(|c| c.train.steps = u64::MAX, "train.steps");
    rejects(|c| c.runs = 10_000, "runs");
    rejects(|c| c.seed = u64::MAX, "seed");
    // Each size within its own limit, but together too much memory for one run.
    rejects(
        |c| {
            c.data.num_atoms = 4096;
            c.data.num_samples = 200_000;
        },
        "methods[0]",
    );
    rejects(
        |c| {
            c.methods = vec![
                MethodConfig::Mlp {
                    hidden: vec![16_384; 8],
                    bias: false
                };
                1
            ]
        },
        "methods[0]",
    );
}

#[test]
fn methods_that_do_not_fit_the_setting_are_rejected() {
    rejects(
        |c| {
            c.setting = Setting::KnownCodes;
            c.methods = vec![MethodConfig::SparseCoding {
                inference: SolverConfig::default(),
            }];
        },
        "methods[0].kind",
    );
    rejects(
        |c| {
            c.setting = Setting::KnownDictionary;
            c.methods = vec![MethodConfig::SaeIto {
                bias: false,
                inference: SolverConfig::default(),
            }];
        },
        "methods[0].kind",
    );
    rejects(
        |c| c.methods = vec![MethodConfig::TopkSae { k: 17, bias: false }],
        "methods[0].k",
    );
    rejects(
        |c| {
            c.methods = vec![MethodConfig::SparseCoding {
                inference: SolverConfig::Omp { k: Some(9) },
            }]
        },
        "methods[0].inference.k",
    );
}

#[test]
fn malformed_json_gives_readable_parse_errors() {
    for (text, needle) in [
        (
            r#"{"methods":[{"kind":"transformer"}]}"#,
            "unknown variant `transformer`",
        ),
        (r#"{"trian":{}}"#, "unknown field `trian`"),
        (
            r#"{"data":{"num_atoms":-3}}"#,
            "data.num_atoms: must be a whole number from 0 up, got -3",
        ),
        (
            r#"{"data":{"num_atoms":"16"}}"#,
            "data.num_atoms: must be a whole number, got \"16\"",
        ),
        (
            r#"{"train":{"steps":1.5}}"#,
            "train.steps: must be a whole number, got 1.5",
        ),
        (
            r#"{"methods":[{"kind":"mlp","hidden":[32,-3]}]}"#,
            // Serde reads a tagged method as a whole: the path ends at the method.
            "methods[0]: must be a whole number from 0 up, got -3",
        ),
        (r#"{"train":{"lr":null}}"#, "train.lr: must be a number"),
        (
            r#"{"data":{"signed_codes":"yes"}}"#,
            "must be true or false",
        ),
        ("not json", "expected"),
        ("", "EOF"),
    ] {
        let err = ExperimentConfig::from_json(text).expect_err(text);
        let msg = err.to_string();
        assert!(msg.contains(needle), "{text}: {msg}");
        assert!(
            !msg.contains("expected u64") && !msg.contains("floating point"),
            "{msg}"
        );
    }
}

#[test]
fn every_preset_is_valid_and_the_paper_sizes() {
    for p in Preset::ALL {
        let cfg = p.config();
        cfg.validate().unwrap();
        assert_eq!(
            (cfg.data.num_atoms, cfg.data.data_dim, cfg.data.sparsity_k),
            (16, 8, 3)
        );
        assert_eq!(cfg.data.num_samples, 1024);
        assert_eq!(cfg.train.l1_penalty, 0.01);
        assert_eq!(cfg.train.batch_size, None);
        if p.is_quick() {
            assert_eq!(cfg.runs, 2);
            assert!(!cfg.train.eval_steps.is_empty());
        } else {
            assert_eq!(cfg.train.lr, 1e-3);
            assert_eq!(cfg.runs, 5);
            assert!(cfg.train.eval_steps.is_empty());
        }
    }
    // The paper's protocols exactly.
    let zd = Preset::UnknownZD.config();
    assert_eq!(
        (zd.train.steps, zd.train.log_every, zd.seed),
        (40_000, 500, 20_240_926)
    );
    assert_eq!(zd.methods.len(), 5);
    let z = Preset::KnownZ.config();
    assert!(z.methods.contains(&MethodConfig::Mlp {
        hidden: vec![1024],
        bias: true
    }));
    assert_eq!(z.seed, 20_240_625);
    let d = Preset::KnownD.config();
    assert_eq!(d.train.log_every, 100);
    assert!(d.methods.contains(&MethodConfig::SparseCoding {
        inference: SolverConfig::Adam {
            steps: 20_000,
            lr: 1e-3
        }
    }));
}

#[test]
fn evaluation_schedules_are_checked_and_followed() {
    let mut cfg = Preset::QuickUnknownZD.config();
    cfg.train.steps = 100;
    cfg.train.eval_steps = vec![5, 20, 60];
    let checked = cfg.clone().validate().unwrap();
    assert_eq!(checked.train.next_evaluation_after(0), 5);
    assert_eq!(checked.train.next_evaluation_after(5), 20);
    assert_eq!(checked.train.next_evaluation_after(60), 100);
    assert_eq!(checked.evaluations_per_run(), 3 + 1 + 2);
    for bad in [vec![5, 5], vec![20, 5], vec![0, 5], vec![5, 101]] {
        cfg.train.eval_steps = bad.clone();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("train.eval_steps"), "{bad:?}: {err}");
    }
}

#[test]
fn per_method_rates_are_checked_and_named_by_kind() {
    use sparse_playground::core::config::{MethodKind, TrainOverride};
    let set = |kind, lr, l1_penalty| {
        move |c: &mut ExperimentConfig| {
            c.train
                .per_method
                .insert(kind, TrainOverride { lr, l1_penalty });
        }
    };
    rejects(
        set(MethodKind::SparseCoding, Some(f64::NAN), None),
        "train.per_method.sparse_coding.lr",
    );
    rejects(
        set(MethodKind::Mlp, None, Some(-0.1)),
        "train.per_method.mlp.l1_penalty",
    );
    rejects(set(MethodKind::Sae, None, None), "train.per_method.sae");
    // In JSON: keyed by the methods' kind names; unknown kinds and fields are refused.
    let mut cfg = Preset::UnknownZD.config();
    set(MethodKind::SparseCoding, Some(3e-3), Some(0.5))(&mut cfg);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        json.contains(r#""per_method":{"sparse_coding":{"lr":0.003,"l1_penalty":0.5}}"#),
        "{json}"
    );
    assert_eq!(ExperimentConfig::from_json(&json).unwrap(), cfg);
    for bad in [
        json.replace("sparse_coding\":{", "sc\":{"),
        json.replace("\"l1_penalty\":0.5", "\"lambda\":0.5"),
    ] {
        assert!(ExperimentConfig::from_json(&bad).is_err(), "{bad}");
    }
}

/// The page compares each quick preset's run with its paper-size run as measured with the CLI
/// (www/reference/paper-size.json, written by scripts/paper-reference.mjs). Each reference keeps
/// the config it ran: when a paper-size preset changes, this fails until it is measured again.
#[test]
fn the_paper_size_reference_ran_todays_presets() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/reference/paper-size.json"),
    )
    .expect("www/reference/paper-size.json");
    let reference: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for name in ["known-z", "known-d", "unknown-zd"] {
        let entry = &reference["experiments"][name];
        let preset = Preset::from_name(name).expect("a preset");
        let want = serde_json::to_value(preset.config()).expect("a config serialises");
        // Through the config type, so that 0 and 0.0 (JavaScript writes the first) compare equal.
        let ran: ExperimentConfig =
            serde_json::from_value(entry["config"].clone()).expect("the reference's config");
        assert_eq!(
            serde_json::to_value(ran).expect("a config serialises"),
            want,
            "{name}: the reference ran another config; measure it again (scripts/paper-reference.mjs)"
        );
        let methods = entry["methods"].as_array().expect("methods");
        assert_eq!(methods.len(), preset.config().methods.len(), "{name}");
    }
}
