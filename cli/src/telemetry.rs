//! Process-wide telemetry: structured JSON logs, Prometheus metrics recorder, and OpenTelemetry
//! tracing exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporters alive; flushes spans when dropped.
pub struct Telemetry {
    pub metrics: PrometheusHandle,
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the global subscriber, metrics recorder and (optionally) the OTLP exporter.
/// `service` names the process in traces (`kan-worker`, `kan-gateway`, ...).
pub fn init(service: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    init_with_writer(service, format, std::io::stdout)
}

/// [`init`] with logs on stderr, for commands whose stdout is their report (`kan bench`).
pub fn init_to_stderr(service: &str) -> anyhow::Result<Telemetry> {
    init_with_writer(service, LogFormat::Json, std::io::stderr)
}

fn init_with_writer<W>(service: &str, format: LogFormat, writer: W) -> anyhow::Result<Telemetry>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("KAN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(writer)
            .boxed(),
    };
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer_provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(otlp_provider(service, &endpoint)?),
        _ => None,
    };
    let otel_layer = tracer_provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_string())));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .context("installing the tracing subscriber")?;
    let metrics = prometheus_builder()?
        .install_recorder()
        .context("installing the Prometheus metrics recorder")?;
    // Without it, histogram samples stay in memory until someone scrapes /metrics.
    kan_http::spawn_upkeep(metrics.clone(), kan_http::UPKEEP_INTERVAL)
        .context("starting the metrics upkeep thread")?;
    Ok(Telemetry {
        metrics,
        tracer_provider,
    })
}

/// Bucket bounds of every latency histogram (metrics named `*_seconds`): 100 µs to 10 s, so a
/// sub-millisecond worker and a slow gateway fall in distinct buckets. One choice for every
/// process, so the histograms of replicas and roles aggregate with `sum by (le)`.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The Prometheus exporter every `kan` process uses: latencies as histograms (aggregatable
/// across replicas, unlike the exporter's default summaries over a short window).
pub fn prometheus_builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            LATENCY_BUCKETS_SECONDS,
        )
        .context("setting the latency histogram buckets")
}

fn otlp_provider(service: &str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_render_as_histograms_with_buckets_from_sub_millisecond_to_seconds() {
        let recorder = prometheus_builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("kan_test_duration_seconds", "queue" => "q").record(0.0003);
            metrics::histogram!("kan_test_candidates").record(5.0);
        });
        let text = handle.render();
        assert!(
            text.contains("kan_test_duration_seconds_bucket{queue=\"q\",le=\"0.0001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("kan_test_duration_seconds_bucket{queue=\"q\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kan_test_duration_seconds_bucket{queue=\"q\",le=\"10\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("kan_test_duration_seconds{"),
            "no quantiles: {text}"
        );
    }
}
