use std::path::PathBuf;

use anyhow::Context;

/// Print the CRDs as YAML, or write one file per CRD.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write `<plural>.kan.dev.yaml` files into this directory instead of printing.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.out_dir {
        None => print!("{}", kan_api::crd::crds_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, yaml) in kan_api::crd::crd_files()? {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
