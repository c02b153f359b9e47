//! `.npy` files on disk: the parsing itself (hostile input included) is `formats::npy`.

use sparse_playground::core::Matrix;
use sparse_playground::formats::npy;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Largest file read: far above any array the engine could use (4096 x 262,144 float64 values
/// is 8 GiB, so this bounds what a mistaken path can make the tool read into memory).
const MAX_FILE_BYTES: u64 = 16 << 30;

/// Load a 2-D float array as our column-major matrix with one sample (or atom) per column.
pub fn load_as_columns(path: &Path) -> Result<Matrix, String> {
    let where_ = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let size = std::fs::metadata(path).map_err(|e| where_(&e))?.len();
    if size > MAX_FILE_BYTES {
        return Err(where_(&format!(
            "the file is {size} bytes; at most {MAX_FILE_BYTES} are read"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| where_(&e))?;
    npy::parse(&bytes)
        .map(npy::Array2::into_columns)
        .map_err(|e| where_(&e))
}

/// Save a column-major matrix with one sample (or atom) per column as a (cols x rows) array.
pub fn save_columns(path: &Path, m: &Matrix) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    npy::write_columns(BufWriter::new(file), m).map_err(|e| format!("{}: {e}", path.display()))
}
