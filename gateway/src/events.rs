//! Fresh signals at the gateway: `POST /v1/events` ingests a batch of engagements and follow
//! edges into the online store, and `GET /v1/experiments/readout` joins the exposure log with
//! the engagements stored since (the online A/B readout).
//!
//! Ingestion is acknowledged (`200`) only after the store has applied the batch; a batch with
//! any bad event is refused whole (`400`, naming the field) and nothing is stored; a store that
//! does not answer gets `503` + `Retry-After` and the caller retries (at-least-once: the store
//! applies each event id once). Its own admission bound sheds excess batches with `503` rather
//! than queueing them in memory.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use kan_api::events::{EventsAck, Readout};
use kan_api::wire::{ErrorCode, ExposureRecord};
use kan_core::readout::{Engaged, readout};
use kan_http::error_response as error;
use kan_signals::SignalStore;
use serde::Deserialize;

use crate::GatewayHandle;

/// Batches in flight at once by default: each waits on one store round trip (an fsync with
/// Redis), so a few per core keep the store busy; more would only queue.
pub const DEFAULT_MAX_BATCHES_IN_FLIGHT: usize = 64;
/// The readout reads at most this much of the end of the exposure log.
pub const READOUT_MAX_LOG_BYTES: u64 = 64 << 20;
/// Default join window of the readout: an engagement within 30 minutes of the exposure counts.
pub const DEFAULT_READOUT_WINDOW_MS: i64 = 30 * 60 * 1000;

#[derive(Clone)]
struct Ingest {
    store: Arc<dyn SignalStore>,
}

/// `POST /v1/events` into `store`, at most `admission`'s batches at once.
pub fn events_router(store: Arc<dyn SignalStore>, admission: kan_http::Admission) -> Router {
    Router::new()
        .route("/v1/events", post(ingest).layer(admission))
        .with_state(Ingest { store })
        .layer(axum::middleware::map_response(kan_http::json_errors))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn ingest(State(state): State<Ingest>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = kan_http::require_json(&headers) {
        return refused;
    }
    let events = match kan_api::events::parse_events(&body, now_ms()) {
        Ok(events) => events,
        Err(e) => {
            metrics::counter!(crate::metrics::EVENTS, "outcome" => "invalid").increment(1);
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                e.message,
                Some(&e.field),
            );
        }
    };
    match state.store.append(&events).await {
        Ok(appended) => {
            metrics::counter!(crate::metrics::EVENTS, "outcome" => "stored")
                .increment(appended.stored as u64);
            metrics::counter!(crate::metrics::EVENTS, "outcome" => "duplicate")
                .increment(appended.duplicates as u64);
            Json(EventsAck {
                received: events.len(),
                stored: appended.stored,
                duplicates: appended.duplicates,
            })
            .into_response()
        }
        Err(e) => {
            metrics::counter!(crate::metrics::EVENTS, "outcome" => "unavailable")
                .increment(events.len() as u64);
            tracing::warn!(error = %e, kind = e.metric_label(), "event batch not stored");
            kan_http::unavailable(format!(
                "the batch was not stored ({e}); retry it: events apply once by id"
            ))
        }
    }
}

#[derive(Clone)]
struct ReadoutState {
    store: Arc<dyn SignalStore>,
    handle: GatewayHandle,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadoutParams {
    window_ms: Option<i64>,
}

/// `GET /v1/experiments/readout[?window_ms=N]`: the exposure log of the config now serving
/// joined with the engagements in `store`.
pub fn readout_router(store: Arc<dyn SignalStore>, handle: GatewayHandle) -> Router {
    Router::new()
        .route("/v1/experiments/readout", get(experiment_readout))
        .with_state(ReadoutState { store, handle })
        .layer(axum::middleware::map_response(kan_http::json_errors))
}

async fn experiment_readout(
    State(state): State<ReadoutState>,
    params: Result<Query<ReadoutParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let window_ms = match params {
        Ok(Query(p)) => p.window_ms.unwrap_or(DEFAULT_READOUT_WINDOW_MS),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArgument,
                e.body_text(),
                Some("window_ms"),
            );
        }
    };
    if !(1..=kan_api::events::MAX_AGE_MS).contains(&window_ms) {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            format!("must be 1 to {} ms", kan_api::events::MAX_AGE_MS),
            Some("window_ms"),
        );
    }
    let Some(path) = state.handle.config().exposure_log else {
        return Json(Readout {
            window_ms,
            ..Readout::default()
        })
        .into_response();
    };
    let exposures =
        match tokio::task::spawn_blocking(move || read_exposures(Path::new(&path))).await {
            Ok(Ok(exposures)) => exposures,
            Ok(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    format!("reading the exposure log: {e}"),
                    None,
                );
            }
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    e.to_string(),
                    None,
                );
            }
        };
    match engagements_of(state.store.as_ref(), &exposures).await {
        Ok(engagements) => Json(readout(&exposures, &engagements, window_ms)).into_response(),
        Err(e) => kan_http::unavailable(e.to_string()),
    }
}

/// The exposures of the last [`READOUT_MAX_LOG_BYTES`] of the log that are in an experiment
/// (a partial first line and lines that do not parse are skipped).
pub fn read_exposures(path: &Path) -> std::io::Result<Vec<ExposureRecord>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(READOUT_MAX_LOG_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut text = String::new();
    file.take(READOUT_MAX_LOG_BYTES).read_to_string(&mut text)?;
    let mut lines = text.lines();
    if start > 0 {
        lines.next();
    }
    Ok(lines
        .filter_map(|l| serde_json::from_str::<ExposureRecord>(l).ok())
        .filter(|r| !r.assignments.is_empty())
        .collect())
}

/// The stored engagements of every exposed user.
async fn engagements_of(
    store: &dyn SignalStore,
    exposures: &[ExposureRecord],
) -> kan_signals::Result<HashMap<String, Vec<Engaged>>> {
    let users: Vec<String> = exposures
        .iter()
        .map(|e| e.user_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut out = HashMap::with_capacity(users.len());
    for chunk in users.chunks(500) {
        let lists = store
            .engagements(chunk, kan_signals::ENGAGEMENTS_MAX)
            .await?;
        for (user, list) in chunk.iter().zip(lists) {
            let engaged = list
                .into_iter()
                .map(|e| Engaged {
                    item_id: e.item_id,
                    ts_ms: e.ts_ms,
                })
                .collect();
            out.insert(user.clone(), engaged);
        }
    }
    Ok(out)
}
