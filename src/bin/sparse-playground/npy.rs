//! Reading and writing 2-D `.npy` arrays (rows = samples or atoms, numpy's C order).

use sparse_playground::core::Matrix;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;

/// Load a 2-D float array (f32 or f64, C or Fortran order) as (rows, cols, row-major values).
pub fn load(path: &Path) -> Result<(usize, usize, Vec<f32>), String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let bad =
        |e: &dyn std::fmt::Display| format!("{}: not a readable .npy array: {e}", path.display());
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(&e))?;
    let shape = npy.shape().to_vec();
    let (rows, cols) = match shape.as_slice() {
        [r, c] => (*r as usize, *c as usize),
        [n] => (*n as usize, 1),
        other => {
            return Err(format!(
                "{}: expected a 2-D array, got shape {other:?}",
                path.display()
            ))
        }
    };
    let fortran = npy.order() == npyz::Order::Fortran;
    let values: Vec<f32> = match npy.dtype() {
        npyz::DType::Plain(t) if t.to_string().ends_with("f4") => {
            npy.into_vec::<f32>().map_err(|e| bad(&e))?
        }
        npyz::DType::Plain(t) if t.to_string().ends_with("f8") => npy
            .into_vec::<f64>()
            .map_err(|e| bad(&e))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => {
            return Err(format!(
                "{}: expected float32 or float64 values, got dtype {}",
                path.display(),
                other.descr()
            ))
        }
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "{}: contains NaN or infinite values",
            path.display()
        ));
    }
    let row_major = if fortran {
        let m = Matrix::from_vec(rows, cols, values);
        m.transpose().as_slice().to_vec()
    } else {
        values
    };
    Ok((rows, cols, row_major))
}

/// A (rows x cols) row-major array as our column-major (cols x rows) matrix: one sample (or
/// atom) per column, which is exactly the same memory.
pub fn load_as_columns(path: &Path) -> Result<Matrix, String> {
    let (rows, cols, values) = load(path)?;
    Ok(Matrix::from_vec(cols, rows, values))
}

/// Save a column-major matrix with one sample (or atom) per column as a (cols x rows) array.
pub fn save_columns(path: &Path, m: &Matrix) -> Result<(), String> {
    use npyz::WriterBuilder;
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[m.ncols() as u64, m.nrows() as u64])
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    writer.extend(m.as_slice().iter().copied()).map_err(io)?;
    writer.finish().map_err(io)
}
