//! Vector files shared with peer benchmarks (`bench/serving/faiss_hnsw.py` reads what
//! `kan bench ann` writes, so both sides search the same vectors and score against the same
//! ground truth): NumPy `.npy` (little-endian `<f4` / `<i4`, C order, 2-D), raw little-endian
//! `.f32` (row-major, the dimension given separately) and a bundle's `item_vectors.safetensors`.

use std::path::Path;

use crate::error::{Error, Result};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// A row-major 2-D matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

fn npy_bytes(descr: &str, rows: usize, cols: usize, body: Vec<u8>) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = NPY_MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Writes `[rows, cols]` f32 as `.npy`.
pub fn write_npy_f32(path: &Path, m: &Matrix<f32>) -> Result<()> {
    let body = m.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    write(path, &npy_bytes("<f4", m.rows, m.cols, body))
}

/// Writes `[rows, cols]` i32 as `.npy`.
pub fn write_npy_i32(path: &Path, m: &Matrix<i32>) -> Result<()> {
    let body = m.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    write(path, &npy_bytes("<i4", m.rows, m.cols, body))
}

/// The header fields of an `.npy` file and where its data starts.
fn npy_header(bytes: &[u8]) -> std::result::Result<(String, bool, Vec<usize>, usize), String> {
    if !bytes.starts_with(NPY_MAGIC) || bytes.len() < 10 {
        return Err("not an .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 .npy header")?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}':"))? + name.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or("the .npy header has no 'descr'")?
        .to_string();
    let fortran = field("fortran_order")
        .ok_or("the .npy header has no 'fortran_order'")?
        .starts_with("True");
    let shape = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or("the .npy header has no 'shape'")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry '{s}'"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((descr, fortran, shape, start + len))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Reads a 2-D little-endian f32 `.npy` (C order).
pub fn read_npy_f32(path: &Path) -> Result<Matrix<f32>> {
    let bad = |why: String| Error::Config(format!("{}: {why}", path.display()));
    let bytes = read_bytes(path)?;
    let (descr, fortran, shape, start) = npy_header(&bytes).map_err(bad)?;
    if descr != "<f4" || fortran || shape.len() != 2 {
        return Err(bad(format!(
            "need a 2-D little-endian float32 array in C order, found descr {descr}, shape \
             {shape:?}, fortran_order {fortran} (np.ascontiguousarray(x, dtype='<f4') fixes it)"
        )));
    }
    let (rows, cols) = (shape[0], shape[1]);
    let body = &bytes[start..];
    if body.len() != rows * cols * 4 {
        return Err(bad(format!(
            "{} data bytes for shape ({rows}, {cols}); the file is truncated",
            body.len()
        )));
    }
    Ok(Matrix {
        rows,
        cols,
        data: f32s(body),
    })
}

/// Reads item vectors from `.npy`, raw `.f32` (needs `dim`) or `.safetensors` (tensor
/// `vectors`, the bundle layout).
pub fn read_vectors(path: &Path, dim: Option<usize>) -> Result<Matrix<f32>> {
    let bad = |why: String| Error::Config(format!("{}: {why}", path.display()));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "npy" => read_npy_f32(path),
        "f32" => {
            let dim = dim
                .filter(|&d| d > 0)
                .ok_or_else(|| bad("a raw .f32 file needs its dimension (--dim)".into()))?;
            let bytes = read_bytes(path)?;
            if bytes.len() % (4 * dim) != 0 {
                return Err(bad(format!(
                    "{} bytes is not a whole number of {dim}-d float32 rows",
                    bytes.len()
                )));
            }
            Ok(Matrix {
                rows: bytes.len() / (4 * dim),
                cols: dim,
                data: f32s(&bytes),
            })
        }
        "safetensors" => {
            let (rows, cols, data) = kan_worker::bundle::TensorFile::read(path)
                .and_then(|file| file.f32_2d("vectors"))
                .map_err(|e| bad(format!("{e} (the item_vectors layout: 2-D f32 'vectors')")))?;
            Ok(Matrix { rows, cols, data })
        }
        _ => Err(bad(
            "unknown vector file type: use .npy (float32), .f32 (raw little-endian) or \
             .safetensors (tensor 'vectors')"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_round_trip_and_have_a_64_byte_aligned_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let m = Matrix {
            rows: 3,
            cols: 2,
            data: vec![1.0, -2.0, 0.5, 0.25, 3.0, 4.0],
        };
        write_npy_f32(&path, &m).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
        assert_eq!(read_npy_f32(&path).unwrap(), m);
        assert_eq!(read_vectors(&path, None).unwrap(), m);
    }

    #[test]
    fn raw_f32_files_need_a_dimension_that_divides_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.f32");
        std::fs::write(&path, [1f32, 2.0, 3.0].map(f32::to_le_bytes).concat()).unwrap();
        assert_eq!(read_vectors(&path, Some(3)).unwrap().rows, 1);
        assert!(read_vectors(&path, None).is_err());
        let err = read_vectors(&path, Some(2)).unwrap_err().to_string();
        assert!(err.contains("whole number"), "{err}");
    }

    #[test]
    fn integer_npy_files_are_refused_as_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.npy");
        let m = Matrix {
            rows: 1,
            cols: 2,
            data: vec![7, 9],
        };
        write_npy_i32(&path, &m).unwrap();
        let err = read_npy_f32(&path).unwrap_err().to_string();
        assert!(err.contains("float32"), "{err}");
    }
}
