//! The worker's config: a queue name and its RecallQueue spec.

use serde::{Deserialize, Serialize};

use crate::crd::RecallQueueSpec;

/// What `kan worker --config` reads. The operator renders it into the queue's ConfigMap; a
/// plain RecallQueue manifest is accepted too (see [`crate::manifest::parse_worker_config`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerConfig {
    /// Queue name, reported in responses and metrics.
    pub name: String,
    pub spec: RecallQueueSpec,
}
