//! What one listener tolerates from its clients.

use std::time::Duration;

/// Limits of one listener; [`Default`] holds the defaults the binaries' flags start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// The `listener` label of this listener's metrics.
    pub name: String,
    /// Time a client has to send a complete request head, counted from when the connection
    /// starts waiting for it. hyper starts that clock as soon as a connection is idle, so this is
    /// also the keep-alive idle timeout: an idle connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time a client has to send the whole request body, counted from the end of the head.
    /// A body that does not complete in time is answered `408` and the connection closed.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers) answered normally; a larger one is
    /// answered `431` with the JSON error body. Heads beyond 4× this are refused by the HTTP
    /// parser itself (`431`, empty body) before they are buffered.
    pub max_header_bytes: usize,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl ListenerLimits {
    /// The defaults under the given metric label.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The parser's own hard cap on a request head (see [`Self::max_header_bytes`]); hyper
    /// needs at least 8 KiB of read buffer.
    pub(crate) fn parser_header_cap(&self) -> usize {
        self.max_header_bytes.saturating_mul(4).max(8 * 1024)
    }
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            name: "http".to_string(),
            // Long enough for a slow mobile client behind a proxy, short enough that a client
            // trickling bytes cannot hold a connection for long.
            header_read_timeout: Duration::from_secs(10),
            // Recall bodies are small (2 MB at most): 10 s is generous on any real link.
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            // ~30 KB of memory per connection at most: 4096 of them stay well under 150 MB.
            max_connections: 4096,
        }
    }
}
