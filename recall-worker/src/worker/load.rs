//! A [`Loaded`] queue from a worker config: the bundle fetched and verified, its index, user
//! encoder, strategy and signal store; and the items added after training applied to it.

use std::sync::Arc;

use kan_api::bundle::files;
use kan_api::crd::{RecallQueueSpec, Strategy as StrategySpec};
use kan_api::wire::NewItem;
use kan_api::worker_config::WorkerConfig;

use super::index_build::build_index;
use super::options::WorkerOptions;
use crate::bundle::{self, Bundle};
use crate::error::{Error, Result};
use crate::index::VectorIndex;
use crate::signals::Signals;
use crate::strategy::{self, Parts, Strategy, stable_hash};

/// Everything one queue serves from.
#[derive(Clone)]
pub struct Loaded {
    pub name: String,
    pub spec: RecallQueueSpec,
    pub strategy: Arc<dyn Strategy>,
    pub bundle: Option<Arc<Bundle>>,
    pub index: Option<Arc<dyn VectorIndex>>,
    /// Bundle version, or a hash of the pinned list for operational queues.
    pub version: String,
    /// The online signal store this queue reads, if any.
    pub signals: Option<Arc<Signals>>,
}

/// A freshly loaded queue serving the items added so far, where its strategy can; items the new
/// bundle now has, or whose tags (or vector dimension) it lacks, are skipped (and logged).
pub(super) fn with_added(loaded: Loaded, added: &[NewItem]) -> Loaded {
    if added.is_empty() {
        return loaded;
    }
    match loaded.strategy.with_added(added, false) {
        Some(Ok(strategy)) => {
            let served = strategy.added().len();
            if served < added.len() {
                tracing::warn!(
                    queue = %loaded.name,
                    skipped = added.len() - served,
                    "some added items are in the new bundle, or have none of its tags or a vector of its dimension"
                );
            }
            Loaded { strategy, ..loaded }
        }
        Some(Err(e)) => {
            tracing::error!(queue = %loaded.name, error = %e, "added items not served");
            loaded
        }
        None => loaded,
    }
}

/// The signal store of a queue: the process's shared one, else the Redis of `spec.signals`
/// (URL and password from the environment the operator fills from the Secret, else the spec).
fn signals_of(spec: &RecallQueueSpec, options: &WorkerOptions) -> Result<Option<Arc<Signals>>> {
    if let Some(store) = &options.signals {
        return Ok(Some(Arc::new(Signals::new(store.clone()))));
    }
    let Some(redis) = spec.signals.as_ref().map(|s| &s.redis) else {
        return Ok(None);
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = env(kan_api::crd::SIGNALS_REDIS_URL_ENV)
        .or_else(|| redis.url.clone())
        .ok_or_else(|| {
            Error::Config(format!(
                "spec.signals.redis has no url and {} is not set",
                kan_api::crd::SIGNALS_REDIS_URL_ENV
            ))
        })?;
    let mut options = kan_signals::RedisOptions::new(url);
    options.password = env(kan_api::crd::SIGNALS_REDIS_PASSWORD_ENV);
    let store = kan_signals::RedisStore::new(options)
        .map_err(|e| Error::Config(format!("spec.signals.redis: {e}")))?;
    Ok(Some(Arc::new(Signals::new(Arc::new(store)))))
}

/// Loads everything a queue needs. Blocking work (hashing, reading tensors, building HNSW) runs
/// off the async threads.
pub(super) async fn build(config: &WorkerConfig, options: &WorkerOptions) -> Result<Loaded> {
    let spec = config.spec.clone();
    let strategy_type = spec.strategy.type_();
    if let StrategySpec::Operational { operational } = &spec.strategy {
        let strategy = strategy::build(
            &spec.strategy,
            None,
            Parts {
                index: None,
                encoder: None,
            },
        )?;
        let json = serde_json::to_vec(operational).map_err(|e| Error::Config(e.to_string()))?;
        let version = format!("spec-{:016x}", stable_hash(&json));
        return Ok(Loaded {
            name: config.name.clone(),
            spec,
            strategy,
            bundle: None,
            index: None,
            version,
            signals: None,
        });
    }
    let bundle_ref = spec
        .bundle
        .clone()
        .ok_or_else(|| Error::Config(format!("strategy {strategy_type} needs spec.bundle.uri")))?;
    let mut remote = options.bundle_store.clone();
    if let Some(endpoint) = &bundle_ref.endpoint {
        remote.endpoint = Some(endpoint.clone());
    }
    let dir = bundle::fetch(&bundle_ref.uri, &remote, options.bundle_cache.as_deref()).await?;
    let signals = signals_of(&spec, options)?;
    let options = options.clone();
    let name = config.name.clone();
    tokio::task::spawn_blocking(move || {
        let bundle = Arc::new(Bundle::load(&dir, bundle_ref.sha256.as_deref())?);
        if bundle.manifest.strategy != strategy_type {
            return Err(Error::Bundle(format!(
                "the bundle is for strategy {}, but queue {name} runs {strategy_type}",
                bundle.manifest.strategy
            )));
        }
        let index = if strategy_type.uses_vector_index() {
            Some(build_index(&spec, &bundle, &options)?)
        } else {
            None
        };
        let encoder = if strategy::uses_encoder(strategy_type) {
            Some(load_encoder(&spec, &bundle, &options)?)
        } else {
            None
        };
        let strategy = strategy::build(
            &spec.strategy,
            Some(bundle.clone()),
            Parts {
                index: index.clone(),
                encoder,
            },
        )?;
        let version = bundle.version().to_string();
        Ok(Loaded {
            name,
            spec,
            strategy,
            bundle: Some(bundle),
            index,
            version,
            signals,
        })
    })
    .await
    .map_err(|e| Error::Bundle(format!("loading task failed: {e}")))?
}

fn load_encoder(
    spec: &RecallQueueSpec,
    bundle: &Bundle,
    options: &WorkerOptions,
) -> Result<kan_onnx::UserEncoder> {
    let settings = match &spec.strategy {
        StrategySpec::Dssm { dssm } => dssm,
        StrategySpec::Gat { gat } => gat,
        StrategySpec::Spectral { spectral } => spectral,
        StrategySpec::Sequence { sequence } => sequence,
        other => {
            return Err(Error::Config(format!(
                "strategy {} has no encoder",
                other.type_()
            )));
        }
    };
    let env = kan_onnx::environment(options.ort_dylib.as_deref())?;
    let dim = bundle.manifest.dim.unwrap_or(0) as usize;
    Ok(kan_onnx::UserEncoder::load(
        env,
        kan_onnx::Model::File(&bundle.require(files::MODEL)?),
        bundle.manifest.encoder_history_length(settings),
        dim,
        settings.inference_threads.max(1) as usize,
        options.session_pool,
    )?)
}
