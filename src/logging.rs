//! Where log lines go, and what happens when they cannot go there.
//!
//! Logging must never stop a pager: a log pipe that closed (`pagerd run |
//! head -1`), a full disk (`2>/dev/full`) or a reader that stopped reading
//! must not panic a task, block it, or keep the daemon from answering
//! SIGTERM. Lines go through a bounded in-memory queue to a writer thread
//! (lossy: when the queue is full, the line is dropped, not waited for);
//! a failed write is dropped too. Both are counted, for
//! `pagerd_log_lines_dropped_total`.

use std::io::{self, IsTerminal as _, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_appender::non_blocking::ErrorCounter;

use tracing_subscriber::EnvFilter;

/// Lines whose write failed.
static FAILED: AtomicU64 = AtomicU64::new(0);
/// Lines the full queue refused (counted by the appender).
static QUEUE_FULL: OnceLock<ErrorCounter> = OnceLock::new();

/// How many log lines were dropped since the start.
pub fn dropped() -> u64 {
    let full = QUEUE_FULL.get().map_or(0, ErrorCounter::dropped_lines);
    FAILED.load(Ordering::Relaxed) + full as u64
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line (journald, ELK).
    Json,
}

/// stderr, where a failed write is counted and forgotten.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().write_all(buf).is_err() {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Keeps the writer thread alive; dropping it flushes what is queued.
pub struct Guard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber writing to stderr; `filter` as in
/// `RUST_LOG` (the environment wins when set). Returns the guard to hold
/// until exit.
pub fn init(format: Format, filter: &str) -> Guard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(Stderr);
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(io::stderr().is_terminal())
        .log_internal_errors(false);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
    let _ = QUEUE_FULL.set(dropped);
    Guard(guard)
}
