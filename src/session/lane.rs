//! One session's lane as it is held in memory: the active run, the queue
//! behind it, and the messages steered into the active run. Pure state; the
//! decisions that need the store are made by [`super::Sessions`].

use std::collections::VecDeque;
use std::time::Instant;

use crate::abort::Abort;

use super::QueueMode;

/// A message waiting for its turn.
#[derive(Debug, Clone)]
pub(super) struct Queued {
    /// Run id.
    pub run_id: String,
    /// Inbox slot; `None` when it is already in the transcript (an idle
    /// session's message).
    pub slot: Option<u64>,
    /// Mode it arrived with.
    pub mode: QueueMode,
    /// Scopes of the client that sent it.
    pub scopes: Vec<String>,
    /// The first line of the message, for the summarize drop policy.
    pub preview: String,
    /// Its write has committed (only durable messages may run, be steered
    /// or be dropped).
    pub durable: bool,
}

/// A message steered into the active run.
#[derive(Debug, Clone)]
pub(super) struct Steered {
    /// Inbox slot.
    pub slot: u64,
    /// Run id.
    pub run_id: String,
    /// Scopes of the client that sent it (kept should it become a followup).
    pub scopes: Vec<String>,
    /// Its write has committed.
    pub durable: bool,
}

/// The run going on in a lane.
pub(super) struct Active {
    /// Run id.
    pub run_id: String,
    /// Fires to stop it.
    pub abort: Abort,
    /// Messages steered into it, picked up at its next boundary.
    pub steer: Vec<Steered>,
    /// Runs whose steered message it picked up: they end with it.
    pub absorbed: Vec<String>,
}

/// A session with queued or running work.
#[derive(Default)]
pub(super) struct Lane {
    /// The run going on, if any.
    pub active: Option<Active>,
    /// Messages waiting, in order.
    pub queue: VecDeque<Queued>,
    /// A worker task serves this lane.
    pub worker: bool,
    /// When the last message arrived (for the debounce of queued turns).
    pub last_arrival: Option<Instant>,
    /// Previews of messages dropped from the full queue since the last
    /// turn (summarize policy), bounded by the caller.
    pub dropped: Vec<String>,
}

impl Lane {
    /// Nothing queued or running.
    pub fn is_idle(&self) -> bool {
        self.active.is_none() && self.queue.is_empty()
    }

    /// Mark the message of `run_id` durable (queued or steered); false
    /// when it is not in this lane any more.
    pub fn mark_durable(&mut self, run_id: &str) -> bool {
        if let Some(q) = self.queue.iter_mut().find(|q| q.run_id == run_id) {
            q.durable = true;
            return true;
        }
        if let Some(s) = self
            .active
            .as_mut()
            .and_then(|a| a.steer.iter_mut().find(|s| s.run_id == run_id))
        {
            s.durable = true;
            return true;
        }
        false
    }

    /// Take the message of `run_id` out of the lane (its write failed).
    pub fn remove(&mut self, run_id: &str) {
        self.queue.retain(|q| q.run_id != run_id);
        if let Some(active) = self.active.as_mut() {
            active.steer.retain(|s| s.run_id != run_id);
        }
    }

    /// Take up to `count` of the oldest durable queued messages (to drop
    /// them from a full queue); fewer when not enough are durable yet.
    pub fn take_oldest_durable(&mut self, count: usize) -> Vec<Queued> {
        let mut taken = Vec::new();
        let mut i = 0;
        while taken.len() < count && i < self.queue.len() {
            if self.queue[i].durable && self.queue[i].slot.is_some() {
                if let Some(q) = self.queue.remove(i) {
                    taken.push(q);
                }
            } else {
                i += 1;
            }
        }
        taken
    }
}

/// A one-line preview of a message (for the summarize note).
pub(super) fn preview(message: &str) -> String {
    message.chars().take(120).collect()
}
