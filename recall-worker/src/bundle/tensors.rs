//! Reading safetensors files of a bundle into plain vectors, with shape checks that name the
//! file and tensor at fault.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// One safetensors file, read into memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(path, "", &format!("not a safetensors file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn view(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| bad(&self.path, "", &format!("not a safetensors file: {e}")))
    }

    /// True when the file holds a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.view().is_ok_and(|v| v.tensor(name).is_ok())
    }

    /// Names of every tensor in the file.
    pub fn names(&self) -> Vec<String> {
        self.view()
            .map(|v| v.names().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// An f32 tensor with its shape.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.read_as(
            name,
            Dtype::F32,
            |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            4,
        )
    }

    /// An i64 tensor with its shape.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        self.read_as(
            name,
            Dtype::I64,
            |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            8,
        )
    }

    /// A 1-d f32 tensor.
    pub fn f32_1d(&self, name: &str) -> Result<Vec<f32>> {
        let (shape, data) = self.f32(name)?;
        self.expect_rank(name, &shape, 1)?;
        Ok(data)
    }

    /// A 1-d i64 tensor.
    pub fn i64_1d(&self, name: &str) -> Result<Vec<i64>> {
        let (shape, data) = self.i64(name)?;
        self.expect_rank(name, &shape, 1)?;
        Ok(data)
    }

    /// A CSR structure: `offsets` (rows + 1) plus a column tensor `column` of i64 indices below
    /// `column_bound`.
    pub fn csr(&self, rows: usize, column: &str, column_bound: usize) -> Result<Csr> {
        let offsets = self.i64_1d("offsets")?;
        let columns = self.i64_1d(column)?;
        Csr::new(offsets, columns, rows, column_bound).map_err(|m| bad(&self.path, column, &m))
    }

    /// The error for a tensor that breaks the bundle contract.
    pub fn error(&self, name: &str, message: &str) -> Error {
        bad(&self.path, name, message)
    }

    fn expect_rank(&self, name: &str, shape: &[usize], rank: usize) -> Result<()> {
        if shape.len() == rank {
            Ok(())
        } else {
            Err(bad(
                &self.path,
                name,
                &format!("expected a {rank}-d tensor, found shape {shape:?}"),
            ))
        }
    }

    fn read_as<T>(
        &self,
        name: &str,
        dtype: Dtype,
        decode: fn(&[u8]) -> T,
        width: usize,
    ) -> Result<(Vec<usize>, Vec<T>)> {
        let st = self.view()?;
        let view = st
            .tensor(name)
            .map_err(|_| bad(&self.path, name, "tensor is missing"))?;
        if view.dtype() != dtype {
            return Err(bad(
                &self.path,
                name,
                &format!("expected dtype {dtype:?}, found {:?}", view.dtype()),
            ));
        }
        let data = view.data().chunks_exact(width).map(decode).collect();
        Ok((view.shape().to_vec(), data))
    }
}

fn bad(path: &Path, tensor: &str, message: &str) -> Error {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if tensor.is_empty() {
        Error::Bundle(format!("{file}: {message}"))
    } else {
        Error::Bundle(format!("{file}: tensor '{tensor}': {message}"))
    }
}

/// Compressed sparse rows: row `r` owns `columns[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    offsets: Vec<usize>,
    columns: Vec<u32>,
}

impl Csr {
    /// Checks the structure: `rows + 1` non-decreasing offsets from 0 to `columns.len()`, every
    /// column below `column_bound`.
    pub fn new(
        offsets: Vec<i64>,
        columns: Vec<i64>,
        rows: usize,
        column_bound: usize,
    ) -> Result<Self, String> {
        if offsets.len() != rows + 1 {
            return Err(format!(
                "offsets has {} entries, expected rows + 1 = {}",
                offsets.len(),
                rows + 1
            ));
        }
        if offsets.first() != Some(&0) || offsets.last().copied() != Some(columns.len() as i64) {
            return Err(format!(
                "offsets must run from 0 to {} (the number of values)",
                columns.len()
            ));
        }
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err("offsets must not decrease".to_string());
        }
        if let Some(c) = columns
            .iter()
            .find(|&&c| c < 0 || c as usize >= column_bound)
        {
            return Err(format!("index {c} is out of range 0..{column_bound}"));
        }
        Ok(Self {
            offsets: offsets.into_iter().map(|o| o as usize).collect(),
            columns: columns.into_iter().map(|c| c as u32).collect(),
        })
    }

    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.columns.len()
    }

    /// The value range of a row (empty for rows out of range).
    pub fn range(&self, row: usize) -> std::ops::Range<usize> {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// The rows as the core's kernels read them.
    pub fn view(&self) -> kan_core::CsrRef<'_> {
        kan_core::CsrRef {
            offsets: &self.offsets,
            columns: &self.columns,
        }
    }

    /// The columns of a row.
    pub fn row(&self, row: usize) -> &[u32] {
        &self.columns[self.range(row)]
    }
}

/// Checks a value tensor runs parallel to a CSR's columns.
pub fn parallel<T>(file: &TensorFile, name: &str, values: Vec<T>, csr: &Csr) -> Result<Vec<T>> {
    if values.len() == csr.nnz() {
        Ok(values)
    } else {
        Err(file.error(
            name,
            &format!(
                "has {} values, expected {} (one per CSR entry)",
                values.len(),
                csr.nnz()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_rejects_offsets_that_do_not_cover_the_values() {
        assert!(Csr::new(vec![0, 1], vec![0, 1], 1, 5).is_err());
        assert!(Csr::new(vec![0, 2, 1], vec![0], 2, 5).is_err());
        assert!(
            Csr::new(vec![0, 1], vec![7], 1, 5)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn csr_rows_slice_their_columns() {
        let csr = Csr::new(vec![0, 2, 2, 3], vec![4, 1, 0], 3, 5).unwrap();
        assert_eq!(csr.row(0), &[4, 1]);
        assert!(csr.row(1).is_empty());
        assert_eq!(csr.row(2), &[0]);
        assert!(csr.row(9).is_empty());
    }
}
