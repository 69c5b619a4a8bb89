//! The Helm chart: its CRDs are the generated ones, `helm lint` is clean, and every object
//! `helm template` renders parses into its k8s-openapi (or Kan) type without losing a field.
//! Skips with a message when helm is not installed (`./scripts/install-tools.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn chart() -> PathBuf {
    repo_root().join("charts/kan")
}

/// helm from PATH or from the tools directory of `scripts/install-tools.sh`.
fn helm() -> Option<PathBuf> {
    let tools = std::env::var_os("KAN_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kan-tools")));
    let candidates = tools
        .map(|t| t.join("bin/helm"))
        .into_iter()
        .chain([PathBuf::from("helm")]);
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run_helm(helm: &Path, args: &[&str]) -> String {
    let out = Command::new(helm).args(args).output().expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Parses `value` into `T` and back; a field `T` does not know would be dropped and show up
/// as a difference.
fn round_trips<T: DeserializeOwned + Serialize>(value: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == value {
        Ok(())
    } else {
        Err(format!(
            "fields lost or changed:\nrendered: {value}\nparsed:   {back}"
        ))
    }
}

fn check_object(doc: &Value) -> Result<&str, String> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac};
    let kind = doc["kind"].as_str().ok_or("object without kind")?;
    match kind {
        "Deployment" => round_trips::<apps::Deployment>(doc),
        "Service" => round_trips::<core::Service>(doc),
        "ServiceAccount" => round_trips::<core::ServiceAccount>(doc),
        "Secret" => round_trips::<core::Secret>(doc),
        "ClusterRole" => round_trips::<rbac::ClusterRole>(doc),
        "ClusterRoleBinding" => round_trips::<rbac::ClusterRoleBinding>(doc),
        "Role" => round_trips::<rbac::Role>(doc),
        "RoleBinding" => round_trips::<rbac::RoleBinding>(doc),
        "NetworkPolicy" => round_trips::<k8s_openapi::api::networking::v1::NetworkPolicy>(doc),
        "CustomResourceDefinition" => round_trips::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(doc),
        "RecallGateway" => {
            let gw: kan_api::crd::RecallGateway = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
            kan_api::validate::gateway_spec(&gw.spec).map_err(|e| e.to_string())
        }
        other => Err(format!("unexpected kind {other} in the chart: add it to this test")),
    }
    .map(|()| kind)
}

fn rendered_objects(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .map(|doc| {
            doc.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|doc| !doc.trim().is_empty() && doc.trim() != "---")
        .map(|doc| {
            serde_saphyr::from_str::<Value>(&doc)
                .unwrap_or_else(|e| panic!("rendered YAML parses: {e}\n{doc}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let files = kan_api::crd::crd_files().expect("CRDs render");
    let bless = std::env::var_os("KAN_BLESS_CHART_CRDS").is_some();
    for (name, yaml) in files {
        let path = chart().join("crds").join(&name);
        if bless {
            std::fs::write(&path, &yaml).expect("writing chart CRD");
        }
        let in_chart = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            in_chart == yaml,
            "{} differs from the CRD generated from kan-api: run `KAN_BLESS_CHART_CRDS=1 cargo test -p kan-operator --test helm_chart` (or `kan crd --out-dir charts/kan/crds`)",
            path.display()
        );
        // The top-level crds/ (written by `make crds`) must say the same, when present.
        if let Ok(generated) = std::fs::read_to_string(repo_root().join("crds").join(&name)) {
            assert!(generated == yaml, "crds/{name} is stale: run `make crds`");
        }
    }
}

#[test]
fn helm_lint_and_template_render_objects_that_parse_into_their_types() {
    let Some(helm) = helm() else {
        eprintln!(
            "SKIPPED: helm not found (run ./scripts/install-tools.sh and `source scripts/env.sh`)"
        );
        return;
    };
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    let value_sets: [&[&str]; 3] = [
        &[],
        &[
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "defaultGateway.enabled=true",
            "--set",
            "defaultGateway.queues[0].name=popular",
            "--set",
            "defaultGateway.queues[0].quota=100",
            "--set",
            "defaultGateway.fallback=popular",
            "--set",
            "qdrant.url=http://qdrant:6334",
            "--set",
            "qdrant.apiKeySecret.create=true",
            "--set",
            "qdrant.apiKeySecret.value=s3cret",
            "--set",
            "otlpEndpoint=http://otel:4317",
            "--set",
            "replicaCount=2",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=observability",
        ],
        &[
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "serviceAccount.create=false",
        ],
    ];
    for values in value_sets {
        let mut lint = vec!["lint", "--strict", chart];
        lint.extend_from_slice(values);
        run_helm(&helm, &lint);

        let mut template = vec![
            "template",
            "kan",
            chart,
            "--namespace",
            "kan-system",
            "--include-crds",
        ];
        template.extend_from_slice(values);
        let objects = rendered_objects(&run_helm(&helm, &template));
        let mut kinds: Vec<&str> = Vec::new();
        for object in &objects {
            kinds.push(
                check_object(object).unwrap_or_else(|e| panic!("{e}\nwith values {values:?}")),
            );
        }
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == "CustomResourceDefinition")
                .count(),
            3
        );
        assert!(
            kinds.contains(&"Deployment") && kinds.contains(&"Service"),
            "{kinds:?}"
        );
    }
}

#[test]
fn chart_refuses_two_operators_without_leader_election() {
    let Some(helm) = helm() else {
        eprintln!("SKIPPED: helm not found (run ./scripts/install-tools.sh)");
        return;
    };
    let out = Command::new(helm)
        .args([
            "template",
            "kan",
            chart().to_str().expect("utf-8"),
            "--set",
            "replicaCount=2",
            "--set",
            "leaderElection.enabled=false",
        ])
        .output()
        .expect("helm runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs leaderElection.enabled=true"));
}
