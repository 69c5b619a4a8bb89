//! Fan-out: concurrent queue calls over pooled keep-alive HTTP connections (or straight to an
//! in-process worker's router, [`LocalQueues`]), each under its own timeout and the request's
//! deadline, with optional hedging and a circuit breaker. A call never
//! fails the fan-out: whatever happens becomes the queue's [`QueueStatus`].
//!
//! The breaker only hears what the queue is to blame for ([`verdict`]): connect errors, 5xx
//! and 429 answers, unreadable answers, and timeouts of calls that had a real budget. A call the
//! request's deadline cannot cover is not sent at all, and the gateway's own delay never opens a
//! queue's circuit.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kan_api::crd::{CircuitBreakerSpec, QueueRoute};
use kan_api::wire::compact;
use kan_api::wire::{ErrorBody, QueueStatus, RecallRequest};
use serde::Serialize;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::Instrument;

use crate::answer::CandidateList;
use crate::breaker::Breakers;
use crate::local::LocalQueues;

/// What the gateway asks queues to answer in: the compact layout, which costs a fraction of
/// JSON to read, and JSON from workers that predate it.
const ACCEPTED_ANSWERS: &str = "application/vnd.kan.candidates, application/json;q=0.5";

/// Idle keep-alive connections to a queue are closed after this long: a burst's extra
/// connections (and their buffers) do not outlive it by much.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A call whose remaining deadline budget is below this is not sent: no queue answers in less,
/// so sending it would only cost the queue work and blame it for the gateway's delay.
pub const MIN_CALL_BUDGET: Duration = Duration::from_millis(2);

/// A timed-out call counts against the queue only when it had at least this share of its
/// timeout; less means the gateway spent the rest of the deadline before calling.
const BLAMED_BUDGET_SHARE: f64 = 0.5;

/// One queue to call.
#[derive(Debug, Clone, Copy)]
pub struct QueueCall<'a> {
    pub route: &'a QueueRoute,
    /// The queue's `/v1/recall` URL, parsed once per config (an error says why the endpoint
    /// is not a URL); `None` when the queue has no endpoint (not ready).
    pub url: Option<&'a Result<Uri, String>>,
    /// Candidates asked of the queue.
    pub k: u32,
}

/// What came back from one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOutcome {
    pub name: String,
    pub status: QueueStatus,
    pub took_ms: f64,
    /// Empty unless `status` is `Ok`.
    pub candidates: CandidateList,
    /// Why the queue failed or was skipped.
    pub detail: Option<String>,
}

/// Deadline and breaker settings shared by the calls of one request.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits<'a> {
    /// The request's overall deadline.
    pub deadline: Instant,
    /// A queue's timeout when its route sets none.
    pub default_timeout: Duration,
    pub breaker: Option<(&'a Breakers, &'a CircuitBreakerSpec)>,
}

/// The request as a queue receives it, without `k` (spliced in per queue by [`with_k`]).
#[derive(Serialize)]
struct QueueRequest<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<&'a [String]>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    exclude: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    context: &'a BTreeMap<String, String>,
}

/// The HTTP side of the gateway; cheap to clone (one shared connection pool).
///
/// A plain hyper client: queue calls are plain-HTTP POSTs to URLs parsed once per config, with
/// their own timeouts and hedging, so a general-purpose client's per-request work (URL parsing
/// and re-parsing, redirect and retry layers) is cost without use on this path.
#[derive(Clone, Debug)]
pub struct FanOut {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Queues in this process, called without a socket (see [`LocalQueues`]).
    local: LocalQueues,
}

impl Default for FanOut {
    fn default() -> Self {
        Self::new()
    }
}

impl FanOut {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // A request calls each queue at most once, so admitted requests never need more
        // connections to one queue than the admission bound: keep no more idle than that.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(kan_http::default_max_in_flight())
            .build(connector);
        Self {
            client,
            local: LocalQueues::default(),
        }
    }

    /// The registry of in-process queues this fan-out calls without a socket.
    pub fn local_queues(&self) -> LocalQueues {
        self.local.clone()
    }

    /// Calls every queue concurrently; the outcomes come back in the order of `calls`.
    pub async fn call_all(
        &self,
        calls: &[QueueCall<'_>],
        request: &RecallRequest,
        limits: CallLimits<'_>,
        parent: &opentelemetry::Context,
    ) -> Vec<QueueOutcome> {
        // The caller's fields are encoded once; each distinct k gets them with `"k":N` in front,
        // and queues asked for the same k share one body.
        let fields = encode_fields(request);
        let mut bodies: Vec<(u32, Result<Bytes, String>)> = Vec::with_capacity(1);
        for call in calls {
            if !bodies.iter().any(|(k, _)| *k == call.k) {
                let body = fields
                    .as_ref()
                    .map(|f| with_k(f, call.k))
                    .map_err(Clone::clone);
                bodies.push((call.k, body));
            }
        }
        futures::future::join_all(calls.iter().map(|call| {
            let body = bodies
                .iter()
                .find(|(k, _)| *k == call.k)
                .map_or_else(|| Err("no body for this k".to_string()), |(_, b)| b.clone());
            self.call(call, body, limits, parent)
        }))
        .await
    }

    async fn call(
        &self,
        call: &QueueCall<'_>,
        body: Result<Bytes, String>,
        limits: CallLimits<'_>,
        parent: &opentelemetry::Context,
    ) -> QueueOutcome {
        let start = Instant::now();
        let name = call.route.name.as_str();
        let outcome = |status, candidates, detail: Option<String>| QueueOutcome {
            name: name.to_string(),
            status,
            took_ms: start.elapsed().as_secs_f64() * 1000.0,
            candidates,
            detail,
        };
        let Some(url) = call.url else {
            let detail = "not called: the queue has no endpoint in the routing config (not ready)";
            return record(outcome(
                QueueStatus::Skipped,
                CandidateList::default(),
                Some(detail.into()),
            ));
        };
        // Before the breaker: a call not sent must not take the half-open probe.
        let left = limits.deadline.saturating_duration_since(start);
        if left < MIN_CALL_BUDGET {
            metrics::counter!(crate::metrics::DEADLINE_SPENT, "queue" => name.to_string())
                .increment(1);
            let detail = format!(
                "not called: the request's deadline had {} ms left",
                left.as_millis()
            );
            return record(outcome(
                QueueStatus::Skipped,
                CandidateList::default(),
                Some(detail),
            ));
        }
        if let Some((breakers, spec)) = limits.breaker
            && !breakers.allow(name, spec, std::time::Instant::now())
        {
            let detail = format!(
                "not called: circuit open after {} consecutive failures, probing again within {} ms",
                spec.failure_threshold, spec.open_ms
            );
            return record(outcome(
                QueueStatus::Skipped,
                CandidateList::default(),
                Some(detail),
            ));
        }
        let url = match url {
            Ok(url) => url,
            Err(e) => {
                let detail = format!("the queue's endpoint is not a URL: {e}");
                return record(outcome(
                    QueueStatus::Error,
                    CandidateList::default(),
                    Some(detail),
                ));
            }
        };

        let timeout = call.route.timeout_ms.map_or(limits.default_timeout, |ms| {
            Duration::from_millis(ms.max(1) as u64)
        });
        let until = (start + timeout).min(limits.deadline);
        let body = match body {
            Ok(body) => body,
            Err(detail) => {
                return record(outcome(
                    QueueStatus::Error,
                    CandidateList::default(),
                    Some(detail),
                ));
            }
        };
        let hedge_after = call
            .route
            .hedge_after_ms
            .map(|ms| Duration::from_millis(ms.max(1) as u64));
        let span = tracing::info_span!(
            "queue_call",
            queue = name,
            otel.kind = "client",
            status = tracing::field::Empty
        );
        let result = tokio::time::timeout_at(
            until,
            self.hedged(name, url, body, hedge_after, &span, parent),
        )
        .instrument(span.clone())
        .await;
        let budget = until.saturating_duration_since(start);
        let verdict = verdict(&result, budget, timeout);
        let result = match result {
            Ok(Ok(candidates)) => {
                let detail = candidates.degraded().then(|| {
                    "answered from its bundle alone: its signal store did not answer".to_string()
                });
                outcome(QueueStatus::Ok, candidates, detail)
            }
            Ok(Err(e)) => outcome(QueueStatus::Error, CandidateList::default(), Some(e.detail)),
            Err(_) => outcome(
                QueueStatus::Timeout,
                CandidateList::default(),
                Some(format!("no answer within {} ms", budget.as_millis())),
            ),
        };
        span.record("status", result.status.as_str());
        if let Some((breakers, spec)) = limits.breaker
            && verdict != Verdict::NotTheQueues
        {
            breakers.record(
                name,
                spec,
                verdict == Verdict::Healthy,
                std::time::Instant::now(),
                result.detail.as_deref(),
            );
        }
        record(result)
    }

    /// One call, plus a second one when the first has not answered after `hedge_after`; the
    /// first success wins (an error only counts when both failed).
    async fn hedged(
        &self,
        queue: &str,
        url: &Uri,
        body: Bytes,
        hedge_after: Option<Duration>,
        span: &tracing::Span,
        parent: &opentelemetry::Context,
    ) -> Result<CandidateList, CallError> {
        let mut first = Box::pin(self.once(url, body.clone(), span, parent));
        let Some(hedge_after) = hedge_after else {
            return first.await;
        };
        match tokio::time::timeout(hedge_after, &mut first).await {
            Ok(result) => result,
            Err(_) => {
                metrics::counter!(crate::metrics::HEDGES, "queue" => queue.to_string())
                    .increment(1);
                let second = Box::pin(self.once(url, body, span, parent));
                futures::future::select_ok([first, second])
                    .await
                    .map(|(response, _)| response)
            }
        }
    }

    async fn once(
        &self,
        url: &Uri,
        body: Bytes,
        span: &tracing::Span,
        parent: &opentelemetry::Context,
    ) -> Result<CandidateList, CallError> {
        let mut request = axum::http::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPTED_ANSWERS));
        crate::trace::inject(span, parent, headers);
        match url.authority().and_then(|a| self.local.get(a.as_str())) {
            // Spawned, as a served connection is: the worker's work runs beside the other
            // queues' and the call's timeout can still give up on it.
            Some(router) => {
                let response = tokio::spawn(router.oneshot(request))
                    .await
                    .map_err(|e| CallError::queue(format!("in-process queue call: {e}")))?;
                let Ok(response) = response;
                read_answer(response).await
            }
            None => {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| CallError::queue(error_chain(&e)))?;
                read_answer(response).await
            }
        }
    }
}

/// A queue's answer, over HTTP or from an in-process router: compact or JSON candidates, or
/// the error its status and body describe.
async fn read_answer<B>(response: axum::http::Response<B>) -> Result<CandidateList, CallError>
where
    B: http_body::Body,
    B::Error: std::error::Error,
{
    let status = response.status();
    let compact = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compact::is_compact_content_type);
    // Absent or unreadable: nothing to report (workers omit it when zero).
    let unknown_history = response
        .headers()
        .get(compact::UNKNOWN_HISTORY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let degraded_header = response
        .headers()
        .get(compact::DEGRADED_HEADER)
        .is_some_and(|v| v.as_bytes() == b"true");
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CallError::queue(error_chain(&e)))?
        .to_bytes();
    if !status.is_success() {
        let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => body.error.message,
            Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        };
        return Err(CallError {
            detail: format!("HTTP {status}: {message}"),
            queue_fault: status_is_queue_fault(status),
        });
    }
    // A compact answer's layout has no room for these: headers carry them.
    let list = if compact {
        CandidateList::decode_compact(&bytes).map(|mut list| {
            list.set_degraded(degraded_header);
            list.with_unknown_history(unknown_history)
        })
    } else {
        CandidateList::decode(Vec::from(bytes))
    };
    list.map_err(|e| CallError::queue(format!("the queue's answer: {e}")))
}

/// Why a sent call failed, and whether that is the queue's fault (a 4xx other than 429 is the
/// gateway's request being refused by a queue that is up).
#[derive(Debug, Clone, PartialEq)]
struct CallError {
    detail: String,
    queue_fault: bool,
}

impl CallError {
    fn queue(detail: String) -> Self {
        Self {
            detail,
            queue_fault: true,
        }
    }
}

/// A queue in trouble answers 5xx, or 429 when it sheds load.
fn status_is_queue_fault(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// What a sent call's result says about the queue, for its circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Healthy,
    Failed,
    /// Says nothing about the queue's health: not recorded.
    NotTheQueues,
}

/// Judges a call that went out with `budget` (its timeout, or less when the deadline cut it)
/// against the queue's own `timeout`. `Err(_)` of the outer result is a timeout.
fn verdict<E>(
    result: &Result<Result<CandidateList, CallError>, E>,
    budget: Duration,
    timeout: Duration,
) -> Verdict {
    match result {
        Ok(Ok(_)) => Verdict::Healthy,
        Ok(Err(e)) if e.queue_fault => Verdict::Failed,
        Ok(Err(_)) => Verdict::NotTheQueues,
        Err(_) if budget.as_secs_f64() >= timeout.as_secs_f64() * BLAMED_BUDGET_SHARE => {
            Verdict::Failed
        }
        Err(_) => Verdict::NotTheQueues,
    }
}

/// The caller's fields as a JSON object, without `k`; encoded once per request.
fn encode_fields(request: &RecallRequest) -> Result<Bytes, String> {
    let body = QueueRequest {
        user_id: &request.user_id,
        history: request.history.as_deref(),
        exclude: &request.exclude,
        context: &request.context,
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| format!("cannot encode the request: {e}"))
}

/// `fields` (a JSON object, never empty: it always has `user_id`) with `"k":N` as its first
/// member.
fn with_k(fields: &[u8], k: u32) -> Bytes {
    let prefix = format!("{{\"k\":{k},");
    let mut body = Vec::with_capacity(prefix.len() + fields.len());
    body.extend_from_slice(prefix.as_bytes());
    body.extend_from_slice(fields.get(1..).unwrap_or_default());
    Bytes::from(body)
}

/// `error: cause: cause`, since the client's own message rarely says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn record(outcome: QueueOutcome) -> QueueOutcome {
    let queue = outcome.name.clone();
    metrics::counter!(crate::metrics::QUEUE_CALLS, "queue" => queue.clone(), "status" => outcome.status.as_str())
        .increment(1);
    if outcome.status != QueueStatus::Skipped {
        metrics::histogram!(crate::metrics::QUEUE_SECONDS, "queue" => queue)
            .record(outcome.took_ms / 1000.0);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RecallRequest {
        serde_json::from_str(
            r#"{"user_id": "u\"1", "k": 7, "history": ["a"], "exclude": ["b"], "context": {"r": "SH"}}"#,
        )
        .expect("request")
    }

    #[test]
    fn a_body_with_k_spliced_in_parses_to_the_callers_request_with_the_queues_k() {
        let caller = request();
        let fields = encode_fields(&caller).expect("encode");
        for k in [1, 300] {
            let body = with_k(&fields, k);
            let sent: RecallRequest = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(
                sent,
                RecallRequest {
                    k: Some(k),
                    ..caller.clone()
                }
            );
        }
    }

    #[test]
    fn the_queue_is_blamed_for_5xx_429_unreadable_answers_and_timeouts_with_a_real_budget() {
        let full = Duration::from_millis(200);
        let err = |status: u16| -> Result<Result<CandidateList, CallError>, ()> {
            let code = StatusCode::from_u16(status).expect("status");
            Ok(Err(CallError {
                detail: String::new(),
                queue_fault: status_is_queue_fault(code),
            }))
        };
        assert_eq!(verdict(&err(500), full, full), Verdict::Failed);
        assert_eq!(verdict(&err(503), full, full), Verdict::Failed);
        assert_eq!(verdict(&err(429), full, full), Verdict::Failed);
        assert_eq!(verdict(&err(400), full, full), Verdict::NotTheQueues);
        let unreadable: Result<_, ()> = Ok(Err(CallError::queue("bad".into())));
        assert_eq!(verdict(&unreadable, full, full), Verdict::Failed);
        let ok: Result<_, ()> = Ok(Ok(CandidateList::default()));
        assert_eq!(verdict(&ok, full, full), Verdict::Healthy);
    }

    #[test]
    fn a_timeout_is_the_queues_fault_only_when_the_call_had_most_of_its_timeout() {
        let timeout = Duration::from_millis(200);
        let timed_out: Result<Result<CandidateList, CallError>, ()> = Err(());
        assert_eq!(verdict(&timed_out, timeout, timeout), Verdict::Failed);
        assert_eq!(
            verdict(&timed_out, Duration::from_millis(150), timeout),
            Verdict::Failed
        );
        assert_eq!(
            verdict(&timed_out, Duration::from_millis(20), timeout),
            Verdict::NotTheQueues,
            "the gateway spent 90% of the deadline before calling"
        );
    }
}
