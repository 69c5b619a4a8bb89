//! Progress bars (indicatif) that vanish when disabled, so library callers and tests stay quiet;
//! and progress lines (one per epoch), which also reach logs that are not a terminal (a
//! Kubernetes Job's, CI's), where indicatif draws nothing.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Debug, Default)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Progress { enabled }
    }

    /// A bar of `len` steps labelled `what`; hidden when progress is off.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_message(what.to_string());
        pb
    }

    /// Prints `line` above `pb` on a terminal, or on its own line to stderr otherwise; nothing
    /// when progress is off.
    pub fn line(&self, pb: &ProgressBar, line: &str) {
        if !self.enabled {
            return;
        }
        if std::io::stderr().is_terminal() {
            pb.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}
