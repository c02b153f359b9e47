//! The engine and its wasm-bindgen boundary in a real browser (headless Chromium through
//! `wasm-pack test --headless --chrome`): the data are bit-identical to native, a run advances
//! through the handle and metrics come back as typed arrays, and bad input is a thrown error.
#![cfg(target_arch = "wasm32")]

use js_sys::{Float32Array, Float64Array, Int32Array, Reflect};
use sparse_playground::core::config::{ExperimentConfig, MethodConfig, Preset, SolverConfig};
use sparse_playground::wasm_api::{self, Playground};
use sparse_playground::{CpuBackend, Dataset, Experiment};
use std::sync::Arc;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Must equal `PAPER_CHECKSUM` in tests/data.rs (the native side).
const PAPER_CHECKSUM: u64 = 0x892b_83e1_3c16_5a75;

fn js_config(cfg: &ExperimentConfig) -> JsValue {
    serde_wasm_bindgen::to_value(cfg).unwrap()
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap()
}

fn small_unknown() -> ExperimentConfig {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 50,
                nonneg: true,
                tol: None,
            },
        },
    ];
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.runs = 2;
    cfg
}

#[wasm_bindgen_test]
fn paper_data_is_bit_identical_to_native() {
    let cfg = Preset::UnknownZD.config();
    let data = Dataset::generate(&cfg.data, cfg.seed);
    assert_eq!(
        data.checksum(),
        PAPER_CHECKSUM,
        "got {:016x}",
        data.checksum()
    );
    // The handle reports the same checksum the page shows.
    let pg = Playground::new(js_config(&cfg)).unwrap();
    assert_eq!(pg.data_checksum(), format!("{PAPER_CHECKSUM:016x}"));
}

#[wasm_bindgen_test]
fn the_engine_step_api_runs() {
    let cfg = small_unknown();
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    // Sparse coding's FISTA evaluations count as work (50 iterations each), so a uniform budget
    // takes the stacks to different steps: stop both at their evaluation at step 20.
    let stops = exp.next_evaluation_steps();
    assert!(stops.iter().all(|&s| s == 20), "{stops:?}");
    let progress = exp.step_until(1_000, &stops);
    assert!(progress.iter().all(|p| p.step == 20 && p.new_records == 2));
    while !exp.is_done() {
        exp.step(20);
    }
    for m in exp.results().methods {
        let last = m.runs[0].log.last().unwrap();
        assert_eq!(last.step, 40);
        assert!(last.code_mcc > 0.0 && last.code_mcc <= 1.0);
    }
}

#[wasm_bindgen_test]
fn the_handle_advances_and_hands_out_records_once() {
    let cfg = small_unknown();
    let mut pg = Playground::new(js_config(&cfg)).unwrap();
    let fields = wasm_api::record_fields().length() as usize;
    assert_eq!(pg.steps_total(), 40.0 * 4.0);
    // The work: training steps of the 4 runs and sparse coding's 3 FISTA evaluations of 50
    // iterations for each of its 2 runs.
    assert_eq!(pg.work_total(), 40.0 * 4.0 + 2.0 * 3.0 * 50.0);
    pg.begin_step();
    while !pg.step_for(50.0) {}
    assert!(!pg.is_done());
    let first = pg.take_records().to_vec();
    // 2 methods x 2 seeds, evaluated at steps 1 and 20.
    assert_eq!(first.len(), fields * 4 * 2);
    assert_eq!(pg.take_records().length(), 0, "records are handed out once");
    while !pg.run_for(20.0) {}
    assert!(pg.is_done());
    assert_eq!(pg.steps_done(), pg.steps_total());
    let rest = pg.take_records().to_vec();
    assert_eq!(rest.len(), fields * 4);
    for row in rest.chunks(fields) {
        assert_eq!(row[2], 40.0, "step");
        assert!(row[3] > 0.0 && row[3] <= 1.0, "code MCC {}", row[3]);
        assert!(row[4] > 0.0 && row[4] <= 1.0, "dict MCC {}", row[4]);
        assert!(row[5].is_finite() && row[5] >= 0.0, "test MSE {}", row[5]);
        assert!(row[12] > 0.0, "wall time comes from performance.now()");
    }
    // The results file parses back and matches the records.
    let results = sparse_playground::Results::from_json(&pg.results_json()).unwrap();
    assert_eq!(results.methods.len(), 2);
    assert_eq!(results.methods[0].runs.len(), 2);
    let last = results.methods[1].runs[1].log.last().unwrap();
    let row = rest
        .chunks(fields)
        .find(|r| r[0] == 1.0 && r[1] == 1.0)
        .unwrap();
    assert_eq!(last.code_mcc, row[3]);
}

#[wasm_bindgen_test]
fn snapshots_expose_matched_dictionaries_and_codes() {
    let mut pg = Playground::new(js_config(&small_unknown())).unwrap();
    assert!(
        pg.snapshot(0, 0, 5).is_null(),
        "nothing before the first evaluation"
    );
    pg.step(40);
    let snap = pg.snapshot(0, 0, 5);
    assert_eq!(get(&snap, "atoms").as_f64(), Some(16.0));
    assert_eq!(get(&snap, "latents").as_f64(), Some(16.0));
    assert_eq!(get(&snap, "samples").as_f64(), Some(5.0));
    let dict = Float32Array::from(get(&snap, "dictionary")).to_vec();
    assert_eq!(dict.len(), 8 * 16);
    let gram = Float32Array::from(get(&snap, "gram")).to_vec();
    for i in 0..16 {
        assert!((gram[i * 16 + i] - 1.0).abs() < 1e-4, "unit-norm atoms");
    }
    let matched = Int32Array::from(get(&snap, "dictMatch")).to_vec();
    let mut sorted = matched.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..16).collect::<Vec<i32>>(), "a permutation");
    let corr = Float64Array::from(get(&snap, "dictCorr")).to_vec();
    assert!(corr.iter().all(|c| (0.0..=1.0 + 1e-9).contains(c)));
    assert_eq!(Float32Array::from(get(&snap, "codes")).length(), 16 * 5);
    assert_eq!(Float32Array::from(get(&snap, "trueCodes")).length(), 16 * 5);
    assert_eq!(pg.true_dictionary().length(), 8 * 16);
    assert!(pg.snapshot(7, 0, 5).is_null(), "no such method");
}

#[wasm_bindgen_test]
fn bad_input_throws_instead_of_panicking() {
    let mut cfg = small_unknown();
    cfg.data.sparsity_k = 99;
    assert!(Playground::new(js_config(&cfg)).is_err());
    assert!(Playground::new(JsValue::from_str("not a config")).is_err());
    assert!(wasm_api::decode_link("v=1&lr=NaN").is_err());
    assert!(wasm_api::normalize_results("{").is_err());
    assert!(wasm_api::preset_config("nope").is_err());
}

#[wasm_bindgen_test]
fn links_round_trip_through_the_boundary() {
    let cfg = small_unknown();
    let extra = serde_wasm_bindgen::to_value(&vec![("run", "1")]).unwrap();
    let link = wasm_api::encode_link(js_config(&cfg), extra).unwrap();
    let decoded = wasm_api::decode_link(&link).unwrap();
    let back: ExperimentConfig = serde_wasm_bindgen::from_value(get(&decoded, "config")).unwrap();
    assert_eq!(back, cfg);
    let validated = wasm_api::validate_config(js_config(&cfg), None).unwrap();
    let back: ExperimentConfig = serde_wasm_bindgen::from_value(validated).unwrap();
    assert_eq!(back, cfg);
}

#[wasm_bindgen_test]
fn solver_defaults_are_the_engines() {
    for kind in ["adam", "fista", "omp"] {
        let js = wasm_api::solver_defaults(kind).unwrap();
        let back: SolverConfig = serde_wasm_bindgen::from_value(js).unwrap();
        let want: SolverConfig =
            serde_json::from_value(serde_json::json!({ "solver": kind })).unwrap();
        assert_eq!(back, want);
    }
    let adam = wasm_api::solver_defaults("adam").unwrap();
    assert_eq!(get(&adam, "steps").as_f64(), Some(10_000.0));
    assert!(wasm_api::solver_defaults("lbfgs").is_err());
}

#[wasm_bindgen_test]
fn configs_cross_the_boundary_and_bad_shapes_or_sizes_are_refused() {
    // Every preset crosses as a plain object and comes back unchanged (numbers stay integers).
    for p in Preset::ALL {
        let cfg = p.config();
        let back: ExperimentConfig = serde_wasm_bindgen::from_value(
            wasm_api::validate_config(js_config(&cfg), None).unwrap(),
        )
        .unwrap();
        assert_eq!(back, cfg);
    }
    // An array is not a config (serde would read it as every default).
    assert!(wasm_api::validate_config(js_sys::Array::new().into(), None).is_err());
    // Too large for the page's memory budget: refused with what it needs.
    let mut big = Preset::UnknownZD.config();
    big.data.num_samples = 65_536;
    big.methods = vec![
        MethodConfig::Mlp {
            hidden: vec![256],
            bias: false
        };
        16
    ];
    big.runs = 2;
    assert!(
        big.validate().is_ok(),
        "valid for the engine, too big for the page"
    );
    assert!(wasm_api::validate_config(js_config(&big), None).is_err());
    assert!(Playground::new(js_config(&big)).is_err());
    let estimate = wasm_api::memory_estimate(js_config(&big), None).unwrap();
    assert!(get(&estimate, "bytes").as_f64().unwrap() > (1u64 << 30) as f64);
    assert!(get(&estimate, "text").as_string().unwrap().ends_with("GiB"));
    // Every worker of the pool generates the data: a data-heavy experiment fits one worker
    // and not four.
    let mut heavy = sparse_playground::core::config::Preset::UnknownZD.config();
    heavy.data.num_atoms = 32;
    heavy.data.data_dim = 256;
    heavy.data.num_samples = 32_768;
    heavy.methods = vec![sparse_playground::core::config::MethodConfig::Sae { bias: false }];
    heavy.runs = 4;
    assert!(wasm_api::validate_config(js_config(&heavy), Some(1)).is_ok());
    let err = format!(
        "{:?}",
        JsValue::from(wasm_api::validate_config(js_config(&heavy), Some(4)).unwrap_err())
    );
    assert!(err.contains("a copy in each of 4 workers"), "{err}");
    let one = wasm_api::memory_estimate(js_config(&heavy), Some(1)).unwrap();
    let four = wasm_api::memory_estimate(js_config(&heavy), Some(4)).unwrap();
    assert!(get(&four, "bytes").as_f64().unwrap() > 2.0 * get(&one, "bytes").as_f64().unwrap());
}

#[wasm_bindgen_test]
fn a_sweep_is_budgeted_for_the_workers_it_will_really_use() {
    use sparse_playground::core::sweep::SweepConfig;
    use sparse_playground::wasm_api::sweep::validate_sweep;
    let js = |s: &SweepConfig| serde_wasm_bindgen::to_value(s).unwrap();
    // One heavy unit: two SAEs on much data (each within the per-run limit), one cell and one
    // seed.
    let mut one = SweepConfig::default();
    one.axes.clear();
    one.seeds = 1;
    one.base.data.num_atoms = 32;
    one.base.data.data_dim = 256;
    one.base.data.num_samples = 65_536;
    one.base.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::Sae { bias: true },
    ];
    let checked = validate_sweep(js(&one), 8).expect("one unit uses one worker, whatever the pool");
    let unit = get(&checked, "unitBytes").as_f64().unwrap();
    let budget = (1u64 << 30) as f64;
    assert!(
        unit > budget / 4.0 && unit < budget,
        "the case needs a unit between a quarter of the budget and the budget: {unit}"
    );
    assert_eq!(get(&checked, "units").as_f64(), Some(1.0));
    // Four seeds: four units, computed at once by a pool of four or more workers (over the
    // budget), one after another by one worker (within it).
    let mut four = one.clone();
    four.seeds = 4;
    let err = format!(
        "{:?}",
        JsValue::from(validate_sweep(js(&four), 8).unwrap_err())
    );
    assert!(err.contains("memory: 4 unit(s) at once"), "{err}");
    assert!(validate_sweep(js(&four), 1).is_ok());
}

#[wasm_bindgen_test]
fn activations_arrive_in_pieces_and_a_short_or_long_file_is_refused() {
    use sparse_playground::wasm_api::real::RealSourceBuilder;
    // 20 tokens x 4 dimensions as a float32 .npy.
    let m = sparse_playground::core::Matrix::from_fn(4, 20, |r, c| (r * 20 + c) as f32 * 0.25);
    let mut bytes = Vec::new();
    sparse_playground::formats::npy::write_columns(&mut bytes, &m).unwrap();
    let mut b = RealSourceBuilder::new(bytes.len() as f64).unwrap();
    for chunk in bytes.chunks(7) {
        b.push(chunk).unwrap();
    }
    let info = b.finish(None).unwrap().describe().unwrap();
    assert_eq!(get(&info, "tokens").as_f64(), Some(20.0));
    assert_eq!(get(&info, "dim").as_f64(), Some(4.0));
    assert_eq!(get(&info, "dtype").as_string().as_deref(), Some("float32"));
    // A file that ends early, or goes on past its size, or could never fit, is an error.
    let mut short = RealSourceBuilder::new(bytes.len() as f64).unwrap();
    short.push(&bytes[..10]).unwrap();
    assert!(short.finish(None).is_err());
    let mut long = RealSourceBuilder::new(5.0).unwrap();
    assert!(long.push(&bytes[..6]).is_err());
    assert!(RealSourceBuilder::new(4e9).is_err());
    assert!(RealSourceBuilder::new(f64::NAN).is_err());
}
