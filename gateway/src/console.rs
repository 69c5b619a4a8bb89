//! The console page (`/ui`): queues with status and latency, experiments with their split and
//! live request counts, and a "try a user" view. One static HTML file with inline script — no
//! build step, nothing fetched from the network; it reads `/stats`, `/ui/config`,
//! `/ui/titles` and `/v1/recall`.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use base64::Engine;
use kan_api::wire::ErrorCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::GatewayHandle;

const PAGE: &str = include_str!("console/index.html");
/// Most ids one `/ui/titles` request may ask for (a page shows at most a few hundred).
const MAX_TITLE_IDS: usize = 1000;

/// Routes `/ui` (the page), `/ui/config` (the routing config now serving, as JSON) and
/// `/ui/titles?ids=a,b` (the titles the bundles give those items), all with the security
/// headers of [`secure`].
pub fn router(handle: GatewayHandle) -> Router {
    Router::new()
        .route("/ui", get(|| async { Html(PAGE) }))
        .route("/ui/config", get(config))
        .route("/ui/titles", get(titles))
        .with_state(handle)
        .layer(axum::middleware::map_response(secure))
}

/// The page may run only its own inline script and style (pinned by hash), talk only to this
/// gateway, and never be framed (clickjacking); browsers must not guess content types.
static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hashes(PAGE, "script"),
        inline_hashes(PAGE, "style"),
    )
});

/// `'sha256-…'` of each inline `<tag>` block of `page`, as CSP source expressions.
fn inline_hashes(page: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut sources = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        sources.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end + close.len()..];
    }
    if sources.is_empty() {
        "'none'".to_string()
    } else {
        sources.join(" ")
    }
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn config(State(handle): State<GatewayHandle>) -> impl IntoResponse {
    Json(handle.config())
}

#[derive(Deserialize)]
struct TitlesQuery {
    /// Comma-separated item ids.
    ids: String,
}

/// `{"<item id>": "<title>"}` for the asked ids that have a title (none without bundles that
/// carry titles, e.g. a gateway in a cluster).
async fn titles(State(handle): State<GatewayHandle>, Query(query): Query<TitlesQuery>) -> Response {
    let ids: Vec<&str> = query.ids.split(',').filter(|id| !id.is_empty()).collect();
    if ids.len() > MAX_TITLE_IDS {
        return kan_http::error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArgument,
            format!("at most {MAX_TITLE_IDS} ids, got {}", ids.len()),
            Some("ids"),
        );
    }
    Json(handle.titles(ids)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inline_block_is_pinned_by_its_own_hash() {
        let page = "<style>a{}</style><script>one()</script><p/><script>two()</script>";
        let scripts = inline_hashes(page, "script");
        assert_eq!(scripts.matches("'sha256-").count(), 2, "{scripts}");
        assert_ne!(
            inline_hashes("<script>one()</script>", "script"),
            inline_hashes("<script>two()</script>", "script")
        );
        assert_eq!(inline_hashes("<p>no script</p>", "script"), "'none'");
    }

    #[test]
    fn the_console_policy_allows_its_own_script_and_style_and_no_framing() {
        assert_eq!(inline_hashes(PAGE, "script").matches("'sha256-").count(), 1);
        assert_eq!(inline_hashes(PAGE, "style").matches("'sha256-").count(), 1);
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(HeaderValue::from_str(&CONTENT_SECURITY_POLICY).is_ok());
    }
}
