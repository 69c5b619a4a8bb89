//! RecallGateway → routing ConfigMap, Deployment, Service; status from the Deployment and
//! the routing.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::{ensure, write_status};
use super::{Context, RESYNC, instrumented, now};
use crate::allocation::allocate;
use crate::children::{config_map, deployment, service};
use crate::error::Result;
use crate::names::Parent;
use crate::routing::gateway_routing;
use crate::status::gateway::gateway_status;
use crate::status::queue::WorkerObservation;

pub const KIND: &str = "RecallGateway";

/// Reconciles one RecallGateway.
#[tracing::instrument(skip_all, fields(kind = KIND, name = gateway.metadata.name.as_deref(), namespace = gateway.metadata.namespace.as_deref()))]
pub async fn reconcile(gateway: Arc<RecallGateway>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(KIND, gateway.as_ref(), &ctx, run(&gateway, &ctx)).await
}

async fn run(gateway: &RecallGateway, ctx: &Context) -> Result<Action> {
    let parent = Parent::of(gateway)?;
    let client = ctx.client.clone();
    let ns = parent.namespace.as_str();

    let queues = Api::<RecallQueue>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let experiments: Vec<RecallExperiment> =
        Api::<RecallExperiment>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.spec.gateway == parent.name)
            .collect();
    let refs: Vec<&RecallExperiment> = experiments.iter().collect();
    let allocations = allocate(&refs);
    let pairs: Vec<_> = experiments
        .iter()
        .filter_map(|e| {
            allocations
                .get(e.metadata.name.as_deref().unwrap_or_default())
                .map(|a| (e, a))
        })
        .collect();
    let routing = gateway_routing(&parent.name, ns, &gateway.spec, &queues, &pairs);

    // The whole routing (queues, weights, experiment splits) is one ConfigMap document, so an
    // edit replaces the old split in one update.
    let rendered = config_map::render_routing_config(&routing.config)?;
    let mut changed = Vec::new();
    if ensure(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        config_map::routing_config_map(&parent, &rendered),
    )
    .await?
    .written
    {
        changed.push("ConfigMap");
    }
    let deployment = ensure(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        deployment::gateway_deployment(&parent, &gateway.spec, &ctx.build),
    )
    .await?;
    if deployment.written {
        changed.push("Deployment");
    }
    if ensure(
        &Api::<Service>::namespaced(client.clone(), ns),
        service::gateway_service(&parent),
    )
    .await?
    .written
    {
        changed.push("Service");
    }
    if !changed.is_empty() {
        tracing::info!(children = ?changed, routing_hash = %routing.config.content_hash(), "applied");
        let note = format!(
            "applied {} (routing {})",
            changed.join(", "),
            routing.config.content_hash()
        );
        ctx.publish(gateway, EventType::Normal, "Applied", note)
            .await;
    }

    let pods = WorkerObservation::of(Some(&deployment.object), gateway.spec.replicas);
    let status = gateway_status(gateway, &pods, &routing, &now());
    let gateways: Api<RecallGateway> = Api::namespaced(client, ns);
    if write_status(&gateways, &parent.name, gateway.status.as_ref(), &status).await? {
        let before = gateway
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        ctx.publish_ready_transition(gateway, before, &status.conditions)
            .await;
    }
    Ok(Action::requeue(RESYNC))
}
