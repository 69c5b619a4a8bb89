//! The gateway's HTTP API: `POST /v1/recall`, `/healthz`, `/readyz`, `/metrics`, `/stats`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kan_api::wire::{ErrorBody, ErrorCode, RecallRequest};
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
    /// The HTTP routes; `/metrics` renders `metrics` (the process's Prometheus recorder) and
    /// answers 404 without one.
    pub fn router(&self, metrics: Option<PrometheusHandle>) -> Router {
        Router::new()
            .route("/v1/recall", post(recall))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(render_metrics))
            .route("/stats", get(stats))
            .with_state(AppState {
                gateway: self.clone(),
                metrics,
            })
            .merge(crate::console::router(self.handle()))
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

/// Serves the router on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
    field: Option<&str>,
) -> Response {
    (status, Json(ErrorBody::new(code, message, field))).into_response()
}

async fn recall(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let request: RecallRequest = match parse_request(&body) {
        Ok(r) => r,
        Err((message, field)) => {
            metrics::counter!(crate::metrics::REQUESTS, "outcome" => "invalid").increment(1);
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                message,
                field.as_deref(),
            );
        }
    };
    if let Err(e) = kan_api::validate::recall_request(&request) {
        metrics::counter!(crate::metrics::REQUESTS, "outcome" => "invalid").increment(1);
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            e.to_string(),
            Some(&e.field),
        );
    }
    let parent = crate::trace::extract(&headers);
    let span = tracing::info_span!("recall", otel.kind = "server", user_id = %request.user_id);
    // Continue the caller's trace when a tracing layer is installed (a no-op otherwise).
    let _ = span.set_parent(parent.clone());
    match app
        .gateway
        .recall_json(&request, &parent)
        .instrument(span)
        .await
    {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e @ Error::RequiredQueueFailed { .. }) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            e.to_string(),
            None,
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
            None,
        ),
    }
}

/// Parses the body, naming the offending field where serde can tell.
fn parse_request(body: &[u8]) -> Result<RecallRequest, (String, Option<String>)> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path != "." {
            Some(path)
        } else {
            backticked(&inner.to_string())
        };
        (format!("invalid request body: {inner}"), field)
    })
}

/// The field named in serde's "unknown field `x`" / "missing field `x`" messages.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
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
    // refusal is in the body and the `kan_gateway_config_rejected` gauge). A gateway never
    // runs without a valid config: `kan gateway` exits when its first one is invalid.
    let config_error = handle.last_error();
    Json(Readiness {
        ready: true,
        gateway: config.gateway.clone(),
        config_hash: handle.config_hash(),
        queues,
        config_rejected: config_error.is_some(),
        config_error,
    })
    .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let (message, field) =
            parse_request(br#"{"user_id": "u", "k": "many"}"#).expect_err("bad k");
        assert_eq!(field.as_deref(), Some("k"));
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let (_, field) = parse_request(br#"{"user_id": "u", "kk": 3}"#).expect_err("unknown");
        assert_eq!(field.as_deref(), Some("kk"));
        let (_, field) = parse_request(br#"{"k": 3}"#).expect_err("missing");
        assert_eq!(field.as_deref(), Some("user_id"));
    }
}
