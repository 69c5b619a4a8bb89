//! The one error body of every 4xx/5xx: `{"error": {"code", "message", "field"?}}`.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kan_api::wire::{ErrorBody, ErrorCode};

/// Longest text of a non-JSON error answer carried over into the JSON message.
const MAX_MESSAGE_BYTES: usize = 1024;

/// An error answer in the JSON shape.
pub fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
    field: Option<&str>,
) -> Response {
    (status, Json(ErrorBody::new(code, message, field))).into_response()
}

/// `503` with `Retry-After: 1` and the JSON error body: the caller should retry shortly (the
/// server is overloaded, or something it depends on is briefly away).
pub fn unavailable(message: impl Into<String>) -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        message,
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware (`axum::middleware::map_response`) that rewrites every 4xx/5xx answer not already
/// in JSON — axum's 404/405 fallbacks, 413 from the body limit, extractor rejections — into the
/// JSON error body, keeping the status and headers and the original text as the message.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = ErrorCode::for_status(status.as_u16());
    // Serialising a code and a string cannot fail; an empty body is the safe answer anyway.
    let body = serde_json::to_vec(&ErrorBody::new(code, message, None)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The fallback of a router: a JSON `404` naming the path.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route for {}", uri.path()),
        None,
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type)
}

/// True for `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json_media_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `Err(415)` unless the request says its body is `application/json`. A browser can send a
/// cross-origin `text/plain` POST without a preflight; requiring JSON keeps such requests out.
#[allow(clippy::result_large_err)] // the error is the answer itself, built once on a cold path
pub fn require_json(headers: &HeaderMap) -> Result<(), Response> {
    if is_json(headers) {
        return Ok(());
    }
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "none".to_string(), |v| format!("`{v}`"));
    Err(error_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        format!("the body must be sent as Content-Type: application/json (got {got})"),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised_with_parameters_and_any_case() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/jsonx"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
    }

    #[test]
    fn a_request_without_a_json_content_type_is_refused_with_415() {
        let mut headers = HeaderMap::new();
        let response = require_json(&headers).expect_err("no content type");
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(require_json(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(require_json(&headers).is_ok());
    }

    #[tokio::test]
    async fn a_plain_text_error_becomes_the_json_error_body_with_its_status() {
        let plain = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let response = json_errors(plain).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error body");
        assert_eq!(body.error.code, ErrorCode::PayloadTooLarge);
        assert_eq!(body.error.message, "length limit exceeded");
    }

    #[tokio::test]
    async fn an_empty_error_gets_the_reason_phrase_and_success_is_untouched() {
        let response = json_errors(StatusCode::METHOD_NOT_ALLOWED.into_response()).await;
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error body");
        assert_eq!(body.error.code, ErrorCode::MethodNotAllowed);
        assert_eq!(body.error.message, "Method Not Allowed");
        let ok = json_errors((StatusCode::OK, "ok").into_response()).await;
        let bytes = axum::body::to_bytes(ok.into_body(), 4096)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"ok");
    }
}
