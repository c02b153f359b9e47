//! Activations of a real model (tokens x dimensions) from outside the engine: `.npy` (float16,
//! float32 or float64) or `.safetensors` (F16, BF16, F32 or F64), and the optional token texts
//! that go beside them for the feature views.
//!
//! Both array formats are read from bytes held in memory (the page has the file's bytes, the
//! CLI reads the file) and checked as hostile input: `.npy` through [`super::npy`], and
//! `.safetensors` with its header length bounded before the `safetensors` crate parses it.
//! Values come out as f32 in token-major order, and a NaN or an infinity is refused with its
//! position, so a bad row is found in the file rather than as a diverging run.
//!
//! The token texts are JSON (`sparse-playground-tokens`, version 1):
//! `{"format": "sparse-playground-tokens", "version": 1, "tokens": [...], "context_starts":
//! [...]}`: one string per activation row, in row order, and the rows where each context (a
//! run of consecutive positions of one text) begins, strictly increasing from 0.

use super::npy::{self, NpyError};
use serde::Deserialize;

/// The longest `.safetensors` header read (a file of activations has a few tensors; the crate
/// itself would parse up to 100 MB of header JSON).
pub const MAX_SAFETENSORS_HEADER: u64 = 1 << 20;
/// Fewest tokens and dimensions that make an experiment (a train and a test split).
pub const MIN_TOKENS: usize = 16;
pub const MIN_DIM: usize = 2;
/// Longest token text file read, and longest single token.
pub const MAX_TOKENS_JSON_BYTES: usize = 256 << 20;
pub const MAX_TOKEN_CHARS: usize = 1024;
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Why activations (or their token texts) could not be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ActivationsError {
    #[error("{0}")]
    Npy(#[from] NpyError),
    #[error("not a .safetensors file: {0}")]
    SafeTensors(String),
    #[error("neither a .npy nor a .safetensors file (the first bytes are neither format's)")]
    UnknownFormat,
    #[error("the file holds no 2-D float tensor (tensors: {0})")]
    NoTensor(String),
    #[error("the file holds several 2-D float tensors ({0}); name the one to use")]
    Ambiguous(String),
    #[error("no tensor named `{0}` in the file (tensors: {1})")]
    NotFound(String, String),
    #[error(
        "expected tokens x dimensions (2-D), got shape {0:?}; reshape it to (tokens, dims) first"
    )]
    Shape(Vec<usize>),
    #[error("expected float16, bfloat16, float32 or float64 values, got {0}")]
    DType(String),
    #[error("row {row}, column {col} is {value} (NaN and infinite values cannot be used)")]
    NonFinite { row: usize, col: usize, value: f32 },
    #[error(
        "{tokens} tokens x {dim} dimensions is too small: at least {MIN_TOKENS} tokens and \
         {MIN_DIM} dimensions are needed"
    )]
    TooSmall { tokens: usize, dim: usize },
    #[error("token texts: {0}")]
    Tokens(String),
}

/// Activations as f32: row `t` (a token) is `values[t * dim..(t + 1) * dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Activations {
    pub tokens: usize,
    pub dim: usize,
    pub values: Vec<f32>,
    /// The values' type in the file (`float16`, `bfloat16`, `float32` or `float64`).
    pub dtype: &'static str,
    /// The tensor read, for a `.safetensors` file.
    pub tensor: Option<String>,
}

impl Activations {
    /// Bytes the values take once read (f32).
    pub fn f32_bytes(&self) -> u64 {
        self.values.len() as u64 * 4
    }

    /// Row `t`.
    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * self.dim..(t + 1) * self.dim]
    }
}

/// Parse activations from a whole file's bytes, `.npy` or `.safetensors` by its first bytes.
/// `tensor` names the tensor of a `.safetensors` file holding several.
pub fn parse(bytes: &[u8], tensor: Option<&str>) -> Result<Activations, ActivationsError> {
    let parsed = if bytes.starts_with(NPY_MAGIC) {
        parse_npy(bytes)?
    } else if looks_like_safetensors(bytes) {
        parse_safetensors(bytes, tensor)?
    } else {
        return Err(ActivationsError::UnknownFormat);
    };
    if parsed.tokens < MIN_TOKENS || parsed.dim < MIN_DIM {
        return Err(ActivationsError::TooSmall {
            tokens: parsed.tokens,
            dim: parsed.dim,
        });
    }
    Ok(parsed)
}

fn parse_npy(bytes: &[u8]) -> Result<Activations, ActivationsError> {
    let dtype = npy_dtype(bytes);
    let array = npy::parse(bytes)?;
    Ok(Activations {
        tokens: array.rows,
        dim: array.cols,
        values: array.values,
        dtype,
        tensor: None,
    })
}

/// The float type a `.npy` header names (after `npy::parse` accepted it, one of three).
fn npy_dtype(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(npy::MAX_HEADER_BYTES + 16)];
    let text = String::from_utf8_lossy(head);
    if text.contains("f2'") || text.contains("f2\"") {
        "float16"
    } else if text.contains("f8'") || text.contains("f8\"") {
        "float64"
    } else {
        "float32"
    }
}

/// A little-endian u64 header length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[8] == b'{'
}

fn parse_safetensors(bytes: &[u8], wanted: Option<&str>) -> Result<Activations, ActivationsError> {
    use safetensors::tensor::{Dtype, SafeTensors};
    let bad = |m: String| ActivationsError::SafeTensors(m);
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes checked"));
    if header_len > MAX_SAFETENSORS_HEADER {
        return Err(bad(format!(
            "the header is said to be {header_len} bytes; at most {MAX_SAFETENSORS_HEADER} are read"
        )));
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    names.sort();
    let listing = || {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let is_float = |d: Dtype| matches!(d, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64);
    let name = match wanted {
        Some(n) => {
            if !names.iter().any(|x| x == n) {
                return Err(ActivationsError::NotFound(n.to_string(), listing()));
            }
            n.to_string()
        }
        None => {
            let candidates: Vec<&String> = names
                .iter()
                .filter(|n| {
                    file.tensor(n)
                        .is_ok_and(|t| t.shape().len() == 2 && is_float(t.dtype()))
                })
                .collect();
            match candidates.as_slice() {
                [one] => (*one).clone(),
                [] if names.len() == 1 => names[0].clone(),
                [] => return Err(ActivationsError::NoTensor(listing())),
                many => {
                    let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    return Err(ActivationsError::Ambiguous(list.join(", ")));
                }
            }
        }
    };
    let view = file.tensor(&name).map_err(|e| bad(e.to_string()))?;
    let shape = view.shape().to_vec();
    let [tokens, dim] = shape[..] else {
        return Err(ActivationsError::Shape(shape));
    };
    let data = view.data();
    let (values, dtype): (Vec<f32>, &'static str) = match view.dtype() {
        Dtype::F16 => (
            data.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            "float16",
        ),
        Dtype::BF16 => (
            data.chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            "bfloat16",
        ),
        Dtype::F32 => (
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "float32",
        ),
        Dtype::F64 => (
            data.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            "float64",
        ),
        other => return Err(ActivationsError::DType(format!("{other:?}"))),
    };
    // The crate checked the data offsets against the shape and dtype.
    debug_assert_eq!(values.len(), tokens * dim);
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(ActivationsError::NonFinite {
            row: at / dim.max(1),
            col: at % dim.max(1),
            value: values[at],
        });
    }
    Ok(Activations {
        tokens,
        dim,
        values,
        dtype,
        tensor: Some(name),
    })
}

/// Token texts beside activations: one string per row and where each context begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenTexts {
    pub tokens: Vec<String>,
    pub context_starts: Vec<usize>,
}

impl TokenTexts {
    /// The context (index into `context_starts`) that row `t` belongs to.
    pub fn context_of(&self, t: usize) -> usize {
        self.context_starts.partition_point(|&s| s <= t) - 1
    }

    /// The rows of row `t`'s context, from its start up to and including `t`, at most `before`
    /// rows before `t`.
    pub fn preceding(&self, t: usize, before: usize) -> std::ops::RangeInclusive<usize> {
        let start = self.context_starts[self.context_of(t)];
        t.saturating_sub(before).max(start)..=t
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    format: String,
    version: u32,
    tokens: Vec<String>,
    context_starts: Vec<usize>,
}

/// Parse token texts and check them against activations of `rows` rows.
pub fn parse_tokens(text: &str, rows: usize) -> Result<TokenTexts, ActivationsError> {
    let bad = |m: String| ActivationsError::Tokens(m);
    if text.len() > MAX_TOKENS_JSON_BYTES {
        return Err(bad(format!(
            "the file is {} bytes; at most {MAX_TOKENS_JSON_BYTES} are read",
            text.len()
        )));
    }
    let file: TokensFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if file.format != "sparse-playground-tokens" || file.version != 1 {
        return Err(bad(format!(
            "expected format \"sparse-playground-tokens\" version 1, got \"{}\" version {}",
            file.format, file.version
        )));
    }
    if file.tokens.len() != rows {
        return Err(bad(format!(
            "{} token texts for {rows} rows of activations: they must match one to one",
            file.tokens.len()
        )));
    }
    if let Some(i) = file
        .tokens
        .iter()
        .position(|t| t.chars().count() > MAX_TOKEN_CHARS)
    {
        return Err(bad(format!(
            "token {i} is longer than {MAX_TOKEN_CHARS} characters"
        )));
    }
    let starts = &file.context_starts;
    if starts.first() != Some(&0) {
        return Err(bad("context_starts must begin with 0".to_string()));
    }
    if let Some(w) = starts.windows(2).find(|w| w[1] <= w[0]) {
        return Err(bad(format!(
            "context_starts must increase strictly ({} then {})",
            w[0], w[1]
        )));
    }
    if let Some(&last) = starts.last().filter(|&&s| s >= rows) {
        return Err(bad(format!(
            "a context starts at row {last}, past the {rows} rows"
        )));
    }
    Ok(TokenTexts {
        tokens: file.tokens,
        context_starts: file.context_starts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_found_by_row() {
        let t = TokenTexts {
            tokens: (0..10).map(|i| i.to_string()).collect(),
            context_starts: vec![0, 4, 7],
        };
        assert_eq!(t.context_of(0), 0);
        assert_eq!(t.context_of(3), 0);
        assert_eq!(t.context_of(4), 1);
        assert_eq!(t.context_of(9), 2);
        assert_eq!(t.preceding(5, 8), 4..=5);
        assert_eq!(t.preceding(9, 1), 8..=9);
    }
}
