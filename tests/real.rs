//! Real activations: the loaders on good and bad files, the preprocessing, and the
//! amortisation gap measured where it is known (zero for the solver itself, positive for an SAE).

use sparse_playground::core::config::{MethodConfig, SolverConfig};
use sparse_playground::core::real::{
    code_agreement, estimate_seconds, prepare, score_codes, split,
    synthetic_activations as with_truth_of, MethodCosts, PointKind, Preprocess, RealConfig,
    RealCosts, RealExperiment, Scaling, TrialScale, ESTIMATE_TOKENS,
};
use sparse_playground::core::run::default_clock;
use sparse_playground::core::Matrix;
use sparse_playground::formats::activations::{self, Activations, ActivationsError};
use sparse_playground::{CpuBackend, Dataset};
use std::sync::Arc;

fn npy_file(descr: &str, shape: (usize, usize), data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.0, shape.1
    );
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

/// A .safetensors file of the given tensors (name, dtype, shape, bytes), laid out in order.
fn safetensors_file(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut offset = 0;
    for (name, dtype, shape, bytes) in tensors {
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
            offset + bytes.len()
        ));
        offset += bytes.len();
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - 20.0) * 0.25).collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect()
}

#[test]
fn npy_activations_in_float16_and_float32_read_alike() {
    let v = values(32 * 3);
    let f32_file = npy_file(
        "<f4",
        (32, 3),
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
    let f16_file = npy_file("<f2", (32, 3), &f16_bytes(&v));
    let a = activations::parse(&f32_file, None).unwrap();
    let b = activations::parse(&f16_file, None).unwrap();
    assert_eq!((a.tokens, a.dim, a.dtype), (32, 3, "float32"));
    assert_eq!((b.tokens, b.dim, b.dtype), (32, 3, "float16"));
    // Quarter steps up to 19 are exact in float16.
    assert_eq!(a.values, b.values);
    assert_eq!(b.row(2), &v[6..9]);
}

#[test]
fn safetensors_activations_read_in_every_float_type() {
    let v = values(16 * 4);
    let bf16: Vec<u8> = v
        .iter()
        .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
        .collect();
    let f32b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let f64b: Vec<u8> = v.iter().flat_map(|x| f64::from(*x).to_le_bytes()).collect();
    for (dtype, bytes, name) in [
        ("F16", f16_bytes(&v), "float16"),
        ("BF16", bf16, "bfloat16"),
        ("F32", f32b, "float32"),
        ("F64", f64b, "float64"),
    ] {
        let file = safetensors_file(&[("acts", dtype, vec![16, 4], bytes)]);
        let a = activations::parse(&file, None).unwrap();
        assert_eq!((a.tokens, a.dim, a.dtype), (16, 4, name), "{dtype}");
        assert_eq!(a.values, v, "{dtype}");
        assert_eq!(a.tensor.as_deref(), Some("acts"));
    }
}

#[test]
fn bad_activation_files_say_what_is_wrong() {
    let v = values(16 * 4);
    let f32b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    // Two candidate tensors: ambiguous unless one is named; a missing name lists the others.
    let two = safetensors_file(&[
        ("a", "F32", vec![16, 4], f32b.clone()),
        ("b", "F32", vec![16, 4], f32b.clone()),
    ]);
    assert!(matches!(
        activations::parse(&two, None),
        Err(ActivationsError::Ambiguous(ref s)) if s == "a, b"
    ));
    assert_eq!(
        activations::parse(&two, Some("b"))
            .unwrap()
            .tensor
            .as_deref(),
        Some("b")
    );
    let missing = activations::parse(&two, Some("c")).unwrap_err().to_string();
    assert!(
        missing.contains("`c`") && missing.contains("a, b"),
        "{missing}"
    );
    // A 3-D tensor is refused with its shape.
    let cube = safetensors_file(&[("x", "F32", vec![4, 4, 4], f32b.clone())]);
    assert_eq!(
        activations::parse(&cube, None),
        Err(ActivationsError::Shape(vec![4, 4, 4]))
    );
    // Integers are not activations.
    let ints = safetensors_file(&[("x", "I32", vec![16, 4], f32b.clone())]);
    assert!(matches!(
        activations::parse(&ints, None),
        Err(ActivationsError::DType(_))
    ));
    // NaN at row 5, column 2.
    let mut bad = v.clone();
    bad[5 * 4 + 2] = f32::NAN;
    let nan = safetensors_file(&[(
        "x",
        "F32",
        vec![16, 4],
        bad.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )]);
    let e = activations::parse(&nan, None).unwrap_err();
    assert!(
        matches!(e, ActivationsError::NonFinite { row: 5, col: 2, .. }),
        "{e}"
    );
    let nan_npy = npy_file("<f2", (16, 4), &f16_bytes(&bad));
    assert!(activations::parse(&nan_npy, None)
        .unwrap_err()
        .to_string()
        .contains("row 5, column 2"));
    // Truncated data (ragged or cut files) in both formats.
    let whole = safetensors_file(&[("x", "F32", vec![16, 4], f32b.clone())]);
    assert!(matches!(
        activations::parse(&whole[..whole.len() - 3], None),
        Err(ActivationsError::SafeTensors(_))
    ));
    let npy = npy_file("<f4", (16, 4), &f32b);
    assert!(activations::parse(&npy[..npy.len() - 3], None).is_err());
    // A header claiming a gigabyte is refused before it is parsed.
    let mut huge = (1u64 << 30).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{\"x\":1}");
    assert!(activations::parse(&huge, None)
        .unwrap_err()
        .to_string()
        .contains("header"));
    // Too few tokens, and neither format.
    let small = npy_file("<f4", (4, 4), &f32b[..64]);
    assert!(matches!(
        activations::parse(&small, None),
        Err(ActivationsError::TooSmall { tokens: 4, dim: 4 })
    ));
    assert_eq!(
        activations::parse(b"hello world, not a tensor", None),
        Err(ActivationsError::UnknownFormat)
    );
}

#[test]
fn token_texts_must_match_their_activations() {
    let good = r#"{"format":"sparse-playground-tokens","version":1,
        "tokens":["a"," b"," c","d"],"context_starts":[0,2]}"#;
    let t = activations::parse_tokens(good, 4).unwrap();
    assert_eq!(t.context_of(3), 1);
    assert_eq!(t.preceding(3, 10), 2..=3);
    let count = activations::parse_tokens(good, 5).unwrap_err().to_string();
    assert!(count.contains("4 token texts for 5 rows"), "{count}");
    for (bad, says) in [
        (good.replace("[0,2]", "[1,2]"), "begin with 0"),
        (good.replace("[0,2]", "[0,2,2]"), "increase strictly"),
        (good.replace("[0,2]", "[0,9]"), "past the 4 rows"),
        (good.replace("\"version\":1", "\"version\":2"), "version 1"),
        (good.replace("\"tokens\"", "\"toks\""), "unknown field"),
    ] {
        let e = activations::parse_tokens(&bad, 4).unwrap_err().to_string();
        assert!(e.contains(says), "{e} should say {says}");
    }
}

/// Synthetic signals as if they were activations (tokens x dims, row-major).
fn synthetic_activations(n_atoms: usize, dim: usize, k: usize, n: usize, seed: u64) -> Activations {
    let cfg = sparse_playground::core::config::DataConfig {
        num_atoms: n_atoms,
        data_dim: dim,
        sparsity_k: k,
        num_samples: n,
        ..Default::default()
    };
    let data = Dataset::generate(&cfg, seed);
    // Columns of the M x n matrix are the samples: as rows of a tokens x dims array, the
    // same memory.
    Activations {
        tokens: n,
        dim,
        values: data.train_signals.as_slice().to_vec(),
        dtype: "float32",
        tensor: None,
    }
}

#[test]
fn preprocessing_centres_and_scales_on_the_training_tokens_only() {
    let acts = synthetic_activations(16, 8, 3, 500, 3);
    let p = Preprocess {
        center: true,
        scale: Scaling::Dim,
        test_fraction: 0.2,
        max_tokens: None,
    };
    let d = prepare(&acts, &p, 11);
    assert_eq!((d.train.ncols(), d.test.ncols()), (400, 100));
    // Every token once, in one split or the other.
    let mut all: Vec<usize> = d.train_rows.iter().chain(&d.test_rows).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..500).collect::<Vec<_>>());
    for r in 0..8 {
        let mean: f64 = d.train.row(r).iter().map(|v| f64::from(*v)).sum::<f64>() / 400.0;
        assert!(mean.abs() < 1e-5, "train mean {mean}");
    }
    let msn: f64 = d
        .train
        .column_iter()
        .map(|c| c.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>())
        .sum::<f64>()
        / 400.0;
    assert!((msn - 8.0).abs() < 1e-3, "mean squared norm {msn}");
    // Held-out tokens are transformed with the training statistics: their column is the
    // file's row, centred and scaled by the same numbers.
    let raw = acts.row(d.test_rows[0]);
    let mean = d.mean.as_ref().unwrap();
    for r in 0..8 {
        let want = (f64::from(raw[r] - mean[r]) * d.scale) as f32;
        assert!((d.test[(r, 0)] - want).abs() < 1e-6);
    }
    // Seeded: the same split again, another with another seed.
    assert_eq!(prepare(&acts, &p, 11).test_rows, d.test_rows);
    assert_ne!(prepare(&acts, &p, 12).test_rows, d.test_rows);
    let unit = prepare(
        &acts,
        &Preprocess {
            scale: Scaling::Unit,
            ..p.clone()
        },
        11,
    );
    assert!((unit.scale * 8f64.sqrt() - d.scale).abs() < 1e-9 * d.scale);
    // Minibatches stream from the activations: the tokens read on the way are bit for bit
    // the prepared columns, centred or not.
    for p in [p.clone(), Preprocess { center: false, ..p }] {
        let d = prepare(&acts, &p, 11);
        let (train, test, _) = split(Arc::new(acts.clone()), &p, 11);
        assert_eq!(
            (train.rows(), test.rows()),
            (&d.train_rows[..], &d.test_rows[..])
        );
        let cols = [399, 0, 17, 17];
        let got = train.gather(cols);
        for (i, &c) in cols.iter().enumerate() {
            for r in 0..8 {
                assert_eq!(got[i * 8 + r].to_bits(), d.train[(r, c)].to_bits());
            }
        }
        assert_eq!(test.matrix(), d.test);
    }
}

#[test]
fn scores_and_agreement_are_what_they_say() {
    let dict = Matrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let x = Matrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 2.0]);
    let s = Matrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let sc = score_codes(&dict, &x, &s, 0.5, 1e-3).unwrap();
    // Residual only at (1, 1): 1; MSE 1/4; mean |s| 2/4; objective 0.25 + 0.5 * 0.5.
    assert!((sc.mse - 0.25).abs() < 1e-12);
    assert!((sc.objective - 0.5).abs() < 1e-12);
    assert_eq!((sc.l0, sc.dead_latents), (1.0, 0));
    let (cos, jac) = code_agreement(&s, &s, 1e-3);
    assert_eq!((cos, jac), (1.0, 1.0));
    let other = Matrix::from_column_slice(2, 2, &[0.0, 1.0, 0.0, 1.0]);
    let (cos, jac) = code_agreement(&s, &other, 1e-3);
    assert!((cos - 0.5).abs() < 1e-12 && (jac - 0.5).abs() < 1e-12);
}

#[test]
fn the_gap_is_zero_for_the_solver_and_positive_for_an_sae() {
    let acts = synthetic_activations(16, 8, 3, 1200, 5);
    let mut cfg = RealConfig {
        source: "synthetic".into(),
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: false },
            MethodConfig::SaeIto {
                bias: false,
                inference: SolverConfig::Fista {
                    steps: 20_000,
                    nonneg: true,
                    tol: Some(1e-5),
                },
            },
        ],
        seed: 1,
        ..RealConfig::default()
    };
    cfg.train.steps = 600;
    cfg.train.log_every = 300;
    cfg.train.l1_penalty = 0.1;
    cfg.train.batch_size = Some(128);
    cfg.gap.tokens = 128;
    cfg.gap.iterations = vec![1, 10, 100];
    cfg.preprocess.center = false;
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    exp.run_to_end(|_| {}).unwrap();
    let r = exp.results(None);
    let text = r.to_json();
    for key in [
        "\"explained_variance\"",
        "\"l0\"",
        "\"dead_latents\"",
        "\"amortisation_gap\"",
    ] {
        assert!(text.contains(key), "results carry {key}");
    }
    let sae = r.methods[0].report.as_ref().expect("the SAE was analysed");
    let ito = r.methods[1]
        .report
        .as_ref()
        .expect("SAE + ITO was analysed");
    assert!(r.methods.iter().all(|m| m.error.is_none()));
    // Logged at 0, 300 and 600 with held-out scores for the encoders.
    assert_eq!(
        r.methods[0].log.iter().map(|l| l.step).collect::<Vec<_>>(),
        vec![0, 300, 600]
    );
    assert!(r.methods[0].log.iter().all(|l| l.test.is_some()));
    assert!(sae.optimum_solver.converged && ito.optimum_solver.converged);
    // The solver's own codes are the optimum up to the tolerance.
    assert!(
        ito.amortisation_gap.abs() < 1e-3,
        "ITO gap {}",
        ito.amortisation_gap
    );
    assert!(ito.code_cosine > 0.999, "{}", ito.code_cosine);
    // A one-layer encoder cannot reach it (the paper's amortisation gap).
    assert!(
        sae.amortisation_gap > 0.02,
        "SAE gap {}",
        sae.amortisation_gap
    );
    assert_eq!(r.methods[0].amortisation_gap, Some(sae.amortisation_gap));
    // The frontier: warm starts improve on the encoder and close the gap with iterations, and
    // nothing beats the optimum by more than its tolerance.
    let obj = |kind: PointKind, it: u64| {
        sae.frontier
            .iter()
            .find(|p| p.kind == kind && p.iterations == it)
            .map(|p| p.score.objective)
            .unwrap()
    };
    assert!(obj(PointKind::Warm, 1) <= sae.own.score.objective);
    assert!(obj(PointKind::Warm, 100) <= obj(PointKind::Warm, 10));
    assert!(obj(PointKind::Warm, 1) < obj(PointKind::Cold, 1));
    let opt = sae.optimum.score.objective;
    assert!(sae
        .frontier
        .iter()
        .all(|p| p.score.objective >= opt * (1.0 - 1e-4)));
    assert!(sae
        .frontier
        .windows(2)
        .all(|w| w[0].flops_per_token <= w[1].flops_per_token));
}

#[test]
fn lista_trains_on_activations_and_sits_between_the_sae_and_the_solver() {
    let acts = synthetic_activations(16, 8, 3, 1200, 5);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::Lista { iterations: 5 },
        ],
        seed: 1,
        ..RealConfig::default()
    };
    cfg.train.steps = 1500;
    cfg.train.log_every = 500;
    cfg.train.l1_penalty = 0.1;
    cfg.train.batch_size = Some(128);
    cfg.gap.tokens = 128;
    cfg.gap.iterations = vec![1];
    cfg.preprocess.center = false;
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    exp.run_to_end(|_| {}).unwrap();
    let r = exp.results(None);
    let (sae, lista) = (
        r.methods[0].report.as_ref().unwrap(),
        r.methods[1].report.as_ref().unwrap(),
    );
    assert_eq!(r.methods[1].name, "LISTA (T=5)");
    // Its training loss fell, and its own codes cost T more N x N products per token.
    let log = &r.methods[1].log;
    assert!(log.last().unwrap().train_loss.unwrap() < log[1].train_loss.unwrap());
    assert!(lista.own.flops_per_token > sae.own.flops_per_token + 5.0 * 2.0 * 16.0 * 16.0 - 1.0);
    // Five learned iterations get closer to the optimum of their dictionary than one step.
    assert!(
        lista.amortisation_gap < sae.amortisation_gap,
        "LISTA gap {} against the SAE's {}",
        lista.amortisation_gap,
        sae.amortisation_gap
    );
    assert!(lista.amortisation_gap > -1e-4);
}

#[test]
fn real_configs_refuse_what_cannot_run() {
    let acts = synthetic_activations(8, 4, 2, 64, 1);
    let base = RealConfig {
        latents: 8,
        methods: vec![MethodConfig::Sae { bias: true }],
        ..RealConfig::default()
    };
    let mut base = base;
    base.train.batch_size = Some(16);
    let mut no_lambda = base.clone();
    no_lambda.train.l1_penalty = 0.0;
    let mut omp = base.clone();
    omp.methods = vec![MethodConfig::SparseCoding {
        inference: SolverConfig::Omp { k: None },
    }];
    let mut big_batch = base.clone();
    big_batch.train.batch_size = Some(1000);
    let mut topk = base.clone();
    topk.methods = vec![MethodConfig::TopkSae { k: 9, bias: false }];
    for (cfg, field) in [
        (no_lambda, "gap.l1_penalty"),
        (omp, "methods[0].inference"),
        (big_batch, "train.batch_size"),
        (topk, "methods[0].k"),
    ] {
        let e = RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock)
            .unwrap_err();
        assert!(e.to_string().contains(field), "{e} should name {field}");
    }
}

#[test]
fn the_shipped_sample_loads_with_its_token_texts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/sample");
    let bytes = std::fs::read(dir.join("smollm2-135m-l15.npy")).unwrap();
    let acts = activations::parse(&bytes, None).unwrap();
    assert_eq!((acts.tokens, acts.dim, acts.dtype), (4064, 576, "float16"));
    let text = std::fs::read_to_string(dir.join("smollm2-135m-l15.tokens.json")).unwrap();
    let tokens = activations::parse_tokens(&text, acts.tokens).unwrap();
    assert_eq!(tokens.context_starts.len(), 32);
    assert_eq!(tokens.context_starts[1], 127);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("smollm2-135m-l15.meta.json")).unwrap(),
    )
    .unwrap();
    assert!(meta.is_object());
    // No attention sink left: every row's norm within 10x of the median.
    let mut norms: Vec<f32> = (0..acts.tokens)
        .map(|t| acts.row(t).iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    norms.sort_by(f32::total_cmp);
    assert!(norms[norms.len() - 1] < 10.0 * norms[norms.len() / 2]);
}

/// The activation fuzz target's seeds are valid inputs (fuzzing starts from inside the
/// format): each parses as activations or as token texts.
#[test]
fn the_activation_fuzz_seeds_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/activations");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (pick, rest) = bytes.split_first().unwrap();
        let tensor = [None, Some("acts"), Some("x")][usize::from(*pick % 3)];
        let ok = activations::parse(rest, tensor).is_ok()
            || std::str::from_utf8(rest).is_ok_and(|t| activations::parse_tokens(t, 4).is_ok());
        assert!(ok, "{} is not a valid input", path.display());
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn feature_views_show_where_a_feature_fires_and_its_neighbours() {
    let acts = synthetic_activations(16, 8, 3, 600, 9);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: false },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Fista {
                    steps: 5_000,
                    nonneg: true,
                    tol: Some(1e-4),
                },
            },
        ],
        ..RealConfig::default()
    };
    cfg.train.steps = 200;
    cfg.train.l1_penalty = 0.1;
    cfg.train.batch_size = Some(100);
    cfg.gap.tokens = 64;
    cfg.gap.iterations = vec![2];
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    assert!(exp
        .feature_view(0, 0, 5)
        .unwrap_err()
        .contains("before its training ends"));
    exp.run_to_end(|_| {}).unwrap();
    let ranking = exp.features_by_frequency(0).unwrap();
    assert_eq!(ranking.len(), 16);
    assert!(ranking.windows(2).all(|w| w[0].1 >= w[1].1));
    let j = ranking[0].0;
    let v = exp.feature_view(0, j, 5).unwrap();
    // The SAE's codes of the whole held-out set (120 tokens); sparse coding's of the 64
    // analysed.
    assert_eq!(v.tokens, 120);
    assert_eq!(exp.feature_view(1, 0, 5).unwrap().tokens, 64);
    assert!((v.frequency - ranking[0].1).abs() < 1e-12);
    assert_eq!(v.top.len(), 5);
    assert!(v.top.windows(2).all(|w| w[0].value >= w[1].value));
    assert!((v.top[0].value - v.max).abs() < 1e-12);
    // The top tokens are held-out rows, and their value is the feature's code there.
    let test_rows = exp.test_rows();
    assert!(v.top.iter().all(|t| test_rows.contains(&t.row)));
    assert_eq!(
        v.histogram.iter().map(|&c| c as f64).sum::<f64>(),
        (v.frequency * v.tokens as f64).round()
    );
    assert_eq!(v.nearest.len(), 8);
    assert!(v
        .nearest
        .iter()
        .all(|n| n.latent != j && n.cosine <= 1.0 + 1e-6));
    assert!(v.nearest.windows(2).all(|w| w[0].cosine >= w[1].cosine));
    assert_eq!(v.matched.len(), 1);
    assert_eq!(
        (v.matched[0].method, v.matched[0].name.as_str()),
        (1, "Sparse coding (fista)")
    );
    assert!(exp
        .feature_view(0, 16, 5)
        .unwrap_err()
        .contains("does not exist"));
    assert!(exp.feature_view(2, 0, 5).is_err());
}

/// An experiment shared between workers: each part computes only its methods, and every
/// method's results, rankings and feature views (its matches in the other part's methods
/// included, through `atom` and `matches`) are those of the whole experiment, bit for bit.
#[test]
fn parts_of_an_experiment_compute_what_the_whole_does() {
    let acts = synthetic_activations(16, 8, 3, 600, 4);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::TopkSae { k: 3, bias: true },
            MethodConfig::SaeIto {
                bias: true,
                inference: SolverConfig::Fista {
                    steps: 2_000,
                    nonneg: true,
                    tol: Some(1e-3),
                },
            },
        ],
        ..RealConfig::default()
    };
    cfg.train.steps = 120;
    cfg.train.l1_penalty = 0.1;
    cfg.train.batch_size = Some(100);
    cfg.schedule.resample_every = 40;
    cfg.gap.tokens = 48;
    cfg.gap.iterations = vec![2];
    let backend = || Arc::new(CpuBackend::new(1));
    let shared = Arc::new(acts);
    let mut whole =
        RealExperiment::new_shared(cfg.clone(), Arc::clone(&shared), backend(), default_clock)
            .unwrap();
    whole.run_to_end(|_| {}).unwrap();
    let parts: Vec<RealExperiment> = [vec![0, 2], vec![1]]
        .iter()
        .map(|only| {
            let mut part = RealExperiment::new_part(
                cfg.clone(),
                Arc::clone(&shared),
                backend(),
                default_clock,
                only,
            )
            .unwrap();
            part.run_to_end(|_| {}).unwrap();
            part
        })
        .collect();
    // Results without the wall times, which differ from run to run.
    let strip = |r: &sparse_playground::core::real::RealMethodResult| {
        let mut v = serde_json::to_value(r).unwrap();
        for rec in v["log"].as_array_mut().unwrap() {
            rec.as_object_mut().unwrap().remove("wall_s");
        }
        assert!(r.report.is_some() && r.error.is_none(), "{}", r.name);
        v
    };
    let all = whole.results(None).methods;
    let first = parts[0].results(None).methods;
    let second = parts[1].results(None).methods;
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 1);
    for (whole_m, part_m) in [(0, &first[0]), (2, &first[1]), (1, &second[0])] {
        assert_eq!(strip(&all[whole_m]), strip(part_m), "method {whole_m}");
        assert_eq!(
            whole.features_by_frequency(whole_m),
            parts[usize::from(whole_m == 1)].features_by_frequency(whole_m)
        );
    }
    // A feature of method 1, viewed in its part: its matches in methods 0 and 2 come from the
    // other part, and agree with the whole's view.
    let j = whole.features_by_frequency(1).unwrap()[0].0;
    let view = whole.feature_view(1, j, 5).unwrap();
    let mut part_view = parts[1].feature_view(1, j, 5).unwrap();
    assert!(part_view.matched.is_empty());
    let atom = parts[1].atom(1, j).unwrap();
    part_view.matched = parts[0].matches(&atom, 1);
    assert_eq!(view, part_view);
    // A part answers only for its own methods, and says so.
    assert!(parts[0]
        .feature_view(1, 0, 5)
        .unwrap_err()
        .contains("computed elsewhere"));
    assert!(parts[0]
        .feature_view(3, 0, 5)
        .unwrap_err()
        .contains("no method 3"));
    assert!(parts[0].features_by_frequency(1).is_none());
    // Parts must be increasing indices of the config's methods.
    for only in [vec![], vec![2, 0], vec![0, 0], vec![3]] {
        let err = RealExperiment::new_part(
            cfg.clone(),
            Arc::clone(&shared),
            backend(),
            default_clock,
            &only,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("increasing indices"), "{only:?}: {err}");
    }
}

/// LISTA runs in the synthetic setting with both codes and dictionary unknown (links and configs
/// take it), is refused where it would need a dictionary it cannot learn, and trains: its loss
/// falls, its codes and dictionary are scored like the others', and its inference costs T more
/// N x N products per sample than the SAE's. Its link token round-trips through the parser.
#[test]
fn lista_runs_in_the_synthetic_setting_with_both_unknown() {
    use sparse_playground::core::config::Setting;
    use sparse_playground::core::run::Experiment;
    use sparse_playground::core::share;
    let cfg =
        share::decode("v=2&setting=unknown&methods=sae,lista:t3&seed=1&steps=600&log=300&runs=2")
            .unwrap()
            .config
            .into_inner();
    assert_eq!(cfg.methods[1], MethodConfig::Lista { iterations: 3 });
    let e = share::decode("v=2&setting=known_dictionary&methods=sae,lista:t3").unwrap_err();
    assert!(
        e.to_string()
            .contains("setting with both codes and dictionary unknown"),
        "{e}"
    );
    let mut too_many = cfg.clone();
    too_many.methods[1] = MethodConfig::Lista { iterations: 65 };
    assert!(too_many
        .validate()
        .unwrap_err()
        .to_string()
        .contains("methods[1].iterations"));
    assert_eq!(cfg.setting, Setting::Unknown);
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    while !exp.is_done() {
        exp.step(10_000);
    }
    let r = exp.results();
    let (sae, lista) = (&r.methods[0], &r.methods[1]);
    assert_eq!(lista.name, "LISTA (T=3)");
    for run in &lista.runs {
        let (first, last) = (&run.log[1], run.log.last().unwrap());
        assert_eq!(last.step, 600);
        assert!(
            last.train_loss.unwrap() < first.train_loss.unwrap(),
            "{run:?}"
        );
        assert!(last.code_mcc > 0.2 && last.code_mcc <= 1.0, "{last:?}");
        assert!(
            last.dict_mcc.is_some_and(|m| m > 0.2 && m <= 1.0),
            "{last:?}"
        );
    }
    let (a, b) = (&sae.runs[0].log[1], &lista.runs[0].log[1]);
    assert!(
        b.infer_flops >= a.infer_flops + 3.0 * 2.0 * 16.0 * 16.0 * 1024.0 - 1.0,
        "{} against {}",
        b.infer_flops,
        a.infer_flops
    );
    assert_eq!(
        share::parse_method("lista:t3").unwrap(),
        MethodConfig::Lista { iterations: 3 }
    );
    assert!(share::parse_method("lista")
        .unwrap_err()
        .to_string()
        .contains("lista needs t<int>"));
    assert!(share::parse_method("lista:t2:b").is_err());
}

/// Dead latents are resampled on the schedule (never after three quarters of training), and an
/// over-complete SAE ends with fewer of them than without resampling.
#[test]
fn dead_latents_are_resampled() {
    let acts = synthetic_activations(8, 8, 2, 1200, 4);
    let run = |resample_every: u64| {
        let mut cfg = RealConfig {
            latents: 64,
            methods: vec![
                MethodConfig::Sae { bias: true },
                MethodConfig::Lista { iterations: 2 },
            ],
            seed: 2,
            ..RealConfig::default()
        };
        cfg.train.steps = 400;
        cfg.train.log_every = 400;
        cfg.train.l1_penalty = 10.0;
        cfg.train.batch_size = Some(128);
        cfg.schedule.resample_every = resample_every;
        cfg.schedule.probe_tokens = 512;
        cfg.gap.tokens = 200;
        cfg.gap.iterations = vec![1];
        let mut exp =
            RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
        exp.run_to_end(|_| {}).unwrap();
        exp.results(None)
    };
    let (with, without) = (run(100), run(0));
    for m in 0..2 {
        let steps: Vec<u64> = with.methods[m].resampled.iter().map(|r| r.step).collect();
        assert!(
            !steps.is_empty(),
            "{} resampled nothing (without resampling it ends with {:?} dead)",
            with.methods[m].name,
            without.methods[m].dead_latents
        );
        assert!(steps.iter().all(|s| s % 100 == 0 && *s <= 300), "{steps:?}");
        assert!(without.methods[m].resampled.is_empty());
        let dead =
            |r: &sparse_playground::core::real::RealResults| r.methods[m].dead_latents.unwrap();
        assert!(
            dead(&with) < dead(&without),
            "{}: {} dead with resampling, {} without",
            with.methods[m].name,
            dead(&with),
            dead(&without)
        );
    }
}

/// A learning-rate warm-up scales the rate from 0: the first steps barely move.
#[test]
fn warmups_ramp_the_first_steps() {
    let acts = synthetic_activations(16, 8, 3, 600, 6);
    let first_loss = |lr_warmup: u64| {
        let mut cfg = RealConfig {
            latents: 16,
            methods: vec![MethodConfig::Sae { bias: false }],
            ..RealConfig::default()
        };
        cfg.train.steps = 20;
        cfg.train.log_every = 20;
        cfg.train.lr = 1e-2;
        cfg.train.batch_size = None;
        cfg.schedule.lr_warmup = lr_warmup;
        cfg.gap.tokens = 16;
        cfg.gap.iterations = vec![1];
        let mut exp =
            RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
        exp.run_to_end(|_| {}).unwrap();
        exp.results(None).methods[0].log[1].train_loss.unwrap()
    };
    // After 20 steps at full rate the loss is lower than after 20 steps of a 1,000-step ramp.
    assert!(first_loss(0) < first_loss(1000));
}

/// BatchTopK keeps k latents per token on average at inference, through the threshold it
/// estimated in training (not per batch: a token's codes do not depend on its neighbours), and
/// JumpReLU learns thresholds that make it sparser than the ReLU SAE at the same lambda.
#[test]
fn batch_topk_and_jump_relu_train_on_activations() {
    let acts = synthetic_activations(16, 8, 3, 1200, 5);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::BatchTopkSae { k: 3, bias: true },
            MethodConfig::JumpReluSae {
                bandwidth: 0.05,
                bias: true,
            },
        ],
        seed: 2,
        ..RealConfig::default()
    };
    cfg.train.steps = 800;
    cfg.train.log_every = 400;
    cfg.train.l1_penalty = 0.3;
    cfg.train.batch_size = Some(128);
    cfg.gap.tokens = 200;
    cfg.gap.iterations = vec![1];
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    exp.run_to_end(|_| {}).unwrap();
    let r = exp.results(None);
    assert_eq!(r.methods[1].name, "BatchTopK SAE (k=3)");
    assert_eq!(r.methods[2].name, "JumpReLU SAE");
    let l0 = |i: usize| r.methods[i].l0.unwrap();
    let ev = |i: usize| r.methods[i].explained_variance.unwrap();
    for (i, m) in r.methods.iter().enumerate() {
        eprintln!(
            "{}: L0 {} EV {} gap {:?}",
            m.name,
            l0(i),
            ev(i),
            m.amortisation_gap
        );
    }
    assert!(
        (2.0..=4.5).contains(&l0(1)),
        "BatchTopK at inference: L0 {} for k = 3",
        l0(1)
    );
    assert!(ev(1) > 0.5, "BatchTopK explains {}", ev(1));
    assert!(
        l0(2) < l0(0),
        "JumpReLU L0 {} against the SAE's {}",
        l0(2),
        l0(0)
    );
    assert!(ev(2) > 0.5, "JumpReLU explains {}", ev(2));
    for m in &r.methods {
        let gap = m.amortisation_gap.unwrap();
        assert!(gap > -1e-4 && gap.is_finite(), "{}: gap {gap}", m.name);
    }
    // Both trained: their held-out losses fell.
    for i in [1, 2] {
        let log = &r.methods[i].log;
        assert!(log.last().unwrap().train_loss.unwrap() < log[1].train_loss.unwrap());
    }
}

/// The link and config names of the two, and synthetic experiments saying where they run.
#[test]
fn batch_topk_and_jump_relu_links() {
    use sparse_playground::core::share;
    assert_eq!(
        share::parse_method("batchtopk:k32:b").unwrap(),
        MethodConfig::BatchTopkSae { k: 32, bias: true }
    );
    assert_eq!(
        share::parse_method("jumprelu").unwrap(),
        MethodConfig::JumpReluSae {
            bandwidth: 0.05,
            bias: false
        }
    );
    assert_eq!(
        share::parse_method("jumprelu:e0.02:b").unwrap(),
        MethodConfig::JumpReluSae {
            bandwidth: 0.02,
            bias: true
        }
    );
    for bad in ["batchtopk", "batchtopk:k2:t3", "jumprelu:k3", "jumprelu:e"] {
        assert!(share::parse_method(bad).is_err(), "{bad}");
    }
    let e = share::decode("v=2&setting=unknown&methods=sae,jumprelu&seed=1").unwrap_err();
    assert!(
        e.to_string()
            .contains("JumpReLU SAE runs on real activations"),
        "{e}"
    );
    let acts = synthetic_activations(8, 4, 2, 64, 1);
    let mut cfg = RealConfig {
        latents: 8,
        methods: vec![MethodConfig::JumpReluSae {
            bandwidth: f64::NAN,
            bias: true,
        }],
        ..RealConfig::default()
    };
    let e = RealExperiment::new(
        cfg.clone(),
        &acts,
        Arc::new(CpuBackend::new(1)),
        default_clock,
    )
    .unwrap_err();
    assert!(e.to_string().contains("methods[0].bandwidth"), "{e}");
    cfg.methods = vec![MethodConfig::BatchTopkSae { k: 9, bias: true }];
    let e =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap_err();
    assert!(e.to_string().contains("methods[0].k"), "{e}");
}

/// The frontier's explained variance at matched L0: codes cut token by token to their k largest
/// (in magnitude), equal to the plain explained variance when no token has more than k, and
/// carried by every point of a report with the budget it used.
#[test]
fn explained_variance_at_matched_l0() {
    use sparse_playground::core::real::explained_variance_at_l0;
    // Two unit atoms in 2-D; token 0 uses both (3 and -1), token 1 one.
    let d = Matrix::from_vec(2, 2, vec![1.0, 0.0, 0.0, 1.0]);
    let s = Matrix::from_vec(2, 2, vec![3.0, -1.0, 0.0, 2.0]);
    let x = Matrix::from_vec(2, 2, vec![3.0, -1.0, 0.0, 2.0]);
    assert!((explained_variance_at_l0(&d, &x, &s, 2) - 1.0).abs() < 1e-12);
    // k = 1 drops token 0's -1: a squared residual of 1 against the tokens' squared
    // distances to their mean token (1.5, 0.5).
    let mean = [1.5_f64, 0.5];
    let total: f64 = [[3.0, -1.0], [0.0, 2.0]]
        .iter()
        .map(|t| (t[0] - mean[0]).powi(2) + (t[1] - mean[1]).powi(2))
        .sum();
    let want = 1.0 - 1.0 / total;
    let got = explained_variance_at_l0(&d, &x, &s, 1);
    assert!((got - want).abs() < 1e-9, "{got} against {want}");

    let acts = synthetic_activations(16, 8, 3, 600, 9);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Fista {
                    steps: 500,
                    nonneg: true,
                    tol: Some(1e-3),
                },
            },
        ],
        seed: 3,
        ..RealConfig::default()
    };
    cfg.train.steps = 200;
    cfg.train.log_every = 100;
    cfg.train.l1_penalty = 0.1;
    cfg.train.batch_size = Some(128);
    cfg.gap.tokens = 64;
    cfg.gap.iterations = vec![1, 10];
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    exp.run_to_end(|_| {}).unwrap();
    for m in exp.results(None).methods {
        let g = m.report.unwrap();
        let k = g.matched_l0.expect("a budget");
        // The first codes scored: the SAE's encoder, sparse coding's own inference.
        assert_eq!(k, g.own.score.l0.ceil() as usize, "{}", m.name);
        for p in &g.frontier {
            let ev_k = p.explained_variance_at_l0.expect("every point");
            assert!(
                ev_k <= p.score.explained_variance + 1e-9,
                "{}: {p:?}",
                m.name
            );
            if p.score.l0 <= 1.0 {
                assert!((ev_k - p.score.explained_variance).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn estimates_add_up_what_the_trial_measured() {
    let mut cfg = RealConfig {
        latents: 32,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::SaeIto {
                bias: true,
                inference: SolverConfig::Fista {
                    steps: 5_000,
                    nonneg: true,
                    tol: Some(1e-3),
                },
            },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Adam {
                    steps: 2_000,
                    lr: 1e-2,
                },
            },
        ],
        ..RealConfig::default()
    };
    cfg.train.steps = 1_000;
    cfg.train.log_every = 100;
    cfg.schedule.resample_every = 200;
    cfg.gap.iterations = vec![10, 1, 3, 3];
    cfg.gap.max_iterations = 5_000;
    let each = MethodCosts {
        step: 1e-3,
        evaluation: 0.1,
        resample: 0.05,
    };
    let costs = RealCosts {
        methods: vec![each; 3],
        fista_iteration: 2e-4,
    };
    let scale = TrialScale {
        step: 2.0,
        evaluation: 1.0,
        resample: 1.0,
        iteration: 0.5,
    };
    let e = cfg.estimate_from(&costs, &scale);
    // Per method: 1,000 steps at 2 ms, 11 evaluations (the first, every 100 steps) and 3
    // resamplings (steps 200, 400 and 600; not after three quarters of training).
    let training = 3.0 * (1_000.0 * 2e-3 + 11.0 * 0.1 + 3.0 * 0.05);
    assert!((e.training - training).abs() < 1e-9, "{e:?}");
    // Solver iterations at 0.1 ms each (the trial analysed twice the tokens): the frontier's
    // 1 + 3 + 10 warm (encoders) and cold, the optimum (600 expected, 5,000 at most), the
    // method's own inference (FISTA with a tolerance: 300 expected; Adam: all its 2,000),
    // and one pass over the held-out tokens each.
    let expected = [28 + 600, 28 + 300 + 600, 14 + 2_000 + 600];
    let most = [28 + 5_000, 28 + 5_000 + 5_000, 14 + 2_000 + 5_000];
    let sum = |v: [u64; 3]| v.iter().sum::<u64>() as f64 * 1e-4 + 3.0 * 0.1;
    assert!((e.analysis - sum(expected)).abs() < 1e-9, "{e:?}");
    assert!((e.analysis_max - sum(most)).abs() < 1e-9, "{e:?}");
    assert!((e.seconds - e.training - e.analysis).abs() < 1e-12);
}

#[test]
fn a_trial_estimates_a_run_on_activations_and_refuses_what_the_run_would() {
    // More tokens than a trial takes: it runs on the first ones and scales up.
    let acts = synthetic_activations(16, 8, 3, ESTIMATE_TOKENS + 1_000, 4);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::TopkSae { k: 3, bias: true },
        ],
        ..RealConfig::default()
    };
    cfg.train.steps = 300;
    cfg.train.batch_size = Some(128);
    cfg.gap.tokens = 64;
    let before = cfg.clone();
    let e = estimate_seconds(&cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    assert_eq!(cfg, before);
    assert!(e.training > 0.0 && e.training.is_finite(), "{e:?}");
    assert!(e.analysis > 0.0 && e.analysis_max >= e.analysis, "{e:?}");
    assert!((e.seconds - e.training - e.analysis).abs() < 1e-12);
    // What the run would refuse, the trial refuses with the same words.
    cfg.methods[1] = MethodConfig::TopkSae { k: 17, bias: true };
    let err =
        estimate_seconds(&cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap_err();
    assert!(
        err.contains("methods[1].k") && err.contains("between 1 and the 16 latents"),
        "{err}"
    );
    let run_err = RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock)
        .unwrap_err()
        .to_string();
    assert_eq!(err, run_err);
}

#[test]
fn synthetic_activations_score_code_mcc_along_the_frontier() {
    let data = sparse_playground::core::config::DataConfig {
        num_atoms: 16,
        data_dim: 8,
        sparsity_k: 2,
        num_samples: 2048,
        ..Default::default()
    };
    let (acts, truth) = with_truth_of(&data, 3);
    // Each token (a row) is its true codes through the true dictionary.
    assert_eq!((acts.tokens, acts.dim), (2048, 8));
    for t in [0, 1, 2047] {
        let x = &truth.dictionary * truth.codes.column(t);
        for (d, v) in acts.row(t).iter().enumerate() {
            assert!(
                (v - x[d]).abs() < 1e-5,
                "token {t}, dim {d}: {v} against {}",
                x[d]
            );
        }
    }
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![MethodConfig::TopkSae { k: 2, bias: true }],
        seed: 2,
        ..RealConfig::default()
    };
    cfg.train.steps = 1500;
    cfg.train.lr = 3e-3;
    cfg.train.l1_penalty = 1.0;
    cfg.train.batch_size = Some(256);
    cfg.train.log_every = 500;
    cfg.gap.tokens = 128;
    let cpu = || Arc::new(CpuBackend::new(1));
    // A truth that does not fit the activations is refused.
    let (_, other) = with_truth_of(
        &sparse_playground::core::config::DataConfig {
            num_samples: 100,
            ..data.clone()
        },
        3,
    );
    let exp = RealExperiment::new(cfg.clone(), &acts, cpu(), default_clock).unwrap();
    assert!(exp.with_truth(&other).unwrap_err().contains("does not fit"));
    let mut exp = RealExperiment::new(cfg.clone(), &acts, cpu(), default_clock)
        .unwrap()
        .with_truth(&truth)
        .unwrap();
    exp.run_to_end(|_| {}).unwrap();
    let r = exp.results(None);
    let m = &r.methods[0];
    let g = m.report.as_ref().unwrap();
    eprintln!(
        "code MCC {:?}, dictionary MCC {:?}, optimum's {:?}, cold 1 {:?}",
        m.code_mcc,
        m.dict_mcc,
        g.optimum.code_mcc,
        g.frontier
            .iter()
            .find(|p| p.kind == PointKind::Cold)
            .map(|p| p.code_mcc)
    );
    assert_eq!(m.code_mcc, g.own.code_mcc);
    // Every point is scored, and the learned features are the true ones up to what 1,500
    // steps recover.
    assert!(g
        .frontier
        .iter()
        .all(|p| p.code_mcc.is_some_and(|v| v > 0.0 && v <= 1.0)));
    assert!(m.dict_mcc.unwrap() > 0.85, "{:?}", m.dict_mcc);
    assert!(m.code_mcc.unwrap() > 0.6, "{:?}", m.code_mcc);
    // One ISTA iteration from zero recovers far less than the optimum of the same dictionary.
    let cold1 = g
        .frontier
        .iter()
        .find(|p| p.kind == PointKind::Cold && p.iterations == 1)
        .unwrap();
    assert!(
        cold1.code_mcc.unwrap() < g.optimum.code_mcc.unwrap() - 0.05,
        "{:?} against {:?}",
        cold1.code_mcc,
        g.optimum.code_mcc
    );
    // Without a truth nothing of it is written.
    let mut plain = RealExperiment::new(cfg, &acts, cpu(), default_clock).unwrap();
    plain.run_to_end(|_| {}).unwrap();
    let json = plain.results(None).to_json();
    assert!(!json.contains("code_mcc") && !json.contains("dict_mcc"));
}

#[test]
fn the_work_counts_training_and_the_analysis_and_only_grows() {
    let acts = synthetic_activations(16, 8, 3, 600, 6);
    let mut cfg = RealConfig {
        latents: 16,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Fista {
                    steps: 50,
                    nonneg: true,
                    tol: None,
                },
            },
        ],
        ..RealConfig::default()
    };
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.train.batch_size = Some(64);
    cfg.gap.tokens = 32;
    let mut exp =
        RealExperiment::new(cfg, &acts, Arc::new(CpuBackend::new(1)), default_clock).unwrap();
    let (done, total) = exp.work();
    assert_eq!(done, 0.0);
    assert!(total > 0.0);
    let mut last = 0.0;
    let mut after_training = None;
    while !exp.is_done() {
        exp.advance(7).unwrap();
        let (done, t) = exp.work();
        assert_eq!(t, total, "the total stays put");
        assert!(done >= last && done <= total, "{last} -> {done} of {total}");
        last = done;
        let (steps, all_steps) = exp.progress();
        if steps == all_steps && after_training.is_none() {
            after_training = Some(done);
        }
    }
    assert_eq!(exp.work().0, total);
    // Training over, the analysis still to do: the bar is not full.
    let f = after_training.unwrap() / total;
    assert!(f > 0.0 && f < 1.0, "{f}");
}
