//! The reconcilers: thin I/O around the pure builders and status functions. Each one reads
//! what it needs, applies the children whose desired state changed (server-side apply, one
//! field manager), writes status only when it differs, and publishes events on transitions.

pub mod apply;
pub mod experiment;
pub mod gateway;
pub mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use serde::de::DeserializeOwned;

use crate::children::BuildConfig;
use crate::decode;
use crate::error::Error;
use crate::status::conditions::status_of;

/// How often an object is reconciled without any watch event, to heal missed events.
pub const RESYNC: Duration = Duration::from_secs(300);
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub build: BuildConfig,
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// By object uid: the resourceVersion the last status write was computed from.
    status_bases: Mutex<HashMap<String, String>>,
    /// Polls experiments' online readouts from their gateways.
    pub readout: crate::readout::Poller,
}

impl Context {
    pub fn new(client: kube::Client, build: BuildConfig, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            build,
            failures: Mutex::new(HashMap::new()),
            status_bases: Mutex::new(HashMap::new()),
            readout: crate::readout::Poller::new(crate::readout::ReadoutConfig::default()),
        }
    }

    /// This context, polling readouts as `cfg` says.
    pub fn with_readout(mut self, cfg: crate::readout::ReadoutConfig) -> Self {
        self.readout = crate::readout::Poller::new(cfg);
        self
    }

    /// True when this process already wrote the status of `obj` computed from this very
    /// version: the cache has not caught up with that write yet, and writing again from the
    /// stale status would only repeat it (with fresh transition times). Skipping is safe: the
    /// watch event of that write brings a reconcile from the fresh version.
    pub(crate) fn status_already_written_from<K: Resource>(&self, obj: &K) -> bool {
        let (Some(uid), Some(version)) = (&obj.meta().uid, &obj.meta().resource_version) else {
            return false;
        };
        self.status_bases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(uid)
            .is_some_and(|base| base == version)
    }

    /// Records that the status of `obj` was written from its current version.
    pub(crate) fn status_written_from<K: Resource>(&self, obj: &K) {
        if let (Some(uid), Some(version)) = (&obj.meta().uid, &obj.meta().resource_version) {
            self.status_bases
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(uid.clone(), version.clone());
        }
    }

    /// Exponential backoff per object: 2s, 4s, 8s... capped at 5 minutes.
    fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        BACKOFF_BASE
            .saturating_mul(1 << (*n - 1).min(16))
            .min(BACKOFF_MAX)
    }

    fn reset_backoff(&self, key: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(key);
    }

    /// Publishes an event about `obj`; failures are logged, never fatal (events are advisory).
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.publish_about(&obj.object_ref(&()), type_, reason, note)
            .await
    }

    /// [`Context::publish`] about an object known by reference only.
    pub async fn publish_about(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%err, reason, "publishing event failed");
        }
    }

    /// Publishes an event when the `Ready` condition flips, first appears, or changes its
    /// reason (a gateway that was not ready for lack of pods and now refuses its routing must
    /// say so).
    pub async fn publish_ready_transition<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        let ready = kan_api::crd::condition_type::READY;
        let reason = |conditions: &[Condition]| {
            conditions
                .iter()
                .find(|c| c.type_ == ready)
                .map(|c| c.reason.clone())
        };
        if status_of(before, ready) == status_of(after, ready) && reason(before) == reason(after) {
            return;
        }
        let Some(condition) = after.iter().find(|c| c.type_ == ready) else {
            return;
        };
        let type_ = if condition.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        self.publish(obj, type_, &condition.reason, condition.message.clone())
            .await;
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The current time as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn object_key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Wraps one reconcile: records count and duration, publishes a warning event on failure and
/// resets the object's backoff on success.
pub(crate) async fn instrumented<K, F>(
    kind: &'static str,
    obj: &K,
    ctx: &Context,
    run: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: Future<Output = Result<Action, Error>>,
{
    let start = Instant::now();
    let result = run.await;
    metrics::counter!(crate::metrics::RECONCILIATIONS, "kind" => kind).increment(1);
    metrics::histogram!(crate::metrics::RECONCILE_SECONDS, "kind" => kind)
        .record(start.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.reset_backoff(&object_key(obj)),
        Err(err) => {
            ctx.publish(obj, EventType::Warning, "ReconcileFailed", err.to_string())
                .await
        }
    }
    result
}

/// Reconciles `obj` as a `K` with `reconcile` when it decodes. One that this version cannot
/// decode is counted, logged in one bounded line and announced by a Warning event, then left
/// alone until it changes; every other object of its kind reconciles normally.
pub(crate) async fn reconcile_decoded<K, F, Fut>(
    obj: Arc<DynamicObject>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    match decode::decode::<K>(&obj) {
        Ok(decoded) => reconcile(Arc::new(decoded), ctx).await,
        Err(undecodable) => {
            decode::report(&undecodable);
            let reference = obj.object_ref(&ApiResource::erase::<K>(&()));
            ctx.publish_about(
                &reference,
                EventType::Warning,
                "Undecodable",
                undecodable.to_string(),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

/// Error policy of every controller: count the error by kind and label, and retry with
/// exponential backoff per object.
pub fn error_policy<K: Resource>(
    kind: &'static str,
) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |obj, err, ctx| {
        metrics::counter!(crate::metrics::RECONCILE_ERRORS, "kind" => kind, "error" => err.metric_label())
            .increment(1);
        let delay = ctx.next_backoff(&object_key(obj.as_ref()));
        tracing::warn!(kind, object = %object_key(obj.as_ref()), error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
        Action::requeue(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo".to_string(), 2), "h");
        assert_eq!(truncate("abc".to_string(), 10), "abc");
    }
}
