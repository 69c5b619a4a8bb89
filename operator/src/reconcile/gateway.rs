//! RecallGateway → routing ConfigMap, Deployment, Service; status from the Deployment and
//! the routing.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue};
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::{ensure, ensure_current, write_status};
use super::{Context, RESYNC, instrumented, now};
use crate::allocation::allocate;
use crate::children::{config_map, deployment, service};
use crate::decode;
use crate::error::Result;
use crate::names::{Parent, ROUTING_CONFIG_KEY, routing_config_map_name};
use crate::routing::gateway_routing;
use crate::status::gateway::gateway_status;
use crate::status::queue::WorkerObservation;

pub const KIND: &str = "RecallGateway";

/// Reconciles one RecallGateway.
#[tracing::instrument(skip_all, fields(kind = KIND, name = gateway.metadata.name.as_deref(), namespace = gateway.metadata.namespace.as_deref()))]
pub async fn reconcile(gateway: Arc<RecallGateway>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(KIND, gateway.as_ref(), &ctx, run(&gateway, &ctx)).await
}

/// Reconciles one RecallGateway as the controller watches it: a dynamic object, decoded here (see
/// [`super::reconcile_decoded`]).
pub async fn reconcile_dynamic(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    super::reconcile_decoded::<RecallGateway, _, _>(obj, ctx, reconcile).await
}

async fn run(gateway: &RecallGateway, ctx: &Context) -> Result<Action> {
    let parent = Parent::of(gateway)?;
    let client = ctx.client.clone();
    let ns = parent.namespace.as_str();

    // Objects this version cannot decode are skipped (and reported), never fatal to the list.
    let queues = decode::list::<RecallQueue>(&client, ns).await?;
    let experiments: Vec<RecallExperiment> = decode::list::<RecallExperiment>(&client, ns)
        .await?
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
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let live_routing = config_maps
        .get_opt(&routing_config_map_name(&parent.name))
        .await?;
    let previous = live_routing.as_ref().and_then(config_map::served_routing);
    let routing = gateway_routing(
        &parent.name,
        ns,
        &gateway.spec,
        &queues,
        &pairs,
        previous.as_ref(),
    );

    // The whole routing (queues, weights, experiment splits) is one ConfigMap document, so an
    // edit replaces the old split in one update. A routing the gateway would refuse is never
    // written: the last good one keeps serving and the status says why.
    let mut changed = Vec::new();
    let holds = |cm: &ConfigMap, text: &str| {
        cm.data
            .as_ref()
            .and_then(|d| d.get(ROUTING_CONFIG_KEY))
            .map(String::as_str)
            == Some(text)
    };
    // The hash of what the ConfigMap actually holds, for the status.
    let served_hash = match &routing.invalid {
        Some(invalid) => {
            tracing::warn!(%invalid, "rendered routing would be refused by the gateway; not written");
            previous.map(|p| p.content_hash())
        }
        None => {
            let rendered = config_map::render_routing_config(&routing.config)?;
            let applied = ensure_current(
                &config_maps,
                config_map::routing_config_map(&parent, &rendered),
                // A hand-edited routing.yaml is put back.
                |live| holds(live, &rendered),
            )
            .await?;
            if applied.written {
                changed.push("ConfigMap");
            }
            if holds(&applied.object, &rendered) {
                Some(routing.config.content_hash())
            } else {
                config_map::served_routing(&applied.object).map(|r| r.content_hash())
            }
        }
    };
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
    let status = gateway_status(gateway, &pods, &routing, served_hash, &now());
    let gateways: Api<RecallGateway> = Api::namespaced(client, ns);
    if !ctx.status_already_written_from(gateway)
        && write_status(&gateways, &parent.name, gateway.status.as_ref(), &status).await?
    {
        ctx.status_written_from(gateway);
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
