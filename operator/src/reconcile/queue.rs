//! RecallQueue → ConfigMap, Deployment, Service, optional HPA and PDB; status from the
//! Deployment.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kan_api::crd::RecallQueue;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::{ensure, remove_owned, write_status};
use super::{Context, RESYNC, instrumented, now};
use crate::children::{config_map, deployment, hpa, pdb, service};
use crate::error::Result;
use crate::names::{Parent, REPLICAS_HANDOVER_MANAGER};
use crate::status::queue::{WorkerObservation, default_wanted, queue_status};

pub const KIND: &str = "RecallQueue";

/// Reconciles one RecallQueue.
#[tracing::instrument(skip_all, fields(kind = KIND, name = queue.metadata.name.as_deref(), namespace = queue.metadata.namespace.as_deref()))]
pub async fn reconcile(queue: Arc<RecallQueue>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(KIND, queue.as_ref(), &ctx, run(&queue, &ctx)).await
}

/// Reconciles one RecallQueue as the controller watches it: a dynamic object, decoded here
/// (see [`super::reconcile_decoded`]).
pub async fn reconcile_dynamic(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    super::reconcile_decoded::<RecallQueue, _, _>(obj, ctx, reconcile).await
}

async fn run(queue: &RecallQueue, ctx: &Context) -> Result<Action> {
    let parent = Parent::of(queue)?;
    let client = ctx.client.clone();
    let ns = parent.namespace.as_str();
    let queues: Api<RecallQueue> = Api::namespaced(client.clone(), ns);

    // Specs that break the shared rules are not deployed (the CRD's CEL rules catch most of
    // them at admission; this covers clusters where validation was bypassed).
    if let Err(errors) = kan_api::validate::queue_spec(&queue.spec) {
        let status = queue_status(
            queue,
            &WorkerObservation::default(),
            Some(&errors.to_string()),
            &now(),
        );
        write_and_announce(&queues, queue, status, ctx).await?;
        return Ok(Action::requeue(RESYNC));
    }

    let rendered = config_map::render_worker_config(&parent.name, &queue.spec)?;
    let config_hash = config_map::worker_config_hash(&parent.name, &queue.spec)?;
    let mut changed = Vec::new();

    let cm = ensure(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        config_map::worker_config_map(&parent, &rendered),
    )
    .await?;
    if cm.written {
        changed.push("ConfigMap");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    if let Some(live) = deployments.get_opt(&parent.name).await?
        && let Some(replicas) = deployment::replicas_to_hand_over(&live, &queue.spec)
    {
        hand_over_replicas(&deployments, &parent.name, replicas).await?;
    }
    let deployment = ensure(
        &deployments,
        deployment::worker_deployment(&parent, &queue.spec, &config_hash, &ctx.build),
    )
    .await?;
    if deployment.written {
        changed.push("Deployment");
    }
    if ensure(
        &Api::<Service>::namespaced(client.clone(), ns),
        service::worker_service(&parent),
    )
    .await?
    .written
    {
        changed.push("Service");
    }

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let hpa_written = match hpa::worker_hpa(&parent, &queue.spec) {
        Some(desired) => ensure(&hpas, desired).await?.written,
        None => remove_owned(&hpas, &parent.name, &parent.owner.uid).await?,
    };
    if hpa_written {
        changed.push("HorizontalPodAutoscaler");
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, ns);
    let pdb_written = match pdb::worker_pdb(&parent, &queue.spec) {
        Some(desired) => ensure(&pdbs, desired).await?.written,
        None => remove_owned(&pdbs, &parent.name, &parent.owner.uid).await?,
    };
    if pdb_written {
        changed.push("PodDisruptionBudget");
    }
    if !changed.is_empty() {
        tracing::info!(children = ?changed, "applied");
        ctx.publish(
            queue,
            EventType::Normal,
            "Applied",
            format!("applied {}", changed.join(", ")),
        )
        .await;
    }

    let workers = WorkerObservation::of(Some(&deployment.object), default_wanted(queue));
    let status = queue_status(queue, &workers, None, &now());
    write_and_announce(&queues, queue, status, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

/// Makes [`REPLICAS_HANDOVER_MANAGER`] a co-owner of `spec.replicas` at its live value, so the
/// operator's next apply (which leaves the field out for the HPA) does not remove it and the
/// Deployment keeps its pods until the HPA writes its own count (taking the field over). The
/// procedure of the Kubernetes docs' "Transferring ownership" section: a conflict means the HPA
/// already owns the field, which is what we want.
async fn hand_over_replicas(api: &Api<Deployment>, name: &str, replicas: i32) -> Result<()> {
    let patch = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": { "replicas": replicas },
    });
    let params = PatchParams::apply(REPLICAS_HANDOVER_MANAGER);
    match api.patch(name, &params, &Patch::Apply(&patch)).await {
        Ok(_) => {
            tracing::info!(replicas, "replicas handed over to autoscaling");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_and_announce(
    api: &Api<RecallQueue>,
    queue: &RecallQueue,
    status: kan_api::crd::RecallQueueStatus,
    ctx: &Context,
) -> Result<()> {
    let name = queue.metadata.name.as_deref().unwrap_or_default();
    if ctx.status_already_written_from(queue) {
        return Ok(());
    }
    if write_status(api, name, queue.status.as_ref(), &status).await? {
        ctx.status_written_from(queue);
        let before = queue
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        ctx.publish_ready_transition(queue, before, &status.conditions)
            .await;
    }
    Ok(())
}
