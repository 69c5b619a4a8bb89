//! Wires the three controllers: what each watches and which changes re-trigger which object.
//!
//! ```text
//! RecallQueue  ──owns──> ConfigMap, Deployment, Service, HPA, PDB
//! RecallGateway ─owns──> ConfigMap, Deployment, Service
//!      ^  watches RecallQueue (any queue of its namespace: readiness changes routing)
//!      ^  watches RecallExperiment (spec.gateway)
//! RecallExperiment
//!      ^  watches RecallExperiment (siblings on the same gateway: conflicts are mutual)
//!      ^  watches RecallGateway (spec.gateway appears, disappears, or its pods turn ready)
//!      ^  watches RecallQueue (an arm's queue turns ready or goes away)
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::decode;
use crate::error::Error;
use crate::names::{Component, MANAGED_BY, MANAGED_BY_LABEL};
use crate::reconcile::{self, Context, error_policy};
use crate::server::Health;

/// An `Api` over all namespaces, or over one.
fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Only the operator's own children of one component: smaller caches than watching every
/// ConfigMap and Deployment in the cluster.
fn children(component: Component) -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY},app.kubernetes.io/component={}",
        component.as_str()
    ))
}

/// Runs the three controllers over `namespace` (all namespaces when `None`) until `shutdown`
/// resolves; in-flight reconciles finish first.
pub async fn run<S>(ctx: Arc<Context>, namespace: Option<String>, health: Arc<Health>, shutdown: S)
where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let wc = watcher::Config::default().any_semantic();
    // Kan's own kinds are watched as dynamic objects and decoded one by one (`decode`): an
    // object this version cannot decode (a strategy or merge policy from a newer CRD) is
    // skipped and reported, not a failure of its whole kind's watch.
    let queue_resource = ApiResource::erase::<RecallQueue>(&());
    let gateway_resource = ApiResource::erase::<RecallGateway>(&());
    let experiment_resource = ApiResource::erase::<RecallExperiment>(&());
    let dynamic_queues = || decode::dynamic_api::<RecallQueue>(&client, ns);
    let dynamic_gateways = || decode::dynamic_api::<RecallGateway>(&client, ns);
    let dynamic_experiments = || decode::dynamic_api::<RecallExperiment>(&client, ns);

    let queues = Controller::new_with(dynamic_queues(), wc.clone(), queue_resource.clone())
        .owns(api::<ConfigMap>(&client, ns), children(Component::Worker))
        .owns(api::<Deployment>(&client, ns), children(Component::Worker))
        .owns(api::<Service>(&client, ns), children(Component::Worker))
        .owns(
            api::<HorizontalPodAutoscaler>(&client, ns),
            children(Component::Worker),
        )
        .owns(
            api::<PodDisruptionBudget>(&client, ns),
            children(Component::Worker),
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            reconcile::queue::reconcile_dynamic,
            error_policy(reconcile::queue::KIND),
            ctx.clone(),
        );

    let gateways = Controller::new_with(dynamic_gateways(), wc.clone(), gateway_resource.clone());
    let gateway_store = gateways.store();
    let gateways = gateways
        .owns(api::<ConfigMap>(&client, ns), children(Component::Gateway))
        .owns(api::<Deployment>(&client, ns), children(Component::Gateway))
        .owns(api::<Service>(&client, ns), children(Component::Gateway))
        .watches_with(dynamic_queues(), queue_resource.clone(), wc.clone(), {
            let gateway_resource = gateway_resource.clone();
            move |queue| {
                // Gateways are few; any queue change re-renders every gateway of its
                // namespace (arm queues of experiments count too, so matching on
                // spec.queues is not enough).
                in_namespace(&gateway_store, &gateway_resource, queue.namespace())
            }
        })
        .watches_with(
            dynamic_experiments(),
            experiment_resource.clone(),
            wc.clone(),
            {
                let gateway_resource = gateway_resource.clone();
                move |experiment| {
                    // Read from the raw object: an experiment this version cannot decode still
                    // re-renders its gateway, which then leaves it out.
                    let gateway = spec_gateway(&experiment)?;
                    let gateway = ObjectRef::new_with(&gateway, gateway_resource.clone());
                    Some(match experiment.namespace() {
                        Some(ns) => gateway.within(&ns),
                        None => gateway,
                    })
                }
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            reconcile::gateway::reconcile_dynamic,
            error_policy(reconcile::gateway::KIND),
            ctx.clone(),
        );

    let experiments = Controller::new_with(
        dynamic_experiments(),
        wc.clone(),
        experiment_resource.clone(),
    );
    let experiment_store = experiments.store();
    let by_gateway = (experiment_store.clone(), experiment_resource.clone());
    let by_queue = (experiment_store.clone(), experiment_resource.clone());
    let by_sibling = (experiment_store, experiment_resource.clone());
    let experiments = experiments
        .watches_with(
            dynamic_experiments(),
            experiment_resource,
            wc.clone(),
            move |changed| match spec_gateway(&changed) {
                Some(gateway) => {
                    siblings(&by_sibling.0, &by_sibling.1, changed.namespace(), &gateway)
                }
                None => Vec::new(),
            },
        )
        .watches_with(
            dynamic_gateways(),
            gateway_resource,
            wc.clone(),
            move |gateway| {
                siblings(
                    &by_gateway.0,
                    &by_gateway.1,
                    gateway.namespace(),
                    &gateway.name_any(),
                )
            },
        )
        // An arm's queue turning (not) Ready changes whether the experiment is served.
        .watches_with(dynamic_queues(), queue_resource, wc, move |queue| {
            in_namespace(&by_queue.0, &by_queue.1, queue.namespace())
        })
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile::experiment::reconcile_dynamic,
            error_policy(reconcile::experiment::KIND),
            ctx,
        );

    futures::join!(
        drain(queues, &health),
        drain(gateways, &health),
        drain(experiments, &health)
    );
}

/// `spec.gateway` of a raw RecallExperiment.
fn spec_gateway(experiment: &DynamicObject) -> Option<String> {
    experiment.data["spec"]["gateway"]
        .as_str()
        .map(str::to_string)
}

/// Every object of `store` in `namespace`.
fn in_namespace(
    store: &Store<DynamicObject>,
    resource: &ApiResource,
    namespace: Option<String>,
) -> Vec<ObjectRef<DynamicObject>> {
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == namespace)
        .map(|o| ObjectRef::from_obj_with(o.as_ref(), resource.clone()))
        .collect()
}

/// The experiments of `store` in `namespace` on `gateway`.
fn siblings(
    store: &Store<DynamicObject>,
    resource: &ApiResource,
    namespace: Option<String>,
    gateway: &str,
) -> Vec<ObjectRef<DynamicObject>> {
    store
        .state()
        .into_iter()
        .filter(|e| e.namespace() == namespace && spec_gateway(e).as_deref() == Some(gateway))
        .map(|e| ObjectRef::from_obj_with(e.as_ref(), resource.clone()))
        .collect()
}

/// Consumes a controller's result stream, logging what is not already counted and keeping
/// `health` informed of watches that keep failing.
async fn drain<K, S, E>(stream: S, health: &Health)
where
    K: Resource + Debug,
    K::DynamicType: Debug,
    S: futures::Stream<Item = Result<(ObjectRef<K>, Action), ControllerError<Error, E>>>,
    E: std::error::Error + 'static,
{
    stream
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => {
                    health.progressed();
                    tracing::debug!(%object, "reconciled")
                }
                // Reconcile errors were counted and logged by error_policy; the watches work.
                Err(ControllerError::ReconcilerFailed(..)) => health.progressed(),
                // A trigger for an object deleted meanwhile (every experiment deletion makes
                // one through the sibling watch): expected, nothing to do.
                Err(ControllerError::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "object gone before its reconcile")
                }
                Err(ControllerError::QueueError(err)) => {
                    let failures = health.watch_failed();
                    metrics::counter!(crate::metrics::WATCH_ERRORS).increment(1);
                    // The error names the request, never a response body.
                    let message = err.to_string();
                    let message: String = message.chars().take(300).collect();
                    tracing::warn!(error = %message, failures, "controller watch error");
                }
                Err(err) => tracing::warn!(error = %err, "controller error"),
            }
        })
        .await;
}
