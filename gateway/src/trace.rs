//! W3C trace context over HTTP headers (`traceparent`, `tracestate`).
//!
//! The gateway continues the caller's trace and passes it on to every queue call. When the
//! binary installed an OpenTelemetry tracing layer, the queue call's own span becomes the
//! parent the worker sees; without one, the caller's context is forwarded unchanged so a trace
//! is never broken by the gateway.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The caller's trace context, empty when the request carries none.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the trace context of `span` (or, when it has none, of `parent`) into `headers`.
pub fn inject(span: &tracing::Span, parent: &Context, headers: &mut HeaderMap) {
    let own = span.context();
    let cx = if own.span().span_context().is_valid() {
        &own
    } else {
        parent
    };
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_callers_traceparent_is_forwarded_when_no_tracing_layer_is_installed() {
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        let parent = extract(&incoming);
        let mut outgoing = HeaderMap::new();
        inject(&tracing::Span::none(), &parent, &mut outgoing);
        assert_eq!(
            outgoing.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(TRACEPARENT)
        );
    }

    #[test]
    fn no_trace_context_adds_no_headers() {
        let mut outgoing = HeaderMap::new();
        inject(
            &tracing::Span::none(),
            &extract(&HeaderMap::new()),
            &mut outgoing,
        );
        assert!(outgoing.is_empty());
    }
}
