//! Loading a routing config and compiling it into what the request path reads.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use kan_api::routing::RoutingConfig;

use crate::error::{Error, Result};
use crate::exposure::ExposureLog;

/// Reads a routing config file (YAML, or JSON which is YAML too). Validation is separate.
pub fn load_config(path: &Path) -> Result<RoutingConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
        path: path.display().to_string(),
        source,
    })?;
    parse_config(&text, &path.display().to_string())
}

/// Parses a routing config document; `origin` names it in errors.
pub fn parse_config(text: &str, origin: &str) -> Result<RoutingConfig> {
    serde_saphyr::from_str(text).map_err(|e| Error::ParseConfig {
        path: origin.to_string(),
        message: e.to_string(),
    })
}

/// A validated config with everything the request path needs precomputed.
#[derive(Debug)]
pub struct Compiled {
    pub config: RoutingConfig,
    /// `/v1/recall` URL of every queue with an endpoint, parsed once here rather than on every
    /// call; an endpoint that does not parse fails that queue's calls with the parser's reason.
    pub urls: HashMap<String, std::result::Result<axum::http::Uri, String>>,
    pub blocklist: HashSet<String>,
    pub hash: String,
    pub exposure: Option<Arc<ExposureLog>>,
    /// The lift table of `filters.propensity`, read when the config loads.
    pub propensity: Option<Arc<crate::propensity::LoadedTable>>,
}

impl Compiled {
    /// What a gateway without a valid config holds: no queues, never validated, never served
    /// (recalls are refused before they read it).
    pub fn placeholder(gateway: &str) -> Self {
        let config = RoutingConfig {
            gateway: gateway.to_string(),
            endpoints: Default::default(),
            queues: Vec::new(),
            merge: Default::default(),
            filters: Default::default(),
            fallback: None,
            deadline_ms: kan_api::crd::DEFAULT_DEADLINE_MS,
            circuit_breaker: None,
            exposure_log: None,
            experiments: Vec::new(),
        };
        Self {
            urls: HashMap::new(),
            blocklist: HashSet::new(),
            hash: String::new(),
            exposure: None,
            propensity: None,
            config,
        }
    }

    /// Validates `config` and prepares it. The exposure log of `previous` is kept when the path
    /// did not change, so a reload neither reopens the file nor loses buffered records.
    pub fn new(config: RoutingConfig, previous: Option<&Compiled>) -> Result<Self> {
        kan_api::validate::routing_config(&config)?;
        let urls = config
            .endpoints
            .iter()
            .map(|(name, base)| {
                let url = format!("{}/v1/recall", base.trim_end_matches('/'));
                let parsed = url
                    .parse::<axum::http::Uri>()
                    .map_err(|e| format!("{url}: {e}"));
                (name.clone(), parsed)
            })
            .collect();
        let exposure = match &config.exposure_log {
            None => None,
            Some(path) => match previous
                .and_then(|p| p.exposure.as_ref())
                .filter(|e| e.path() == Path::new(path))
            {
                Some(same) => Some(same.clone()),
                None => Some(Arc::new(ExposureLog::open(Path::new(path))?)),
            },
        };
        let propensity = match &config.filters.propensity {
            None => None,
            Some(spec) => Some(crate::propensity::load_table(
                Path::new(&spec.table),
                previous.and_then(|p| p.propensity.as_ref()),
            )?),
        };
        Ok(Self {
            blocklist: config.filters.blocklist.iter().cloned().collect(),
            propensity,
            hash: config.content_hash(),
            urls,
            exposure,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "gateway: gw\nendpoints:\n  dssm: http://127.0.0.1:9001/\nqueues:\n  - name: dssm\n";

    #[test]
    fn a_minimal_yaml_config_loads_with_defaults_and_compiles_urls() {
        let config = parse_config(MINIMAL, "routing.yaml").expect("parse");
        assert_eq!(config.deadline_ms, 100);
        let compiled = Compiled::new(config, None).expect("valid");
        assert_eq!(
            compiled.urls["dssm"].as_ref().map(ToString::to_string),
            Ok("http://127.0.0.1:9001/v1/recall".to_string())
        );
        assert_eq!(compiled.hash.len(), 16);
    }

    #[test]
    fn an_unknown_field_is_a_parse_error_naming_the_file() {
        let err = parse_config(
            "gateway: gw\nqueues: []\nmerge_policy: rrf\n",
            "routing.yaml",
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("routing.yaml"), "{err}");
        assert!(err.to_string().contains("merge_policy"), "{err}");
    }

    #[test]
    fn an_invalid_config_is_rejected_with_the_field_at_fault() {
        let config = parse_config("gateway: gw\nqueues: []\n", "routing.yaml").expect("parse");
        let err = Compiled::new(config, None).expect_err("no queues");
        assert_eq!(err.metric_label(), "invalid_config");
        assert!(err.to_string().contains("queues"), "{err}");
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let err = load_config(Path::new("/no/such/routing.yaml")).expect_err("missing");
        assert!(err.to_string().contains("/no/such/routing.yaml"));
    }
}
