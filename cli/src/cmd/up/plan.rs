//! What `kan up` should run for a directory of Kan objects: a pure function from the objects to
//! worker configs and a gateway spec, so it can be tested without starting anything.

use std::collections::BTreeMap;
use std::path::Path;

use kan_api::crd::{RecallExperimentSpec, RecallGatewaySpec};
use kan_api::manifest::KanObject;
use kan_api::worker_config::WorkerConfig;

/// The local platform for one snapshot of the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Workers by queue name, bundle URIs (and the gateway's propensity table) resolved against
    /// the directory.
    pub workers: BTreeMap<String, WorkerConfig>,
    pub gateway_name: String,
    pub gateway: RecallGatewaySpec,
    /// Experiments in the order they should claim buckets (file order).
    pub experiments: Vec<(String, RecallExperimentSpec)>,
}

/// Why a directory cannot be run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no RecallGateway found: add one (see examples/gateway.yaml)")]
    NoGateway,
    #[error("kan up runs one RecallGateway, found {0}: keep one per directory")]
    SeveralGateways(usize),
    #[error("{kind} '{name}' is defined twice")]
    Duplicate { kind: &'static str, name: String },
}

/// Builds the plan. Objects must already be validated.
pub fn plan(objects: &[KanObject], dir: &Path) -> Result<Plan, PlanError> {
    let mut workers = BTreeMap::new();
    let mut gateways = Vec::new();
    let mut experiments: Vec<(String, RecallExperimentSpec)> = Vec::new();
    for object in objects {
        let name = object.name().to_string();
        match object {
            KanObject::Queue(q) => {
                let mut spec = q.spec.clone();
                if let Some(bundle) = spec.bundle.as_mut() {
                    bundle.uri = resolve_uri(&bundle.uri, dir);
                }
                let config = WorkerConfig {
                    name: name.clone(),
                    spec,
                };
                if workers.insert(name.clone(), config).is_some() {
                    return Err(PlanError::Duplicate {
                        kind: "RecallQueue",
                        name,
                    });
                }
            }
            KanObject::Gateway(g) => {
                let mut spec = g.spec.clone();
                // The propensity lift table is a local bundle directory, relative like bundles.
                if let Some(p) = spec.filters.propensity.as_mut() {
                    p.table = resolve_uri(&p.table, dir);
                }
                gateways.push((name, spec));
            }
            KanObject::Experiment(e) => {
                if experiments.iter().any(|(n, _)| *n == name) {
                    return Err(PlanError::Duplicate {
                        kind: "RecallExperiment",
                        name,
                    });
                }
                experiments.push((name, e.spec.clone()));
            }
        }
    }
    let (gateway_name, gateway) = match gateways.len() {
        0 => return Err(PlanError::NoGateway),
        1 => gateways.remove(0),
        n => return Err(PlanError::SeveralGateways(n)),
    };
    Ok(Plan {
        workers,
        gateway_name,
        gateway,
        experiments,
    })
}

/// Relative bundle paths in a spec are relative to the directory holding the YAML, so a
/// directory of specs and bundles can be moved as a whole. URIs with a scheme are kept.
fn resolve_uri(uri: &str, dir: &Path) -> String {
    if uri.contains("://") || Path::new(uri).is_absolute() {
        uri.to_string()
    } else {
        dir.join(uri).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::manifest::parse_manifests;

    const GATEWAY: &str = "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {name: feed}\nspec:\n  queues: [{name: pop}]\n";
    const QUEUE: &str = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: pop}\nspec:\n  strategy: {type: popular}\n  bundle: {uri: bundles/popular}\n";

    fn objects(docs: &[&str]) -> Vec<KanObject> {
        parse_manifests(&docs.join("---\n")).expect("valid yaml")
    }

    #[test]
    fn relative_bundle_paths_resolve_against_the_directory() {
        let plan = plan(&objects(&[GATEWAY, QUEUE]), Path::new("/srv/demo")).expect("plan");
        let uri = &plan.workers["pop"]
            .spec
            .bundle
            .as_ref()
            .expect("bundle")
            .uri;
        assert_eq!(uri, "/srv/demo/bundles/popular");
        assert_eq!(resolve_uri("s3://b/x", Path::new("/d")), "s3://b/x");
        assert_eq!(resolve_uri("/abs", Path::new("/d")), "/abs");
    }

    #[test]
    fn the_gateways_propensity_table_resolves_against_the_directory() {
        let gateway = format!(
            "{GATEWAY}  filters:\n    propensity: {{table: bundles/popular, keys: [region]}}\n"
        );
        let plan = plan(&objects(&[&gateway, QUEUE]), Path::new("/srv/demo")).expect("plan");
        let p = plan.gateway.filters.propensity.expect("declared");
        assert_eq!(p.table, "/srv/demo/bundles/popular");
    }

    #[test]
    fn a_directory_needs_exactly_one_gateway() {
        assert_eq!(
            plan(&objects(&[QUEUE]), Path::new(".")),
            Err(PlanError::NoGateway)
        );
        let two = GATEWAY.replace("name: feed", "name: other");
        assert_eq!(
            plan(&objects(&[GATEWAY, &two]), Path::new(".")),
            Err(PlanError::SeveralGateways(2))
        );
    }

    #[test]
    fn duplicate_queues_are_refused() {
        let err = plan(&objects(&[GATEWAY, QUEUE, QUEUE]), Path::new(".")).expect_err("duplicate");
        assert_eq!(
            err,
            PlanError::Duplicate {
                kind: "RecallQueue",
                name: "pop".into()
            }
        );
    }

    #[test]
    fn experiments_keep_file_order() {
        let exp = |name: &str| {
            format!(
                "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: {name}}}\nspec:\n  gateway: feed\n  traffic: 10\n  arms: [{{name: a, weight: 100}}]\n"
            )
        };
        let (b, a) = (exp("b"), exp("a"));
        let plan = plan(&objects(&[GATEWAY, &b, &a]), Path::new(".")).expect("plan");
        let names: Vec<&str> = plan.experiments.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
