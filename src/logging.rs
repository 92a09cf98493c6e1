//! Logging: `tracing` to stderr with a `RUST_LOG`-style filter, and a bounded
//! in-memory ring of recent lines served by `logs.tail`.
//!
//! No secret may reach a log line: tokens, passwords and device tokens are
//! never passed to `tracing` (types holding them redact their `Debug`).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::limits;

/// Recent log lines with a monotonically increasing cursor.
pub struct LogRing {
    inner: Mutex<RingState>,
}

struct RingState {
    lines: VecDeque<String>,
    /// Cursor of the line after the newest one (total lines ever pushed).
    next_cursor: u64,
}

/// A page of log lines for `logs.tail`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// Where the lines come from.
    pub file: &'static str,
    /// Cursor to pass next time to get only newer lines.
    pub cursor: u64,
    /// Lines currently held.
    pub size: usize,
    /// The lines, oldest first.
    pub lines: Vec<String>,
    /// More lines matched than were returned.
    pub truncated: bool,
    /// The requested cursor was older than the ring: lines were skipped.
    pub reset: bool,
}

impl LogRing {
    fn new() -> Self {
        Self {
            inner: Mutex::new(RingState {
                lines: VecDeque::with_capacity(64),
                next_cursor: 0,
            }),
        }
    }

    /// Append one line, cutting it to the line cap and evicting the oldest.
    pub fn push(&self, line: &str) {
        let mut line = line.trim_end().to_owned();
        if line.len() > limits::LOG_LINE_MAX_BYTES {
            let mut cut = limits::LOG_LINE_MAX_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if state.lines.len() >= limits::LOG_RING_LINES {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
        state.next_cursor += 1;
    }

    /// Lines after `cursor` (or the newest `limit` lines when `cursor` is None),
    /// at most `limit` lines and `max_bytes` bytes.
    pub fn tail(&self, cursor: Option<u64>, limit: usize, max_bytes: usize) -> LogPage {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = state.next_cursor - state.lines.len() as u64;
        let limit = limit.clamp(1, limits::LOGS_TAIL_MAX_LINES);
        let (start, reset) = match cursor {
            Some(c) if c >= oldest => (c.min(state.next_cursor), false),
            Some(_) => (oldest, true),
            None => (
                state.next_cursor.saturating_sub(limit as u64).max(oldest),
                false,
            ),
        };
        let available = (state.next_cursor - start) as usize;
        let skip = (start - oldest) as usize;
        let mut lines: Vec<String> = state.lines.iter().skip(skip).take(limit).cloned().collect();
        let mut bytes = 0;
        let mut keep = 0;
        for line in &lines {
            bytes += line.len() + 1;
            if bytes > max_bytes && keep > 0 {
                break;
            }
            keep += 1;
        }
        lines.truncate(keep);
        LogPage {
            file: "memory",
            cursor: start + lines.len() as u64,
            size: state.lines.len(),
            truncated: lines.len() < available,
            lines,
            reset,
        }
    }
}

static RING: OnceLock<LogRing> = OnceLock::new();

/// The process-wide log ring.
pub fn ring() -> &'static LogRing {
    RING.get_or_init(LogRing::new)
}

/// Writer handed to `tracing-subscriber` for each event: collects the
/// formatted line, then copies it to stderr and the ring.
pub struct TeeWriter {
    buf: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let _ = std::io::stderr().write_all(&self.buf);
        for line in String::from_utf8_lossy(&self.buf).lines() {
            ring().push(line);
        }
    }
}

/// `MakeWriter` producing [`TeeWriter`]s.
pub struct TeeMakeWriter;

impl<'a> MakeWriter<'a> for TeeMakeWriter {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter {
            buf: Vec::with_capacity(160),
        }
    }
}

/// Install the global subscriber. `PINCLAW_LOG` (then `RUST_LOG`) overrides
/// `default_filter`. Returns an error message for an invalid filter.
pub fn init(default_filter: &str) -> Result<(), String> {
    let spec = std::env::var("PINCLAW_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_owned());
    let filter: Targets = spec
        .parse()
        .map_err(|e| format!("invalid log filter {spec:?}: {e}"))?;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(true)
        .with_writer(TeeMakeWriter);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_cursors_page_forward() {
        let ring = LogRing::new();
        for i in 0..(limits::LOG_RING_LINES + 10) {
            ring.push(&format!("line {i}"));
        }
        let page = ring.tail(None, 5, 1 << 20);
        assert_eq!(page.size, limits::LOG_RING_LINES);
        assert_eq!(
            page.lines.last().map(String::as_str),
            Some(&*format!("line {}", limits::LOG_RING_LINES + 9))
        );
        let old = ring.tail(Some(0), 3, 1 << 20);
        assert!(old.reset);
        assert_eq!(old.lines[0], "line 10");
        ring.push("newest");
        let next = ring.tail(Some(page.cursor), 10, 1 << 20);
        assert_eq!(next.lines, vec!["newest".to_owned()]);
        let long = "x".repeat(limits::LOG_LINE_MAX_BYTES * 2);
        ring.push(&long);
        let last = ring.tail(None, 1, 1 << 20);
        assert!(last.lines[0].len() <= limits::LOG_LINE_MAX_BYTES + 3);
    }
}
