//! An optional bearer token in front of a router: requests without `Authorization: Bearer
//! <token>` are answered `401` with the JSON error body, except on the open paths (probes).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use kan_api::wire::ErrorCode;
use tower::{Layer, Service, ServiceExt};

use crate::errors::error_response;

/// The token must be this long at least: a short one can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the token must be at least {MIN_TOKEN_LEN} characters (it has {0})")]
    TooShort(usize),
    #[error("the token may only contain visible ASCII characters")]
    NotVisibleAscii,
}

/// A tower layer requiring the bearer token on every path but `open`.
#[derive(Clone, Debug)]
pub struct BearerAuth {
    token: Arc<[u8]>,
    open: &'static [&'static str],
}

impl BearerAuth {
    /// Requires `token` everywhere except on the exact paths in `open`.
    pub fn new(token: &str, open: &'static [&'static str]) -> Result<Self, TokenError> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort(token.len()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotVisibleAscii);
        }
        Ok(Self {
            token: Arc::from(token.as_bytes()),
            open,
        })
    }

    /// The token in `path` (surrounding whitespace and a final newline ignored).
    pub fn from_file(
        path: &std::path::Path,
        open: &'static [&'static str],
    ) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text, open)
    }

    fn admits(&self, request: &Request) -> bool {
        if self.open.contains(&request.uri().path()) {
            return true;
        }
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|given| constant_time_eq(given, &self.token))
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn unauthenticated() -> Response {
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        "send the token as `Authorization: Bearer <token>`",
        None,
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl<S> Layer<S> for BearerAuth {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.clone(),
        }
    }
}

/// The service of [`BearerAuth`].
#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    auth: BearerAuth,
}

impl<S> Service<Request> for Authenticated<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !self.auth.admits(&request) {
            return Box::pin(std::future::ready(Ok(unauthenticated())));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.ready().await?.call(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;

    const TOKEN: &str = "s3cret-token-0123456789";

    fn app() -> Router {
        Router::new()
            .route("/stats", get(|| async { "stats" }))
            .route("/healthz", get(|| async { "ok" }))
            .layer(BearerAuth::new(TOKEN, &["/healthz"]).expect("token"))
    }

    async fn status(path: &str, authorization: Option<&str>) -> StatusCode {
        let mut request = Request::get(path);
        if let Some(a) = authorization {
            request = request.header(header::AUTHORIZATION, a);
        }
        let request = request.body(Body::empty()).expect("request");
        app().oneshot(request).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn only_the_right_bearer_token_passes_and_probes_stay_open() {
        assert_eq!(status("/stats", None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status("/stats", Some("Bearer wrong-token-0123456789")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status("/stats", Some(TOKEN)).await,
            StatusCode::UNAUTHORIZED,
            "the scheme is required"
        );
        assert_eq!(
            status("/stats", Some(&format!("Bearer {TOKEN}"))).await,
            StatusCode::OK
        );
        assert_eq!(status("/healthz", None).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_refusal_is_the_json_error_body_with_a_challenge() {
        let request = Request::get("/stats").body(Body::empty()).expect("request");
        let response = app().oneshot(request).await.expect("infallible");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: kan_api::wire::ErrorBody = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body.error.code, ErrorCode::Unauthenticated);
    }

    #[test]
    fn short_or_unprintable_tokens_are_refused_and_a_file_newline_is_ignored() {
        assert!(matches!(
            BearerAuth::new("short", &[]),
            Err(TokenError::TooShort(5))
        ));
        assert!(matches!(
            BearerAuth::new("with space inside 0123456789", &[]),
            Err(TokenError::NotVisibleAscii)
        ));
        assert!(BearerAuth::new(&format!("{TOKEN}\n"), &[]).is_ok());
    }

    #[test]
    fn equal_comparison_needs_equal_bytes_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
