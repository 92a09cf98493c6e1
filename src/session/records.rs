//! Records of recent runs, for `agent.wait`, the `agent` method's final
//! answer and retries: bounded by count ([`limits::MAX_RUN_RECORDS`]) and
//! by the bytes of the replies and errors they keep
//! ([`limits::RUN_RECORDS_MAX_BYTES`]). Past either, the oldest finished
//! records are evicted; a record still queued or running is never evicted
//! (their number is bounded by the lanes). An evicted run is still known to
//! the store's run index (status, no reply) and its reply to the transcript.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::limits;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting in its session's queue.
    Queued,
    /// Running (or steered into a running run).
    Running,
    /// Finished with a reply.
    Ok,
    /// Failed.
    Error,
    /// Hit its time limit.
    Timeout,
    /// Aborted by `chat.abort`, an interrupt or shutdown.
    Aborted,
    /// Never run: its session's queue was full.
    Dropped,
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Wire name (`ok`, `error`, `dropped`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Aborted => "aborted",
            RunStatus::Dropped => "dropped",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Ok,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Aborted,
            RunStatus::Dropped,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// What `agent.wait` and retries see of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id (= idempotency key).
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Status.
    pub status: RunStatus,
    /// Accepted (ms).
    pub accepted_at: i64,
    /// Started (ms).
    pub started_at: Option<i64>,
    /// Ended (ms).
    pub ended_at: Option<i64>,
    /// Final reply text (capped at [`limits::MAX_REPLY_BYTES`]).
    pub reply: Option<String>,
    /// Error message.
    pub error: Option<String>,
    /// When the message was steered into or coalesced with another run.
    pub merged_into: Option<String>,
    /// Fingerprint of the message ([`crate::ids::fingerprint`]).
    #[serde(skip)]
    pub fingerprint: String,
}

impl RunRecord {
    /// A record for a run accepted now.
    pub fn accepted(run_id: &str, session_key: &str, message: &str, status: RunStatus) -> Self {
        Self {
            run_id: run_id.to_owned(),
            session_key: session_key.to_owned(),
            status,
            accepted_at: crate::ids::now_ms(),
            started_at: None,
            ended_at: None,
            reply: None,
            error: None,
            merged_into: None,
            fingerprint: crate::ids::fingerprint(message),
        }
    }

    /// Bytes this record keeps beyond its fixed size (counted against
    /// [`limits::RUN_RECORDS_MAX_BYTES`]).
    fn weight(&self) -> usize {
        self.reply.as_ref().map_or(0, String::len)
            + self.error.as_ref().map_or(0, String::len)
            + self.run_id.len()
            + self.session_key.len()
            + self.merged_into.as_ref().map_or(0, String::len)
    }
}

/// Cut `text` to at most `max` bytes on a character boundary.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The bounded set of run records.
#[derive(Default)]
pub struct Records {
    runs: HashMap<String, RunRecord>,
    /// Insertion order, for eviction (ids of evicted records are skipped).
    order: VecDeque<String>,
    bytes: usize,
}

impl Records {
    /// A record by run id.
    pub fn get(&self, run_id: &str) -> Option<&RunRecord> {
        self.runs.get(run_id)
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Bytes of reply and error text held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Add a record (replacing one with the same id), then evict.
    pub fn insert(&mut self, record: RunRecord) {
        if let Some(old) = self.runs.remove(&record.run_id) {
            self.bytes -= old.weight();
        } else {
            self.order.push_back(record.run_id.clone());
        }
        self.bytes += record.weight();
        self.runs.insert(record.run_id.clone(), record);
        self.evict();
    }

    /// Forget a record (its input was never acknowledged).
    pub fn remove(&mut self, run_id: &str) {
        if let Some(old) = self.runs.remove(run_id) {
            self.bytes -= old.weight();
            self.order.retain(|id| id != run_id);
        }
    }

    /// Change a record in place (its weight is re-counted), then evict.
    pub fn update(&mut self, run_id: &str, change: impl FnOnce(&mut RunRecord)) {
        if let Some(record) = self.runs.get_mut(run_id) {
            self.bytes -= record.weight();
            change(record);
            if let Some(reply) = record.reply.take() {
                record.reply = Some(truncate(reply, limits::MAX_REPLY_BYTES));
            }
            self.bytes += record.weight();
        }
        self.evict();
    }

    fn evict(&mut self) {
        let mut scanned = 0;
        while (self.runs.len() > limits::MAX_RUN_RECORDS
            || self.bytes > limits::RUN_RECORDS_MAX_BYTES)
            && scanned < self.order.len()
        {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            match self.runs.get(&id) {
                Some(r) if !r.status.is_final() => {
                    // Still queued or running: keep it, look further.
                    self.order.push_back(id);
                    scanned += 1;
                }
                Some(_) => {
                    if let Some(old) = self.runs.remove(&id) {
                        self.bytes -= old.weight();
                    }
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: &str, reply_bytes: usize) -> RunRecord {
        let mut r = RunRecord::accepted(id, "agent:main:main", "hi", RunStatus::Ok);
        r.reply = Some("x".repeat(reply_bytes));
        r
    }

    #[test]
    fn bounded_by_bytes_and_count_keeping_unfinished_runs() {
        let mut records = Records::default();
        let running = RunRecord::accepted("live", "agent:main:main", "hi", RunStatus::Running);
        records.insert(running);
        for i in 0..300 {
            records.insert(finished(&format!("r{i}"), 60 * 1024));
        }
        assert!(records.bytes() <= limits::RUN_RECORDS_MAX_BYTES);
        assert!(records.get("live").is_some(), "a running record stays");
        assert!(records.get("r299").is_some(), "the newest stays");
        assert!(records.get("r0").is_none(), "the oldest went");
        for i in 0..(limits::MAX_RUN_RECORDS + 50) {
            records.insert(finished(&format!("s{i}"), 0));
        }
        assert!(records.len() <= limits::MAX_RUN_RECORDS);
        assert!(records.get("live").is_some());
    }

    #[test]
    fn replies_are_capped_on_a_char_boundary() {
        let mut records = Records::default();
        records.insert(RunRecord::accepted("a", "k", "m", RunStatus::Running));
        records.update("a", |r| {
            r.status = RunStatus::Ok;
            r.reply = Some("é".repeat(limits::MAX_REPLY_BYTES));
        });
        let reply = records
            .get("a")
            .and_then(|r| r.reply.clone())
            .unwrap_or_default();
        assert!(reply.len() <= limits::MAX_REPLY_BYTES);
        assert!(reply.chars().all(|c| c == 'é'));
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "queued", "running", "ok", "error", "timeout", "aborted", "dropped",
        ] {
            assert_eq!(RunStatus::parse(s).map(RunStatus::as_str), Some(s));
        }
        assert_eq!(RunStatus::parse("nope"), None);
    }
}
