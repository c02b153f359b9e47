//! 2-D `.npy` arrays of float16, float32 or float64 (rows = samples or atoms, C or Fortran
//! order); float16 is how language-model activations are usually stored.
//!
//! Parsing goes through the `npyz` crate, behind a guard: the preamble's header length, the
//! nesting of the header's Python literal and the array's shape are checked here first, and
//! the shape's element count (checked multiplication) must match the data bytes the file
//! actually holds. `npyz` alone would allocate a header of any stated length (up to 4 GiB), and
//! multiply the shape without overflow checks.

use crate::core::Matrix;
use std::io::Cursor;

/// The longest header accepted (numpy itself refuses headers over 10,000 bytes by default).
pub const MAX_HEADER_BYTES: usize = 65_536;
/// Deepest nesting of brackets accepted in the header's Python literal (a real header has 2).
const MAX_HEADER_NESTING: usize = 8;
const MAGIC: &[u8] = b"\x93NUMPY";

/// Why an array could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file: {0}")]
    Format(String),
    #[error("expected a 1-D or 2-D array, got shape {0:?}")]
    Dimensions(Vec<u64>),
    #[error("the array is empty (shape {rows} x {cols}): nothing to read")]
    Empty { rows: u64, cols: u64 },
    #[error("the shape {0:?} holds more values than this machine can address")]
    TooLarge(Vec<u64>),
    #[error("the header describes {expected} bytes of data but the file holds {actual}")]
    DataSize { expected: u64, actual: u64 },
    #[error("expected float16, float32 or float64 values, got dtype {0}")]
    DType(String),
    #[error("row {row}, column {col} is {value} (NaN and infinite values cannot be used)")]
    NonFinite { row: usize, col: usize, value: f32 },
}

/// A parsed array: `rows` x `cols`, values in row-major (C) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array2 {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

impl Array2 {
    /// The array as the engine's column-major matrix with one row of the file per column
    /// (samples or atoms as columns): exactly the same memory.
    pub fn into_columns(self) -> Matrix {
        Matrix::from_vec(self.cols, self.rows, self.values)
    }
}

fn format_error(message: impl Into<String>) -> NpyError {
    NpyError::Format(message.into())
}

/// The preamble: where the header text lies in `bytes`.
fn header_span(bytes: &[u8]) -> Result<std::ops::Range<usize>, NpyError> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(format_error("the magic string \\x93NUMPY is missing"));
    }
    let major = bytes[MAGIC.len()];
    let (len_bytes, start) = match major {
        1 => (2, MAGIC.len() + 4),
        2 | 3 => (4, MAGIC.len() + 6),
        other => return Err(format_error(format!("unknown format version {other}"))),
    };
    if bytes.len() < start {
        return Err(format_error("the file ends inside its preamble"));
    }
    let len_field = &bytes[MAGIC.len() + 2..MAGIC.len() + 2 + len_bytes];
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if header_len > MAX_HEADER_BYTES {
        return Err(format_error(format!(
            "the header is {header_len} bytes long; at most {MAX_HEADER_BYTES} are accepted"
        )));
    }
    let end = start + header_len; // both bounded: no overflow
    if end > bytes.len() {
        return Err(format_error(format!(
            "the header is said to be {header_len} bytes but the file ends before"
        )));
    }
    Ok(start..end)
}

/// The shape as written after the one `shape` key of the header, parsed with checked
/// arithmetic (the guard before `npyz` sees the header).
fn scan_shape(header: &str) -> Result<Vec<u64>, NpyError> {
    let mut depth = 0usize;
    for c in header.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_HEADER_NESTING {
                    return Err(format_error("the header nests too deeply"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if header.matches("shape").count() != 1 {
        return Err(format_error("the header must name `shape` exactly once"));
    }
    let after = &header[header.find("shape").expect("counted above") + "shape".len()..];
    let open = after
        .find('(')
        .ok_or_else(|| format_error("the shape is not a tuple"))?;
    let close = after[open..]
        .find(')')
        .ok_or_else(|| format_error("the shape tuple is not closed"))?;
    let inner = &after[open + 1..open + close];
    let mut dims = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let digits = part.strip_suffix('L').unwrap_or(part);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 20 {
            return Err(format_error(format!("bad dimension `{part}` in the shape")));
        }
        dims.push(
            digits
                .parse::<u64>()
                .map_err(|_| format_error(format!("bad dimension `{part}` in the shape")))?,
        );
    }
    Ok(dims)
}

/// Parse a `.npy` file held in memory into a 2-D array (a 1-D array reads as one column).
pub fn parse(bytes: &[u8]) -> Result<Array2, NpyError> {
    let span = header_span(bytes)?;
    let header = std::str::from_utf8(&bytes[span.clone()])
        .map_err(|_| format_error("the header is not text"))?;
    let shape = scan_shape(header)?;
    let (rows, cols) = match shape.as_slice() {
        [r, c] => (*r, *c),
        [n] => (*n, 1),
        _ => return Err(NpyError::Dimensions(shape)),
    };
    if rows == 0 || cols == 0 {
        return Err(NpyError::Empty { rows, cols });
    }
    let count = rows
        .checked_mul(cols)
        .filter(|&c| usize::try_from(c).is_ok())
        .ok_or_else(|| NpyError::TooLarge(shape.clone()))?;

    let npy = npyz::NpyFile::new(Cursor::new(bytes)).map_err(|e| format_error(e.to_string()))?;
    if npy.shape() != shape.as_slice() {
        return Err(format_error(
            "the header's shape could not be read unambiguously",
        ));
    }
    let item_bytes: u64 = match npy.dtype() {
        npyz::DType::Plain(t) if t.to_string().ends_with("f2") => 2,
        npyz::DType::Plain(t) if t.to_string().ends_with("f4") => 4,
        npyz::DType::Plain(t) if t.to_string().ends_with("f8") => 8,
        other => return Err(NpyError::DType(other.descr())),
    };
    let expected = count
        .checked_mul(item_bytes)
        .ok_or_else(|| NpyError::TooLarge(shape.clone()))?;
    let actual = (bytes.len() - span.end) as u64;
    if expected != actual {
        return Err(NpyError::DataSize { expected, actual });
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let values: Vec<f32> = if item_bytes == 2 {
        npy.into_vec::<half::f16>()
            .map_err(|e| format_error(e.to_string()))?
            .into_iter()
            .map(f32::from)
            .collect()
    } else if item_bytes == 4 {
        npy.into_vec::<f32>()
            .map_err(|e| format_error(e.to_string()))?
    } else {
        npy.into_vec::<f64>()
            .map_err(|e| format_error(e.to_string()))?
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    // The sizes were checked against the bytes present: the values are all there.
    debug_assert_eq!(values.len() as u64, count);
    let (rows, cols) = (rows as usize, cols as usize);
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        // Where the file has it: C order walks a row, Fortran order a column.
        let (row, col) = if fortran {
            (at % rows, at / rows)
        } else {
            (at / cols, at % cols)
        };
        return Err(NpyError::NonFinite {
            row,
            col,
            value: values[at],
        });
    }
    let values = if fortran {
        // Stored column by column: as a column-major rows x cols matrix, transposed.
        Matrix::from_vec(rows, cols, values)
            .transpose()
            .as_slice()
            .to_vec()
    } else {
        values
    };
    Ok(Array2 { rows, cols, values })
}

/// Write a column-major matrix with one sample (or atom) per column as a float32 array of
/// (columns x rows), the layout [`parse`] reads back.
pub fn write_columns(out: impl std::io::Write, m: &Matrix) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[m.ncols() as u64, m.nrows() as u64])
        .writer(out)
        .begin_nd()?;
    writer.extend(m.as_slice().iter().copied())?;
    writer.finish()
}
