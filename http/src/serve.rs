//! The accept loop and the per-connection HTTP/1.1 server every Kan listener runs.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use kan_api::wire::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::body::DeadlineBody;
use crate::errors::error_response;
use crate::limits::ListenerLimits;
use crate::metrics::{BODY_TIMEOUTS, CONNECTIONS_OPEN, CONNECTIONS_REFUSED};

/// How long a shutdown waits for answers in progress before it gives up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then stops accepting,
/// lets each connection finish its request in progress (idle ones close at once) and returns.
/// HTTP/1.1 only: every Kan client speaks it, and its header timeout is what bounds slow clients.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_connections = limits.max_connections.clamp(1, u32::MAX as usize) as u32;
    let connections = Arc::new(Semaphore::new(max_connections as usize));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.parser_header_cap());
    let limits = Arc::new(limits);
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Closing at once costs nothing; keeping it would cost a task and its buffers.
            metrics::counter!(CONNECTIONS_REFUSED, "listener" => limits.name.clone()).increment(1);
            drop(stream);
            continue;
        };
        let open = OpenConnection::new(permit, &limits.name);
        let limits = limits.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            let limits = limits.clone();
            async move { Ok::<_, Infallible>(answer(router, &limits, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => log_connection_end(served),
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: getting all of them back means all ended.
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!(listener = %limits.name, grace = ?SHUTDOWN_GRACE, "connections still open at shutdown; closing them");
    }
    Ok(())
}

/// One request: the head size check, the body deadline, then the router.
async fn answer(router: Router, limits: &ListenerLimits, request: Request<Incoming>) -> Response {
    let head = head_bytes(&request);
    if head > limits.max_header_bytes {
        return closing(error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head is {head} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
            None,
        ));
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody::new(
            body,
            limits.body_read_timeout,
            timed_out.clone(),
        ))
    });
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Acquire) {
        metrics::counter!(BODY_TIMEOUTS, "listener" => limits.name.clone()).increment(1);
        return closing(error_response(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::DeadlineExceeded,
            format!(
                "the request body did not arrive within {} ms",
                limits.body_read_timeout.as_millis()
            ),
            None,
        ));
    }
    response
}

/// Bytes of the request line and headers, as the client sent them (give or take whitespace).
fn head_bytes<B>(request: &Request<B>) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |p| p.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    request.method().as_str().len() + target + "  HTTP/1.1\r\n".len() + headers
}

/// The answer with `Connection: close`: the rest of that request cannot be trusted.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Accept errors are the peer's (reset before accept) or the process's (out of fds); neither
/// may stop the listener. The pause keeps an fd shortage from spinning the loop.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %error, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn log_connection_end(served: hyper::Result<()>) {
    if let Err(e) = served {
        // Timeouts and resets of misbehaving clients: worth a debug line, not a warning.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A connection slot and the open-connections gauge, released together.
struct OpenConnection {
    _permit: OwnedSemaphorePermit,
    listener: String,
}

impl OpenConnection {
    fn new(permit: OwnedSemaphorePermit, listener: &str) -> Self {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener.to_string()).increment(1.0);
        Self {
            _permit: permit,
            listener: listener.to_string(),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.listener.clone()).decrement(1.0);
    }
}
