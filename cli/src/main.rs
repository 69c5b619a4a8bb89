//! `kan`: the one binary. Each subcommand lives in its own module under `cmd/` and only parses
//! flags and calls into the library crates.

use clap::{Parser, Subcommand};

mod cmd;
mod signal;
mod telemetry;

// Request paths (JSON in and out, merges) allocate many small objects; mimalloc serves them
// with less CPU than glibc malloc (BENCHMARKS.md, "Gateway").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kan: a Kubernetes-native multi-path recall platform for recommendation feeds.
#[derive(Parser, Debug)]
#[command(name = "kan", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions of RecallQueue, RecallGateway and RecallExperiment.
    Crd(cmd::crd::Args),
    /// Validate RecallQueue/RecallGateway/RecallExperiment YAML files with the CRDs' rules.
    Validate(cmd::validate::Args),
    /// Run the Kubernetes operator (RecallQueue, RecallGateway and RecallExperiment controllers).
    Operator(cmd::operator::Args),
    /// Train a strategy from interaction data into a bundle.
    Train(cmd::train::Args),
    /// Evaluate bundles (full ranking, per queue and merged) or exposure logs per arm.
    Eval(cmd::eval::Args),
    /// Run the merging gateway from a routing config (hot-reloaded).
    Gateway(cmd::gateway::Args),
    /// Serve one recall queue (a strategy over a bundle) on /v1/recall.
    Worker(cmd::worker::Args),
    /// Load bundles into vector indexes (Qdrant).
    Index(cmd::index::Args),
    /// Verify bundles (manifest and every sha256) and push them to object storage.
    Bundle(cmd::bundle::Args),
    /// Load generators: `kan bench worker`, `kan bench gateway`.
    Bench(cmd::bench::Args),
    /// Run the whole platform locally: the gateway and one worker per queue of a directory.
    Up(cmd::up::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => cmd::crd::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Operator(args) => cmd::operator::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Index(args) => cmd::index::run(args),
        Command::Bundle(args) => cmd::bundle::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    }
}
