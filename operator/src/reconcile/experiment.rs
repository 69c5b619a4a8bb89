//! RecallExperiment → status only (its routing lives in the gateway's ConfigMap): whether its
//! gateway accepts it, serves it (ready pods) and can route every queue of its arms.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kan_api::crd::condition_type::READOUT_CURRENT;
use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue};
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::write_status;
use super::{Context, RESYNC, instrumented, now};
use crate::allocation::allocate;
use crate::decode;
use crate::error::Result;
use crate::names::Parent;
use crate::routing::experiment_refusal;
use crate::status::experiment::{ServingPath, experiment_status, unserved_arm_queues};
use crate::status::readout::{Observation, with_readout};

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
    let observation = if ctx.status_already_written_from(experiment) {
        // This status will not be written (see below): keep the poll for a fresh version.
        Observation::NotDue
    } else {
        ctx.readout
            .observe(&ctx.client, uid, ns, gateway, gateway_spec)
            .await
    };
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
        publish_readout_transition(ctx, experiment, before, &status.conditions).await;
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

/// A Warning event when the readout stops being current (with the reason), a Normal one when it
/// is current again; nothing while it stays as it was.
async fn publish_readout_transition(
    ctx: &Context,
    experiment: &RecallExperiment,
    before: &[Condition],
    after: &[Condition],
) {
    let find = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == READOUT_CURRENT)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let Some((status, reason, message)) = find(after) else {
        return;
    };
    let was = find(before);
    if was
        .as_ref()
        .is_some_and(|(s, r, _)| *s == status && *r == reason)
        || (was.is_none() && status == "True")
    {
        return;
    }
    let type_ = if status == "True" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let reason = match (status.as_str(), reason.starts_with("Readout")) {
        ("True", _) => "ReadoutCurrent".to_string(),
        (_, true) => reason,
        (_, false) => format!("Readout{reason}"),
    };
    ctx.publish(experiment, type_, &reason, message).await;
}
