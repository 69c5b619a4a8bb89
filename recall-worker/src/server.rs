//! The worker's HTTP API: `POST /v1/recall`, `POST /v1/items` (items added after training),
//! `/healthz`, `/readyz`, `/metrics`.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kan_api::wire::compact;
use kan_api::wire::{ErrorBody, ErrorCode, WorkerResponse};
use kan_http::Admission;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::Error;
use crate::worker::Worker;

#[derive(Clone)]
struct AppState {
    worker: Worker,
    metrics: Option<PrometheusHandle>,
}

/// The router of one worker. `metrics` renders `/metrics` (the process's Prometheus recorder);
/// without it `/metrics` answers 404. `admission` bounds `POST /v1/recall` only: probes and
/// `/metrics` are never shed. Every error answer, the router's own 404/405/413 included, has the
/// JSON error body.
pub fn router(worker: Worker, metrics: Option<PrometheusHandle>, admission: Admission) -> Router {
    Router::new()
        .route("/v1/recall", post(recall).layer(admission.clone()))
        .route("/v1/items", post(add_items).layer(admission))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { worker, metrics })
        .fallback(kan_http::not_found)
        .layer(axum::middleware::map_response(kan_http::json_errors))
}

/// A router serving only `/metrics` (for `--metrics-listen`).
pub fn metrics_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(h): State<PrometheusHandle>| async move { h.render() }),
        )
        .with_state(metrics)
}

/// HTTP status and wire code of an error.
pub fn status_of(error: &Error) -> (StatusCode, ErrorCode) {
    match error {
        Error::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument),
        Error::NotReady(_) | Error::Index(_) | Error::Fetch { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
        }
        Error::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::DeadlineExceeded),
        Error::IndexConfig(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Misconfigured),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
    }
}

fn error_response(error: &Error) -> Response {
    let (status, code) = status_of(error);
    let field = match error {
        Error::InvalidRequest { field, .. } => Some(field.as_str()),
        _ => None,
    };
    let message = match error {
        Error::InvalidRequest { message, .. } => message.clone(),
        other => other.to_string(),
    };
    (status, axum::Json(ErrorBody::new(code, message, field))).into_response()
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

async fn recall(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = kan_http::require_json(&headers) {
        return refused;
    }
    let started = Instant::now();
    let queue = state.worker.config().name;
    let span = tracing::info_span!("recall", queue = %queue, user_id = tracing::field::Empty, returned = tracing::field::Empty);
    // W3C trace context from the caller (the gateway); the binary installs the propagator.
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&headers)));
    let _ = span.set_parent(parent);
    let compact = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compact::accepts);
    let outcome = async {
        let request =
            kan_api::wire::parse_recall_request(&body).map_err(|e| Error::InvalidRequest {
                field: e.field,
                message: e.message,
            })?;
        tracing::Span::current().record("user_id", request.user_id.as_str());
        state.worker.recall(&request).await
    }
    .instrument(span.clone())
    .await;
    metrics::histogram!(crate::metrics::REQUEST_SECONDS, "queue" => queue.clone())
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(response) => {
            span.record("returned", response.candidates.len());
            metrics::histogram!(crate::metrics::CANDIDATES_RETURNED, "queue" => queue.clone())
                .record(response.candidates.len() as f64);
            metrics::counter!(crate::metrics::REQUESTS, "queue" => queue, "status" => "ok")
                .increment(1);
            answer(&response, compact)
        }
        Err(e) => {
            let kind = e.metric_label();
            metrics::counter!(crate::metrics::ERRORS, "queue" => queue.clone(), "kind" => kind)
                .increment(1);
            metrics::counter!(crate::metrics::REQUESTS, "queue" => queue, "status" => "error")
                .increment(1);
            if !matches!(e, Error::InvalidRequest { .. }) {
                tracing::warn!(parent: &span, error = %e, kind, "recall failed");
            }
            error_response(&e)
        }
    }
}

async fn add_items(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = kan_http::require_json(&headers) {
        return refused;
    }
    let outcome = match kan_api::wire::parse_items_request(&body) {
        Ok(request) => state.worker.add_items(&request).await,
        Err(e) => Err(Error::InvalidRequest {
            field: e.field,
            message: e.message,
        }),
    };
    match outcome {
        Ok(response) => axum::Json(response).into_response(),
        Err(e) => {
            if !matches!(e, Error::InvalidRequest { .. }) {
                tracing::warn!(error = %e, kind = e.metric_label(), "adding items failed");
            }
            error_response(&e)
        }
    }
}

/// The answer in the compact layout when the caller asked for it, else JSON.
fn answer(response: &WorkerResponse, compact: bool) -> Response {
    if compact {
        match compact::encode(response) {
            Ok(body) => {
                let unknown = response.unknown_history.to_string();
                let mut answer = (
                    [
                        (header::CONTENT_TYPE, compact::MEDIA_TYPE),
                        (
                            header::HeaderName::from_static(compact::UNKNOWN_HISTORY_HEADER),
                            unknown.as_str(),
                        ),
                    ],
                    body,
                )
                    .into_response();
                if response.degraded {
                    answer.headers_mut().insert(
                        header::HeaderName::from_static(compact::DEGRADED_HEADER),
                        header::HeaderValue::from_static("true"),
                    );
                }
                return answer;
            }
            // Only an answer over 4 GiB; JSON is what the caller accepts besides.
            Err(e) => tracing::warn!(error = %e, "answering in JSON"),
        }
    }
    axum::Json(response).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.worker.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => kan_http::error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no metrics recorder is installed in this process",
            None,
        ),
    }
}
