//! Upkeep of the Prometheus recorder every `kan` process installs.
//!
//! The recorder keeps each histogram sample (its value and the time it was recorded, 16 bytes)
//! in a lock-free bucket until something drains the bucket into the histogram's bucket counts.
//! Rendering `/metrics` drains it; nothing else does unless upkeep runs. A process that nobody
//! scrapes — `kan up` on a laptop, a gateway before Prometheus finds it, any deployment without
//! Prometheus — would hold every latency it ever recorded: up to 7 samples per gateway request
//! (latency, merge size, one per queue called), about 20 MiB after the one-minute overload soak,
//! never given back (BENCHMARKS.md, "Overload soak").

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// How often upkeep drains the histograms: what the exporter's own HTTP listener uses, so at
/// most this many seconds of samples are held between scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Drains `handle`'s histograms every `every` on a thread of its own for the rest of the
/// process (a thread, not a task: telemetry is installed before any runtime exists, and the
/// upkeep must run whatever the runtime is doing).
pub fn spawn_upkeep(handle: PrometheusHandle, every: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                handle.run_upkeep();
            }
        })?;
    Ok(())
}
