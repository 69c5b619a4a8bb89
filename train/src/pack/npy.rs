//! Reading a 2-D float matrix from a NumPy `.npy` file (format versions 1–3, C order,
//! little-endian `f4` or `f8`), as `numpy.save` writes it. Anything else is refused by name.

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Rows, columns and the values (row-major, as f32) of a `.npy` matrix.
pub fn read_matrix(path: &Path, bytes: &[u8]) -> Result<(usize, usize, Vec<f32>)> {
    let bad = |problem: String| Error::InvalidInput(format!("{}: {problem}", path.display()));
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("the .npy header is truncated".into()))?;
    let header =
        std::str::from_utf8(header).map_err(|_| bad("the .npy header is not text".into()))?;
    let descr =
        quoted_value(header, "descr").ok_or_else(|| bad("the .npy header has no descr".into()))?;
    if header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad(
            "the array is in Fortran order: save numpy.ascontiguousarray(vectors)".into(),
        ));
    }
    let shape = shape(header).ok_or_else(|| bad("the .npy header has no readable shape".into()))?;
    let [rows, cols] = shape[..] else {
        return Err(bad(format!(
            "the array has shape {shape:?}; item vectors are a 2-D [items, dim] matrix"
        )));
    };
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(bad(format!(
                "dtype '{other}' is not supported: save little-endian float32 or float64 (vectors.astype('<f4'))"
            )));
        }
    };
    let data = &bytes[start + header_len..];
    let want = rows * cols * width;
    if data.len() != want {
        return Err(bad(format!(
            "holds {} data bytes, but shape ({rows}, {cols}) of {descr} needs {want}: the file is truncated or padded",
            data.len()
        )));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((rows, cols, values))
}

/// The raw text after `'key':` in the header dict.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

fn quoted_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let rest = header_value(header, key)?;
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    Some(&rest[..rest.find(quote)?])
}

fn shape(header: &str) -> Option<Vec<usize>> {
    let rest = header_value(header, "shape")?.strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// A `.npy` file's bytes for a row-major matrix (tests and examples).
#[cfg(test)]
pub fn write_matrix(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn float32_and_float64_matrices_read_back_row_major() {
        let p = Path::new("v.npy");
        let bytes = write_matrix("<f4", "(2, 3)", &f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(
            read_matrix(p, &bytes).unwrap(),
            (2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        let f64s: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = write_matrix("<f8", "(1, 2)", &f64s);
        assert_eq!(read_matrix(p, &bytes).unwrap(), (1, 2, vec![0.5, -2.0]));
    }

    #[test]
    fn wrong_rank_dtype_order_and_truncation_are_named() {
        let p = Path::new("v.npy");
        let err = |b: Vec<u8>| read_matrix(p, &b).unwrap_err().to_string();
        let e = err(write_matrix("<f4", "(3,)", &f32s(&[1.0, 2.0, 3.0])));
        assert!(e.contains("v.npy: the array has shape [3]"), "{e}");
        let e = err(write_matrix("<i8", "(1, 1)", &[0; 8]));
        assert!(e.contains("dtype '<i8' is not supported"), "{e}");
        let e = err(write_matrix("<f4", "(2, 2)", &f32s(&[1.0, 2.0, 3.0])));
        assert!(
            e.contains("holds 12 data bytes") && e.contains("needs 16"),
            "{e}"
        );
        let mut fortran = write_matrix("<f4", "(1, 1)", &f32s(&[1.0]));
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(err(fortran).contains("Fortran order"));
        assert!(err(b"PK\x03\x04 zip".to_vec()).contains("not a .npy file"));
    }
}
