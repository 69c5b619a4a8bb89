//! Kan's operator: reconciles RecallQueue, RecallGateway and RecallExperiment objects into
//! worker and gateway Deployments wired together by a routing ConfigMap.
//!
//! * [`children`] — desired state of every child object, as pure functions;
//! * [`routing`], [`allocation`], [`status`] — the routing config, experiment allocation and
//!   status decisions, pure too;
//! * [`reconcile`] — the thin I/O around them (server-side apply, status, events);
//! * [`controller`] — which watches trigger which reconcile;
//! * [`decode`] — objects this version cannot decode are skipped and reported, one by one;
//! * [`readout`] — polls the gateways' online A/B readout for experiment status;
//! * [`leader`], [`server`] — leader election and the probe/metrics endpoints;
//! * [`run`] — all of it in one process, as `kan operator` starts it.

pub mod allocation;
pub mod children;
pub mod controller;
pub mod decode;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod readout;
pub mod reconcile;
pub mod routing;
pub mod server;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use metrics_exporter_prometheus::PrometheusHandle;

pub use children::BuildConfig;
pub use error::{Error, Result};
pub use leader::LeaderElection;

/// Everything `kan operator` configures.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    pub build: BuildConfig,
    /// Namespaces to watch; all namespaces when empty.
    pub namespaces: Vec<String>,
    /// Lease-based leader election; `None` runs the controllers at once (one replica only).
    pub leader_election: Option<LeaderElection>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// Limits of that listener.
    pub listener: kan_http::ListenerLimits,
    /// Name of this instance in events (the pod name).
    pub instance: Option<String>,
    /// How experiments' online readouts are polled from their gateways.
    pub readout: readout::ReadoutConfig,
}

type Signal = Shared<BoxFuture<'static, ()>>;

/// Runs the operator until `shutdown` resolves (or leadership is lost, which is an error).
pub async fn run(
    cfg: OperatorConfig,
    client: kube::Client,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let shutdown: Signal = shutdown.boxed().shared();
    let health = Arc::new(server::Health::default());
    let server = tokio::spawn(server::serve(
        cfg.listen,
        server::router(health.clone(), metrics),
        cfg.listener.clone(),
        shutdown.clone(),
    ));
    tracing::info!(listen = %cfg.listen, namespaces = ?cfg.namespaces, "kan operator starting");

    let ctx = Arc::new(
        reconcile::Context::new(client.clone(), cfg.build.clone(), cfg.instance.clone())
            .with_readout(cfg.readout.clone()),
    );
    let result = match &cfg.leader_election {
        None => {
            health.ready.store(true, Ordering::Release);
            health.leader.store(true, Ordering::Release);
            run_controllers(ctx, &cfg.namespaces, &health, shutdown.clone()).await;
            Ok(())
        }
        Some(election_cfg) => {
            lead(
                ctx,
                &cfg.namespaces,
                election_cfg,
                &health,
                shutdown.clone(),
            )
            .await
        }
    };
    health.leader.store(false, Ordering::Release);
    // The server stops with the same signal; on a leadership loss it stops with the process.
    if result.is_ok() {
        match server.await {
            Ok(served) => served?,
            Err(join) => tracing::warn!(error = %join, "health server task failed"),
        }
    }
    result
}

async fn lead(
    ctx: Arc<reconcile::Context>,
    namespaces: &[String],
    cfg: &LeaderElection,
    health: &Arc<server::Health>,
    shutdown: Signal,
) -> Result<()> {
    let mut election = leader::Election::start(ctx.client.clone(), cfg).await?;
    health.ready.store(true, Ordering::Release);
    tracing::info!(lease = %cfg.lease_name, identity = %cfg.identity, "waiting for leadership");
    tokio::select! {
        acquired = election.acquired() => acquired?,
        _ = shutdown.clone() => {
            election.release().await;
            return Ok(());
        }
    }
    health.leader.store(true, Ordering::Release);
    tracing::info!(lease = %cfg.lease_name, "leading: starting controllers");

    // Losing the lease stops the controllers just like a shutdown does.
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let stop: Signal = {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = lost_rx => {}
            }
        }
        .boxed()
        .shared()
    };
    let controllers = run_controllers(ctx, namespaces, health, stop);
    tokio::pin!(controllers);
    let outcome = tokio::select! {
        _ = &mut controllers => Ok(()),
        lost = election.lost() => {
            let _ = lost_tx.send(());
            controllers.await;
            Err(lost)
        }
    };
    election.release().await;
    outcome
}

async fn run_controllers(
    ctx: Arc<reconcile::Context>,
    namespaces: &[String],
    health: &Arc<server::Health>,
    stop: Signal,
) {
    if namespaces.is_empty() {
        controller::run(ctx, None, health.clone(), stop).await;
    } else {
        let all = namespaces
            .iter()
            .map(|ns| controller::run(ctx.clone(), Some(ns.clone()), health.clone(), stop.clone()));
        futures::future::join_all(all).await;
    }
}
