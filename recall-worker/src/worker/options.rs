//! The process-level settings of a worker, which the queue spec does not carry.

use std::path::PathBuf;
use std::sync::Arc;

use crate::bundle;
use crate::index::EXACT_SCAN_MAX_ITEMS;
use crate::index::hnsw::HnswParams;

/// Process-level settings that are not part of the queue spec.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Where remote bundles are downloaded and HNSW graphs built from bundles are saved, so a
    /// restart loads the graph instead of rebuilding it.
    pub bundle_cache: Option<PathBuf>,
    /// Object store settings layered over the environment (`bundle.endpoint` from the spec
    /// overrides the endpoint here); empty in a pod, where the environment says it all.
    pub bundle_store: bundle::RemoteOptions,
    /// ONNX Runtime library; `ORT_DYLIB_PATH` when unset.
    pub ort_dylib: Option<PathBuf>,
    /// ONNX sessions per model (concurrent inferences).
    pub session_pool: usize,
    /// Embedded index: catalogues up to this size are scanned exactly, larger ones use HNSW.
    pub exact_max_items: usize,
    /// Graph parameters when the queue spec sets no `index.hnsw`.
    pub hnsw: HnswParams,
    /// The signal store every queue reads, whatever its spec says (`kan up` shares one with its
    /// gateway); when unset a queue reads the Redis of its `spec.signals`, if any.
    pub signals: Option<Arc<dyn kan_signals::SignalStore>>,
    /// Where items added after training (`POST /v1/items`) are kept across restarts; without
    /// one they live until the process ends.
    pub state_dir: Option<PathBuf>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            bundle_cache: None,
            bundle_store: bundle::RemoteOptions::default(),
            ort_dylib: None,
            session_pool: 2,
            exact_max_items: EXACT_SCAN_MAX_ITEMS,
            hnsw: HnswParams::default(),
            signals: None,
            state_dir: None,
        }
    }
}
