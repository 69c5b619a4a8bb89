//! Fake queue servers for tests and benchmarks — a harness, not a product mode.
//!
//! [`FakeQueue::spawn`] serves `POST /v1/recall` on `127.0.0.1:0` like a worker, with a fixed
//! candidate list and a behaviour (latency, HTTP errors, hanging) that can be changed while it
//! runs. Like a worker it honours the request's `k` and `exclude`, and answers in the compact
//! layout when the `Accept` header asks for it (unless told to answer only JSON, like a worker
//! that predates the format). It counts calls and keeps the last request's headers, so tests can check fan-out,
//! hedging, circuit breaking and trace propagation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kan_api::wire::compact;
use kan_api::wire::{Candidate, ErrorBody, ErrorCode, RecallRequest, WorkerResponse};

/// How a fake queue answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Answer with the candidate list after `latency`.
    Answer { latency: Duration },
    /// Answer HTTP `status` with an error body after `latency`.
    Fail { status: u16, latency: Duration },
    /// Never answer (the caller must time out).
    Hang,
    /// Answer 200 with `body` labelled as `content_type` (a broken or foreign worker).
    Raw {
        content_type: &'static str,
        body: &'static [u8],
    },
}

impl Behaviour {
    pub fn instant() -> Self {
        Behaviour::Answer {
            latency: Duration::ZERO,
        }
    }
    pub fn after(latency: Duration) -> Self {
        Behaviour::Answer { latency }
    }
    pub fn fail(status: u16) -> Self {
        Behaviour::Fail {
            status,
            latency: Duration::ZERO,
        }
    }
}

struct Shared {
    name: String,
    candidates: Vec<Candidate>,
    /// The full answer in JSON and in the compact layout, encoded once so the fake costs
    /// little next to the gateway it measures.
    encoded_json: Bytes,
    encoded_compact: Bytes,
    /// False: answers JSON whatever the caller accepts.
    speaks_compact: AtomicBool,
    behaviour: Mutex<Behaviour>,
    calls: AtomicU64,
    last_headers: Mutex<Option<HeaderMap>>,
    last_request: Mutex<Option<RecallRequest>>,
}

/// A running fake queue; stops when dropped.
pub struct FakeQueue {
    shared: Arc<Shared>,
    url: String,
    router: Router,
    task: tokio::task::JoinHandle<()>,
}

impl FakeQueue {
    /// Serves `candidates` (best first) as queue `name`. Must run inside a tokio runtime.
    pub async fn spawn(
        name: &str,
        candidates: Vec<Candidate>,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        let response = WorkerResponse {
            queue: name.to_string(),
            version: "fake".into(),
            candidates: candidates.clone(),
            took_ms: 0.0,
            unknown_history: 0,
            degraded: false,
        };
        let encoded_json = encode(&response, false).map_err(std::io::Error::other)?;
        let encoded_compact = encode(&response, true).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            candidates,
            encoded_json,
            encoded_compact,
            speaks_compact: AtomicBool::new(true),
            behaviour: Mutex::new(behaviour),
            calls: AtomicU64::new(0),
            last_headers: Mutex::new(None),
            last_request: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let router = Router::new()
            .route("/v1/recall", post(answer))
            .with_state(shared.clone());
        let served = router.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, served).await;
        });
        Ok(Self {
            shared,
            url,
            router,
            task,
        })
    }

    /// `n` candidates `{prefix}{offset}`, `{prefix}{offset+1}`, … with decreasing scores.
    pub fn items(prefix: &str, offset: usize, n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                item_id: format!("{prefix}{}", offset + i),
                score: 1.0 - i as f32 / (n.max(1) as f32),
            })
            .collect()
    }

    /// Base URL (`http://127.0.0.1:PORT`), as in a routing config's `endpoints`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The router the queue serves, for calling it in-process (the same state: calls and
    /// behaviour are shared with the served one).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Whether the queue answers in the compact layout when asked (the default) or only JSON.
    pub fn set_speaks_compact(&self, speaks: bool) {
        self.shared.speaks_compact.store(speaks, Ordering::SeqCst);
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Headers of the last request received.
    pub fn last_headers(&self) -> Option<HeaderMap> {
        lock(&self.shared.last_headers).clone()
    }

    /// Body of the last request received.
    pub fn last_request(&self) -> Option<RecallRequest> {
        lock(&self.shared.last_request).clone()
    }
}

impl Drop for FakeQueue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn encode(response: &WorkerResponse, compact: bool) -> Result<Bytes, String> {
    if compact {
        compact::encode(response).map_err(|e| e.to_string())
    } else {
        serde_json::to_vec(response).map_err(|e| e.to_string())
    }
    .map(Bytes::from)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn answer(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let request: Option<RecallRequest> = serde_json::from_slice(&body).ok();
    let k = request.as_ref().and_then(|r| r.k).map(|k| k as usize);
    let exclude: Vec<String> = request
        .as_ref()
        .map(|r| r.exclude.clone())
        .unwrap_or_default();
    // Like a worker whose catalogue is its candidates: history ids outside it are unknown.
    let unknown_history = request.as_ref().map_or(0, |r| {
        r.history
            .iter()
            .flatten()
            .filter(|h| !shared.candidates.iter().any(|c| &c.item_id == *h))
            .count() as u32
    });
    let compact = shared.speaks_compact.load(Ordering::SeqCst)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(compact::accepts);
    *lock(&shared.last_headers) = Some(headers);
    *lock(&shared.last_request) = request;
    let behaviour = lock(&shared.behaviour).clone();
    match behaviour {
        Behaviour::Answer { latency } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let body = if k.is_none_or(|k| k >= shared.candidates.len())
                && exclude.is_empty()
                && unknown_history == 0
            {
                if compact {
                    shared.encoded_compact.clone()
                } else {
                    shared.encoded_json.clone()
                }
            } else {
                // Like a worker: drop excluded items, then keep the best k.
                let candidates: Vec<Candidate> = shared
                    .candidates
                    .iter()
                    .filter(|c| !exclude.contains(&c.item_id))
                    .take(k.unwrap_or(usize::MAX))
                    .cloned()
                    .collect();
                let response = WorkerResponse {
                    queue: shared.name.clone(),
                    version: "fake".into(),
                    candidates,
                    took_ms: 0.0,
                    unknown_history,
                    degraded: false,
                };
                encode(&response, compact).unwrap_or_default()
            };
            let content_type = if compact {
                compact::MEDIA_TYPE
            } else {
                "application/json"
            };
            let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
            if compact && unknown_history > 0 {
                response.headers_mut().insert(
                    compact::UNKNOWN_HISTORY_HEADER,
                    header::HeaderValue::from(unknown_history),
                );
            }
            response
        }
        Behaviour::Fail { status, latency } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = ErrorBody::new(
                ErrorCode::Internal,
                format!("fake queue {} failing on purpose", shared.name),
                None,
            );
            (status, axum::Json(body)).into_response()
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Raw { content_type, body } => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    }
}
