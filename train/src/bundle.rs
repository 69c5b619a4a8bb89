//! Bundle directories in the layout of `kan_api::bundle::files`, written and read through
//! kan-core's bundle codec (the one the worker loads them with); this module adds the clock.

pub use kan_core::bundle::{
    BundleDir, BundleWriter, Csr, ManifestInfo, Tensor, TensorFile, parallel,
};

use crate::error::{Error, Result};

/// The current time as a manifest's `created_at` (RFC 3339).
pub fn created_now() -> Result<String> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::InvalidInput(format!("cannot format the current time: {e}")))
}

/// Opens and verifies a bundle; errors other than I/O name the bundle's directory, since
/// `kan eval` opens several.
pub fn open(dir: &std::path::Path) -> Result<BundleDir> {
    BundleDir::open(dir).map_err(|e| match e {
        kan_core::bundle::BundleError::Io { path, source } => Error::Io { path, source },
        other => Error::Bundle {
            dir: dir.to_path_buf(),
            problem: other.to_string(),
        },
    })
}
