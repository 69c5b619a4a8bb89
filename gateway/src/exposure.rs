//! The exposure log: one JSON line per response (user, assignments, returned items), written by
//! a background thread so the request path only pays for a channel send. When the writer falls
//! behind, records are dropped and counted rather than slowing requests down.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use kan_api::wire::ExposureRecord;

use crate::error::{Error, Result};

/// Records waiting for the writer before new ones are dropped.
const CAPACITY: usize = 65_536;
/// Buffered lines reach the file at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Sends records to the writer thread; the thread drains the channel, flushes and exits when the
/// last sender is dropped.
#[derive(Debug)]
pub struct ExposureLog {
    path: PathBuf,
    sender: SyncSender<ExposureRecord>,
}

impl ExposureLog {
    /// Opens `path` for appending and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |source| Error::ExposureLog {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let (sender, receiver) = sync_channel(CAPACITY);
        let display = path.display().to_string();
        std::thread::Builder::new()
            .name("kan-exposure-log".into())
            .spawn(move || write_loop(receiver, BufWriter::new(file), &display))
            .map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            sender,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one record without blocking.
    pub fn send(&self, record: ExposureRecord) {
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                metrics::counter!(crate::metrics::EXPOSURES_DROPPED).increment(1);
            }
        }
    }
}

fn write_loop(receiver: Receiver<ExposureRecord>, mut out: BufWriter<File>, path: &str) {
    loop {
        match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(record) => {
                let written = serde_json::to_writer(&mut out, &record)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(e) = written {
                    tracing::error!(path, error = %e, "cannot write the exposure log");
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = out.flush() {
                    tracing::error!(path, error = %e, "cannot flush the exposure log");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Err(e) = out.flush() {
        tracing::error!(path, error = %e, "cannot flush the exposure log");
    }
}

#[cfg(test)]
mod tests {
    use kan_api::wire::Assignment;

    use super::*;

    #[test]
    fn records_become_json_lines_that_read_back_and_are_flushed_when_the_log_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("exposures.jsonl");
        let log = ExposureLog::open(&path).expect("open");
        let record = ExposureRecord {
            ts_ms: 1,
            user_id: "u1".into(),
            assignments: vec![Assignment {
                layer: "l".into(),
                experiment: "e".into(),
                arm: "a".into(),
            }],
            items: vec!["i1".into(), "i2".into()],
            degraded: false,
        };
        log.send(record.clone());
        log.send(ExposureRecord {
            user_id: "u2".into(),
            ..record.clone()
        });
        drop(log);
        // The writer thread drains and flushes after the sender is gone.
        let mut lines = Vec::new();
        for _ in 0..100 {
            lines = std::fs::read_to_string(&path)
                .expect("read")
                .lines()
                .map(String::from)
                .collect();
            if lines.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(lines.len(), 2);
        let back: ExposureRecord = serde_json::from_str(&lines[0]).expect("parse");
        assert_eq!(back, record);
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let err = ExposureLog::open(Path::new("/nonexistent-dir/x.jsonl")).expect_err("must fail");
        assert!(
            err.to_string().contains("/nonexistent-dir/x.jsonl"),
            "{err}"
        );
        assert_eq!(err.metric_label(), "exposure_log");
    }
}
