//! `/healthz`, `/readyz` and `/metrics` of the operator process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::{Error, Result};

/// What the probes report.
#[derive(Debug, Default)]
pub struct Health {
    /// Started: connected to the API server (leader or standby).
    pub ready: AtomicBool,
    /// Holds the Lease and runs the controllers.
    pub leader: AtomicBool,
    /// Watch errors since the controllers last made progress (a reconcile finished).
    pub watch_failures: AtomicU32,
}

/// Consecutive watch errors after which the leader reports not ready: a watch that keeps
/// failing (RBAC, a missing CRD) means nothing is reconciled. Watches retry with backoff, so
/// this is minutes of failure, not a blip.
pub const MAX_WATCH_FAILURES: u32 = 5;

impl Health {
    /// A controller made progress: its watches work.
    pub fn progressed(&self) {
        self.watch_failures.store(0, Ordering::Release);
    }

    /// A watch failed; returns the number of failures in a row.
    pub fn watch_failed(&self) -> u32 {
        self.watch_failures.fetch_add(1, Ordering::AcqRel) + 1
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: PrometheusHandle,
}

/// The probe and metrics routes.
pub fn router(health: Arc<Health>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .with_state(AppState { health, metrics })
}

/// A standby instance is ready too: it is healthy and takes over when the leader goes.
async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    match (
        s.health.ready.load(Ordering::Acquire),
        s.health.leader.load(Ordering::Acquire),
    ) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        (true, true) if s.health.watch_failures.load(Ordering::Acquire) >= MAX_WATCH_FAILURES => (
            StatusCode::SERVICE_UNAVAILABLE,
            "leader, but its watches keep failing (see the operator's log)",
        ),
        (true, true) => (StatusCode::OK, "leader"),
        (true, false) => (StatusCode::OK, "standby"),
    }
}

/// Serves `router` on `addr` under `limits` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    limits: kan_http::ListenerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let err = |e: std::io::Error| Error::Serve {
        addr: addr.to_string(),
        message: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(err)?;
    kan_http::serve(listener, router, limits, shutdown)
        .await
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_reports_starting_standby_and_leader() {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let health = Arc::new(Health::default());
        let app = router(health.clone(), handle);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting".into())
        );
        health.ready.store(true, Ordering::Release);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::OK, "standby".into())
        );
        health.leader.store(true, Ordering::Release);
        assert_eq!(
            get(app.clone(), "/readyz").await,
            (StatusCode::OK, "leader".into())
        );
        assert_eq!(
            get(app.clone(), "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(get(app, "/metrics").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_leader_whose_watches_keep_failing_is_not_ready_until_a_reconcile_succeeds() {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let health = Arc::new(Health::default());
        health.ready.store(true, Ordering::Release);
        health.leader.store(true, Ordering::Release);
        let app = router(health.clone(), handle);
        for _ in 1..MAX_WATCH_FAILURES {
            health.watch_failed();
        }
        assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(health.watch_failed(), MAX_WATCH_FAILURES);
        let (status, body) = get(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("watches keep failing"), "{body}");
        health.progressed();
        assert_eq!(get(app, "/readyz").await.0, StatusCode::OK);
    }
}
