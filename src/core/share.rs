//! Share links: a whole experiment as a short, readable `key=value&...` string for the URL hash.
//!
//! The schema is versioned (`v=2`; `v=1` links keep their meaning) and always carries the seed,
//! so a link reproduces the same data and initialisation. Everything else is written only where
//! it differs from a preset of the link's setting: the paper-exact one, or with `p=quick` the
//! quick one, whichever gives the shorter link; a preset link is just
//! `v=2&p=quick&setting=...&seed=...`.
//!
//! Keys: `setting` (known_codes | known_dictionary | unknown), `p` (paper | quick), data
//! `N M K n noise signed skew`, training `steps lr l1 batch log` and `evals` (the evaluation
//! steps, dash-separated, or `every` for every `log` steps), `l0` (threshold), `seed`, `runs`,
//! and `methods`: a
//! comma-separated list, each method a kind followed by `:`-separated options:
//!
//! | kind | options |
//! |---|---|
//! | `sae` | `b` (bias) |
//! | `topk` | `k<int>` (required), `b` |
//! | `mlp` | `h<int>-<int>-...` (hidden widths, required), `b` |
//! | `sc` | solver |
//! | `ito` | `b`, solver |
//!
//! and a solver is `adam` (`s<steps>`, `lr<rate>`), `fista` (`s<steps>`, `signed`) or `omp`
//! (`k<int>`), e.g. `methods=sae,ito:fista:s200,mlp:h32-256,sc`.
//!
//! Keys this module does not know are returned to the caller (the page uses `run` and
//! `backend`), never an error. A malformed value, a repeated key or a config that fails
//! validation is an error that names the key.

use super::config::{
    default_adam_lr, default_adam_steps, default_fista_steps, limits, CheckedConfig, ConfigError,
    ExperimentConfig, MethodConfig, MethodKind, Preset, Setting, SolverConfig,
    DEFAULT_JUMP_BANDWIDTH,
};
use super::sweep::{Axis, Param, Success, SweepConfig, SweepKind, SweepPreset, MAX_AXIS_VALUES};
use std::fmt::Write as _;

/// Longest link accepted: far above anything the encoder writes (see the tests), low enough that
/// a hostile link cannot make the page parse megabytes.
pub const MAX_LINK_CHARS: usize = 8192;

/// A parsed link: the validated config plus the keys left for the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedState {
    pub config: CheckedConfig,
    /// Keys this schema does not define, in link order (e.g. `run=1`, `backend=cpu`).
    pub extra: Vec<(String, String)>,
}

/// Why a link was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ShareError {
    #[error("the link is {0} characters long; at most {MAX_LINK_CHARS} are accepted")]
    TooLong(usize),
    #[error("the link has no version (`v=1`)")]
    MissingVersion,
    #[error("the link has version `{0}`; this playground reads versions 1 and {LINK_VERSION}")]
    UnsupportedVersion(String),
    #[error("`{key}` appears more than once in the link")]
    Repeated { key: String },
    #[error("`{key}={value}`: {message}")]
    BadValue {
        key: String,
        value: String,
        message: String,
    },
    #[error("the link describes an invalid experiment: {0}")]
    Invalid(#[from] ConfigError),
}

fn bad(key: &str, value: &str, message: impl Into<String>) -> ShareError {
    ShareError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        message: message.into(),
    }
}

/// The version links are written in. Version 1 links (defaults from the presets as they were
/// then) still read exactly as they did.
pub const LINK_VERSION: u32 = 2;

/// Which preset a version 2 link's defaults come from (`p=quick`, or the paper-exact one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Paper,
    Quick,
}

/// The config a link's omitted keys come from.
fn base_for(version: u32, base: Base, setting: Setting) -> ExperimentConfig {
    if version == 1 {
        return v1_base(setting);
    }
    match base {
        Base::Paper => Preset::paper(setting).config(),
        Base::Quick => Preset::quick(setting).config(),
    }
}

/// The presets version 1 links were written against (the paper's settings at 20,000 steps,
/// five seeds, the paper's inference), kept so that those links keep their meaning.
fn v1_base(setting: Setting) -> ExperimentConfig {
    let mlp = |h: usize, bias: bool| MethodConfig::Mlp {
        hidden: vec![h],
        bias,
    };
    let (methods, log_every) = match setting {
        Setting::KnownCodes => (
            vec![
                MethodConfig::Sae { bias: true },
                mlp(32, true),
                mlp(256, true),
            ],
            500,
        ),
        Setting::KnownDictionary => (
            vec![
                MethodConfig::Sae { bias: false },
                mlp(32, false),
                mlp(256, false),
                MethodConfig::SparseCoding {
                    inference: SolverConfig::default(),
                },
            ],
            500,
        ),
        Setting::Unknown => (
            vec![
                MethodConfig::Sae { bias: false },
                MethodConfig::SaeIto {
                    bias: false,
                    inference: SolverConfig::default(),
                },
                mlp(32, false),
                mlp(256, false),
                MethodConfig::SparseCoding {
                    inference: SolverConfig::default(),
                },
            ],
            1000,
        ),
    };
    ExperimentConfig {
        setting,
        methods,
        train: super::config::TrainConfig {
            steps: 20_000,
            lr: 1e-3,
            log_every,
            eval_steps: Vec::new(),
            ..super::config::TrainConfig::default()
        },
        runs: 5,
        seed: 20_240_926,
        ..ExperimentConfig::default()
    }
}

fn setting_name(s: Setting) -> &'static str {
    match s {
        Setting::KnownCodes => "known_codes",
        Setting::KnownDictionary => "known_dictionary",
        Setting::Unknown => "unknown",
    }
}

fn solver_token(solver: &SolverConfig, out: &mut String) {
    if *solver == SolverConfig::default() {
        return;
    }
    match solver {
        SolverConfig::Adam { steps, lr } => {
            out.push_str(":adam");
            if *steps != default_adam_steps() {
                let _ = write!(out, ":s{steps}");
            }
            if *lr != default_adam_lr() {
                let _ = write!(out, ":lr{lr}");
            }
        }
        SolverConfig::Fista { steps, nonneg, tol } => {
            out.push_str(":fista");
            if *steps != default_fista_steps() {
                let _ = write!(out, ":s{steps}");
            }
            if let Some(tol) = tol {
                let _ = write!(out, ":tol{tol}");
            }
            if !nonneg {
                out.push_str(":signed");
            }
        }
        SolverConfig::Omp { k } => {
            out.push_str(":omp");
            if let Some(k) = k {
                let _ = write!(out, ":k{k}");
            }
        }
        SolverConfig::AdamTopk {
            steps,
            lr,
            k,
            inside,
        } => {
            out.push_str(":adam");
            if *steps != default_adam_steps() {
                let _ = write!(out, ":s{steps}");
            }
            if *lr != default_adam_lr() {
                let _ = write!(out, ":lr{lr}");
            }
            let _ = write!(out, ":topk{k}");
            if *inside {
                out.push_str(":inside");
            }
        }
    }
}

fn method_token(m: &MethodConfig) -> String {
    let mut out = String::new();
    let bias = |out: &mut String, b: bool| {
        if b {
            out.push_str(":b");
        }
    };
    match m {
        MethodConfig::Sae { bias: b } => {
            out.push_str("sae");
            bias(&mut out, *b);
        }
        MethodConfig::TopkSae { k, bias: b } => {
            let _ = write!(out, "topk:k{k}");
            bias(&mut out, *b);
        }
        MethodConfig::Mlp { hidden, bias: b } => {
            let widths: Vec<String> = hidden.iter().map(usize::to_string).collect();
            let _ = write!(out, "mlp:h{}", widths.join("-"));
            bias(&mut out, *b);
        }
        MethodConfig::SparseCoding { inference } => {
            out.push_str("sc");
            solver_token(inference, &mut out);
        }
        MethodConfig::SaeIto { bias: b, inference } => {
            out.push_str("ito");
            bias(&mut out, *b);
            solver_token(inference, &mut out);
        }
        MethodConfig::Lista { iterations } => {
            let _ = write!(out, "lista:t{iterations}");
        }
        MethodConfig::BatchTopkSae { k, bias: b } => {
            let _ = write!(out, "batchtopk:k{k}");
            bias(&mut out, *b);
        }
        MethodConfig::JumpReluSae { bandwidth, bias: b } => {
            out.push_str("jumprelu");
            if *bandwidth != DEFAULT_JUMP_BANDWIDTH {
                let _ = write!(out, ":e{bandwidth}");
            }
            bias(&mut out, *b);
        }
    }
    out
}

/// The link for a config (the part after `#`). Extra keys are appended as given. Defaults are
/// omitted against the paper-exact or the quick preset of the config's setting, whichever
/// leaves the shorter link (`p=quick` names the quick one).
pub fn encode(config: &ExperimentConfig, extra: &[(&str, &str)]) -> String {
    let paper = encode_from(config, extra, Base::Paper);
    let quick = encode_from(config, extra, Base::Quick);
    if quick.len() < paper.len() {
        quick
    } else {
        paper
    }
}

fn join_steps(steps: &[u64]) -> String {
    if steps.is_empty() {
        "every".to_string()
    } else {
        steps
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("-")
    }
}

fn encode_from(config: &ExperimentConfig, extra: &[(&str, &str)], which: Base) -> String {
    let base = base_for(LINK_VERSION, which, config.setting);
    let mut parts: Vec<String> = vec![format!("v={LINK_VERSION}")];
    if which == Base::Quick {
        parts.push("p=quick".to_string());
    }
    parts.push(format!("setting={}", setting_name(config.setting)));
    parts.extend(encode_against(config, &base));
    // The seed is always written: a link must not depend on a default that might change.
    parts.push(format!("seed={}", config.seed));
    for (k, v) in extra {
        parts.push(format!("{}={}", percent_encode(k), percent_encode(v)));
    }
    parts.join("&")
}

/// Escape everything outside the unreserved set and the few separators the schema uses.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:,".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn percent_decode(key: &str, s: &str) -> Result<String, ShareError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad(key, s, "broken %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad(key, s, "not valid UTF-8"))
}

fn parse_int<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ShareError> {
    value
        .parse::<T>()
        .map_err(|_| bad(key, value, "expected a whole number"))
}

fn parse_float(key: &str, value: &str) -> Result<f64, ShareError> {
    let v: f64 = value
        .parse()
        .map_err(|_| bad(key, value, "expected a number"))?;
    if !v.is_finite() {
        return Err(bad(key, value, "expected a finite number"));
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ShareError> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(bad(key, value, "expected 0 or 1")),
    }
}

/// Parse one method token, e.g. `ito:b:fista:s200:signed` (the link's `methods` syntax, which
/// the command line's `--methods` takes too).
pub fn parse_method(token: &str) -> Result<MethodConfig, ShareError> {
    let key = "methods";
    let mut parts = token.split(':');
    let kind = parts.next().unwrap_or_default();
    let mut bias = false;
    let mut k: Option<usize> = None;
    let mut hidden: Option<Vec<usize>> = None;
    let mut solver: Option<&str> = None;
    let mut steps: Option<u64> = None;
    let mut lr: Option<f64> = None;
    let mut signed = false;
    let mut topk: Option<usize> = None;
    let mut inside = false;
    let mut tol: Option<f64> = None;
    let mut iterations: Option<usize> = None;
    let mut bandwidth: Option<f64> = None;
    // Every option given, by name, so that each kind can refuse what it does not take (an
    // option silently dropped would make the link describe another experiment than it reads).
    let mut given: Vec<&'static str> = Vec::new();
    for part in parts {
        let num = |prefix: &str| part.strip_prefix(prefix).filter(|r| !r.is_empty());
        let name: &'static str = if part == "b" {
            bias = true;
            "b"
        } else if matches!(part, "adam" | "fista" | "omp") {
            if solver.is_some() {
                return Err(bad(key, token, "more than one solver"));
            }
            solver = Some(part);
            "solver"
        } else if part == "signed" {
            signed = true;
            "signed"
        } else if part == "inside" {
            inside = true;
            "inside"
        } else if let Some(r) = num("topk") {
            topk = Some(parse_int(key, r).map_err(|_| bad(key, token, "bad topk"))?);
            "topk"
        } else if let Some(r) = num("tol") {
            tol = Some(parse_float(key, r).map_err(|_| bad(key, token, "bad tolerance"))?);
            "tol"
        } else if let Some(r) = num("t") {
            iterations =
                Some(parse_int(key, r).map_err(|_| bad(key, token, "bad iteration count"))?);
            "t"
        } else if let Some(r) = num("lr") {
            lr = Some(parse_float(key, r).map_err(|_| bad(key, token, "bad learning rate"))?);
            "lr"
        } else if let Some(r) = num("k") {
            k = Some(parse_int(key, r).map_err(|_| bad(key, token, "bad k"))?);
            "k"
        } else if let Some(r) = num("s") {
            steps = Some(parse_int(key, r).map_err(|_| bad(key, token, "bad step count"))?);
            "s"
        } else if let Some(r) = num("e") {
            bandwidth = Some(parse_float(key, r).map_err(|_| bad(key, token, "bad bandwidth"))?);
            "e"
        } else if let Some(r) = num("h") {
            let widths: Result<Vec<usize>, _> = r.split('-').map(str::parse::<usize>).collect();
            let widths = widths.map_err(|_| bad(key, token, "bad hidden widths"))?;
            if widths.len() > limits::MAX_HIDDEN_LAYERS {
                return Err(bad(key, token, "too many hidden layers"));
            }
            hidden = Some(widths);
            "h"
        } else {
            return Err(bad(key, token, format!("unknown option `{part}`")));
        };
        if given.contains(&name) {
            return Err(bad(key, token, format!("option `{part}` is given twice")));
        }
        given.push(name);
    }
    // The options each kind accepts (the solver's own options are checked with the solver).
    let only = |allowed: &[&str], what: &str| -> Result<(), ShareError> {
        match given.iter().find(|g| !allowed.contains(g)) {
            Some(extra) => Err(bad(
                key,
                token,
                format!("{what}; `{extra}` does not apply to `{kind}`"),
            )),
            None => Ok(()),
        }
    };
    let solver_cfg = || -> Result<SolverConfig, ShareError> {
        Ok(match solver.unwrap_or("adam") {
            "adam" => {
                if signed || k.is_some() || tol.is_some() {
                    return Err(bad(
                        key,
                        token,
                        "adam takes only s<steps>, lr<rate>, topk<int> and inside",
                    ));
                }
                let (steps, lr) = (
                    steps.unwrap_or_else(default_adam_steps),
                    lr.unwrap_or_else(default_adam_lr),
                );
                match topk {
                    Some(k) => SolverConfig::AdamTopk {
                        steps,
                        lr,
                        k,
                        inside,
                    },
                    None if inside => {
                        return Err(bad(
                            key,
                            token,
                            "inside needs topk<int>, e.g. adam:topk3:inside",
                        ))
                    }
                    None => SolverConfig::Adam { steps, lr },
                }
            }
            "fista" => {
                if lr.is_some() || k.is_some() || topk.is_some() || inside {
                    return Err(bad(
                        key,
                        token,
                        "fista takes only s<steps>, tol<tolerance> and signed",
                    ));
                }
                SolverConfig::Fista {
                    steps: steps.unwrap_or_else(default_fista_steps),
                    nonneg: !signed,
                    tol,
                }
            }
            _ => {
                if steps.is_some()
                    || lr.is_some()
                    || signed
                    || topk.is_some()
                    || inside
                    || tol.is_some()
                {
                    return Err(bad(key, token, "omp takes only k<int>"));
                }
                SolverConfig::Omp { k }
            }
        })
    };
    const SOLVER_OPTIONS: [&str; 8] = ["solver", "s", "lr", "signed", "k", "topk", "inside", "tol"];
    Ok(match kind {
        "sae" => {
            only(&["b"], "sae takes only b (bias)")?;
            MethodConfig::Sae { bias }
        }
        "topk" => {
            only(&["k", "b"], "topk takes only k<int> and b")?;
            let k = k.ok_or_else(|| bad(key, token, "topk needs k<int>, e.g. topk:k3"))?;
            MethodConfig::TopkSae { k, bias }
        }
        "mlp" => {
            only(&["h", "b"], "mlp takes only h<widths> and b")?;
            let hidden =
                hidden.ok_or_else(|| bad(key, token, "mlp needs h<widths>, e.g. mlp:h32"))?;
            MethodConfig::Mlp { hidden, bias }
        }
        "sc" => {
            only(&SOLVER_OPTIONS, "sc takes only a solver and its options")?;
            MethodConfig::SparseCoding {
                inference: solver_cfg()?,
            }
        }
        "ito" => {
            let mut allowed = SOLVER_OPTIONS.to_vec();
            allowed.push("b");
            only(&allowed, "ito takes only b and a solver with its options")?;
            MethodConfig::SaeIto {
                bias,
                inference: solver_cfg()?,
            }
        }
        "lista" => {
            only(&["t"], "lista takes only t<iterations>")?;
            let iterations =
                iterations.ok_or_else(|| bad(key, token, "lista needs t<int>, e.g. lista:t3"))?;
            MethodConfig::Lista { iterations }
        }
        "batchtopk" => {
            only(&["k", "b"], "batchtopk takes only k<int> and b")?;
            let k =
                k.ok_or_else(|| bad(key, token, "batchtopk needs k<int>, e.g. batchtopk:k32"))?;
            MethodConfig::BatchTopkSae { k, bias }
        }
        "jumprelu" => {
            only(&["e", "b"], "jumprelu takes only e<bandwidth> and b")?;
            MethodConfig::JumpReluSae {
                bandwidth: bandwidth.unwrap_or(DEFAULT_JUMP_BANDWIDTH),
                bias,
            }
        }
        "" => return Err(bad(key, token, "empty method")),
        other => {
            return Err(bad(
                key,
                token,
                format!(
                    "unknown method `{other}`; expected sae, topk, mlp, sc, ito, lista, \
                     batchtopk or jumprelu"
                ),
            ))
        }
    })
}

/// Parse a link (with or without a leading `#` or `?`) into a validated config.
pub fn decode(link: &str) -> Result<SharedState, ShareError> {
    let pairs = split_pairs(link)?;
    if pairs.iter().any(|(k, _)| k == "sweep") {
        return Err(bad(
            "sweep",
            "",
            "this link describes a sweep, not one experiment",
        ));
    }
    let version = version_of(&pairs)?;
    let get = |key: &str| get_pair(&pairs, key);
    let which = match get("p") {
        None | Some("paper") => Base::Paper,
        Some("quick") if version >= 2 => Base::Quick,
        Some(other) => return Err(bad("p", other, "expected paper or quick")),
    };
    let setting = setting_of(get("setting"))?;
    let mut cfg = base_for(version, which, setting);
    let mut extra = Vec::new();
    for (key, value) in &pairs {
        if !matches!(key.as_str(), "v" | "setting" | "p") && !apply_key(&mut cfg, key, value)? {
            page_key(key, value)?;
            extra.push((key.clone(), value.clone()));
        }
    }
    // A link that sets the steps but not the evaluations keeps the preset's evaluations before
    // its last step, as the form does (a quick preset's schedule runs to 5,000).
    if get("steps").is_some() && get("evals").is_none() {
        let steps = cfg.train.steps;
        cfg.train.eval_steps.retain(|&e| e < steps);
    }
    let config = cfg.validate()?;
    Ok(SharedState { config, extra })
}

/// Keys a link may carry for the page rather than the engine: `run`, `backend` and
/// `<key>_hide`. Any other key is an error, so that a mistyped key is not silently ignored.
fn page_key(key: &str, value: &str) -> Result<(), ShareError> {
    if matches!(key, "run" | "backend") || key.strip_suffix("_hide").is_some_and(|k| !k.is_empty())
    {
        Ok(())
    } else {
        Err(bad(
            key,
            value,
            "not a key of this page's links (a typo, or a link from a newer version)",
        ))
    }
}

/// The link's `key=value` pairs, decoded; a repeated key is an error.
fn split_pairs(link: &str) -> Result<Vec<(String, String)>, ShareError> {
    if link.len() > MAX_LINK_CHARS {
        return Err(ShareError::TooLong(link.len()));
    }
    let link = link.trim().trim_start_matches(['#', '?']);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in link.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        let k = percent_decode(k, k)?;
        let v = percent_decode(&k, v)?;
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(ShareError::Repeated { key: k });
        }
        pairs.push((k, v));
    }
    Ok(pairs)
}

fn get_pair<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn version_of(pairs: &[(String, String)]) -> Result<u32, ShareError> {
    match get_pair(pairs, "v") {
        None => Err(ShareError::MissingVersion),
        Some("1") => Ok(1),
        Some("2") => Ok(2),
        Some(v) => Err(ShareError::UnsupportedVersion(v.to_string())),
    }
}

fn setting_of(value: Option<&str>) -> Result<Setting, ShareError> {
    match value {
        None | Some("unknown") => Ok(Setting::Unknown),
        Some("known_codes") => Ok(Setting::KnownCodes),
        Some("known_dictionary") => Ok(Setting::KnownDictionary),
        Some(other) => Err(bad(
            "setting",
            other,
            "expected known_codes, known_dictionary or unknown",
        )),
    }
}

/// Apply one experiment key to `cfg`; false for a key the experiment schema does not define.
fn apply_key(cfg: &mut ExperimentConfig, key: &str, value: &str) -> Result<bool, ShareError> {
    match key {
        "N" => cfg.data.num_atoms = parse_int(key, value)?,
        "M" => cfg.data.data_dim = parse_int(key, value)?,
        "K" => cfg.data.sparsity_k = parse_int(key, value)?,
        "n" => cfg.data.num_samples = parse_int(key, value)?,
        "noise" => cfg.data.noise_std = parse_float(key, value)?,
        "signed" => cfg.data.signed_codes = parse_bool(key, value)?,
        "skew" => cfg.data.frequency_skew = parse_float(key, value)?,
        "methods" => {
            cfg.methods = if value == "none" {
                Vec::new()
            } else {
                let tokens: Vec<&str> = value.split(',').collect();
                if tokens.len() > limits::MAX_METHODS {
                    return Err(bad(
                        key,
                        value,
                        format!("at most {} methods", limits::MAX_METHODS),
                    ));
                }
                tokens
                    .into_iter()
                    .map(parse_method)
                    .collect::<Result<_, _>>()?
            };
        }
        "steps" => cfg.train.steps = parse_int(key, value)?,
        "lr" => cfg.train.lr = parse_float(key, value)?,
        "l1" => cfg.train.l1_penalty = parse_float(key, value)?,
        "batch" => {
            cfg.train.batch_size = match value {
                "full" => None,
                v => Some(parse_int(key, v)?),
            }
        }
        "log" => cfg.train.log_every = parse_int(key, value)?,
        "evals" => {
            cfg.train.eval_steps = match value {
                "every" => Vec::new(),
                v => {
                    let steps: Vec<&str> = v.split('-').collect();
                    if steps.len() as u64 > limits::MAX_EVALUATIONS_PER_RUN {
                        return Err(bad(key, value, "too many evaluation steps"));
                    }
                    steps
                        .into_iter()
                        .map(|s| parse_int(key, s))
                        .collect::<Result<_, _>>()?
                }
            }
        }
        "lrs" | "l1s" => parse_per_method(cfg, key, value)?,
        "l0" => cfg.metrics.l0_threshold = parse_float(key, value)?,
        "seed" => cfg.seed = parse_int(key, value)?,
        "runs" => cfg.runs = parse_int(key, value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `lrs` / `l1s`: the learning rate / lambda of every method of a kind, as `kind:value` pairs
/// separated by commas (`sc:0.003,mlp:0.0001`), or `none`. The value replaces that field of
/// every per-method setting the defaults had.
fn parse_per_method(cfg: &mut ExperimentConfig, key: &str, value: &str) -> Result<(), ShareError> {
    let lr = key == "lrs";
    let per = &mut cfg.train.per_method;
    for o in per.values_mut() {
        if lr {
            o.lr = None;
        } else {
            o.l1_penalty = None;
        }
    }
    if value != "none" {
        let kinds: Vec<&str> = MethodKind::ALL.iter().map(|k| k.token()).collect();
        let expected = || {
            format!(
                "expected kind:value pairs separated by commas, e.g. sc:0.003, with kinds {}",
                kinds.join(", ")
            )
        };
        let mut seen = Vec::new();
        for pair in value.split(',') {
            let (token, v) = pair
                .split_once(':')
                .ok_or_else(|| bad(key, value, expected()))?;
            let kind = MethodKind::from_token(token).ok_or_else(|| bad(key, value, expected()))?;
            if seen.contains(&kind) {
                return Err(bad(key, value, format!("{token} is given twice")));
            }
            seen.push(kind);
            let v = parse_float(key, v)?;
            let o = per.entry(kind).or_default();
            if lr {
                o.lr = Some(v);
            } else {
                o.l1_penalty = Some(v);
            }
        }
    }
    per.retain(|_, o| o.lr.is_some() || o.l1_penalty.is_some());
    Ok(())
}

/// The `lrs` or `l1s` value of a config (see `parse_per_method`).
fn per_method_token(config: &ExperimentConfig, lr: bool) -> String {
    let pairs: Vec<String> = config
        .train
        .per_method
        .iter()
        .filter_map(|(kind, o)| {
            let v = if lr { o.lr } else { o.l1_penalty };
            v.map(|v| format!("{}:{v}", kind.token()))
        })
        .collect();
    if pairs.is_empty() {
        "none".to_string()
    } else {
        pairs.join(",")
    }
}

/// Whether a link describes a sweep (it names one with `sweep=`).
pub fn is_sweep_link(link: &str) -> bool {
    link.trim()
        .trim_start_matches(['#', '?'])
        .split('&')
        .any(|kv| kv.split('=').next() == Some("sweep"))
}

/// The link of a sweep: `sweep=<preset>` names the preset its defaults come from (whichever
/// gives the shortest link), then the base experiment's keys that differ, and the sweep's own:
/// `kind` (experiment | recovery), `axes` (`param:v_v_v~param:v_v`: `~` multiplies the grid,
/// `,` takes an axis's values with the axis before it, `N:16_32,K:3_6`), `seeds`, `solvers` (as in
/// a method's solver options, comma-separated, or `none`), `success` (`rel<tol>` | `support` |
/// `top`: how solvers are scored) and `esuccess` (the same, for encoders).
pub fn encode_sweep(sweep: &SweepConfig, extra: &[(&str, &str)]) -> String {
    SweepPreset::ALL
        .into_iter()
        .map(|p| encode_sweep_from(sweep, p, extra))
        .min_by_key(String::len)
        .expect("there are sweep presets")
}

fn axes_token(axes: &[Axis]) -> String {
    let mut out = String::new();
    for (i, a) in axes.iter().enumerate() {
        if i > 0 {
            out.push(if a.with_previous { ',' } else { '~' });
        }
        let values: Vec<String> = a.values.iter().map(f64::to_string).collect();
        let _ = write!(out, "{}:{}", a.param.name(), values.join("_"));
    }
    out
}

fn solvers_token(solvers: &[SolverConfig]) -> String {
    if solvers.is_empty() {
        return "none".to_string();
    }
    solvers
        .iter()
        .map(|s| {
            let mut out = String::new();
            solver_token(s, &mut out);
            // The default solver writes nothing: name it.
            if out.is_empty() {
                "adam".to_string()
            } else {
                out.trim_start_matches(':').to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn success_token(s: Success) -> String {
    match s {
        Success::RelativeError { tol } => format!("rel{tol}"),
        Success::Support => "support".to_string(),
        Success::TopSupport => "top".to_string(),
    }
}

fn parse_success(key: &str, value: &str) -> Result<Success, ShareError> {
    Ok(match value {
        "support" => Success::Support,
        "top" => Success::TopSupport,
        v => match v.strip_prefix("rel") {
            Some(tol) => Success::RelativeError {
                tol: parse_float(key, tol)?,
            },
            None => return Err(bad(key, v, "expected rel<tolerance>, support or top")),
        },
    })
}

fn encode_sweep_from(sweep: &SweepConfig, preset: SweepPreset, extra: &[(&str, &str)]) -> String {
    let base = preset.config();
    let experiment = encode_against(&sweep.base, &base.base);
    let mut parts = vec![
        format!("v={LINK_VERSION}"),
        format!("sweep={}", preset.name()),
    ];
    parts.extend(experiment);
    let mut put = |key: &str, value: String, default: String| {
        if value != default {
            parts.push(format!("{key}={}", percent_encode(&value)));
        }
    };
    let kind = |k: SweepKind| match k {
        SweepKind::Experiment => "experiment".to_string(),
        SweepKind::Recovery => "recovery".to_string(),
    };
    put("kind", kind(sweep.kind), kind(base.kind));
    put("axes", axes_token(&sweep.axes), axes_token(&base.axes));
    put("seeds", sweep.seeds.to_string(), base.seeds.to_string());
    put(
        "solvers",
        solvers_token(&sweep.recovery.solvers),
        solvers_token(&base.recovery.solvers),
    );
    put(
        "success",
        success_token(sweep.recovery.success),
        success_token(base.recovery.success),
    );
    put(
        "esuccess",
        success_token(sweep.recovery.encoder_success),
        success_token(base.recovery.encoder_success),
    );
    parts.push(format!("seed={}", sweep.base.seed));
    for (k, v) in extra {
        parts.push(format!("{}={}", percent_encode(k), percent_encode(v)));
    }
    parts.join("&")
}

/// Parse a sweep link (see [`encode_sweep`]) into a validated sweep and the keys left over.
pub fn decode_sweep(link: &str) -> Result<(SweepConfig, Vec<(String, String)>), ShareError> {
    let pairs = split_pairs(link)?;
    let version = version_of(&pairs)?;
    if version < 2 {
        return Err(bad("v", "1", "sweep links start at version 2"));
    }
    let get = |key: &str| get_pair(&pairs, key);
    let name = get("sweep").ok_or_else(|| bad("sweep", "", "no sweep named"))?;
    let preset = SweepPreset::from_name(name).map_err(|e| bad("sweep", name, e.to_string()))?;
    let mut sweep = preset.config();
    if let Some(setting) = get("setting") {
        sweep.base.setting = setting_of(Some(setting))?;
    }
    let mut extra = Vec::new();
    for (key, value) in &pairs {
        let (key, value) = (key.as_str(), value.as_str());
        match key {
            "v" | "sweep" | "setting" => {}
            "kind" => {
                sweep.kind = match value {
                    "experiment" => SweepKind::Experiment,
                    "recovery" => SweepKind::Recovery,
                    other => return Err(bad(key, other, "expected experiment or recovery")),
                }
            }
            "axes" => {
                sweep.axes = if value.is_empty() {
                    Vec::new()
                } else {
                    value
                        .split('~')
                        .flat_map(|group| group.split(',').enumerate())
                        .map(|(place, a)| {
                            let with_previous = place > 0;
                            let (param, values) = a.split_once(':').ok_or_else(|| {
                                bad(key, value, format!("`{a}`: write param:v_v_v"))
                            })?;
                            let param = Param::from_name(param).ok_or_else(|| {
                                bad(key, value, format!("unknown parameter `{param}`"))
                            })?;
                            let values = values
                                .split('_')
                                .map(|v| parse_float(key, v))
                                .collect::<Result<Vec<_>, _>>()?;
                            if values.len() > MAX_AXIS_VALUES {
                                return Err(bad(key, value, "too many values"));
                            }
                            Ok(Axis {
                                param,
                                values,
                                with_previous,
                            })
                        })
                        .collect::<Result<_, _>>()?
                };
            }
            "seeds" => sweep.seeds = parse_int(key, value)?,
            "solvers" => {
                sweep.recovery.solvers = if value == "none" {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .map(|t| match parse_method(&format!("sc:{t}"))? {
                            MethodConfig::SparseCoding { inference } => Ok(inference),
                            _ => unreachable!("sc parses to sparse coding"),
                        })
                        .collect::<Result<_, ShareError>>()?
                };
            }
            "success" => sweep.recovery.success = parse_success(key, value)?,
            "esuccess" => sweep.recovery.encoder_success = parse_success(key, value)?,
            _ => {
                if !apply_key(&mut sweep.base, key, value)? {
                    page_key(key, value)?;
                    extra.push((key.to_string(), value.to_string()));
                }
            }
        }
    }
    sweep.validate()?;
    Ok((sweep, extra))
}

/// The experiment keys of `config` that differ from `base` (the seed excluded).
fn encode_against(config: &ExperimentConfig, base: &ExperimentConfig) -> Vec<String> {
    let mut parts = Vec::new();
    if config.setting != base.setting {
        parts.push(format!("setting={}", setting_name(config.setting)));
    }
    let d = &config.data;
    let bd = &base.data;
    let mut put = |key: &str, value: String, default: String| {
        if value != default {
            parts.push(format!("{key}={value}"));
        }
    };
    put("N", d.num_atoms.to_string(), bd.num_atoms.to_string());
    put("M", d.data_dim.to_string(), bd.data_dim.to_string());
    put("K", d.sparsity_k.to_string(), bd.sparsity_k.to_string());
    put("n", d.num_samples.to_string(), bd.num_samples.to_string());
    put("noise", d.noise_std.to_string(), bd.noise_std.to_string());
    put(
        "signed",
        u8::from(d.signed_codes).to_string(),
        u8::from(bd.signed_codes).to_string(),
    );
    put(
        "skew",
        d.frequency_skew.to_string(),
        bd.frequency_skew.to_string(),
    );
    let methods = |m: &[MethodConfig]| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter().map(method_token).collect::<Vec<_>>().join(",")
        }
    };
    put("methods", methods(&config.methods), methods(&base.methods));
    let t = &config.train;
    let bt = &base.train;
    put("steps", t.steps.to_string(), bt.steps.to_string());
    put("lr", t.lr.to_string(), bt.lr.to_string());
    put("l1", t.l1_penalty.to_string(), bt.l1_penalty.to_string());
    put(
        "lrs",
        per_method_token(config, true),
        per_method_token(base, true),
    );
    put(
        "l1s",
        per_method_token(config, false),
        per_method_token(base, false),
    );
    put(
        "batch",
        t.batch_size.map_or("full".into(), |b| b.to_string()),
        bt.batch_size.map_or("full".into(), |b| b.to_string()),
    );
    put("log", t.log_every.to_string(), bt.log_every.to_string());
    put(
        "evals",
        join_steps(&t.eval_steps),
        join_steps(&bt.eval_steps),
    );
    put(
        "l0",
        config.metrics.l0_threshold.to_string(),
        base.metrics.l0_threshold.to_string(),
    );
    put("runs", config.runs.to_string(), base.runs.to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_link_is_short() {
        let cfg = Preset::UnknownZD.config();
        assert_eq!(encode(&cfg, &[]), "v=2&setting=unknown&seed=20240926");
        let quick = Preset::QuickUnknownZD.config();
        assert_eq!(
            encode(&quick, &[]),
            "v=2&p=quick&setting=unknown&seed=20240926"
        );
    }

    #[test]
    fn percent_round_trip() {
        let s = "a b&c=d/é";
        assert_eq!(percent_decode("k", &percent_encode(s)).unwrap(), s);
    }
}
