//! Reconcile scenarios against an in-memory API server with real semantics
//! (`kube-fake-client`: resourceVersion, generation, status subresource, server-side apply
//! bookkeeping, ownerReference cascade on delete; no watch).
//!
//! kube-fake-client is built on kube 4, the operator on kube 5: a tower `service_fn` forwards
//! each kube-5 HTTP request to the fake's `send` and returns its response. The fake only needs
//! kube-4 twins of the custom resources with the same group/version/kind to route them.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kan_api::crd::{RecallExperiment, RecallGateway, RecallQueue, condition_type};
use kan_api::routing::RoutingConfig;
use kan_operator::BuildConfig;
use kan_operator::reconcile::{self, Context};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// kube-4 twins of the custom resources: the fake only needs their GVK and plural.
mod twins {
    use super::Cow;
    use k8s_openapi_028::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    macro_rules! twin {
        ($ty:ident, $kind:literal, $plural:literal) => {
            #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub struct $ty {
                pub api_version: String,
                pub kind: String,
                #[serde(default)]
                pub metadata: ObjectMeta,
            }
            impl Default for $ty {
                fn default() -> Self {
                    Self {
                        api_version: "kan.dev/v1alpha1".into(),
                        kind: $kind.into(),
                        metadata: ObjectMeta::default(),
                    }
                }
            }
            impl kube4::Resource for $ty {
                type DynamicType = ();
                type Scope = k8s_openapi_028::NamespaceResourceScope;
                fn kind(_: &()) -> Cow<'_, str> {
                    $kind.into()
                }
                fn group(_: &()) -> Cow<'_, str> {
                    "kan.dev".into()
                }
                fn version(_: &()) -> Cow<'_, str> {
                    "v1alpha1".into()
                }
                fn plural(_: &()) -> Cow<'_, str> {
                    $plural.into()
                }
                fn meta(&self) -> &ObjectMeta {
                    &self.metadata
                }
                fn meta_mut(&mut self) -> &mut ObjectMeta {
                    &mut self.metadata
                }
            }
        };
    }
    twin!(RecallQueue, "RecallQueue", "recallqueues");
    twin!(RecallGateway, "RecallGateway", "recallgateways");
    twin!(RecallExperiment, "RecallExperiment", "recallexperiments");
}

/// One request the operator made: method, path with query, content type.
#[derive(Clone, Debug)]
struct Call {
    method: http::Method,
    uri: String,
    content_type: Option<String>,
}

impl Call {
    fn is_write(&self) -> bool {
        self.method != http::Method::GET
    }
}

/// The fake API server, reached through a kube-5 client, with a log of every request.
struct Harness {
    client: kube::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

const NS: &str = "recsys";

impl Harness {
    async fn new() -> Self {
        let fake = kube_fake_client::ClientBuilder::new()
            .with_resource::<twins::RecallQueue>()
            .with_resource::<twins::RecallGateway>()
            .with_resource::<twins::RecallExperiment>()
            .with_status_subresource::<twins::RecallQueue>()
            .with_status_subresource::<twins::RecallGateway>()
            .with_status_subresource::<twins::RecallExperiment>()
            .with_status_subresource::<k8s_openapi_028::api::apps::v1::Deployment>()
            .with_return_managed_fields()
            .build()
            .await
            .expect("fake API server");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let bridge = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let fake = fake.clone();
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body: Bytes = body.collect().await?.to_bytes();
                log.lock().expect("log").push(Call {
                    method: parts.method.clone(),
                    uri: parts.uri.to_string(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                });
                let response = fake
                    .send(http::Request::from_parts(
                        parts,
                        kube4::client::Body::from(body),
                    ))
                    .await?;
                let (parts, body) = response.into_parts();
                let body: Bytes = body.collect().await?.to_bytes();
                Ok::<_, BoxError>(http::Response::from_parts(
                    parts,
                    kube::client::Body::from(body),
                ))
            }
        });
        Self {
            client: kube::Client::new(bridge, NS),
            calls,
        }
    }

    fn ctx(&self) -> Arc<Context> {
        Arc::new(Context::new(
            self.client.clone(),
            BuildConfig::default(),
            Some("test".into()),
        ))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    fn clear(&self) {
        self.calls.lock().expect("log").clear();
    }

    fn writes(&self) -> Vec<Call> {
        self.calls
            .lock()
            .expect("log")
            .iter()
            .filter(|c| c.is_write())
            .cloned()
            .collect()
    }

    /// Writes other than events (events are advisory and counted separately).
    fn object_writes(&self) -> Vec<String> {
        self.writes()
            .into_iter()
            .filter(|c| !c.uri.contains("/events"))
            .map(|c| {
                format!(
                    "{} {}",
                    c.method,
                    c.uri.split('?').next().unwrap_or_default()
                )
            })
            .collect()
    }

    async fn create<K>(&self, yaml: &str) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let obj: K = serde_saphyr::from_str(yaml).expect("test object parses");
        self.api::<K>()
            .create(&PostParams::default(), &obj)
            .await
            .expect("created")
    }

    async fn get<K>(&self, name: &str) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"))
    }

    async fn exists<K>(&self, name: &str) -> bool
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .get_opt(name)
            .await
            .expect("get_opt")
            .is_some()
    }

    async fn reconcile_queue(&self, ctx: &Arc<Context>, name: &str) {
        let q = self.get::<RecallQueue>(name).await;
        reconcile::queue::reconcile(Arc::new(q), ctx.clone())
            .await
            .expect("queue reconciles");
    }

    async fn reconcile_gateway(&self, ctx: &Arc<Context>, name: &str) {
        let g = self.get::<RecallGateway>(name).await;
        reconcile::gateway::reconcile(Arc::new(g), ctx.clone())
            .await
            .expect("gateway reconciles");
    }

    async fn reconcile_experiment(&self, ctx: &Arc<Context>, name: &str) {
        let e = self.get::<RecallExperiment>(name).await;
        reconcile::experiment::reconcile(Arc::new(e), ctx.clone())
            .await
            .expect("experiment reconciles");
    }

    /// Plays the Deployment controller: all wanted pods updated and ready.
    async fn deployment_becomes_ready(&self, name: &str) {
        let d = self.get::<Deployment>(name).await;
        let replicas = d.spec.replicas.unwrap_or(1);
        let status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(replicas),
            ready_replicas: Some(replicas),
            updated_replicas: Some(replicas),
            available_replicas: Some(replicas),
            ..Default::default()
        };
        self.api::<Deployment>()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .expect("deployment status patched");
    }
}

fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (&'a str, &'a str) {
    let c = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} missing"));
    (c.status.as_str(), c.reason.as_str())
}

fn routing(cm: &ConfigMap) -> RoutingConfig {
    let text = &cm.data.as_ref().expect("data")["routing.yaml"];
    serde_saphyr::from_str(text).expect("routing.yaml parses")
}

const DSSM: &str = r#"
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: dssm}
spec:
  strategy: {type: dssm}
  bundle: {uri: "s3://bundles/dssm/v1"}
  index:
    type: qdrant
    qdrant: {url: "http://qdrant:6334", collection: dssm, apiKeySecret: {name: qdrant, key: api-key}}
  autoscaling: {minReplicas: 2, maxReplicas: 6}
  resources: {requests: {cpu: 500m}}
"#;

fn popular(name: &str) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {{name: {name}}}\nspec:\n  strategy: {{type: popular}}\n  bundle: {{uri: /bundles/popular}}\n"
    )
}

const FEED: &str = r#"
apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: feed}
spec:
  queues: [{name: dssm, weight: 1}, {name: popular, weight: 1}]
"#;

/// Queues `dssm` and `popular` with ready workers, and gateway `feed` routing both with a ready
/// pod: the serving path an experiment needs to be Live.
async fn serving_feed(h: &Harness, ctx: &Arc<Context>) {
    h.create::<RecallQueue>(DSSM).await;
    h.create::<RecallQueue>(&popular("popular")).await;
    h.create::<RecallGateway>(FEED).await;
    for q in ["dssm", "popular"] {
        h.reconcile_queue(ctx, q).await;
        h.deployment_becomes_ready(q).await;
        h.reconcile_queue(ctx, q).await;
    }
    h.reconcile_gateway(ctx, "feed").await;
    h.deployment_becomes_ready("feed-gateway").await;
    h.reconcile_gateway(ctx, "feed").await;
}

fn experiment(name: &str, start: i32, traffic: i32) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: {name}}}\nspec:\n  gateway: feed\n  bucketStart: {start}\n  traffic: {traffic}\n  arms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50}}]\n"
    )
}

#[tokio::test]
async fn creating_a_queue_renders_owned_children_and_a_status() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    let queue: RecallQueue = h.create(DSSM).await;
    h.clear();
    h.reconcile_queue(&ctx, "dssm").await;

    let uid = queue.metadata.uid.clone().expect("uid");
    let owned_by_queue =
        |owners: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            let owners = owners.as_ref().expect("owner references");
            owners.len() == 1
                && owners[0].uid == uid
                && owners[0].kind == "RecallQueue"
                && owners[0].controller == Some(true)
        };
    assert!(owned_by_queue(
        &h.get::<ConfigMap>("dssm-worker")
            .await
            .metadata
            .owner_references
    ));
    let deployment = h.get::<Deployment>("dssm").await;
    assert!(owned_by_queue(&deployment.metadata.owner_references));
    assert!(owned_by_queue(
        &h.get::<Service>("dssm").await.metadata.owner_references
    ));
    assert!(owned_by_queue(
        &h.get::<HorizontalPodAutoscaler>("dssm")
            .await
            .metadata
            .owner_references
    ));
    assert!(owned_by_queue(
        &h.get::<PodDisruptionBudget>("dssm")
            .await
            .metadata
            .owner_references
    ));

    // Every child write is a server-side apply under one field manager.
    let child_writes: Vec<Call> = h
        .writes()
        .into_iter()
        .filter(|c| !c.uri.contains("/events") && !c.uri.contains("/status"))
        .collect();
    assert_eq!(child_writes.len(), 5, "{child_writes:?}");
    for call in &child_writes {
        assert_eq!(call.method, http::Method::PATCH);
        assert!(
            call.uri.contains("fieldManager=kan-operator") && call.uri.contains("force=true"),
            "{}",
            call.uri
        );
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
    }

    let status = h
        .get::<RecallQueue>("dssm")
        .await
        .status
        .expect("status written");
    assert_eq!(status.observed_generation, queue.metadata.generation);
    assert_eq!(
        condition(&status.conditions, condition_type::READY),
        ("False", "WorkersNotReady")
    );
    assert_eq!(
        status.endpoint.as_deref(),
        Some("http://dssm.recsys.svc:8080")
    );
    assert!(
        h.writes().iter().any(|c| c.uri.contains("/events")),
        "an event announces the applied children"
    );
}

#[tokio::test]
async fn a_second_reconcile_with_no_change_issues_no_writes() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.reconcile_queue(&ctx, "dssm").await;
    h.clear();
    h.reconcile_queue(&ctx, "dssm").await;
    assert_eq!(h.writes().len(), 0, "{:?}", h.writes());
}

#[tokio::test]
async fn a_restarted_operator_makes_no_spurious_writes() {
    let h = Harness::new().await;
    let before = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.create::<RecallQueue>(&popular("popular")).await;
    h.create::<RecallGateway>(FEED).await;
    h.create::<RecallExperiment>(&experiment("a-first", 0, 20))
        .await;
    for q in ["dssm", "popular"] {
        h.reconcile_queue(&before, q).await;
    }
    h.reconcile_gateway(&before, "feed").await;
    h.reconcile_experiment(&before, "a-first").await;

    // A new process: fresh context, event cache and backoff state.
    let after = h.ctx();
    h.clear();
    for q in ["dssm", "popular"] {
        h.reconcile_queue(&after, q).await;
    }
    h.reconcile_gateway(&after, "feed").await;
    h.reconcile_experiment(&after, "a-first").await;
    assert_eq!(h.writes().len(), 0, "{:?}", h.writes());
}

#[tokio::test]
async fn a_spec_change_rolls_the_workers_through_the_config_hash() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.reconcile_queue(&ctx, "dssm").await;
    let hash = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .expect("annotations")["kan.dev/config-hash"]
            .clone()
    };
    let before = hash(&h.get::<Deployment>("dssm").await);

    let patch = serde_json::json!({"spec": {"bundle": {"uri": "s3://bundles/dssm/v2"}}});
    h.api::<RecallQueue>()
        .patch("dssm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("spec edited");
    h.clear();
    h.reconcile_queue(&ctx, "dssm").await;

    let after = hash(&h.get::<Deployment>("dssm").await);
    assert_ne!(before, after);
    let cm = h.get::<ConfigMap>("dssm-worker").await;
    assert!(cm.data.expect("data")["worker.yaml"].contains("s3://bundles/dssm/v2"));
    let writes = h.object_writes();
    assert!(
        writes.contains(&format!(
            "PATCH /api/v1/namespaces/{NS}/configmaps/dssm-worker"
        )),
        "{writes:?}"
    );
    assert!(
        writes.contains(&format!(
            "PATCH /apis/apps/v1/namespaces/{NS}/deployments/dssm"
        )),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w.contains("/services/")),
        "unchanged children are not rewritten: {writes:?}"
    );
}

/// Plays the Deployment controller stuck on a new ReplicaSet: the latest template is observed,
/// one new pod never gets ready, the old pods keep serving, the progress deadline has passed.
async fn deployment_stuck_on_the_new_pods(h: &Harness, name: &str) {
    let d = h.get::<Deployment>(name).await;
    let replicas = d.spec.replicas.unwrap_or(1);
    let status = serde_json::json!({
        "observedGeneration": d.metadata.generation,
        "replicas": replicas + 1,
        "readyReplicas": replicas,
        "updatedReplicas": 1,
        "availableReplicas": replicas,
        "conditions": [{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": format!("ReplicaSet \"{name}-v2\" has timed out progressing."),
        }],
    });
    h.api::<Deployment>()
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .expect("deployment status patched");
}

async fn set_bundle(h: &Harness, name: &str, uri: &str) {
    let patch = serde_json::json!({"spec": {"bundle": {"uri": uri}}});
    h.api::<RecallQueue>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("spec edited");
}

#[tokio::test]
async fn a_bundle_that_never_gets_ready_leaves_the_old_one_serving_and_the_queue_degraded() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("dssm")).await;
    set_bundle(&h, "dssm", "s3://bundles/dssm/v1").await;
    h.reconcile_queue(&ctx, "dssm").await;
    h.deployment_becomes_ready("dssm").await;
    h.reconcile_queue(&ctx, "dssm").await;
    let status = h.get::<RecallQueue>("dssm").await.status.expect("status");
    let v1 = status.bundle.expect("rollout recorded");
    assert_eq!(
        v1.serving.as_ref().map(|b| b.uri.as_str()),
        Some("s3://bundles/dssm/v1")
    );
    assert_eq!(v1.previous, None);

    set_bundle(&h, "dssm", "s3://bundles/dssm/v2").await;
    h.reconcile_queue(&ctx, "dssm").await;
    deployment_stuck_on_the_new_pods(&h, "dssm").await;
    h.reconcile_queue(&ctx, "dssm").await;
    let status = h.get::<RecallQueue>("dssm").await.status.expect("status");
    assert_eq!(status.bundle.as_ref(), Some(&v1), "v1 still serves");
    assert_eq!(
        condition(&status.conditions, condition_type::READY),
        ("True", "WorkersReady")
    );
    assert_eq!(
        condition(&status.conditions, condition_type::DEGRADED),
        ("True", "BundleNotReady")
    );
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::DEGRADED)
        .expect("degraded");
    assert!(
        degraded
            .message
            .contains("bundle s3://bundles/dssm/v2 did not get ready")
            && degraded
                .message
                .contains("s3://bundles/dssm/v1 keeps serving"),
        "{}",
        degraded.message
    );

    // A fixed v3 rolls out: it serves, v1 is the previous bundle, Degraded clears.
    set_bundle(&h, "dssm", "s3://bundles/dssm/v3").await;
    h.reconcile_queue(&ctx, "dssm").await;
    let progressing = serde_json::json!({"status": {"conditions": [{
        "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
    }]}});
    h.api::<Deployment>()
        .patch_status("dssm", &PatchParams::default(), &Patch::Merge(&progressing))
        .await
        .expect("deployment status patched");
    h.deployment_becomes_ready("dssm").await;
    h.reconcile_queue(&ctx, "dssm").await;
    let status = h.get::<RecallQueue>("dssm").await.status.expect("status");
    let rollout = status.bundle.expect("rollout");
    assert_eq!(
        rollout.serving.map(|b| b.uri),
        Some("s3://bundles/dssm/v3".to_string())
    );
    assert_eq!(rollout.previous, v1.serving);
    assert!(rollout.changed_at.is_some());
    assert_eq!(
        condition(&status.conditions, condition_type::DEGRADED),
        ("False", "AsExpected")
    );
}

#[tokio::test]
async fn a_deleted_child_is_recreated() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    h.reconcile_queue(&ctx, "popular").await;
    h.api::<Service>()
        .delete("popular", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(!h.exists::<Service>("popular").await);
    h.reconcile_queue(&ctx, "popular").await;
    assert!(h.exists::<Service>("popular").await);
}

#[tokio::test]
async fn dropping_autoscaling_removes_the_hpa_and_the_budget() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.reconcile_queue(&ctx, "dssm").await;
    assert!(h.exists::<HorizontalPodAutoscaler>("dssm").await);
    let patch = serde_json::json!({"spec": {"autoscaling": null}});
    h.api::<RecallQueue>()
        .patch("dssm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edited");
    h.reconcile_queue(&ctx, "dssm").await;
    assert!(!h.exists::<HorizontalPodAutoscaler>("dssm").await);
    assert!(!h.exists::<PodDisruptionBudget>("dssm").await);
}

#[tokio::test]
async fn a_queue_that_is_not_ready_is_not_routed() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.create::<RecallQueue>(&popular("popular")).await;
    h.create::<RecallGateway>(FEED).await;
    h.reconcile_queue(&ctx, "dssm").await;
    h.reconcile_queue(&ctx, "popular").await;
    h.deployment_becomes_ready("popular").await;
    h.reconcile_queue(&ctx, "popular").await;
    let popular_status = h
        .get::<RecallQueue>("popular")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&popular_status.conditions, condition_type::READY),
        ("True", "WorkersReady")
    );

    h.reconcile_gateway(&ctx, "feed").await;
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(
        r.endpoints.into_iter().collect::<Vec<_>>(),
        [(
            "popular".to_string(),
            format!("http://popular.{NS}.svc:8080")
        )]
    );
    let status = h
        .get::<RecallGateway>("feed")
        .await
        .status
        .expect("gateway status");
    assert_eq!(status.ready_queues, 1);
    assert_eq!(
        condition(&status.conditions, condition_type::DEGRADED),
        ("True", "QueuesNotRouted")
    );

    // Once dssm's workers are ready it is routed too.
    h.deployment_becomes_ready("dssm").await;
    h.reconcile_queue(&ctx, "dssm").await;
    h.reconcile_gateway(&ctx, "feed").await;
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(r.endpoints.len(), 2);
}

#[tokio::test]
async fn a_weight_edit_is_one_routing_configmap_update_and_does_not_roll_the_gateway() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    h.create::<RecallGateway>(FEED).await;
    h.reconcile_gateway(&ctx, "feed").await;
    let patch = serde_json::json!({"spec": {"queues": [{"name": "dssm", "weight": 3.0}, {"name": "popular", "weight": 1.0}]}});
    h.api::<RecallGateway>()
        .patch("feed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edited");
    h.clear();
    h.reconcile_gateway(&ctx, "feed").await;
    assert_eq!(
        h.object_writes(),
        [
            format!("PATCH /api/v1/namespaces/{NS}/configmaps/feed-routing"),
            format!("PATCH /apis/kan.dev/v1alpha1/namespaces/{NS}/recallgateways/feed/status"),
        ]
    );
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(r.queues[0].weight, 3.0);
    let status = h.get::<RecallGateway>("feed").await.status.expect("status");
    assert_eq!(status.routing_hash, Some(r.content_hash()));
}

#[tokio::test]
async fn overlapping_experiments_get_a_condition_and_only_the_first_is_routed() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    h.create::<RecallExperiment>(&experiment("a-first", 0, 50))
        .await;
    h.create::<RecallExperiment>(&experiment("b-second", 4000, 20))
        .await;
    h.reconcile_experiment(&ctx, "a-first").await;
    h.reconcile_experiment(&ctx, "b-second").await;
    h.reconcile_gateway(&ctx, "feed").await;

    let first = h
        .get::<RecallExperiment>("a-first")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&first.conditions, condition_type::READY),
        ("True", "Live")
    );
    assert_eq!(first.conflicts, ["b-second"]);
    let second = h
        .get::<RecallExperiment>("b-second")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&second.conditions, condition_type::DEGRADED),
        ("True", "LayerConflict")
    );
    assert_eq!(
        condition(&second.conditions, condition_type::READY),
        ("False", "LayerConflict")
    );
    let message = &second
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::DEGRADED)
        .expect("degraded")
        .message;
    assert!(message.contains("overlap in layer 'recall'"), "{message}");
    assert_eq!(second.arm_buckets.len(), 2);

    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    let routed: Vec<&str> = r.experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(routed, ["a-first"]);
}

#[tokio::test]
async fn an_experiment_on_a_missing_gateway_says_so() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallExperiment>(&experiment("orphan", 0, 10))
        .await;
    h.reconcile_experiment(&ctx, "orphan").await;
    let status = h
        .get::<RecallExperiment>("orphan")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&status.conditions, condition_type::READY),
        ("False", "GatewayNotFound")
    );
}

#[tokio::test]
async fn deleting_a_queue_garbage_collects_its_children_through_owner_references() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(DSSM).await;
    h.create::<RecallGateway>(FEED).await;
    h.reconcile_queue(&ctx, "dssm").await;
    h.reconcile_gateway(&ctx, "feed").await;
    h.api::<RecallQueue>()
        .delete("dssm", &DeleteParams::background())
        .await
        .expect("deleted");

    assert!(!h.exists::<ConfigMap>("dssm-worker").await);
    assert!(!h.exists::<Deployment>("dssm").await);
    assert!(!h.exists::<Service>("dssm").await);
    assert!(!h.exists::<HorizontalPodAutoscaler>("dssm").await);
    assert!(!h.exists::<PodDisruptionBudget>("dssm").await);
    // Another parent's children are untouched.
    assert!(h.exists::<ConfigMap>("feed-routing").await);
    assert!(h.exists::<Deployment>("feed-gateway").await);
}

/// Takeover after a release is not checked here: the fake does not drop field ownership on the
/// release's strategic-merge patch, so the standby's apply keeps conflicting (a real API server
/// hands the fields over). Exclusivity and renewal are checked.
#[tokio::test]
async fn the_first_instance_holds_and_renews_the_lease_while_a_second_stays_standby() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kan_operator::LeaderElection;
    use kan_operator::leader::Election;
    use std::time::Duration;

    let h = Harness::new().await;
    let cfg = |identity: &str| LeaderElection {
        lease_name: "kan-operator".into(),
        lease_namespace: NS.into(),
        identity: identity.into(),
        duration_s: 4,
        grace_s: 2,
        retry_s: 1,
    };
    let mut first = Election::start(h.client.clone(), &cfg("first"))
        .await
        .expect("election starts");
    tokio::time::timeout(Duration::from_secs(10), first.acquired())
        .await
        .expect("the first instance leads in time")
        .expect("election runs");
    let lease = h
        .get::<Lease>("kan-operator")
        .await
        .spec
        .expect("lease spec");
    assert_eq!(lease.holder_identity.as_deref(), Some("first"));
    assert_eq!(lease.lease_duration_seconds, Some(4));
    let renewed_at = lease.renew_time.expect("renew time");

    let mut second = Election::start(h.client.clone(), &cfg("second"))
        .await
        .expect("election starts");
    // Longer than the lease: the holder must renew it for the standby to stay out.
    let stolen = tokio::time::timeout(Duration::from_secs(6), second.acquired()).await;
    assert!(
        stolen.is_err(),
        "the standby must not lead while the leader renews its lease"
    );
    let lease = h
        .get::<Lease>("kan-operator")
        .await
        .spec
        .expect("lease spec");
    assert_eq!(lease.holder_identity.as_deref(), Some("first"));
    assert!(
        lease.renew_time.expect("renew time") > renewed_at,
        "the holder renewed"
    );
    first.release().await;
    second.release().await;
}

fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> (String, String, String) {
    let c = conditions
        .iter()
        .find(|c| c.type_ == condition_type::READY)
        .expect("Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// An arm queue timeout above the gateway's deadline: valid on its own (no CRD rule spans two
/// objects), refused by `kan gateway`.
fn slow_arm_experiment(name: &str) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: {name}}}\nspec:\n  gateway: feed\n  traffic: 10\n  arms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50, queues: [{{name: popular, timeoutMs: 150}}]}}]\n"
    )
}

#[tokio::test]
async fn an_experiment_the_gateway_would_refuse_is_never_routed_and_says_which_field_and_gateway() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    let served = routing(&h.get::<ConfigMap>("feed-routing").await);
    h.create::<RecallExperiment>(&slow_arm_experiment("slow"))
        .await;
    h.clear();
    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "slow").await;

    let cm = h.get::<ConfigMap>("feed-routing").await;
    assert_eq!(
        routing(&cm),
        served,
        "the routing the gateway serves is unchanged"
    );
    kan_api::validate::routing_config(&routing(&cm)).expect("what is served is valid");
    let status = h
        .get::<RecallExperiment>("slow")
        .await
        .status
        .expect("status");
    let (ready, reason, message) = ready_condition(&status.conditions);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "RefusedByGateway")
    );
    assert!(
        message.contains("spec.arms[1].queues[0].timeoutMs"),
        "{message}"
    );
    assert!(
        message.contains("RecallGateway 'feed' (deadlineMs 100)"),
        "{message}"
    );
    assert!(
        h.writes().iter().any(|c| c.uri.contains("/events")),
        "a Warning event is published"
    );
    let gateway = h.get::<RecallGateway>("feed").await.status.expect("status");
    assert_eq!(
        condition(&gateway.conditions, condition_type::DEGRADED),
        ("True", "QueuesNotRouted")
    );
    assert_eq!(gateway.routing_hash, Some(served.content_hash()));
}

#[tokio::test]
async fn an_experiment_edited_into_one_the_gateway_refuses_keeps_its_last_accepted_version_serving()
{
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    h.create::<RecallExperiment>(&experiment("exp", 0, 10))
        .await;
    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "exp").await;
    let live = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(live.experiments.len(), 1);
    let status = h
        .get::<RecallExperiment>("exp")
        .await
        .status
        .expect("status");
    assert_eq!(ready_condition(&status.conditions).1, "Live");

    let patch = serde_json::json!({"spec": {"arms": [
        {"name": "control", "weight": 50},
        {"name": "treatment", "weight": 50, "merge": {"policy": "quota"}, "queues": [{"name": "popular"}]},
    ]}});
    h.api::<RecallExperiment>()
        .patch("exp", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edited");
    h.clear();
    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "exp").await;
    assert_eq!(routing(&h.get::<ConfigMap>("feed-routing").await), live);
    assert!(
        !h.object_writes().iter().any(|w| w.contains("configmaps")),
        "{:?}",
        h.object_writes()
    );
    let status = h
        .get::<RecallExperiment>("exp")
        .await
        .status
        .expect("status");
    let (ready, reason, message) = ready_condition(&status.conditions);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "RefusedByGateway")
    );
    assert!(
        message.contains("spec.arms[1].queues[0].quota"),
        "{message}"
    );
}

#[tokio::test]
async fn a_gateway_spec_the_gateway_would_refuse_is_not_written_and_the_last_good_routing_keeps_serving()
 {
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    let served = routing(&h.get::<ConfigMap>("feed-routing").await);
    // Merge policy quota without quotas: the CRD rule catches it at admission; here it got in.
    let patch = serde_json::json!({"spec": {"merge": {"policy": "quota"}}});
    h.api::<RecallGateway>()
        .patch("feed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edited");
    h.clear();
    h.reconcile_gateway(&ctx, "feed").await;
    assert_eq!(routing(&h.get::<ConfigMap>("feed-routing").await), served);
    assert!(
        !h.object_writes().iter().any(|w| w.contains("configmaps")),
        "{:?}",
        h.object_writes()
    );
    let status = h.get::<RecallGateway>("feed").await.status.expect("status");
    let (ready, reason, message) = ready_condition(&status.conditions);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "RoutingRefused")
    );
    assert!(message.contains("queues[0].quota"), "{message}");
    assert!(message.contains(&served.content_hash()), "{message}");
    assert_eq!(status.routing_hash, Some(served.content_hash()));
}

#[tokio::test]
async fn a_hand_edited_routing_configmap_is_put_back() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    let served = routing(&h.get::<ConfigMap>("feed-routing").await);
    let patch =
        serde_json::json!({"data": {"routing.yaml": "gateway: feed\nqueues: [{name: popular}]\n"}});
    h.api::<ConfigMap>()
        .patch(
            "feed-routing",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("edited by hand");
    h.reconcile_gateway(&ctx, "feed").await;
    assert_eq!(routing(&h.get::<ConfigMap>("feed-routing").await), served);
    let status = h.get::<RecallGateway>("feed").await.status.expect("status");
    assert_eq!(status.routing_hash, Some(served.content_hash()));
}

#[tokio::test]
async fn an_experiment_is_not_live_while_its_gateway_has_no_ready_pod_or_an_arm_queue_is_gone() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    h.create::<RecallGateway>(FEED).await;
    h.create::<RecallExperiment>(&experiment("exp", 0, 10))
        .await;
    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "exp").await;
    let status = h
        .get::<RecallExperiment>("exp")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&status.conditions, condition_type::READY),
        ("False", "GatewayNotReady")
    );

    h.deployment_becomes_ready("feed-gateway").await;
    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "exp").await;
    let status = h
        .get::<RecallExperiment>("exp")
        .await
        .status
        .expect("status");
    let (ready, reason, message) = ready_condition(&status.conditions);
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ArmQueuesNotRouted")
    );
    assert!(
        message.contains("arm 'treatment': RecallQueue 'dssm' not found"),
        "{message}"
    );
    assert!(
        message.contains("arm 'control': RecallQueue 'popular' is not Ready"),
        "{message}"
    );
}

#[tokio::test]
async fn a_queue_this_version_cannot_decode_is_skipped_and_the_others_still_reconcile_and_route() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    let resource = kube::api::ApiResource::erase::<RecallQueue>(&());
    let dynamic: Api<kube::api::DynamicObject> =
        Api::namespaced_with(h.client.clone(), NS, &resource);
    let future: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kan.dev/v1alpha1",
        "kind": "RecallQueue",
        "metadata": {"name": "future"},
        "spec": {"strategy": {"type": "quantum"}, "bundle": {"uri": "/b"}},
    }))
    .expect("object");
    let future = dynamic
        .create(&PostParams::default(), &future)
        .await
        .expect("created");
    assert!(
        h.api::<RecallQueue>()
            .list(&Default::default())
            .await
            .is_err(),
        "a typed list fails on it, as it did before"
    );

    let action = reconcile::queue::reconcile_dynamic(Arc::new(future), ctx.clone())
        .await
        .expect("an undecodable queue is not a reconcile error");
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert!(
        !h.exists::<Deployment>("future").await,
        "nothing is deployed for it"
    );

    serving_feed(&h, &ctx).await;
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(r.endpoints.len(), 2, "the other queues are routed");
}

/// Creates `object` (JSON) as a dynamic object of kind `K`: the fake, like the API server
/// (without CRD validation), stores what this version cannot decode.
async fn create_raw<K: Resource<DynamicType = ()>>(
    h: &Harness,
    object: serde_json::Value,
) -> kube::api::DynamicObject {
    let resource = kube::api::ApiResource::erase::<K>(&());
    let dynamic: Api<kube::api::DynamicObject> =
        Api::namespaced_with(h.client.clone(), NS, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
    dynamic
        .create(&PostParams::default(), &object)
        .await
        .expect("created")
}

#[tokio::test]
async fn a_gateway_this_version_cannot_decode_is_skipped_and_another_gateway_still_routes() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    let future = create_raw::<RecallGateway>(
        &h,
        serde_json::json!({
            "apiVersion": "kan.dev/v1alpha1", "kind": "RecallGateway",
            "metadata": {"name": "future"},
            "spec": {"queues": [{"name": "popular"}], "merge": {"policy": "quantum"}},
        }),
    )
    .await;
    assert!(
        h.api::<RecallGateway>()
            .list(&Default::default())
            .await
            .is_err(),
        "a typed list fails on it"
    );
    h.clear();
    let action = reconcile::gateway::reconcile_dynamic(Arc::new(future), ctx.clone())
        .await
        .expect("an undecodable gateway is not a reconcile error");
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(
        h.object_writes(),
        Vec::<String>::new(),
        "nothing is rendered for it"
    );
    assert!(!h.exists::<ConfigMap>("future-routing").await);

    serving_feed(&h, &ctx).await;
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    assert_eq!(r.endpoints.len(), 2, "the other gateway routes its queues");
}

#[tokio::test]
async fn an_experiment_this_version_cannot_decode_is_left_out_and_its_siblings_stay_live() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    serving_feed(&h, &ctx).await;
    h.create::<RecallExperiment>(&experiment("known", 0, 10))
        .await;
    let future = create_raw::<RecallExperiment>(
        &h,
        serde_json::json!({
            "apiVersion": "kan.dev/v1alpha1", "kind": "RecallExperiment",
            "metadata": {"name": "future"},
            "spec": {"gateway": "feed", "bucketStart": 5000, "traffic": 10, "arms": [
                {"name": "control", "weight": 50},
                {"name": "treatment", "weight": 50, "merge": {"policy": "quantum"}}]},
        }),
    )
    .await;
    let action = reconcile::experiment::reconcile_dynamic(Arc::new(future), ctx.clone())
        .await
        .expect("an undecodable experiment is not a reconcile error");
    assert_eq!(action, kube::runtime::controller::Action::await_change());

    h.reconcile_gateway(&ctx, "feed").await;
    h.reconcile_experiment(&ctx, "known").await;
    let r = routing(&h.get::<ConfigMap>("feed-routing").await);
    let routed: Vec<&str> = r.experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(routed, ["known"], "only the decodable experiment is routed");
    let status = h
        .get::<RecallExperiment>("known")
        .await
        .status
        .expect("status");
    assert_eq!(
        condition(&status.conditions, condition_type::READY),
        ("True", "Live")
    );
}

#[tokio::test]
async fn an_experiment_on_a_gateway_this_version_cannot_decode_fails_with_the_undecodable_label() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    create_raw::<RecallGateway>(
        &h,
        serde_json::json!({
            "apiVersion": "kan.dev/v1alpha1", "kind": "RecallGateway",
            "metadata": {"name": "feed"},
            "spec": {"queues": [{"name": "popular"}], "merge": {"policy": "quantum"}},
        }),
    )
    .await;
    let e = h
        .create::<RecallExperiment>(&experiment("on-future", 0, 10))
        .await;
    let err = reconcile::experiment::reconcile(Arc::new(e), ctx.clone())
        .await
        .expect_err("its gateway cannot be read");
    assert_eq!(err.metric_label(), "undecodable");
    let message = err.to_string();
    assert!(
        message.contains("RecallGateway recsys/feed") && message.contains("quantum"),
        "{message}"
    );
}

#[tokio::test]
async fn a_replica_change_scales_the_deployment_without_rolling_its_pods() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    h.reconcile_queue(&ctx, "popular").await;
    let template = |d: &Deployment| d.spec.template.clone();
    let before = h.get::<Deployment>("popular").await;
    let patch = serde_json::json!({"spec": {"replicas": 3}});
    h.api::<RecallQueue>()
        .patch("popular", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scaled");
    h.reconcile_queue(&ctx, "popular").await;
    let after = h.get::<Deployment>("popular").await;
    assert_eq!(after.spec.replicas, Some(3));
    assert_eq!(
        template(&after),
        template(&before),
        "the pods are not rolled"
    );
}

/// What this cannot show: the fake merges an apply instead of removing the fields its manager
/// no longer sets, and reports a conflict for any overlap (a real API server only for
/// different values), so the handover apply is answered 409 here. The test checks that the
/// handover is made under its own field manager before the apply that drops `replicas`, and
/// that the pods are not rolled; kind.sh checks the replica count on a real API server.
#[tokio::test]
async fn switching_from_replicas_to_autoscaling_hands_the_replicas_over_before_dropping_them() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    let patch =
        serde_json::json!({"spec": {"replicas": 3, "resources": {"requests": {"cpu": "500m"}}}});
    h.api::<RecallQueue>()
        .patch("popular", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scaled");
    h.reconcile_queue(&ctx, "popular").await;
    let before = h.get::<Deployment>("popular").await;

    let patch = serde_json::json!({"spec": {"replicas": null, "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}});
    h.api::<RecallQueue>()
        .patch("popular", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("autoscaled");
    h.clear();
    h.reconcile_queue(&ctx, "popular").await;
    let deployment_writes: Vec<String> = h
        .writes()
        .into_iter()
        .filter(|c| c.uri.contains("/deployments/popular"))
        .map(|c| c.uri)
        .collect();
    assert!(
        deployment_writes[0].contains("fieldManager=kan-operator-handover"),
        "{deployment_writes:?}"
    );
    assert!(
        deployment_writes[1].contains("fieldManager=kan-operator")
            && !deployment_writes[1].contains("handover"),
        "{deployment_writes:?}"
    );
    let after = h.get::<Deployment>("popular").await;
    assert_eq!(after.spec.replicas, Some(3));
    let hash = |d: &Deployment| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
    };
    assert_eq!(
        hash(&after),
        hash(&before),
        "switching to autoscaling rolls no pod"
    );
    assert!(h.exists::<HorizontalPodAutoscaler>("popular").await);

    // The operator no longer owns the field: no second handover.
    h.clear();
    h.reconcile_queue(&ctx, "popular").await;
    assert!(
        !h.writes()
            .iter()
            .any(|c| c.uri.contains("kan-operator-handover")),
        "{:?}",
        h.writes()
    );
}

#[tokio::test]
async fn a_reconcile_from_a_stale_cache_does_not_write_the_status_a_second_time() {
    let h = Harness::new().await;
    let ctx = h.ctx();
    h.create::<RecallQueue>(&popular("popular")).await;
    // The watch cache still holds this version after the first reconcile wrote status.
    let stale = Arc::new(h.get::<RecallQueue>("popular").await);
    reconcile::queue::reconcile(stale.clone(), ctx.clone())
        .await
        .expect("reconciles");
    h.clear();
    reconcile::queue::reconcile(stale, ctx.clone())
        .await
        .expect("reconciles");
    assert_eq!(h.object_writes(), Vec::<String>::new());
    // Once the cache catches up, the reconcile compares with the written status: no write.
    h.reconcile_queue(&ctx, "popular").await;
    assert_eq!(h.object_writes(), Vec::<String>::new());
}

// ---- The online A/B readout in RecallExperiment status ----

mod readout {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kan_api::crd::{RecallExperiment, RecallGateway, condition_type};
    use kan_operator::BuildConfig;
    use kan_operator::readout::ReadoutConfig;
    use kan_operator::reconcile::Context;
    use kube::api::{Patch, PatchParams};
    use serde_json::{Value, json};

    use super::{Harness, condition, experiment, serving_feed};

    /// A gateway pod standing in for `kan gateway`: serves `GET /v1/experiments/readout` with
    /// whatever `body` holds, on a loopback port, until it is stopped.
    struct FakeGatewayPod {
        port: u16,
        body: Arc<Mutex<Value>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl FakeGatewayPod {
        async fn start(body: Value) -> Self {
            let body = Arc::new(Mutex::new(body));
            let served = body.clone();
            let app = axum::Router::new().route(
                "/v1/experiments/readout",
                axum::routing::get(move || {
                    let served = served.clone();
                    async move { axum::Json(served.lock().expect("body").clone()) }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self { port, body, server }
        }

        fn serve(&self, body: Value) {
            *self.body.lock().expect("body") = body;
        }

        /// The pod goes away: its port refuses connections.
        async fn stop(self) {
            self.server.abort();
            let _ = self.server.await;
        }
    }

    fn arm(arm: &str, engaged: u64, exposures: u64) -> Value {
        json!({"experiment": "exp", "arm": arm, "exposures": exposures, "engaged": engaged,
               "rate": 0.0, "low": 0.0, "high": 1.0})
    }

    fn readout(arms: Vec<Value>) -> Value {
        json!({"window_ms": 1_800_000, "arms": arms, "differences": []})
    }

    fn ctx(h: &Harness, url: Option<String>) -> Arc<Context> {
        Arc::new(
            Context::new(
                h.client.clone(),
                BuildConfig::default(),
                Some("test".into()),
            )
            .with_readout(ReadoutConfig {
                // Every reconcile polls: the tests drive the schedule.
                period: Some(Duration::ZERO),
                timeout: Duration::from_secs(2),
                url,
            }),
        )
    }

    /// Gateway `feed` (serving, ready) with an exposure log and a signal store, so it serves
    /// a readout, and experiment `exp` on it.
    async fn feed_with_readout(h: &Harness, ctx: &Arc<Context>) {
        serving_feed(h, ctx).await;
        h.api::<RecallGateway>()
            .patch(
                "feed",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {
                    "exposureLog": "/var/log/kan/exposures.jsonl",
                    "signals": {"redis": {"url": "redis://redis:6379"}}
                }})),
            )
            .await
            .expect("gateway patched");
        h.create::<RecallExperiment>(&experiment("exp", 0, 20))
            .await;
    }

    /// An EndpointSlice of the gateway's Service with one loopback endpoint on `port`.
    async fn endpoint(h: &Harness, name: &str, port: u16, ready: bool) {
        h.create::<EndpointSlice>(&format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: feed-gateway}}\naddressType: IPv4\nendpoints: [{{addresses: [127.0.0.1], conditions: {{ready: {ready}}}}}]\nports: [{{name: http, port: {port}, protocol: TCP}}]\n"
        ))
        .await;
    }

    async fn status(h: &Harness) -> kan_api::crd::RecallExperimentStatus {
        h.get::<RecallExperiment>("exp")
            .await
            .status
            .expect("status")
    }

    #[tokio::test]
    async fn the_readout_of_every_ready_gateway_pod_is_summed_into_the_experiment_status() {
        let h = Harness::new().await;
        let ctx = ctx(&h, None);
        feed_with_readout(&h, &ctx).await;
        // Newcombe 1998's worked example split over two pods: 48/80 vs 56/70.
        let a = FakeGatewayPod::start(readout(vec![
            arm("control", 20, 40),
            arm("treatment", 30, 35),
            json!({"experiment": "other", "arm": "control", "exposures": 9, "engaged": 9,
                   "rate": 1.0, "low": 0.7, "high": 1.0}),
        ]))
        .await;
        let b = FakeGatewayPod::start(readout(vec![
            arm("control", 28, 40),
            arm("treatment", 26, 35),
        ]))
        .await;
        endpoint(&h, "feed-gateway-a", a.port, true).await;
        endpoint(&h, "feed-gateway-b", b.port, true).await;
        // A pod that is not ready is not asked (nothing listens on port 9).
        endpoint(&h, "feed-gateway-c", 9, false).await;

        h.reconcile_experiment(&ctx, "exp").await;
        let s = status(&h).await;
        assert_eq!(
            condition(&s.conditions, condition_type::READOUT_CURRENT),
            ("True", "Read")
        );
        assert_eq!(
            condition(&s.conditions, condition_type::READY),
            ("True", "Live")
        );
        let r = s.readout.expect("readout in status");
        assert_eq!(r.window_ms, 1_800_000);
        assert!(!r.readout_at.is_empty());
        let arms: Vec<(&str, i64, i64)> = r
            .arms
            .iter()
            .map(|a| (a.name.as_str(), a.engaged, a.exposures))
            .collect();
        assert_eq!(arms, [("control", 48, 80), ("treatment", 56, 70)]);
        let d = &r.differences[0];
        assert_eq!(
            (d.arm.as_str(), d.baseline.as_str(), d.difference),
            ("treatment", "control", 0.2)
        );
        assert!(
            (d.low - 0.0524).abs() < 2e-4 && (d.high - 0.3339).abs() < 2e-4,
            "{d:?}"
        );
        assert_eq!(r.summary, "treatment +20.0pp [+5.2, +33.4] vs control");
        a.stop().await;
        b.stop().await;
    }

    #[tokio::test]
    async fn a_gateway_that_stops_answering_keeps_the_last_readout_says_why_and_blocks_no_other_status()
     {
        let h = Harness::new().await;
        let pod = FakeGatewayPod::start(readout(vec![
            arm("control", 10, 100),
            arm("treatment", 30, 100),
        ]))
        .await;
        // Through --readout-url, as an operator outside the cluster polls.
        let ctx = ctx(&h, Some(format!("http://127.0.0.1:{}/", pod.port)));
        feed_with_readout(&h, &ctx).await;
        h.reconcile_experiment(&ctx, "exp").await;
        let before = status(&h).await.readout.expect("readout");
        assert_eq!(before.arms.len(), 2);

        pod.stop().await;
        h.api::<RecallExperiment>()
            .patch(
                "exp",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"traffic": 30}})),
            )
            .await
            .expect("experiment patched");
        // The reconcile succeeds (reconcile_experiment expects Ok) and says so in one event.
        h.clear();
        h.reconcile_experiment(&ctx, "exp").await;
        let events: Vec<_> = h
            .writes()
            .into_iter()
            .filter(|c| c.uri.contains("/events"))
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        let s = status(&h).await;
        assert_eq!(s.readout.as_ref(), Some(&before));
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == condition_type::READOUT_CURRENT)
            .expect("ReadoutCurrent");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "GatewayUnreachable")
        );
        assert!(
            c.message.contains("1 of 1 gateway pod(s) did not answer")
                && c.message.contains("connection failed")
                && c.message.ends_with("the last readout is kept"),
            "{}",
            c.message
        );
        // The rest of the status still follows the spec.
        assert_eq!(s.buckets.map(|b| (b.start, b.end)), Some((0, 3000)));
        assert_eq!(
            condition(&s.conditions, condition_type::READY),
            ("True", "Live")
        );
    }

    #[tokio::test]
    async fn the_readout_holds_only_the_arms_of_the_spec_however_many_the_gateway_reports() {
        let h = Harness::new().await;
        let mut arms: Vec<Value> = (0..40).map(|i| arm(&format!("old-{i}"), 1, 10)).collect();
        arms.push(arm("control", 5, 50));
        arms.push(arm("treatment", 6, 50));
        let pod = FakeGatewayPod::start(readout(arms)).await;
        let ctx = ctx(&h, Some(format!("http://127.0.0.1:{}", pod.port)));
        feed_with_readout(&h, &ctx).await;
        h.reconcile_experiment(&ctx, "exp").await;
        let r = status(&h).await.readout.expect("readout");
        let names: Vec<&str> = r.arms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["control", "treatment"]);
        assert_eq!(r.differences.len(), 1);
        pod.stop().await;
    }

    #[tokio::test]
    async fn an_unchanged_readout_is_not_rewritten_by_the_next_poll_or_a_restarted_operator() {
        let h = Harness::new().await;
        let pod = FakeGatewayPod::start(readout(vec![
            arm("control", 10, 100),
            arm("treatment", 12, 100),
        ]))
        .await;
        let url = Some(format!("http://127.0.0.1:{}", pod.port));
        let first = ctx(&h, url.clone());
        feed_with_readout(&h, &first).await;
        h.reconcile_experiment(&first, "exp").await;
        h.clear();
        h.reconcile_experiment(&first, "exp").await;
        let restarted = ctx(&h, url);
        h.reconcile_experiment(&restarted, "exp").await;
        assert_eq!(h.object_writes(), Vec::<String>::new());

        // New engagements: one status write with the new figures.
        pod.serve(readout(vec![
            arm("control", 10, 100),
            arm("treatment", 40, 100),
        ]));
        h.reconcile_experiment(&restarted, "exp").await;
        assert_eq!(h.object_writes().len(), 1, "{:?}", h.object_writes());
        let r = status(&h).await.readout.expect("readout");
        assert_eq!(r.arms[1].engaged, 40);
        pod.stop().await;
    }
}
