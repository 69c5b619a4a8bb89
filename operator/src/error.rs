//! The operator's one error type. `metric_label` gives each variant a stable label for the
//! `kan_operator_reconcile_errors_total` counter.

/// Everything that can go wrong while reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object lacks metadata the API server always sets (name, namespace, uid).
    #[error("{kind} object is missing metadata.{field}; it must come from the API server")]
    MissingMetadata {
        kind: &'static str,
        field: &'static str,
    },
    /// A rendered config document could not be serialised.
    #[error("rendering {what}: {message}")]
    Render { what: String, message: String },
    /// Leader election on the Lease failed.
    #[error("leader election on Lease {lease}: {message}")]
    LeaderElection { lease: String, message: String },
    /// Another instance took the Lease: this one stops writing and exits.
    #[error("lost leadership of Lease {lease}: another operator instance now writes")]
    LostLeadership { lease: String },
    /// An object this reconcile needs cannot be decoded by this version (a RecallGateway an
    /// experiment names, with a merge policy from a newer CRD).
    #[error(transparent)]
    Undecodable(#[from] crate::decode::Undecodable),
    /// The health/metrics server could not serve.
    #[error("serving health and metrics on {addr}: {message}")]
    Serve { addr: String, message: String },
}

impl Error {
    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "kube_conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 404 => "kube_not_found",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "kube_forbidden",
            Error::Kube(kube::Error::Api(_)) => "kube_api",
            Error::Kube(_) => "kube_client",
            Error::MissingMetadata { .. } => "missing_metadata",
            Error::Render { .. } => "render",
            Error::LeaderElection { .. } => "leader_election",
            Error::LostLeadership { .. } => "lost_leadership",
            Error::Undecodable(_) => "undecodable",
            Error::Serve { .. } => "serve",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        let status = kube::core::Status::failure("boom", "Reason").with_code(code);
        Error::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn api_errors_are_labelled_by_their_http_code() {
        assert_eq!(api_error(409).metric_label(), "kube_conflict");
        assert_eq!(api_error(404).metric_label(), "kube_not_found");
        assert_eq!(api_error(403).metric_label(), "kube_forbidden");
        assert_eq!(api_error(500).metric_label(), "kube_api");
    }

    #[test]
    fn non_api_errors_have_their_own_labels() {
        let e = Error::MissingMetadata {
            kind: "RecallQueue",
            field: "uid",
        };
        assert_eq!(e.metric_label(), "missing_metadata");
        assert!(e.to_string().contains("metadata.uid"));
        let e = Error::Render {
            what: "worker.yaml".into(),
            message: "x".into(),
        };
        assert_eq!(e.metric_label(), "render");
    }
}
