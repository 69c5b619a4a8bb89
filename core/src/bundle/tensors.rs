//! Safetensors files of a bundle: the one encoder, and the one reader with dtype, rank, shape
//! and CSR checks whose errors name the file and the tensor at fault. Bundles hold f32 and i64
//! tensors only.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{BundleError, Result};
use crate::CsrRef;

/// An owned tensor: its shape and row-major data.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

impl Tensor {
    /// A 1-d i64 tensor.
    pub fn i64(data: Vec<i64>) -> Self {
        Tensor::I64(vec![data.len()], data)
    }

    /// A 1-d f32 tensor.
    pub fn f32(data: Vec<f32>) -> Self {
        Tensor::F32(vec![data.len()], data)
    }

    /// A row-major `[rows, cols]` f32 matrix.
    pub fn matrix(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        Tensor::F32(vec![rows, cols], data)
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(shape, _) | Tensor::I64(shape, _) => shape,
        }
    }

    fn len(&self) -> usize {
        match self {
            Tensor::F32(_, d) => d.len(),
            Tensor::I64(_, d) => d.len(),
        }
    }

    fn dtype_and_bytes(&self) -> (Dtype, Vec<u8>) {
        match self {
            Tensor::F32(_, d) => (Dtype::F32, d.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Tensor::I64(_, d) => (Dtype::I64, d.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

/// The safetensors bytes of named tensors; `file` names the file in errors (a shape that does
/// not match its data).
pub fn encode_tensors<N: AsRef<str>>(file: &str, tensors: &[(N, Tensor)]) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let name = name.as_ref();
        if t.shape().iter().product::<usize>() != t.len() {
            return Err(BundleError::tensor(
                file,
                name,
                format!("shape {:?} does not hold {} values", t.shape(), t.len()),
            ));
        }
        let (dtype, bytes) = t.dtype_and_bytes();
        raw.push((name, dtype, t.shape().to_vec(), bytes));
    }
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.to_string(), v))
                .map_err(|e| BundleError::tensor(file, *name, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None)
        .map_err(|e| BundleError::file(file, format!("cannot encode safetensors: {e}")))
}

/// One safetensors file in memory. Tensors are decoded on request, so a large file is held
/// once plus the tensor being read.
pub struct TensorFile {
    file: String,
    bytes: Vec<u8>,
}

/// The file and its size, not its bytes.
impl std::fmt::Debug for TensorFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorFile")
            .field("file", &self.file)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl TensorFile {
    /// Reads and checks a file; errors name it by its file name (the bundle's name for it).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| BundleError::io(path, e))?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::decode(file, bytes)
    }

    /// Checks bytes that `file` (for messages) holds.
    pub fn decode(file: impl Into<String>, bytes: Vec<u8>) -> Result<Self> {
        let out = Self {
            file: file.into(),
            bytes,
        };
        out.view()?;
        Ok(out)
    }

    fn view(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| BundleError::file(&self.file, format!("not a safetensors file: {e}")))
    }

    /// The file's name as errors give it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// True when the file holds a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.view().is_ok_and(|v| v.tensor(name).is_ok())
    }

    /// Names of every tensor in the file, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .view()
            .map(|v| v.names().into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The error for a tensor of this file that breaks the bundle contract.
    pub fn error(&self, tensor: &str, problem: impl Into<String>) -> BundleError {
        BundleError::tensor(&self.file, tensor, problem)
    }

    /// A tensor of either dtype.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let st = self.view()?;
        let view = st
            .tensor(name)
            .map_err(|_| self.error(name, "tensor is missing"))?;
        let shape = view.shape().to_vec();
        match view.dtype() {
            Dtype::F32 => Ok(Tensor::F32(shape, decode(view.data(), f32::from_le_bytes))),
            Dtype::I64 => Ok(Tensor::I64(shape, decode(view.data(), i64::from_le_bytes))),
            other => Err(self.error(
                name,
                format!("has dtype {other:?}; bundles hold F32 and I64 tensors"),
            )),
        }
    }

    /// An f32 tensor with its shape.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        match self.get(name)? {
            Tensor::F32(shape, data) => Ok((shape, data)),
            Tensor::I64(..) => Err(self.error(name, "expected dtype F32, found I64")),
        }
    }

    /// An i64 tensor with its shape.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        match self.get(name)? {
            Tensor::I64(shape, data) => Ok((shape, data)),
            Tensor::F32(..) => Err(self.error(name, "expected dtype I64, found F32")),
        }
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

    /// A 2-d f32 tensor as `(rows, cols, row-major data)`.
    pub fn f32_2d(&self, name: &str) -> Result<(usize, usize, Vec<f32>)> {
        let (shape, data) = self.f32(name)?;
        self.expect_rank(name, &shape, 2)?;
        Ok((shape[0], shape[1], data))
    }

    /// A CSR structure: `offsets` (rows + 1) plus a column tensor `column` of i64 indices below
    /// `column_bound`.
    pub fn csr(&self, rows: usize, column: &str, column_bound: usize) -> Result<Csr> {
        let offsets = self.i64_1d("offsets")?;
        let columns = self.i64_1d(column)?;
        Csr::new(offsets, columns, rows, column_bound).map_err(|m| self.error(column, m))
    }

    fn expect_rank(&self, name: &str, shape: &[usize], rank: usize) -> Result<()> {
        if shape.len() == rank {
            Ok(())
        } else {
            Err(self.error(
                name,
                format!("expected a {rank}-d tensor, found shape {shape:?}"),
            ))
        }
    }
}

/// Little-endian values of width `N` (safetensors' byte order).
fn decode<T, const N: usize>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            from_le(b)
        })
        .collect()
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
        let bound = column_bound.min(u32::MAX as usize + 1) as i64;
        if let Some(c) = columns.iter().find(|&&c| c < 0 || c >= bound) {
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
        self.view().range(row)
    }

    /// The rows as the kernels read them.
    pub fn view(&self) -> CsrRef<'_> {
        CsrRef {
            offsets: &self.offsets,
            columns: &self.columns,
        }
    }

    /// The columns of a row.
    pub fn row(&self, row: usize) -> &[u32] {
        &self.columns[self.range(row)]
    }

    /// `(offsets, columns)`, for callers that keep them in their own structures.
    pub fn into_parts(self) -> (Vec<usize>, Vec<u32>) {
        (self.offsets, self.columns)
    }
}

/// CSR offsets for rows of the given lengths.
pub fn offsets(lengths: impl IntoIterator<Item = usize>) -> Vec<i64> {
    let mut out = vec![0i64];
    for l in lengths {
        out.push(out.last().copied().unwrap_or(0) + l as i64);
    }
    out
}

/// Checks a value tensor runs parallel to a CSR's columns.
pub fn parallel<T>(file: &TensorFile, name: &str, values: Vec<T>, csr: &Csr) -> Result<Vec<T>> {
    if values.len() == csr.nnz() {
        Ok(values)
    } else {
        Err(file.error(
            name,
            format!(
                "has {} values, expected {} (one per CSR entry)",
                values.len(),
                csr.nnz()
            ),
        ))
    }
}

/// A `user_history` tensor file: the `items` CSR over `users` rows, indices below `items`,
/// and the `timestamps` parallel to it (zeros when the file has none).
pub fn user_history(file: &TensorFile, users: usize, items: usize) -> Result<(Csr, Vec<i64>)> {
    let csr = file.csr(users, "items", items)?;
    let timestamps = if file.has("timestamps") {
        parallel(file, "timestamps", file.i64_1d("timestamps")?, &csr)?
    } else {
        vec![0; csr.nnz()]
    };
    Ok((csr, timestamps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tensors: &[(&str, Tensor)]) -> TensorFile {
        TensorFile::decode(
            "t.safetensors",
            encode_tensors("t.safetensors", tensors).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn f32_and_i64_tensors_round_trip_with_their_shapes() {
        let f = file(&[
            (
                "m",
                Tensor::matrix(2, 3, vec![1.0, -2.5, 0.0, 3.25, f32::MAX, 1e-30]),
            ),
            ("ids", Tensor::i64(vec![0, -7, i64::MAX])),
        ]);
        assert_eq!(f.names(), ["ids", "m"]);
        assert_eq!(
            f.f32_2d("m").unwrap(),
            (2, 3, vec![1.0, -2.5, 0.0, 3.25, f32::MAX, 1e-30])
        );
        assert_eq!(f.i64_1d("ids").unwrap(), [0, -7, i64::MAX]);
        assert_eq!(f.get("ids").unwrap(), Tensor::i64(vec![0, -7, i64::MAX]));
    }

    #[test]
    fn a_wrong_dtype_names_the_file_and_tensor() {
        let f = file(&[("w", Tensor::f32(vec![1.0]))]);
        let err = f.i64("w").unwrap_err().to_string();
        assert_eq!(
            err,
            "t.safetensors: tensor 'w': expected dtype I64, found F32"
        );
    }

    #[test]
    fn a_wrong_rank_names_the_file_and_tensor() {
        let f = file(&[("v", Tensor::matrix(1, 2, vec![1.0, 2.0]))]);
        let err = f.f32_1d("v").unwrap_err().to_string();
        assert!(
            err.starts_with("t.safetensors: tensor 'v': expected a 1-d tensor"),
            "{err}"
        );
        let err = file(&[("v", Tensor::f32(vec![1.0]))])
            .f32_2d("v")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a 2-d tensor, found shape [1]"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_tensor_and_a_file_that_is_not_safetensors_are_named() {
        let err = file(&[]).f32("v").unwrap_err().to_string();
        assert_eq!(err, "t.safetensors: tensor 'v': tensor is missing");
        let err = TensorFile::decode("x.safetensors", b"nope".to_vec())
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("x.safetensors: not a safetensors file"),
            "{err}"
        );
    }

    #[test]
    fn a_shape_that_does_not_hold_the_data_is_refused_on_encode() {
        let err = encode_tensors(
            "t.safetensors",
            &[("m", Tensor::F32(vec![2, 2], vec![1.0]))],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.safetensors: tensor 'm': shape [2, 2]"),
            "{err}"
        );
    }

    #[test]
    fn csr_offsets_out_of_bounds_name_the_file_and_column_tensor() {
        let f = file(&[
            ("offsets", Tensor::i64(vec![0, 1, 5])),
            ("neighbours", Tensor::i64(vec![1, 0])),
        ]);
        let err = f.csr(2, "neighbours", 2).unwrap_err().to_string();
        assert_eq!(
            err,
            "t.safetensors: tensor 'neighbours': offsets must run from 0 to 2 (the number of values)"
        );
        let f = file(&[
            ("offsets", Tensor::i64(vec![0, 1, 2])),
            ("neighbours", Tensor::i64(vec![1, 9])),
        ]);
        let err = f.csr(2, "neighbours", 2).unwrap_err().to_string();
        assert!(
            err.ends_with("tensor 'neighbours': index 9 is out of range 0..2"),
            "{err}"
        );
        assert!(f.csr(3, "neighbours", 2).is_err(), "rows + 1 offsets");
    }

    #[test]
    fn csr_rejects_offsets_that_do_not_cover_the_values() {
        assert!(Csr::new(vec![0, 1], vec![0, 1], 1, 5).is_err());
        assert!(Csr::new(vec![0, 2, 1], vec![0], 2, 5).is_err());
        assert!(Csr::new(vec![0, 1], vec![-1], 1, 5).is_err());
    }

    #[test]
    fn csr_rows_slice_their_columns_and_values_must_run_parallel() {
        let f = file(&[
            ("offsets", Tensor::i64(offsets([2, 0, 1]))),
            ("items", Tensor::i64(vec![4, 1, 0])),
            ("w", Tensor::f32(vec![0.5, 0.25])),
        ]);
        let csr = f.csr(3, "items", 5).unwrap();
        assert_eq!(csr.row(0), &[4, 1]);
        assert!(csr.row(1).is_empty());
        assert_eq!(csr.row(2), &[0]);
        assert!(csr.row(9).is_empty());
        let err = parallel(&f, "w", f.f32_1d("w").unwrap(), &csr).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.safetensors: tensor 'w': has 2 values, expected 3 (one per CSR entry)"
        );
    }
}
