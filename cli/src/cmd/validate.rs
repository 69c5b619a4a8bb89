use std::path::PathBuf;

use anyhow::{Context, bail};

/// Validate Kan YAML files (the same rules the API server applies through the CRDs), and the
/// references between them: gateway → queues and fallback, experiment → gateway and queues. A
/// kind of which no file is given is not checked, so one file can be validated on its own.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML files or directories of YAML files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut failures = 0;
    // Objects valid on their own, with their file, for the references across files.
    let mut valid: Vec<(String, kan_api::manifest::KanObject)> = Vec::new();
    for path in yaml_files(&args.paths)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match kan_api::manifest::parse_manifests(&text) {
            Err(e) => {
                failures += 1;
                eprintln!("{}: {e}", path.display());
            }
            Ok(objects) => {
                for object in objects {
                    match kan_api::validate::object(&object) {
                        Ok(()) => {
                            println!("{}: {} {} ok", path.display(), object.kind(), object.name());
                            valid.push((path.display().to_string(), object));
                        }
                        Err(e) => {
                            failures += 1;
                            eprintln!(
                                "{}: {} {}: {e}",
                                path.display(),
                                object.kind(),
                                object.name()
                            );
                        }
                    }
                }
            }
        }
    }
    let objects: Vec<(&str, &kan_api::manifest::KanObject)> =
        valid.iter().map(|(file, o)| (file.as_str(), o)).collect();
    for dangling in kan_api::validate::references(&objects, kan_api::validate::Scope::AsGiven) {
        failures += 1;
        eprintln!("{dangling}");
    }
    if failures > 0 {
        bail!("{failures} problem(s)");
    }
    Ok(())
}

/// The YAML files named: files as given, directories as their `.yaml`/`.yml` files, sorted.
pub fn yaml_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
