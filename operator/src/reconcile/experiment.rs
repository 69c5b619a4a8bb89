//! RecallExperiment → status only (its routing lives in the gateway's ConfigMap): whether its
//! gateway accepts it, serves it (ready pods) and can route every queue of its arms.

use std::sync::Arc;
use std::time::Duration;

use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue};
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;

use super::apply::write_status;
use super::{Context, RESYNC, instrumented, now};
use crate::allocation::allocate;
use crate::decode;
use crate::error::Result;
use crate::names::Parent;
use crate::routing::experiment_refusal;
use crate::status::experiment::{ServingPath, experiment_status, unserved_arm_queues};
use crate::status::readout::with_readout;

pub const KIND: &str = "RecallExperiment";

/// Reconciles one RecallExperiment.
#[tracing::instrument(skip_all, fields(kind = KIND, name = experiment.metadata.name.as_deref(), namespace = experiment.metadata.namespace.as_deref()))]
pub async fn reconcile(experiment: Arc<RecallExperiment>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(KIND, experiment.as_ref(), &ctx, run(&experiment, &ctx)).await
}

/// Reconciles one RecallExperiment as the controller watches it: a dynamic object, decoded here (see
/// [`super::reconcile_decoded`]).
pub async fn reconcile_dynamic(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    super::reconcile_decoded::<RecallExperiment, _, _>(obj, ctx, reconcile).await
}

async fn run(experiment: &RecallExperiment, ctx: &Context) -> Result<Action> {
    let parent = Parent::of(experiment)?;
    let ns = parent.namespace.as_str();
    let gateway = &experiment.spec.gateway;
    let gateway_object = decode::get::<RecallGateway>(&ctx.client, ns, gateway).await?;
    let serving = match &gateway_object {
        None => ServingPath::default(),
        Some(g) => {
            let queues = decode::list::<RecallQueue>(&ctx.client, ns).await?;
            ServingPath {
                gateway_ready_pods: Some(g.status.as_ref().map_or(0, |s| s.ready_replicas)),
                refused: experiment_refusal(gateway, &g.spec, &parent.name, &experiment.spec),
                unserved: unserved_arm_queues(&experiment.spec, &g.spec, ns, &queues),
            }
        }
    };
    let api: Api<RecallExperiment> = Api::namespaced(ctx.client.clone(), ns);
    let siblings: Vec<RecallExperiment> = decode::list::<RecallExperiment>(&ctx.client, ns)
        .await?
        .into_iter()
        .filter(|e| &e.spec.gateway == gateway)
        .collect();
    let mut refs: Vec<&RecallExperiment> = siblings.iter().collect();
    // The watch may deliver this experiment before a list shows it: decide with it included.
    if !refs
        .iter()
        .any(|e| e.metadata.name == experiment.metadata.name)
    {
        refs.push(experiment);
    }
    let allocation = allocate(&refs).remove(&parent.name).unwrap_or_default();

    let now = now();
    let status = experiment_status(experiment, &serving, &allocation, &now);
    // The readout never fails the reconcile: a gateway that does not answer becomes a
    // condition, and the last figures stay.
    let uid = experiment.metadata.uid.as_deref().unwrap_or_default();
    let gateway_spec = gateway_object.as_ref().map(|g| &g.spec);
    let observation = ctx
        .readout
        .observe(&ctx.client, uid, ns, gateway, gateway_spec)
        .await;
    let status = with_readout(status, experiment, &observation, &now);
    let before = experiment
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !ctx.status_already_written_from(experiment)
        && write_status(&api, &parent.name, experiment.status.as_ref(), &status).await?
    {
        ctx.status_written_from(experiment);
        ctx.publish_ready_transition(experiment, before, &status.conditions)
            .await;
    }
    // A gateway that serves a readout is polled every period even when nothing else changes.
    let period = ctx
        .readout
        .period()
        .filter(|_| crate::readout::not_served(gateway, gateway_spec).is_none());
    Ok(Action::requeue(period.map_or(RESYNC, |p| {
        p.clamp(Duration::from_secs(1), RESYNC)
    })))
}
