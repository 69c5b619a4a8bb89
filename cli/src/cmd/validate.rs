use std::path::PathBuf;

use anyhow::{Context, bail};

/// Validate Kan YAML files (the same rules the API server applies through the CRDs).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML files or directories of YAML files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut failures = 0;
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
                            println!("{}: {} {} ok", path.display(), object.kind(), object.name())
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
    if failures > 0 {
        bail!("{failures} invalid object(s)");
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
