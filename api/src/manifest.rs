//! Parsing of the YAML users write: multi-document files of RecallQueue, RecallGateway and
//! RecallExperiment objects (the same files `kubectl apply` takes), and worker configs.

use serde::Deserialize;

use crate::crd::{RecallExperiment, RecallGateway, RecallQueue};
use crate::worker_config::WorkerConfig;

/// A Kan object read from YAML.
#[derive(Clone, Debug)]
pub enum KanObject {
    Queue(RecallQueue),
    Gateway(RecallGateway),
    Experiment(RecallExperiment),
}

impl KanObject {
    pub fn kind(&self) -> &'static str {
        match self {
            KanObject::Queue(_) => "RecallQueue",
            KanObject::Gateway(_) => "RecallGateway",
            KanObject::Experiment(_) => "RecallExperiment",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            KanObject::Queue(o) => &o.metadata,
            KanObject::Gateway(o) => &o.metadata,
            KanObject::Experiment(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// Why a YAML document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {doc}: not valid YAML: {message}")]
    Yaml { doc: usize, message: String },
    #[error("document {doc}: apiVersion must be kan.dev/v1alpha1, found '{found}'")]
    ApiVersion { doc: usize, found: String },
    #[error(
        "document {doc}: unknown kind '{found}': expected RecallQueue, RecallGateway or RecallExperiment"
    )]
    Kind { doc: usize, found: String },
    #[error("document {doc} ({kind}): {message}")]
    Shape {
        doc: usize,
        kind: String,
        message: String,
    },
    #[error("document {doc} ({kind}): metadata.name is required")]
    MissingName { doc: usize, kind: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Parses every document of a YAML stream into Kan objects (empty documents are skipped).
/// Documents are numbered from 1 in errors.
pub fn parse_manifests(text: &str) -> Result<Vec<KanObject>, ManifestError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
            doc: 1,
            message: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (i, value) in docs.into_iter().enumerate() {
        let doc = i + 1;
        if value.is_null() {
            continue;
        }
        out.push(parse_object(doc, value)?);
    }
    Ok(out)
}

fn parse_object(doc: usize, value: serde_json::Value) -> Result<KanObject, ManifestError> {
    let header: Header =
        serde_json::from_value(value.clone()).map_err(|e| ManifestError::Yaml {
            doc,
            message: e.to_string(),
        })?;
    if header.api_version != format!("{}/{}", crate::GROUP, crate::VERSION) {
        return Err(ManifestError::ApiVersion {
            doc,
            found: header.api_version,
        });
    }
    let shape = |kind: &str, e: serde_json::Error| ManifestError::Shape {
        doc,
        kind: kind.to_string(),
        message: e.to_string(),
    };
    let object = match header.kind.as_str() {
        "RecallQueue" => {
            KanObject::Queue(serde_json::from_value(value).map_err(|e| shape("RecallQueue", e))?)
        }
        "RecallGateway" => KanObject::Gateway(
            serde_json::from_value(value).map_err(|e| shape("RecallGateway", e))?,
        ),
        "RecallExperiment" => KanObject::Experiment(
            serde_json::from_value(value).map_err(|e| shape("RecallExperiment", e))?,
        ),
        _ => {
            return Err(ManifestError::Kind {
                doc,
                found: header.kind,
            });
        }
    };
    if object.name().is_empty() {
        return Err(ManifestError::MissingName {
            doc,
            kind: object.kind().to_string(),
        });
    }
    Ok(object)
}

/// Reads a worker config: either `{name, spec}` or a RecallQueue manifest.
pub fn parse_worker_config(text: &str) -> Result<WorkerConfig, ManifestError> {
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| ManifestError::Yaml {
            doc: 1,
            message: e.to_string(),
        })?;
    if value.get("kind").is_some() {
        return match parse_object(1, value)? {
            KanObject::Queue(q) => Ok(WorkerConfig {
                name: q.metadata.name.clone().unwrap_or_default(),
                spec: q.spec,
            }),
            other => Err(ManifestError::Kind {
                doc: 1,
                found: other.kind().to_string(),
            }),
        };
    }
    serde_json::from_value(value).map_err(|e| ManifestError::Shape {
        doc: 1,
        kind: "WorkerConfig".to_string(),
        message: e.to_string(),
    })
}
