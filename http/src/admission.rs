//! Admission control: a bound on the requests in flight on a route. Past it a request is
//! answered `503` at once instead of queueing behind work that will miss its deadline anyway;
//! the caller can retry elsewhere, and the admitted requests keep their latency.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service, ServiceExt};

use crate::errors::unavailable;
use crate::metrics::{REQUESTS_IN_FLIGHT, REQUESTS_SHED};

/// Requests in flight per core by default. A recall request costs ~1 ms of CPU in a worker and
/// mostly waits on queues in the gateway; 16 per core keeps every core busy while the wait of
/// the last admitted request stays well inside the 200 ms default deadline. Beyond that, extra
/// requests only queue and time out, so shedding them is cheaper for everyone.
pub const IN_FLIGHT_PER_CORE: usize = 16;

/// [`IN_FLIGHT_PER_CORE`] × the cores this process may use.
pub fn default_max_in_flight() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * IN_FLIGHT_PER_CORE
}

/// A tower layer admitting at most `max_in_flight` requests at once; clones share the bound.
#[derive(Clone, Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    listener: Arc<str>,
}

impl Admission {
    /// At most `max_in_flight` (at least 1) requests at once; `listener` labels the metrics.
    pub fn new(max_in_flight: usize, listener: &str) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            listener: Arc::from(listener),
        }
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

impl<S> Layer<S> for Admission {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            admission: self.clone(),
        }
    }
}

/// The service of [`Admission`].
#[derive(Clone, Debug)]
pub struct Admitted<S> {
    inner: S,
    admission: Admission,
}

/// Keeps the in-flight gauge right however the request ends (answered, cancelled, panicked).
struct InFlight {
    _permit: OwnedSemaphorePermit,
    listener: Arc<str>,
}

impl InFlight {
    fn new(permit: OwnedSemaphorePermit, listener: Arc<str>) -> Self {
        metrics::gauge!(REQUESTS_IN_FLIGHT, "listener" => listener.to_string()).increment(1.0);
        Self {
            _permit: permit,
            listener,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(REQUESTS_IN_FLIGHT, "listener" => self.listener.to_string()).decrement(1.0);
    }
}

/// The answer to a shed request.
fn shed(max_in_flight: usize) -> Response {
    unavailable(format!(
        "overloaded: {max_in_flight} requests are already in flight here; retry shortly or elsewhere"
    ))
}

impl<S> Service<Request> for Admitted<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    // Always ready: the bound is enforced per call, so excess is shed rather than queued.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Ok(permit) = self.admission.permits.clone().try_acquire_owned() else {
            metrics::counter!(REQUESTS_SHED, "listener" => self.admission.listener.to_string())
                .increment(1);
            let response = shed(self.admission.max_in_flight);
            return Box::pin(std::future::ready(Ok(response)));
        };
        let guard = InFlight::new(permit, self.admission.listener.clone());
        // The clone that was made ready is the one called (tower's readiness contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.ready().await?.call(request).await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::routing::post;
    use kan_api::wire::ErrorBody;
    use kan_api::wire::ErrorCode;
    use tokio::sync::Notify;

    fn recall() -> Request {
        Request::post("/v1/recall")
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn with_the_bound_at_one_a_second_request_is_shed_at_once_while_the_first_is_held() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (r, e) = (release.clone(), entered.clone());
        let app = Router::new().route(
            "/v1/recall",
            post(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }
            })
            .layer(Admission::new(1, "test")),
        );
        let first = tokio::spawn(app.clone().oneshot(recall()));
        entered.notified().await;

        let second = app.clone().oneshot(recall()).await.expect("infallible");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            second.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("1"))
        );
        let bytes = axum::body::to_bytes(second.into_body(), 4096)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error body");
        assert_eq!(body.error.code, ErrorCode::Unavailable);

        release.notify_one();
        let first = first.await.expect("join").expect("infallible");
        assert_eq!(first.status(), StatusCode::OK);
        // The permit came back: the next request is admitted.
        let r = release.clone();
        let third = tokio::spawn(app.oneshot(recall()));
        entered.notified().await;
        r.notify_one();
        assert_eq!(
            third.await.expect("join").expect("infallible").status(),
            StatusCode::OK
        );
    }

    #[test]
    fn the_default_bound_grows_with_the_cores() {
        assert!(default_max_in_flight() >= IN_FLIGHT_PER_CORE);
        assert_eq!(default_max_in_flight() % IN_FLIGHT_PER_CORE, 0);
        assert_eq!(Admission::new(0, "x").max_in_flight(), 1);
    }
}
