//! The crate's one error type.

use kan_api::ValidationErrors;

/// Everything that can go wrong in the gateway outside a single queue call (a failed queue call
/// is not an error: it is a [`kan_api::wire::QueueStatus`] in the response).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read routing config {path}: {source}")]
    ReadConfig {
        path: String,
        source: std::io::Error,
    },
    #[error("routing config {path} is not valid YAML/JSON for a RoutingConfig: {message}")]
    ParseConfig { path: String, message: String },
    #[error("invalid routing config: {0}")]
    InvalidConfig(#[from] ValidationErrors),
    #[error("cannot watch {path} for changes: {source}")]
    Watch { path: String, source: notify::Error },
    #[error("cannot open exposure log {path}: {source}")]
    ExposureLog {
        path: String,
        source: std::io::Error,
    },
    /// The lift table named by `filters.propensity.table` cannot be used.
    #[error("filters.propensity.table {path}: {message}")]
    PropensityTable { path: String, message: String },
    #[error("required queue '{queue}' failed ({status}): {detail}")]
    RequiredQueueFailed {
        queue: String,
        status: &'static str,
        detail: String,
    },
    #[error("cannot encode the response: {0}")]
    EncodeResponse(#[source] serde_json::Error),
    /// The gateway started with a config it refused and no valid one has arrived since.
    #[error("no valid routing config loaded yet: {reason}")]
    NotConfigured { reason: String },
}

impl Error {
    /// One stable label per variant, for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadConfig { .. } => "read_config",
            Error::ParseConfig { .. } => "parse_config",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Watch { .. } => "watch",
            Error::ExposureLog { .. } => "exposure_log",
            Error::PropensityTable { .. } => "propensity_table",
            Error::RequiredQueueFailed { .. } => "required_queue_failed",
            Error::EncodeResponse(_) => "encode_response",
            Error::NotConfigured { .. } => "not_configured",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_queue_failure_has_a_stable_metric_label_and_names_the_queue() {
        let e = Error::RequiredQueueFailed {
            queue: "dssm".into(),
            status: "timeout",
            detail: "after 50 ms".into(),
        };
        assert_eq!(e.metric_label(), "required_queue_failed");
        assert_eq!(
            e.to_string(),
            "required queue 'dssm' failed (timeout): after 50 ms"
        );
    }
}
