//! The command-line tool end to end: runs, the results schema, generate + eval, errors.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sparse-playground"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sparse-playground-test-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn run_preset_writes_the_results_schema() {
    let dir = temp_dir("run");
    let out = dir.join("results.json");
    let status = bin()
        .args([
            "run",
            "--preset",
            "known-z",
            "--backend",
            "cpu",
            "--steps",
            "60",
            "--runs",
            "2",
            "--log-every",
            "30",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("MLP (h=256)") && stdout.contains("code MCC"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["config"]["setting"], "known_codes");
    assert_eq!(json["config"]["train"]["steps"], 60);
    let methods = json["methods"].as_array().unwrap();
    // The paper's known-codes experiment: SAE and MLPs of widths 32, 256 and 1024.
    assert_eq!(methods.len(), 4);
    assert_eq!(json["backend"]["kind"], "cpu");
    for m in methods {
        assert!(m["name"].is_string());
        let runs = m["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["seed"], 20_240_625);
        assert_eq!(runs[1]["seed"], 20_240_626);
        let log = runs[0]["log"].as_array().unwrap();
        assert_eq!(log.len(), 3);
        for key in [
            "step",
            "code_mcc",
            "dict_mcc",
            "test_mse",
            "l0",
            "train_flops",
            "infer_flops",
            "wall_s",
        ] {
            assert!(log[2].get(key).is_some(), "log record lacks {key}");
        }
        let fin = &m["final"];
        assert!(fin["code_mcc"]["mean"].is_number() && fin["code_mcc"]["std"].is_number());
        assert!(fin.get("dict_mcc").is_some());
    }
}

#[test]
fn run_config_file_with_unknown_setting() {
    let dir = temp_dir("config");
    let cfg = dir.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"setting":"unknown","data":{"num_atoms":12,"data_dim":6,"sparsity_k":2,"num_samples":200},
            "methods":[{"kind":"topk_sae","k":2},{"kind":"sae_ito","inference":{"solver":"fista","steps":50}},
                       {"kind":"sparse_coding","inference":{"solver":"omp"}}],
            "train":{"steps":40,"log_every":20},"runs":1}"#,
    )
    .unwrap();
    let out = dir.join("r.json");
    let o = bin()
        .args(["run", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = sparse_playground::Results::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names: Vec<&str> = r.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["TopK SAE (k=2)", "SAE + ITO (fista)", "Sparse coding (omp)"]
    );
    for m in &r.methods {
        let last = m.runs[0].log.last().unwrap();
        assert_eq!(last.step, 40);
        assert!(last.dict_mcc.unwrap() > 0.0 && last.test_mse.unwrap().is_finite());
    }
}

#[test]
fn bad_configs_fail_with_a_message_not_a_panic() {
    let dir = temp_dir("bad");
    for (body, needle) in [
        (r#"{"data":{"sparsity_k":40}}"#, "data.sparsity_k"),
        (r#"{"train":{"lr":-1}}"#, "train.lr"),
        (r#"{"methods":[{"kind":"gpt"}]}"#, "unknown variant `gpt`"),
        ("{", "could not read the config"),
    ] {
        let cfg = dir.join("bad.json");
        std::fs::write(&cfg, body).unwrap();
        let o = bin()
            .args(["run", "--quiet", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(needle), "{body}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = bin()
        .args(["run", "--preset", "unknown-z"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown preset"));
}

#[test]
fn generate_then_eval_scores_ground_truth_perfectly() {
    let dir = temp_dir("eval");
    let o = bin()
        .args(["generate", "--preset", "unknown-zd", "--out-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("892b83e13c165a75"));
    let o = bin()
        .arg("eval")
        .arg("--true-codes")
        .arg(dir.join("test_codes.npy"))
        .arg("--codes")
        .arg(dir.join("test_codes.npy"))
        .arg("--true-dict")
        .arg(dir.join("dictionary.npy"))
        .arg("--dict")
        .arg(dir.join("dictionary.npy"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((v["code_mcc"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert!((v["dict_mcc"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    // K = 3 active per sample; a few half-normal magnitudes fall below the 1e-3 L0 threshold.
    let l0 = v["l0"].as_f64().unwrap();
    assert!(l0 > 2.98 && l0 <= 3.0, "{l0}");
    assert_eq!(v["samples"], 1024);
    // Mismatched files: a clear error.
    let o = bin()
        .arg("eval")
        .arg("--true-codes")
        .arg(dir.join("test_codes.npy"))
        .arg("--codes")
        .arg(dir.join("dictionary.npy"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("samples"));
}

#[test]
fn an_unwritable_out_path_fails_before_the_run() {
    // The preset's full length would take minutes: the refusal must come first.
    let started = std::time::Instant::now();
    let out = bin()
        .args([
            "run",
            "--preset",
            "unknown-zd",
            "--quiet",
            "--out",
            "/nonexistent-dir/results.json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--out /nonexistent-dir/results.json"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("data checksum"),
        "the run never started: {stderr}"
    );
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn experiments_over_the_memory_budget_are_refused_with_what_they_need() {
    let out = bin()
        .args([
            "run",
            "--preset",
            "unknown-zd",
            "--memory-budget",
            "1MiB",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("memory: this experiment needs about")
            && stderr.contains("over the memory budget of 1.0 MiB")
            && stderr.contains("--memory-budget"),
        "{stderr}"
    );
    let bad = bin()
        .args(["run", "--preset", "known-z", "--memory-budget", "lots"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a size"));
}

#[test]
fn a_config_file_that_is_not_an_object_is_refused() {
    let dir = temp_dir("not-object");
    let path = dir.join("config.json");
    std::fs::write(&path, "[]").unwrap();
    let out = bin()
        .args(["run", "--quiet", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must be a JSON object"), "{stderr}");
}

#[test]
fn eval_refuses_degenerate_and_lying_arrays() {
    let dir = temp_dir("eval-hostile");
    let write = |name: &str, dict: &str, data: &[u8]| {
        let mut header = dict.to_string();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let good = write(
        "good.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
        &[0u8; 16],
    );
    let cases = [
        (
            write(
                "wrap.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905, 4), }",
                &[0u8; 16],
            ),
            "more values than this machine can address",
        ),
        (
            write(
                "zero.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }",
                &[],
            ),
            "empty",
        ),
    ];
    for (bad, expect) in cases {
        let out = bin()
            .args(["eval", "--true-codes"])
            .arg(&good)
            .arg("--codes")
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "an error exit, not a crash");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{stderr}");
    }
}

/// `sweep --shard i/n` on two "machines" and `merge` give the file of the whole sweep; the
/// file records where it ran; a bad backend or shard is refused before any work.
#[test]
fn sweep_shards_merged_by_the_cli_equal_the_whole_sweep() {
    let dir = temp_dir("sweep-shards");
    let config = dir.join("sweep.json");
    let out = bin()
        .args(["sweep-config", "--preset", "phase"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut sweep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    sweep["axes"] = serde_json::json!([
        { "param": "delta", "values": [0.3, 0.6, 0.9] },
        { "param": "rho", "values": [0.1, 0.5] }
    ]);
    std::fs::write(&config, sweep.to_string()).unwrap();
    let run = |extra: &[&str], file: &str| {
        let status = bin()
            .args(["sweep", "--quiet", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(dir.join(file))
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success(), "sweep {extra:?}");
    };
    run(&["--backend", "cpu"], "whole.json");
    run(&["--shard", "0/2", "--threads", "1"], "a.json");
    run(&["--shard", "1/2"], "b.json");
    let status = bin()
        .arg("merge")
        .arg(dir.join("a.json"))
        .arg(dir.join("b.json"))
        .arg("--out")
        .arg(dir.join("merged.json"))
        .status()
        .unwrap();
    assert!(status.success());
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    // Wall-clock seconds are the only thing allowed to differ.
    let without_wall = |mut v: serde_json::Value| {
        for u in v["units"].as_array_mut().unwrap() {
            for m in u["methods"].as_array_mut().unwrap() {
                m["record"].as_object_mut().unwrap().remove("wall_s");
            }
        }
        v
    };
    let (whole, merged) = (
        without_wall(read("whole.json")),
        without_wall(read("merged.json")),
    );
    assert_eq!(whole["units"].as_array().unwrap().len(), 6);
    assert_eq!(merged["units"], whole["units"]);
    assert_eq!(merged["sweep"], whole["sweep"]);
    assert_eq!(whole["backend"]["kind"], "cpu");
    for (args, says) in [
        (vec!["--backend", "tpu"], "unknown backend"),
        (vec!["--shard", "2/2"], "shard"),
    ] {
        let out = bin()
            .args(["sweep", "--quiet", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(dir.join("bad.json"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn synthetic_activations_run_with_their_truth_scored() {
    let dir = temp_dir("synthetic");
    let out = dir.join("syn.json");
    let o = bin()
        .args([
            "run",
            "--synthetic",
            "16,8,2,512",
            "--latents",
            "16",
            "--steps",
            "60",
            "--gap-tokens",
            "32",
            "--methods",
            "sae:b,lista:t2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // The estimate before the run, then the source named with its data model.
    assert!(err.contains("estimated: about"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        r["source"]["name"],
        "synthetic: 16 atoms, 8 dims, K = 2, 512 tokens, seed 0"
    );
    for m in r["methods"].as_array().unwrap() {
        for key in ["code_mcc", "dict_mcc"] {
            let v = m[key].as_f64().unwrap_or(f64::NAN);
            assert!(v > 0.0 && v <= 1.0, "{key} {v} in {m}");
        }
    }
    for (spec, says) in [
        ("16,8", "expected ATOMS,DIM,K,TOKENS"),
        ("16,8,20,512", "K must be between 1 and N = 16"),
    ] {
        let o = bin()
            .args(["run", "--quiet", "--synthetic", spec])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{spec}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
