//! Share links: every valid config survives a round trip exactly, links stay short, and a
//! malformed or hostile link is an error that names the problem, never a panic.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use sparse_playground::core::config::{
    limits, ExperimentConfig, MethodConfig, MethodKind, Preset, Setting, SolverConfig,
    TrainOverride,
};
use sparse_playground::core::share::{decode, encode, ShareError, MAX_LINK_CHARS};

fn round_trip(cfg: &ExperimentConfig) -> ExperimentConfig {
    let link = encode(cfg, &[]);
    decode(&link)
        .unwrap_or_else(|e| panic!("{link}: {e}"))
        .config
        .into_inner()
}

#[test]
fn presets_round_trip_and_omit_defaults() {
    for p in Preset::ALL {
        let cfg = p.config();
        let link = encode(&cfg, &[]);
        assert!(!link.contains("methods="), "{link}");
        assert!(
            link.contains(&format!("seed={}", cfg.seed)),
            "the seed is always written: {link}"
        );
        // Each preset is just its base, setting and seed.
        assert_eq!(
            link.split('&').count(),
            if p.is_quick() { 4 } else { 3 },
            "{link}"
        );
        assert_eq!(link.contains("p=quick"), p.is_quick(), "{link}");
        assert_eq!(round_trip(&cfg), cfg);
    }
}

/// Links written before presets changed (version 1) keep their meaning: the defaults they omit
/// are those of the presets then (20,000 steps, five seeds, evaluated every 1,000 for the
/// main experiment).
#[test]
fn version_1_links_keep_their_meaning() {
    let old = decode("v=1&setting=unknown&seed=20240926").unwrap().config;
    assert_eq!(old.train.steps, 20_000);
    assert_eq!(old.train.log_every, 1000);
    assert_eq!(old.runs, 5);
    assert_eq!(old.methods.len(), 5);
    let known_z = decode("v=1&setting=known_codes&seed=3").unwrap().config;
    assert_eq!(
        known_z.methods.len(),
        3,
        "no h=1024 MLP in version 1's preset"
    );
    // Written again, they come out as version 2 and read back the same.
    let again = encode(&old, &[]);
    assert!(again.starts_with("v=2&"), "{again}");
    assert_eq!(decode(&again).unwrap().config, old);
    assert!(
        decode("v=1&p=quick&seed=1").is_err(),
        "no quick presets in version 1"
    );
}

#[test]
fn evaluation_steps_round_trip() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.train.eval_steps = vec![10, 100, 5000];
    let link = encode(&cfg, &[]);
    assert!(link.contains("evals=10-100-5000"), "{link}");
    assert_eq!(round_trip(&cfg), cfg);
    let mut quick = Preset::QuickUnknownZD.config();
    quick.train.eval_steps.clear();
    let link = encode(&quick, &[]);
    assert_eq!(round_trip(&quick), quick, "{link}");
    for bad in [
        "v=2&evals=5-3",
        "v=2&evals=0-5",
        "v=2&evals=a",
        "v=2&evals=50-999999999",
    ] {
        assert!(decode(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_solver_and_option_round_trips() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: true },
        MethodConfig::TopkSae { k: 4, bias: false },
        MethodConfig::Mlp {
            hidden: vec![32, 256, 7],
            bias: true,
        },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 123,
                nonneg: false,
                tol: None,
            },
        },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Omp { k: Some(2) },
        },
        MethodConfig::SaeIto {
            bias: true,
            inference: SolverConfig::Adam {
                steps: 77,
                lr: 1.5e-7,
            },
        },
        MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::Omp { k: None },
        },
    ];
    cfg.data.noise_std = 0.05;
    cfg.data.signed_codes = true;
    cfg.data.frequency_skew = 1.25;
    cfg.train.batch_size = Some(64);
    cfg.train.lr = 0.1 + 0.2; // not a short decimal: must still come back bit for bit
    cfg.metrics.l0_threshold = 1e-5;
    cfg.seed = (1 << 53) - 1 - u64::from(cfg.runs);
    let link = encode(&cfg, &[]);
    assert_eq!(round_trip(&cfg), cfg, "{link}");
}

#[test]
fn extra_keys_come_back_to_the_caller() {
    let cfg = Preset::KnownD.config();
    let link = encode(&cfg, &[("run", "1"), ("backend", "cpu")]);
    let state = decode(&format!("#{link}")).unwrap();
    assert_eq!(*state.config, cfg);
    assert_eq!(
        state.extra,
        vec![("run".into(), "1".into()), ("backend".into(), "cpu".into())]
    );
}

#[test]
fn the_largest_config_still_fits_an_ordinary_link() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = (0..limits::MAX_METHODS)
        .map(|i| MethodConfig::Mlp {
            hidden: vec![10_000 + i; limits::MAX_HIDDEN_LAYERS],
            bias: true,
        })
        .collect();
    let link = encode(&cfg, &[]);
    assert!(link.len() < 2000, "{} chars", link.len());
}

fn error_of(link: &str) -> ShareError {
    match decode(link) {
        Ok(state) => panic!("{link} was accepted: {:?}", *state.config),
        Err(e) => e,
    }
}

#[test]
fn malformed_links_say_what_is_wrong() {
    assert_eq!(error_of(""), ShareError::MissingVersion);
    assert_eq!(error_of("N=4"), ShareError::MissingVersion);
    assert!(matches!(
        error_of("v=99"),
        ShareError::UnsupportedVersion(v) if v == "99"
    ));
    assert!(matches!(error_of("v=2&p=fast"), ShareError::BadValue { key, .. } if key == "p"));
    assert!(matches!(
        error_of("v=1&seed=1&seed=2"),
        ShareError::Repeated { key } if key == "seed"
    ));
    let cases = [
        ("v=1&N=abc", "N"),
        ("v=1&N=-3", "N"),
        ("v=1&lr=NaN", "lr"),
        ("v=1&lr=inf", "lr"),
        ("v=1&signed=maybe", "signed"),
        ("v=1&setting=everything", "setting"),
        ("v=1&methods=sae,transformer", "methods"),
        ("v=1&methods=topk", "methods"),
        ("v=1&methods=mlp:h32-x", "methods"),
        ("v=1&methods=sae:fista", "methods"),
        ("v=1&methods=sc:omp:lr0.1", "methods"),
        ("v=1&methods=sc:adam:inside", "methods"),
        ("v=1&methods=sc:fista:topk3", "methods"),
        ("v=1&methods=sc:omp:topk3", "methods"),
        ("v=1&methods=sc:adam:topk3:inside:inside", "methods"),
        ("v=1&methods=", "methods"),
        ("v=1&seed=%zz", "seed"),
        ("v=1&seed=99999999999999999999999", "seed"),
    ];
    for (link, key) in cases {
        match error_of(link) {
            ShareError::BadValue {
                key: k, message, ..
            } => {
                assert_eq!(k, key, "{link}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{link}: expected a bad value of {key}, got {other}"),
        }
    }
}

#[test]
fn links_that_parse_but_describe_bad_experiments_fail_validation() {
    for link in [
        "v=1&K=17",
        "v=1&lr=0",
        "v=1&N=1000000",
        "v=1&runs=0",
        "v=1&seed=9007199254740992",
        "v=1&methods=topk:k99",
        "v=1&methods=sc:adam:topk0",
        "v=1&methods=sc:adam:topk99:inside",
    ] {
        assert!(
            matches!(error_of(link), ShareError::Invalid(_)),
            "{link} should fail validation"
        );
    }
}

#[test]
fn hostile_links_are_refused_quickly() {
    let long = format!("v=1&x={}", "a".repeat(MAX_LINK_CHARS));
    assert!(matches!(error_of(&long), ShareError::TooLong(_)));
    let many_methods = format!("v=1&methods={}", vec!["sae"; 1000].join(","));
    assert!(matches!(
        error_of(&many_methods),
        ShareError::BadValue { .. }
    ));
    // Odd bytes, escapes and separators never panic.
    for link in [
        "v=1&%",
        "v=1&=&&=",
        "v=1&methods=ito:b:b:b",
        "&&&v=1",
        "v=1&é=%C3%A9",
    ] {
        let _ = decode(link);
    }
}

fn arb_solver() -> impl Strategy<Value = SolverConfig> {
    prop_oneof![
        (1u64..50_000, 1e-6f64..1.0).prop_map(|(steps, lr)| SolverConfig::Adam { steps, lr }),
        (
            1u64..5_000,
            any::<bool>(),
            proptest::option::of(1e-9f64..0.5)
        )
            .prop_map(|(steps, nonneg, tol)| SolverConfig::Fista { steps, nonneg, tol }),
        proptest::option::of(1usize..4).prop_map(|k| SolverConfig::Omp { k }),
        (1u64..50_000, 1e-6f64..1.0, 1usize..4, any::<bool>()).prop_map(
            |(steps, lr, k, inside)| SolverConfig::AdamTopk {
                steps,
                lr,
                k,
                inside
            }
        ),
    ]
}

fn arb_method() -> impl Strategy<Value = MethodConfig> {
    prop_oneof![
        any::<bool>().prop_map(|bias| MethodConfig::Sae { bias }),
        (1usize..4, any::<bool>()).prop_map(|(k, bias)| MethodConfig::TopkSae { k, bias }),
        (proptest::collection::vec(1usize..300, 1..4), any::<bool>())
            .prop_map(|(hidden, bias)| MethodConfig::Mlp { hidden, bias }),
        arb_solver().prop_map(|inference| MethodConfig::SparseCoding { inference }),
        (any::<bool>(), arb_solver())
            .prop_map(|(bias, inference)| MethodConfig::SaeIto { bias, inference }),
    ]
}

proptest! {
    #[test]
    fn any_valid_config_round_trips(
        setting in prop_oneof![
            Just(Setting::KnownCodes),
            Just(Setting::KnownDictionary),
            Just(Setting::Unknown)
        ],
        methods in proptest::collection::vec(arb_method(), 1..6),
        n_atoms in 4usize..40,
        m in 2usize..20,
        noise in 0.0f64..1.0,
        signed in any::<bool>(),
        steps in 1u64..100_000,
        lr in 1e-6f64..1.0,
        seed in 0u64..(1 << 53),
        runs in 1u32..8,
        per_method in proptest::collection::btree_map(
            prop_oneof![
                Just(MethodKind::Sae),
                Just(MethodKind::TopkSae),
                Just(MethodKind::Mlp),
                Just(MethodKind::SparseCoding),
                Just(MethodKind::SaeIto),
            ],
            (proptest::option::of(1e-6f64..1.0), proptest::option::of(0.0f64..5.0)),
            0..4,
        ),
    ) {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = setting;
        cfg.methods = methods;
        cfg.data.num_atoms = n_atoms;
        cfg.data.data_dim = m;
        cfg.data.noise_std = noise;
        cfg.data.signed_codes = signed;
        cfg.train.steps = steps;
        cfg.train.lr = lr;
        cfg.seed = seed;
        cfg.runs = runs;
        cfg.train.per_method = per_method
            .into_iter()
            .filter(|(_, (lr, l1))| lr.is_some() || l1.is_some())
            .map(|(k, (lr, l1_penalty))| (k, TrainOverride { lr, l1_penalty }))
            .collect();
        prop_assume!(cfg.validate().is_ok());
        prop_assert_eq!(round_trip(&cfg), cfg);
    }
}

#[test]
fn per_method_rates_travel_in_the_link_and_bad_ones_name_their_key() {
    let cfg = decode("v=2&p=quick&lrs=sc:0.003,mlp:0.0001&l1s=sc:0.5&seed=1")
        .unwrap()
        .config;
    assert_eq!(cfg.train.lr_for(MethodKind::SparseCoding), 0.003);
    assert_eq!(cfg.train.lr_for(MethodKind::Mlp), 0.0001);
    assert_eq!(cfg.train.lr_for(MethodKind::Sae), cfg.train.lr);
    assert_eq!(cfg.train.l1_for(MethodKind::SparseCoding), 0.5);
    assert_eq!(cfg.train.l1_for(MethodKind::Mlp), cfg.train.l1_penalty);
    let link = encode(&cfg, &[]);
    assert!(link.contains("lrs=mlp:0.0001,sc:0.003"), "{link}");
    assert!(link.contains("l1s=sc:0.5"), "{link}");
    for (bad, key) in [
        ("v=2&lrs=sc", "lrs"),
        ("v=2&lrs=xyz:0.1", "lrs"),
        ("v=2&lrs=sc:0.1,sc:0.2", "lrs"),
        ("v=2&l1s=sc:abc", "l1s"),
        ("v=2&lrs=sc:0", "train.per_method.sparse_coding.lr"),
        ("v=2&l1s=mlp:-1", "train.per_method.mlp.l1_penalty"),
        ("v=2&lrs=sc:NaN", "lrs"),
    ] {
        let err = decode(bad).expect_err(bad).to_string();
        assert!(err.contains(key), "{bad}: {err}");
    }
}

/// Links speak: a key no page reads is refused with its name (it used to be ignored), page keys
/// (`run`, `backend`, `<key>_hide`) pass, and setting `steps` on a quick preset keeps the
/// preset's evaluations before its last step, as the form does.
#[test]
fn unknown_keys_are_refused_and_quick_links_take_their_steps() {
    let err = decode("v=2&p=quick&setting=unknown&stpes=100").unwrap_err();
    assert!(err.to_string().contains("stpes"), "{err}");
    let ok = decode("v=2&p=quick&setting=unknown&run=1&backend=cpu&steps_hide=1").unwrap();
    assert_eq!(ok.extra.len(), 3);
    let quick = decode("v=2&p=quick&setting=unknown&steps=2000").unwrap();
    assert_eq!(quick.config.train.steps, 2000);
    assert!(quick.config.train.eval_steps.iter().all(|&e| e < 2000));
    assert!(!quick.config.train.eval_steps.is_empty());
}
