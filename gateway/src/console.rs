//! The console page (`/ui`): queues with status and latency, experiments with their split and
//! live request counts, and a "try a user" view. One static HTML file with inline script — no
//! build step, nothing fetched from the network; it reads `/stats`, `/ui/config` and
//! `/v1/recall`.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;

use crate::GatewayHandle;

const PAGE: &str = include_str!("console/index.html");

/// Routes `/ui` (the page) and `/ui/config` (the routing config now serving, as JSON).
pub fn router(handle: GatewayHandle) -> Router {
    Router::new()
        .route("/ui", get(|| async { Html(PAGE) }))
        .route("/ui/config", get(config))
        .with_state(handle)
}

async fn config(State(handle): State<GatewayHandle>) -> impl IntoResponse {
    Json(handle.config())
}
