//! `kan eval --queues`: the RecallQueue / RecallGateway YAML a platform deploys, read as the
//! settings to evaluate with, so "what I evaluate" and "what I deploy" are the same file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kan_api::crd::{RecallGatewaySpec, RecallQueueSpec};
use kan_api::manifest::{KanObject, parse_manifests};
use kan_train::QueueInput;

/// The queues and the gateway found in the files.
#[derive(Debug, Default)]
pub struct Specs {
    /// Name, spec and the directory of the file that defined it (bundle paths are relative to it).
    pub queues: Vec<(String, RecallQueueSpec, PathBuf)>,
    pub gateway: Option<RecallGatewaySpec>,
}

/// Reads and validates every object of the files (a directory: its `.yaml`/`.yml` files).
pub fn read(paths: &[PathBuf]) -> anyhow::Result<Specs> {
    let mut specs = Specs::default();
    for file in super::validate::yaml_files(paths)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let objects =
            parse_manifests(&text).with_context(|| format!("parsing {}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        for object in objects {
            kan_api::validate::object(&object).with_context(|| {
                format!("{}: {} {}", file.display(), object.kind(), object.name())
            })?;
            add(&mut specs, object, &dir)?;
        }
    }
    Ok(specs)
}

fn add(specs: &mut Specs, object: KanObject, dir: &Path) -> anyhow::Result<()> {
    let name = object.name().to_string();
    match object {
        KanObject::Queue(q) => {
            if specs.queues.iter().any(|(n, _, _)| *n == name) {
                bail!("RecallQueue '{name}' is defined twice");
            }
            specs.queues.push((name, q.spec, dir.to_path_buf()));
        }
        KanObject::Gateway(mut g) => {
            if specs.gateway.is_some() {
                bail!("give one RecallGateway to evaluate merges with, found a second ('{name}')");
            }
            // The lift table path is relative to the file, like local bundle paths.
            if let Some(p) = g.spec.filters.propensity.as_mut() {
                p.table = relative_to(dir, &p.table);
            }
            specs.gateway = Some(g.spec);
        }
        KanObject::Experiment(_) => {}
    }
    Ok(())
}

/// The queues to evaluate: every RecallQueue with its strategy settings, its bundle from
/// `bundles` (NAME=DIR given on the command line) or else its local `bundle.uri`; with a
/// gateway, in the gateway's queue order with its weights and quotas (a route without a quota
/// gives none in the quota phase, as in the gateway), else in file order. Then every `bundles`
/// entry no RecallQueue names, with default settings.
pub fn queues(specs: &Specs, bundles: &[(String, PathBuf)]) -> anyhow::Result<Vec<QueueInput>> {
    let mut ordered: Vec<&(String, RecallQueueSpec, PathBuf)> = specs.queues.iter().collect();
    if let Some(g) = &specs.gateway {
        let position = |name: &str| g.queues.iter().position(|r| r.name == name);
        // Routed queues first, in route order; a stable sort keeps file order for the rest.
        ordered.sort_by_key(|(name, _, _)| position(name).unwrap_or(usize::MAX));
    }
    let mut out = Vec::new();
    for (name, spec, dir) in ordered {
        let bundle = match bundles.iter().find(|(n, _)| n == name) {
            Some((_, dir)) => dir.clone(),
            None => local_bundle(name, spec, dir)?,
        };
        let mut q = QueueInput::new(name.clone(), bundle);
        q.strategy = Some(spec.strategy.clone());
        if let Some(g) = &specs.gateway {
            let route = g.queues.iter().find(|r| r.name == *name);
            q.weight = route.map_or(0.0, |r| r.weight);
            q.quota = Some(route.and_then(|r| r.quota).map_or(0, |n| n.max(0) as usize));
        }
        out.push(q);
    }
    for (name, dir) in bundles {
        if !specs.queues.iter().any(|(n, _, _)| n == name) {
            out.push(QueueInput::new(name.clone(), dir.clone()));
        }
    }
    Ok(out)
}

/// A queue's bundle directory: its `bundle.uri` when local (a path, relative to the YAML's
/// directory, or `file://`).
fn local_bundle(name: &str, spec: &RecallQueueSpec, dir: &Path) -> anyhow::Result<PathBuf> {
    let Some(bundle) = &spec.bundle else {
        bail!("RecallQueue '{name}' has no bundle to evaluate");
    };
    let uri = bundle.uri.strip_prefix("file://").unwrap_or(&bundle.uri);
    if uri.contains("://") {
        bail!(
            "RecallQueue '{name}': bundle {} is not local; fetch it and pass --bundle {name}=DIR",
            bundle.uri
        );
    }
    Ok(dir.join(uri))
}

/// `path` resolved against `dir` unless absolute.
pub fn relative_to(dir: &Path, path: &str) -> String {
    if Path::new(path).is_absolute() {
        path.to_string()
    } else {
        dir.join(path).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: cf}\nspec:\n  strategy: {type: itemcf, itemcf: {historyLength: 7, recencyDecay: 0.5}}\n  bundle: {uri: bundles/itemcf}\n---\napiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: far}\nspec:\n  strategy: {type: social}\n  bundle: {uri: s3://b/social}\n---\napiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {name: gw}\nspec:\n  queues: [{name: far}, {name: cf, weight: 3, quota: 40}]\n  merge: {policy: rrf, rrfK: 10}\n";

    fn specs() -> Specs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("platform.yaml"), YAML).unwrap();
        read(&[dir.path().to_path_buf()]).unwrap()
    }

    #[test]
    fn a_queue_is_evaluated_with_its_yaml_settings_bundle_and_gateway_route() {
        let specs = specs();
        assert_eq!(specs.gateway.as_ref().map(|g| g.merge.rrf_k), Some(10.0));
        let bundles = vec![("far".to_string(), PathBuf::from("/b/social"))];
        let queues = queues(&specs, &bundles).unwrap();
        let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["far", "cf"], "the gateway's order");
        let cf = &queues[1];
        assert_eq!(
            (cf.name.as_str(), cf.weight, cf.quota),
            ("cf", 3.0, Some(40))
        );
        assert_eq!(
            queues[0].quota,
            Some(0),
            "no quota in the route: none in the quota phase"
        );
        assert!(cf.bundle.ends_with("bundles/itemcf"), "{:?}", cf.bundle);
        let Some(kan_api::crd::Strategy::Itemcf { itemcf }) = &cf.strategy else {
            panic!("{:?}", cf.strategy);
        };
        assert_eq!((itemcf.history_length, itemcf.recency_decay), (7, 0.5));
        assert_eq!(
            queues[0].bundle,
            PathBuf::from("/b/social"),
            "--bundle wins over the uri"
        );
    }

    #[test]
    fn the_gateways_propensity_table_is_relative_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = YAML.replace(
            "  merge: {policy: rrf, rrfK: 10}\n",
            "  merge: {policy: rrf, rrfK: 10}\n  filters:\n    propensity: {table: bundles/popular, keys: [age_band]}\n",
        );
        std::fs::write(dir.path().join("platform.yaml"), yaml).unwrap();
        let specs = read(&[dir.path().to_path_buf()]).unwrap();
        let p = specs.gateway.unwrap().filters.propensity.unwrap();
        assert_eq!(PathBuf::from(p.table), dir.path().join("bundles/popular"));
    }

    #[test]
    fn a_remote_bundle_without_a_local_copy_is_a_clear_error() {
        let err = queues(&specs(), &[]).unwrap_err().to_string();
        assert!(err.contains("pass --bundle far=DIR"), "{err}");
    }

    #[test]
    fn an_invalid_queue_file_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let bad = YAML.replace("historyLength: 7", "historyLength: 0");
        std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
        let err = format!("{:#}", read(&[dir.path().to_path_buf()]).unwrap_err());
        assert!(err.contains("RecallQueue cf"), "{err}");
    }
}
