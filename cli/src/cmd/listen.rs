//! The listener flags every serving command shares (`kan gateway`, `kan worker`, `kan up`,
//! `kan operator`): socket limits and, where a route does real work, admission control.

use std::time::Duration;

use kan_http::ListenerLimits;

/// Limits of the HTTP listeners (see docs/operator.md, "Limits and tuning").
#[derive(clap::Args, Debug, Clone)]
pub struct ListenerArgs {
    /// Milliseconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    #[arg(long, env = "KAN_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Milliseconds a client has to send a request's body once the headers are in (408 after).
    #[arg(long, env = "KAN_BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// Largest request head (request line and headers) in bytes (431 beyond).
    #[arg(long, env = "KAN_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Connections open at once per listener; more are closed as soon as they are accepted.
    #[arg(long, env = "KAN_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
}

impl ListenerArgs {
    /// The limits of one listener, its metrics labelled `name`.
    pub fn limits(&self, name: &str) -> ListenerLimits {
        ListenerLimits {
            name: name.to_string(),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms.max(1)),
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections.max(1),
        }
    }
}

/// Admission control of `POST /v1/recall`.
#[derive(clap::Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// Recall requests in flight at once; more are answered 503 with Retry-After at once.
    /// Default: 16 per available core.
    #[arg(long, env = "KAN_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
}

impl AdmissionArgs {
    pub fn admission(&self, name: &str) -> kan_http::Admission {
        kan_http::Admission::new(
            self.max_in_flight
                .unwrap_or_else(kan_http::default_max_in_flight),
            name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        listener: ListenerArgs,
        #[command(flatten)]
        admission: AdmissionArgs,
    }

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["kan"]).expect("defaults");
        assert_eq!(cli.listener.limits("http"), ListenerLimits::named("http"));
        assert_eq!(
            cli.admission.admission("x").max_in_flight(),
            kan_http::default_max_in_flight()
        );
    }

    #[test]
    fn flags_set_each_limit() {
        let cli = Cli::try_parse_from([
            "kan",
            "--header-read-timeout-ms=500",
            "--body-read-timeout-ms=700",
            "--max-header-bytes=2048",
            "--max-connections=3",
            "--max-in-flight=5",
        ])
        .expect("flags");
        let limits = cli.listener.limits("gateway");
        assert_eq!(limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(limits.body_read_timeout, Duration::from_millis(700));
        assert_eq!(limits.max_header_bytes, 2048);
        assert_eq!(limits.max_connections, 3);
        assert_eq!(limits.name, "gateway");
        assert_eq!(cli.admission.admission("gateway").max_in_flight(), 5);
    }
}
