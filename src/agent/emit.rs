//! Per-run event stamping: `agent` events (lifecycle, assistant, tool,
//! usage, compaction) and `chat` events (delta, final, error, aborted),
//! each numbered per run. Text deltas are coalesced: the first goes out at
//! once (time to first token matters), later ones at most every
//! [`limits::CHAT_DELTA_INTERVAL`], as OpenClaw does, instead of one frame
//! per token each carrying the whole reply so far.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::ids;
use crate::limits;
use crate::session::EventSink;

/// Stamps and sends one run's events.
pub(super) struct Emitter<'a> {
    events: &'a dyn EventSink,
    run_id: &'a str,
    session_key: &'a str,
    seq: AtomicU64,
    chat_seq: AtomicU64,
}

impl<'a> Emitter<'a> {
    /// An emitter for one run.
    pub fn new(events: &'a dyn EventSink, run_id: &'a str, session_key: &'a str) -> Self {
        Self {
            events,
            run_id,
            session_key,
            seq: AtomicU64::new(0),
            chat_seq: AtomicU64::new(0),
        }
    }

    /// An `agent` event on `stream`.
    pub fn agent(&self, stream: &str, data: Value) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let payload = json!({
            "runId": self.run_id, "seq": seq, "stream": stream, "ts": ids::now_ms(),
            "data": data, "sessionKey": self.session_key,
        });
        self.events.agent(&payload, stream == "tool");
    }

    /// A `chat` event in `state` with the fields of `extra`.
    pub fn chat(&self, state: &str, mut extra: Value) {
        let seq = self.chat_seq.fetch_add(1, Ordering::Relaxed);
        if let Some(obj) = extra.as_object_mut() {
            obj.insert("runId".into(), json!(self.run_id));
            obj.insert("sessionKey".into(), json!(self.session_key));
            obj.insert("seq".into(), json!(seq));
            obj.insert("state".into(), json!(state));
        }
        self.events.chat(&extra);
    }
}

/// The reply text of one model turn as it streams, and the part of it not
/// yet sent as a delta.
pub(super) struct TextStream {
    text: String,
    unsent: String,
    last_sent: Option<Instant>,
}

impl TextStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self {
            text: String::new(),
            unsent: String::new(),
            last_sent: None,
        }
    }

    /// Take the text (the turn is over).
    pub fn into_text(self) -> String {
        self.text
    }

    /// Add a delta; sends it at once when the interval has passed.
    pub fn push(&mut self, delta: &str, emit: &Emitter<'_>) {
        self.text.push_str(delta);
        self.unsent.push_str(delta);
        if self.due().is_none() {
            self.flush(emit);
        }
    }

    /// When the unsent text is due (`None`: now, or nothing to send).
    pub fn due(&self) -> Option<Instant> {
        if self.unsent.is_empty() {
            return None;
        }
        let at = self.last_sent? + limits::CHAT_DELTA_INTERVAL;
        (at > Instant::now()).then_some(at)
    }

    /// Send the unsent text as one `agent` assistant event and one `chat`
    /// delta.
    pub fn flush(&mut self, emit: &Emitter<'_>) {
        if self.unsent.is_empty() {
            return;
        }
        let delta = std::mem::take(&mut self.unsent);
        emit.agent("assistant", json!({"text": self.text, "delta": delta}));
        emit.chat(
            "delta",
            json!({"deltaText": delta, "message": {"role": "assistant", "content": [{"type": "text", "text": self.text}]}}),
        );
        self.last_sent = Some(Instant::now());
    }
}
