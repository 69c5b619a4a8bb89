//! Deployments of workers and gateways: one hardened pod template, two argument lists.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource,
    SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kan_api::crd::{
    DEFAULT_STARTUP_TIMEOUT_SECONDS, IndexType, RecallGatewaySpec, RecallQueueSpec, SignalsSpec,
};

use super::{BuildConfig, child_meta, string_map};
use crate::names::{
    BUNDLE_CACHE_DIR, CONFIG_DIR, CONFIG_HASH_ANNOTATION, Component, FIELD_MANAGER, HTTP_PORT,
    METRICS_PORT, Parent, QDRANT_API_KEY_ENV, ROUTING_CONFIG_KEY, WORKER_CONFIG_KEY,
    gateway_workload_name, labels, routing_config_map_name, selector_labels,
    worker_config_map_name,
};

/// UID/GID of the `nonroot` user of distroless-style images.
const NON_ROOT_ID: i64 = 65532;

/// The worker Deployment of a queue. `config_hash` is the hash of the rendered worker config:
/// it goes on the pod template, so a spec or bundle change rolls the pods.
pub fn worker_deployment(
    parent: &Parent,
    spec: &RecallQueueSpec,
    config_hash: &str,
    cfg: &BuildConfig,
) -> Deployment {
    let mut args = vec![
        "worker".to_string(),
        "--config".to_string(),
        format!("{CONFIG_DIR}/{WORKER_CONFIG_KEY}"),
    ];
    args.extend(listen_args());
    args.extend(["--bundle-cache".to_string(), BUNDLE_CACHE_DIR.to_string()]);

    let mut env = otlp_env(cfg, &parent.name);
    let api_key_secret = spec
        .index
        .as_ref()
        .filter(|index| index.type_ == IndexType::Qdrant)
        .and_then(|index| index.qdrant.as_ref())
        .and_then(|qdrant| qdrant.api_key_secret.as_ref());
    if let Some(secret) = api_key_secret {
        env.push(EnvVar {
            name: QDRANT_API_KEY_ENV.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }

    env.extend(signals_env(spec.signals.as_ref()));

    // Object-store credentials: the Secret's keys become the worker's environment, where the
    // object store clients look for them; the values never pass through the operator.
    let env_from = spec
        .bundle
        .as_ref()
        .and_then(|bundle| bundle.credentials_secret_ref.as_ref())
        .map(|secret| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.name.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        })
        .into_iter()
        .collect();

    let pod = PodParts {
        component: Component::Worker,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| cfg.default_image.clone()),
        args,
        env,
        env_from,
        config_map: worker_config_map_name(&parent.name),
        config_hash: Some(config_hash.to_string()),
        startup_probe: Some(worker_startup_probe(spec)),
        resources: spec.resources.clone(),
        writable_dirs: vec![
            ("bundle-cache", BUNDLE_CACHE_DIR.to_string()),
            ("tmp", "/tmp".to_string()),
        ],
    };
    // With autoscaling the HPA owns the replica count: leaving the field out of the applied
    // object keeps server-side apply from fighting it.
    let replicas = if spec.autoscaling.is_some() {
        None
    } else {
        Some(spec.replicas.unwrap_or(1))
    };
    deployment(parent, parent.name.clone(), replicas, pod, cfg)
}

/// The gateway Deployment. The routing config is hot-reloaded by the gateway from the mounted
/// ConfigMap, so routing changes (queue readiness, weights) do not roll the pods.
pub fn gateway_deployment(
    parent: &Parent,
    spec: &RecallGatewaySpec,
    cfg: &BuildConfig,
) -> Deployment {
    let mut args = vec![
        "gateway".to_string(),
        "--config".to_string(),
        format!("{CONFIG_DIR}/{ROUTING_CONFIG_KEY}"),
    ];
    args.extend(listen_args());
    // Where `POST /v1/events` writes; the Secret's url (environment) wins over it.
    if let Some(url) = spec.signals.as_ref().and_then(|s| s.redis.url.as_ref()) {
        args.extend(["--signals-redis".to_string(), url.clone()]);
    }
    let mut env = otlp_env(cfg, &parent.name);
    env.extend(signals_env(spec.signals.as_ref()));
    let mut writable_dirs = vec![("tmp", "/tmp".to_string())];
    // An exposure log needs a writable directory; give its parent an emptyDir.
    let exposure_dir = spec
        .exposure_log
        .as_deref()
        .and_then(|p| std::path::Path::new(p).parent())
        .and_then(|d| d.to_str())
        .filter(|d| !d.is_empty() && *d != "/" && *d != "/tmp");
    if let Some(dir) = exposure_dir {
        writable_dirs.push(("exposures", dir.to_string()));
    }
    let pod = PodParts {
        component: Component::Gateway,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| cfg.default_image.clone()),
        args,
        env,
        env_from: Vec::new(),
        config_map: routing_config_map_name(&parent.name),
        config_hash: None,
        startup_probe: None,
        resources: spec.resources.clone(),
        writable_dirs,
    };
    deployment(
        parent,
        gateway_workload_name(&parent.name),
        Some(spec.replicas),
        pod,
        cfg,
    )
}

/// The replica count to hand over when `spec` uses autoscaling but the operator's own apply
/// still owns `spec.replicas` of `live` (the queue just switched from `replicas`): dropping the
/// field from the next apply would make the API server remove it, and the Deployment would fall
/// to its default of 1 pod until the HPA acts. `None` when there is nothing to hand over.
pub fn replicas_to_hand_over(live: &Deployment, spec: &RecallQueueSpec) -> Option<i32> {
    spec.autoscaling.as_ref()?;
    let owns_replicas = live.metadata.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
            && entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:replicas"))
                .is_some()
    });
    owns_replicas.then(|| live.spec.replicas.unwrap_or(1))
}

/// Period of the worker startup probe, in seconds.
const STARTUP_PROBE_PERIOD_S: i32 = 10;

/// A worker binds its port only once its first bundle is loaded, which can take many minutes
/// (download, HNSW build). The startup probe holds liveness off for the spec's budget
/// (`startupTimeoutSeconds`, 30 min by default), so a slow first load is never killed in a loop.
fn worker_startup_probe(spec: &RecallQueueSpec) -> Probe {
    let budget = spec
        .startup_timeout_seconds
        .unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECONDS)
        .max(STARTUP_PROBE_PERIOD_S);
    // Rounded up: the pod gets at least the whole budget.
    let failures = (budget + STARTUP_PROBE_PERIOD_S - 1) / STARTUP_PROBE_PERIOD_S;
    http_probe("/healthz", STARTUP_PROBE_PERIOD_S, failures)
}

fn listen_args() -> [String; 4] {
    [
        "--listen".to_string(),
        format!("0.0.0.0:{HTTP_PORT}"),
        "--metrics-listen".to_string(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]
}

fn otlp_env(cfg: &BuildConfig, service_name: &str) -> Vec<EnvVar> {
    let Some(endpoint) = &cfg.otlp_endpoint else {
        return Vec::new();
    };
    vec![
        EnvVar {
            name: "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            value: Some(endpoint.clone()),
            ..EnvVar::default()
        },
        EnvVar {
            name: "OTEL_SERVICE_NAME".to_string(),
            value: Some(service_name.to_string()),
            ..EnvVar::default()
        },
    ]
}

/// What differs between worker and gateway pods.
struct PodParts {
    component: Component,
    image: String,
    args: Vec<String>,
    env: Vec<EnvVar>,
    env_from: Vec<EnvFromSource>,
    config_map: String,
    config_hash: Option<String>,
    startup_probe: Option<Probe>,
    resources: Option<ResourceRequirements>,
    /// (volume name, mount path) of emptyDirs: the root filesystem is read-only.
    writable_dirs: Vec<(&'static str, String)>,
}

fn deployment(
    parent: &Parent,
    name: String,
    replicas: Option<i32>,
    pod: PodParts,
    cfg: &BuildConfig,
) -> Deployment {
    let component = pod.component;
    let mut volumes = vec![Volume {
        name: "config".to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: pod.config_map.clone(),
            ..Default::default()
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "config".to_string(),
        mount_path: CONFIG_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    for (volume, path) in &pod.writable_dirs {
        volumes.push(Volume {
            name: volume.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: volume.to_string(),
            mount_path: path.clone(),
            ..VolumeMount::default()
        });
    }

    let container = Container {
        name: component.as_str().to_string(),
        image: Some(pod.image),
        image_pull_policy: cfg.image_pull_policy.clone(),
        command: Some(vec!["kan".to_string()]),
        args: Some(pod.args),
        env: (!pod.env.is_empty()).then_some(pod.env),
        env_from: (!pod.env_from.is_empty()).then_some(pod.env_from),
        ports: Some(vec![
            container_port("http", HTTP_PORT),
            container_port("metrics", METRICS_PORT),
        ]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        startup_probe: pod.startup_probe,
        resources: pod.resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let annotations = pod
        .config_hash
        .map(|hash| string_map([(CONFIG_HASH_ANNOTATION, hash)]));
    Deployment {
        metadata: child_meta(parent, component, name),
        spec: DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector_labels(component, &parent.name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(component, &parent.name)),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Workers and gateways never call the Kubernetes API.
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NON_ROOT_ID),
                        run_as_group: Some(NON_ROOT_ID),
                        fs_group: Some(NON_ROOT_ID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The signal store's URL and password, from the `signals.redis.secretRef` Secret of a queue or
/// a gateway
/// (keys `url` and `password`, each optional) into the worker's environment: the values never
/// pass through the operator, the ConfigMap or its logs.
fn signals_env(signals: Option<&SignalsSpec>) -> Vec<EnvVar> {
    let Some(secret) = signals.and_then(|signals| signals.redis.secret_ref.as_ref()) else {
        return Vec::new();
    };
    [
        (kan_api::crd::SIGNALS_REDIS_URL_ENV, "url"),
        (kan_api::crd::SIGNALS_REDIS_PASSWORD_ENV, "password"),
    ]
    .into_iter()
    .map(|(name, key)| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: key.to_string(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::{DSSM, POPULAR, gateway_spec, parent, queue_spec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn cfg() -> BuildConfig {
        BuildConfig {
            default_image: "kan:default".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            otlp_endpoint: None,
        }
    }

    fn pod_spec(d: &Deployment) -> &PodSpec {
        d.spec.template.spec.as_ref().expect("pod spec")
    }

    fn only_container(d: &Deployment) -> &Container {
        let pod = pod_spec(d);
        assert_eq!(pod.containers.len(), 1);
        &pod.containers[0]
    }

    #[test]
    fn worker_runs_kan_worker_with_the_mounted_config_and_a_bundle_cache() {
        let d = worker_deployment(
            &parent("RecallQueue", "dssm-main"),
            &queue_spec(DSSM),
            "abc123",
            &cfg(),
        );
        let c = only_container(&d);
        assert_eq!(c.name, "worker");
        assert_eq!(c.image.as_deref(), Some("kan:default"));
        assert_eq!(c.command.as_deref(), Some(&["kan".to_string()][..]));
        assert_eq!(
            c.args.as_deref().expect("args"),
            [
                "worker",
                "--config",
                "/etc/kan/worker.yaml",
                "--listen",
                "0.0.0.0:8080",
                "--metrics-listen",
                "0.0.0.0:9090",
                "--bundle-cache",
                "/var/cache/kan"
            ]
        );
        let mounts: Vec<(&str, &str, Option<bool>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("config", "/etc/kan", Some(true)),
                ("bundle-cache", "/var/cache/kan", None),
                ("tmp", "/tmp", None)
            ]
        );
        let volumes = pod_spec(&d).volumes.as_ref().expect("volumes");
        assert_eq!(
            volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
            Some("dssm-main-worker")
        );
        assert!(volumes[1].empty_dir.is_some() && volumes[2].empty_dir.is_some());
    }

    #[test]
    fn worker_gets_the_qdrant_api_key_from_the_secret_by_reference() {
        let d = worker_deployment(
            &parent("RecallQueue", "dssm-main"),
            &queue_spec(DSSM),
            "h",
            &cfg(),
        );
        let env = only_container(&d).env.as_ref().expect("env");
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name, "QDRANT_API_KEY");
        assert_eq!(env[0].value, None, "the key value is never copied");
        let secret = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("qdrant", "api-key")
        );
    }

    #[test]
    fn worker_gets_object_store_credentials_from_the_named_secret_by_reference() {
        let mut spec = queue_spec(POPULAR);
        spec.bundle = Some(
            serde_json::from_value(serde_json::json!({
                "uri": "s3://kan-bundles/pop/",
                "endpoint": "http://minio:9000",
                "credentialsSecretRef": {"name": "bundle-s3"}
            }))
            .expect("bundle ref"),
        );
        let d = worker_deployment(&parent("RecallQueue", "pop"), &spec, "h", &cfg());
        let container = only_container(&d);
        let env_from = container.env_from.as_ref().expect("envFrom");
        assert_eq!(env_from.len(), 1);
        let secret = env_from[0].secret_ref.as_ref().expect("secretRef");
        assert_eq!(secret.name, "bundle-s3");
        assert_eq!(
            secret.optional,
            Some(false),
            "a missing Secret must stop the pod"
        );
        assert_eq!(
            container.env, None,
            "no credential value is copied into env"
        );
    }

    #[test]
    fn worker_without_qdrant_has_no_api_key_env() {
        let d = worker_deployment(
            &parent("RecallQueue", "pop"),
            &queue_spec(POPULAR),
            "h",
            &cfg(),
        );
        assert_eq!(only_container(&d).env, None);
    }

    #[test]
    fn worker_is_hardened() {
        let d = worker_deployment(
            &parent("RecallQueue", "pop"),
            &queue_spec(POPULAR),
            "h",
            &cfg(),
        );
        let pod = pod_spec(&d);
        let psc = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(65532));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let sc = only_container(&d)
            .security_context
            .as_ref()
            .expect("container security context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.as_deref()),
            Some(&["ALL".to_string()][..])
        );
    }

    #[test]
    fn worker_probes_readyz_and_healthz_on_the_http_port() {
        let d = worker_deployment(
            &parent("RecallQueue", "pop"),
            &queue_spec(POPULAR),
            "h",
            &cfg(),
        );
        let c = only_container(&d);
        let probe_path = |p: &Option<Probe>| {
            let get = p
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("http probe");
            assert_eq!(get.port, IntOrString::String("http".into()));
            get.path.clone()
        };
        assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
        assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
        assert_eq!(probe_path(&c.startup_probe).as_deref(), Some("/healthz"));
        let ports: Vec<(Option<&str>, i32)> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect();
        assert_eq!(ports, [(Some("http"), 8080), (Some("metrics"), 9090)]);
    }

    #[test]
    fn worker_uses_spec_image_replicas_and_resources() {
        let d = worker_deployment(
            &parent("RecallQueue", "pop"),
            &queue_spec(POPULAR),
            "h",
            &cfg(),
        );
        assert_eq!(
            only_container(&d).image.as_deref(),
            Some("registry.local/kan:dev")
        );
        assert_eq!(d.spec.replicas, Some(3));

        let d = worker_deployment(
            &parent("RecallQueue", "dssm"),
            &queue_spec(DSSM),
            "h",
            &cfg(),
        );
        assert_eq!(d.spec.replicas, None, "the HPA owns replicas");
        let res = only_container(&d).resources.as_ref().expect("resources");
        assert_eq!(
            res.requests.as_ref().and_then(|r| r.get("cpu")),
            Some(&Quantity("500m".into()))
        );
        assert_eq!(
            res.limits.as_ref().and_then(|r| r.get("memory")),
            Some(&Quantity("1Gi".into()))
        );

        let spec = queue_spec("strategy: {type: popular}\nbundle: {uri: /b}\n");
        let d = worker_deployment(&parent("RecallQueue", "p"), &spec, "h", &cfg());
        assert_eq!(d.spec.replicas, Some(1));
    }

    #[test]
    fn config_hash_is_a_pod_template_annotation_and_selector_labels_stay_fixed() {
        let p = parent("RecallQueue", "pop");
        let a = worker_deployment(&p, &queue_spec(POPULAR), "hash-a", &cfg());
        let b = worker_deployment(&p, &queue_spec(POPULAR), "hash-b", &cfg());
        let annotation = |d: &Deployment| {
            d.spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone())
        };
        assert_eq!(
            annotation(&a).expect("annotated")["kan.dev/config-hash"],
            "hash-a"
        );
        assert_eq!(
            annotation(&b).expect("annotated")["kan.dev/config-hash"],
            "hash-b"
        );
        let selector = |d: &Deployment| Some(d.spec.selector.clone());
        assert_eq!(selector(&a), selector(&b));
        let template_labels = a
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        for (k, v) in selector(&a)
            .and_then(|s| s.match_labels)
            .expect("match labels")
        {
            assert_eq!(
                template_labels.as_ref().and_then(|l| l.get(&k)),
                Some(&v),
                "selector must match pods"
            );
        }
    }

    #[test]
    fn otlp_endpoint_is_passed_to_pods() {
        let mut cfg = cfg();
        cfg.otlp_endpoint = Some("http://otel:4317".into());
        let d = worker_deployment(
            &parent("RecallQueue", "pop"),
            &queue_spec(POPULAR),
            "h",
            &cfg,
        );
        let env = only_container(&d).env.as_ref().expect("env");
        assert_eq!(env[0].name, "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(env[0].value.as_deref(), Some("http://otel:4317"));
        assert_eq!(env[1].value.as_deref(), Some("pop"));
    }

    #[test]
    fn gateway_runs_kan_gateway_without_a_rolling_config_hash() {
        let spec = gateway_spec(
            "queues: [{name: a}]\nreplicas: 2\nexposureLog: /var/log/kan/exposures.jsonl\n",
        );
        let d = gateway_deployment(&parent("RecallGateway", "feed"), &spec, &cfg());
        assert_eq!(d.metadata.name.as_deref(), Some("feed-gateway"));
        assert_eq!(d.spec.replicas, Some(2));
        let c = only_container(&d);
        assert_eq!(c.name, "gateway");
        assert_eq!(
            c.args.as_deref().expect("args"),
            [
                "gateway",
                "--config",
                "/etc/kan/routing.yaml",
                "--listen",
                "0.0.0.0:8080",
                "--metrics-listen",
                "0.0.0.0:9090"
            ]
        );
        let template = d.spec.template.metadata.as_ref().expect("template meta");
        assert_eq!(template.annotations, None);
        let volumes = pod_spec(&d).volumes.as_ref().expect("volumes");
        assert_eq!(
            volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
            Some("feed-routing")
        );
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/etc/kan", "/tmp", "/var/log/kan"]);
    }

    fn startup_budget_s(spec: &RecallQueueSpec) -> i32 {
        let d = worker_deployment(&parent("RecallQueue", "q"), spec, "h", &cfg());
        let probe = only_container(&d)
            .startup_probe
            .clone()
            .expect("startup probe");
        probe.period_seconds.expect("period") * probe.failure_threshold.expect("threshold")
    }

    #[test]
    fn a_worker_gets_half_an_hour_to_load_its_first_bundle_unless_the_spec_says_otherwise() {
        assert_eq!(startup_budget_s(&queue_spec(POPULAR)), 1800);
        let mut spec = queue_spec(POPULAR);
        spec.startup_timeout_seconds = Some(7205);
        assert_eq!(
            startup_budget_s(&spec),
            7210,
            "rounded up to whole probe periods"
        );
        let d = gateway_deployment(
            &parent("RecallGateway", "feed"),
            &gateway_spec("queues: [{name: a}]\n"),
            &cfg(),
        );
        assert!(
            only_container(&d).startup_probe.is_none(),
            "a gateway starts at once"
        );
    }

    fn live_deployment(replicas: i32, manager: &str, owns_replicas: bool) -> Deployment {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let spec_fields = if owns_replicas {
            serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {}}})
        } else {
            serde_json::json!({"f:spec": {"f:template": {}}})
        };
        Deployment {
            metadata: ObjectMeta {
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    operation: Some("Apply".into()),
                    fields_type: Some("FieldsV1".into()),
                    fields_v1: Some(FieldsV1(spec_fields)),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    #[test]
    fn switching_to_autoscaling_hands_over_the_live_replicas_only_while_the_operator_owns_them() {
        let autoscaled = queue_spec(DSSM);
        let fixed = queue_spec(POPULAR);
        let owned = live_deployment(3, FIELD_MANAGER, true);
        assert_eq!(replicas_to_hand_over(&owned, &autoscaled), Some(3));
        assert_eq!(
            replicas_to_hand_over(&owned, &fixed),
            None,
            "no autoscaling"
        );
        let released = live_deployment(3, FIELD_MANAGER, false);
        assert_eq!(replicas_to_hand_over(&released, &autoscaled), None);
        let someone_else = live_deployment(3, "kube-controller-manager", true);
        assert_eq!(replicas_to_hand_over(&someone_else, &autoscaled), None);
    }

    #[test]
    fn the_signal_store_secret_reaches_the_worker_as_env_and_never_the_config_map() {
        let spec = queue_spec(
            "strategy: {type: social}\nbundle: {uri: /b}\nsignals: {redis: {url: redis://r:6379, secretRef: {name: redis-auth}}}",
        );
        let rendered =
            crate::children::config_map::render_worker_config("q", &spec).expect("render");
        assert!(!rendered.contains("password"), "{rendered}");
        let env = signals_env(spec.signals.as_ref());
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["KAN_SIGNALS_REDIS_URL", "KAN_SIGNALS_REDIS_PASSWORD"]
        );
        let from = env[1]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from the Secret");
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("redis-auth", "password")
        );
        assert!(env.iter().all(|e| e.value.is_none()));
    }

    #[test]
    fn a_gateway_with_a_signal_store_gets_its_url_as_a_flag_and_its_secret_as_env() {
        let spec = gateway_spec(
            "queues: [{name: social}]\nsignals: {redis: {url: redis://r:6379, secretRef: {name: redis-auth}}}",
        );
        let d = gateway_deployment(&parent("RecallGateway", "feed"), &spec, &cfg());
        let container = only_container(&d);
        let args = container.args.clone().unwrap_or_default();
        let at = args
            .iter()
            .position(|a| a == "--signals-redis")
            .expect("flag");
        assert_eq!(args[at + 1], "redis://r:6379");
        let env = container.env.clone().unwrap_or_default();
        let password = env
            .iter()
            .find(|e| e.name == "KAN_SIGNALS_REDIS_PASSWORD")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("from the Secret");
        assert_eq!(password.name, "redis-auth");
        let plain = gateway_deployment(
            &parent("RecallGateway", "feed"),
            &gateway_spec("queues: [{name: social}]"),
            &cfg(),
        );
        let plain_args = only_container(&plain).args.clone().unwrap_or_default();
        assert!(!plain_args.contains(&"--signals-redis".to_string()));
    }
}
