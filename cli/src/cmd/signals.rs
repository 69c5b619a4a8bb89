//! The flags of the online signal store, shared by `kan gateway` and `kan up`: where events go
//! (`POST /v1/events`) and how many batches may be in flight.

use std::sync::Arc;

use anyhow::Context;
use kan_gateway::GatewayHandle;
use kan_signals::{MemoryStore, RedisOptions, RedisStore, SignalStore};

#[derive(clap::Args, Debug, Clone)]
pub struct SignalsArgs {
    /// Redis of the online signal store (`redis://host:port[/db]`): `POST /v1/events` writes to
    /// it and queues with `spec.signals` read it. KAN_SIGNALS_REDIS_URL (from a Secret) wins
    /// over this flag, as it does in workers; the password comes from
    /// KAN_SIGNALS_REDIS_PASSWORD, never from a flag.
    #[arg(long = "signals-redis")]
    pub redis: Option<String>,
    /// Event batches being stored at once; more get 503 + Retry-After.
    #[arg(long, default_value_t = kan_gateway::events::DEFAULT_MAX_BATCHES_IN_FLIGHT)]
    pub max_event_batches: usize,
}

impl SignalsArgs {
    /// The Redis store when `--signals-redis` is set; else the in-process one when `embedded`
    /// (`kan up`), else none (the gateway then serves no `/v1/events`).
    pub fn store(&self, embedded: bool) -> anyhow::Result<Option<Arc<dyn SignalStore>>> {
        let from_env = std::env::var(kan_api::crd::SIGNALS_REDIS_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty());
        match from_env.as_ref().or(self.redis.as_ref()) {
            Some(url) => {
                let mut options = RedisOptions::new(url.clone());
                options.password = std::env::var(kan_api::crd::SIGNALS_REDIS_PASSWORD_ENV)
                    .ok()
                    .filter(|p| !p.is_empty());
                let store = RedisStore::new(options).context("--signals-redis")?;
                Ok(Some(Arc::new(store)))
            }
            None if embedded => Ok(Some(Arc::new(MemoryStore::new()))),
            None => Ok(None),
        }
    }

    /// `POST /v1/events` (its own admission bound) and `GET /v1/experiments/readout`.
    pub fn routes(&self, store: Arc<dyn SignalStore>, handle: GatewayHandle) -> axum::Router {
        let admission = kan_http::Admission::new(self.max_event_batches, "events");
        kan_gateway::events::events_router(store.clone(), admission)
            .merge(kan_gateway::events::readout_router(store, handle))
    }
}
