//! The gateway's HTTP API: `POST /v1/recall`, `/healthz`, `/readyz`, `/metrics`, `/stats`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kan_api::wire::{ErrorCode, RecallRequest};
use kan_http::error_response as error;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::Error;
use crate::gateway::Gateway;

#[derive(Clone)]
struct AppState {
    gateway: Gateway,
    metrics: Option<PrometheusHandle>,
}

impl Gateway {
    /// The HTTP routes, admitting the default number of recall requests at once
    /// ([`kan_http::default_max_in_flight`]); see [`Gateway::router_with_admission`].
    pub fn router(&self, metrics: Option<PrometheusHandle>) -> Router {
        let admission = kan_http::Admission::new(kan_http::default_max_in_flight(), "gateway");
        self.router_with_admission(metrics, admission)
    }

    /// The HTTP routes; `/metrics` renders `metrics` (the process's Prometheus recorder) and
    /// answers 404 without one. `admission` bounds `POST /v1/recall` only: probes, `/metrics`,
    /// `/stats` and the console are never shed. Every error answer, the router's own
    /// 404/405/413 included, has the JSON error body.
    pub fn router_with_admission(
        &self,
        metrics: Option<PrometheusHandle>,
        admission: kan_http::Admission,
    ) -> Router {
        Router::new()
            .route("/v1/recall", post(recall).layer(admission))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(render_metrics))
            .route("/stats", get(stats))
            .with_state(AppState {
                gateway: self.clone(),
                metrics,
            })
            .merge(crate::console::router(self.handle()))
            .fallback(kan_http::not_found)
            .layer(axum::middleware::map_response(kan_http::json_errors))
    }
}

/// `/metrics` alone, for a separate metrics port (`--metrics-listen`).
pub fn metrics_router(metrics: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics.render(),
                )
            }
        }),
    )
}

async fn recall(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = tokio::time::Instant::now(); // the deadline counts parsing and encoding
    if let Err(refused) = kan_http::require_json(&headers) {
        metrics::counter!(crate::metrics::REQUESTS, "outcome" => "invalid").increment(1);
        return refused;
    }
    let request: RecallRequest = match kan_api::wire::parse_recall_request(&body) {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!(crate::metrics::REQUESTS, "outcome" => "invalid").increment(1);
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                e.message,
                Some(&e.field),
            );
        }
    };
    let parent = crate::trace::extract(&headers);
    let span = tracing::info_span!("recall", otel.kind = "server", user_id = %request.user_id);
    // Continue the caller's trace when a tracing layer is installed (a no-op otherwise).
    let _ = span.set_parent(parent.clone());
    match app
        .gateway
        .recall_json(&request, arrived, &parent)
        .instrument(span)
        .await
    {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e @ (Error::RequiredQueueFailed { .. } | Error::NotConfigured { .. })) => {
            kan_http::unavailable(e.to_string())
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
            None,
        ),
    }
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    gateway: String,
    config_hash: String,
    /// Queues referenced by the config and whether they have an endpoint.
    queues: Vec<QueueReadiness>,
    /// True while the last config offered was refused; the previous one keeps serving.
    config_rejected: bool,
    /// The last rejected config; the previous one keeps serving.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_error: Option<String>,
}

#[derive(Serialize)]
struct QueueReadiness {
    name: String,
    ready: bool,
}

async fn readyz(State(app): State<AppState>) -> Response {
    let handle = app.gateway.handle();
    let config = handle.config();
    let queues = config
        .referenced_queues()
        .into_iter()
        .map(|name| QueueReadiness {
            ready: config.endpoints.contains_key(&name),
            name,
        })
        .collect();
    // A loaded config is enough to serve: missing queues degrade responses, they don't stop
    // them, and a refused newer config leaves the last good one serving (so still ready; the
    // refusal is in the body and the `kan_gateway_config_rejected` gauge). A gateway whose
    // first config was refused has nothing to serve: 503 until a valid one loads.
    let config_error = handle.last_error();
    let ready = handle.configured();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(Readiness {
        ready,
        gateway: config.gateway.clone(),
        config_hash: handle.config_hash(),
        queues,
        config_rejected: config_error.is_some(),
        config_error,
    });
    (status, body).into_response()
}

async fn render_metrics(State(app): State<AppState>) -> Response {
    match &app.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no metrics recorder is installed in this process",
            None,
        ),
    }
}

async fn stats(State(app): State<AppState>) -> Response {
    Json(app.gateway.stats()).into_response()
}
