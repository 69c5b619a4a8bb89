//! RecallExperiment → status only (its routing lives in the gateway's ConfigMap).

use std::sync::Arc;

use kan_api::crd::{RecallExperiment, RecallGateway};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;

use super::apply::write_status;
use super::{Context, RESYNC, instrumented, now};
use crate::allocation::allocate;
use crate::error::Result;
use crate::names::Parent;
use crate::status::experiment::experiment_status;

pub const KIND: &str = "RecallExperiment";

/// Reconciles one RecallExperiment.
#[tracing::instrument(skip_all, fields(kind = KIND, name = experiment.metadata.name.as_deref(), namespace = experiment.metadata.namespace.as_deref()))]
pub async fn reconcile(experiment: Arc<RecallExperiment>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(KIND, experiment.as_ref(), &ctx, run(&experiment, &ctx)).await
}

async fn run(experiment: &RecallExperiment, ctx: &Context) -> Result<Action> {
    let parent = Parent::of(experiment)?;
    let ns = parent.namespace.as_str();
    let gateway = &experiment.spec.gateway;
    let gateway_exists = Api::<RecallGateway>::namespaced(ctx.client.clone(), ns)
        .get_opt(gateway)
        .await?
        .is_some();
    let api: Api<RecallExperiment> = Api::namespaced(ctx.client.clone(), ns);
    let siblings: Vec<RecallExperiment> = api
        .list(&ListParams::default())
        .await?
        .items
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

    let status = experiment_status(experiment, gateway_exists, &allocation, &now());
    let before = experiment
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if write_status(&api, &parent.name, experiment.status.as_ref(), &status).await? {
        ctx.publish_ready_transition(experiment, before, &status.conditions)
            .await;
    }
    Ok(Action::requeue(RESYNC))
}
