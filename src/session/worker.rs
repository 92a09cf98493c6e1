//! The worker of one lane: picks the next turn when its message is durable
//! (after the debounce for queued turns), moves parked messages into the
//! transcript, runs the turn under the global cap, and records how it ended.
//! Messages steered into a run that ended before reaching them wait as
//! followups.

use std::sync::Arc;

use crate::abort::Abort;
use crate::store::{RunEnd, StoreError, TranscriptEntry};

use super::lane::{Active, Queued};
use super::records::truncate;
use super::{Job, QueueMode, RunResult, RunStatus, Sessions};
use crate::limits;

/// A turn taken off a lane's queue.
struct Turn {
    run_id: String,
    /// Runs coalesced into this one (collect mode).
    merged: Vec<String>,
    /// Inbox slots to move into the transcript first.
    slots: Vec<u64>,
    scopes: Vec<String>,
    dropped: Vec<String>,
    abort: Abort,
}

/// What to do after looking at the lane.
enum Next {
    /// The lane is done: the worker ends.
    Done,
    /// Wait for a change (a message becoming durable).
    Wait,
    /// Wait this long (debounce), then look again.
    Sleep(std::time::Duration),
    /// Run this turn.
    Run(Turn),
}

impl Sessions {
    /// The worker of one lane: runs its queue, one job at a time.
    pub(super) async fn work(self: Arc<Self>, key: String) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let turn = match self.next_turn(&key) {
                Next::Done => return,
                Next::Wait => {
                    notified.await;
                    continue;
                }
                Next::Sleep(wait) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Next::Run(turn) => turn,
            };
            let result = self.run_turn(&key, &turn).await;
            self.finish_turn(&key, turn, result).await;
        }
    }

    fn next_turn(&self, key: &str) -> Next {
        let mut state = self.lock();
        let Some(lane) = state.lanes.get_mut(key) else {
            return Next::Done;
        };
        let Some(front) = lane.queue.front() else {
            lane.worker = false;
            if lane.active.is_none() {
                state.lanes.remove(key);
            }
            return Next::Done;
        };
        if !front.durable {
            return Next::Wait;
        }
        let parked = front.slot.is_some();
        if let Some(at) = lane.last_arrival
            && parked
            && at.elapsed() < self.config.debounce
        {
            return Next::Sleep(self.config.debounce - at.elapsed());
        }
        let Some(first) = lane.queue.pop_front() else {
            return Next::Wait;
        };
        let mut merged = Vec::new();
        let mut slots: Vec<u64> = first.slot.into_iter().collect();
        if first.mode == QueueMode::Collect {
            while lane
                .queue
                .front()
                .is_some_and(|q| q.mode == QueueMode::Collect && q.durable)
            {
                if let Some(next) = lane.queue.pop_front() {
                    slots.extend(next.slot);
                    merged.push(next.run_id);
                }
            }
        }
        let abort = Abort::new();
        lane.active = Some(Active {
            run_id: first.run_id.clone(),
            abort: abort.clone(),
            steer: Vec::new(),
            absorbed: Vec::new(),
        });
        let dropped = std::mem::take(&mut lane.dropped);
        for id in &merged {
            state.records.update(id, |r| {
                r.merged_into = Some(first.run_id.clone());
                r.status = RunStatus::Running;
            });
        }
        Next::Run(Turn {
            run_id: first.run_id,
            merged,
            slots,
            scopes: first.scopes,
            dropped,
            abort,
        })
    }

    async fn run_turn(self: &Arc<Self>, key: &str, turn: &Turn) -> RunResult {
        if !turn.slots.is_empty()
            && let Err(e) = self
                .store
                .promote(key, turn.slots.clone(), &turn.run_id)
                .await
        {
            tracing::error!(
                session = key,
                "could not move queued messages into the transcript: {e}"
            );
            return RunResult::failed(
                RunStatus::Error,
                format!("could not move the message into the transcript: {e}"),
            );
        }
        let _permit = self.global.clone().acquire_owned().await;
        self.lock().records.update(&turn.run_id, |r| {
            r.status = RunStatus::Running;
            r.started_at = Some(crate::ids::now_ms());
        });
        if turn.abort.is_aborted() {
            return RunResult::failed(RunStatus::Aborted, "aborted before it started");
        }
        let dropped_note = (!turn.dropped.is_empty()).then(|| {
            format!(
                "[{} earlier queued message(s) were dropped because the queue was full: {}]",
                turn.dropped.len(),
                turn.dropped
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        let job = Job {
            run_id: turn.run_id.clone(),
            session_key: key.to_owned(),
            abort: turn.abort.clone(),
            dropped_note,
            scopes: turn.scopes.clone(),
            sessions: self.clone(),
        };
        self.runner.run(job).await
    }

    async fn finish_turn(&self, key: &str, turn: Turn, result: RunResult) {
        let now = crate::ids::now_ms();
        let reply = result.reply.map(|r| truncate(r, limits::MAX_REPLY_BYTES));
        let mut ended: Vec<String> = std::iter::once(turn.run_id.clone())
            .chain(turn.merged.iter().cloned())
            .collect();
        {
            let mut state = self.lock();
            let (leftover, absorbed) = state
                .lanes
                .get_mut(key)
                .and_then(|l| l.active.take())
                .map(|a| (a.steer, a.absorbed))
                .unwrap_or_default();
            ended.extend(absorbed);
            for id in &ended {
                state.records.update(id, |r| {
                    r.status = result.status;
                    r.ended_at = Some(now);
                    r.reply = reply.clone();
                    r.error = result.error.clone();
                });
            }
            // Steered messages the run never reached wait as followups.
            let super::State { lanes, records } = &mut *state;
            if let Some(lane) = lanes.get_mut(key) {
                for s in leftover.into_iter().rev() {
                    lane.queue.push_front(Queued {
                        run_id: s.run_id.clone(),
                        slot: Some(s.slot),
                        mode: QueueMode::Followup,
                        scopes: s.scopes,
                        preview: String::new(),
                        durable: s.durable,
                    });
                    records.update(&s.run_id, |r| {
                        r.merged_into = None;
                        r.status = RunStatus::Queued;
                    });
                }
            }
        }
        self.changed.notify_waiters();
        self.store.finish_runs(RunEnd {
            session_key: key.to_owned(),
            error_noted: result.error_noted,
            cut_off: self.stopping.load(std::sync::atomic::Ordering::Relaxed)
                && result.status == RunStatus::Aborted,
            run_ids: ended,
            status: result.status.as_str().to_owned(),
            answer: answer(result.status, reply.as_deref(), result.error.as_deref()),
            error: result.error,
        });
    }

    /// Messages steered into the active run since the last call, moved into
    /// the transcript under that run (called by the runner at boundaries).
    /// Only messages already durable are taken; on a store error they stay
    /// steered (and become followups when the run ends).
    pub async fn take_steered(
        &self,
        session_key: &str,
        run_id: &str,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let taken: Vec<super::lane::Steered> = {
            let mut state = self.lock();
            match state
                .lanes
                .get_mut(session_key)
                .and_then(|l| l.active.as_mut())
            {
                Some(active) if active.run_id == run_id => {
                    let (ready, waiting) = std::mem::take(&mut active.steer)
                        .into_iter()
                        .partition(|s| s.durable);
                    active.steer = waiting;
                    ready
                }
                _ => Vec::new(),
            }
        };
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<u64> = taken.iter().map(|s| s.slot).collect();
        match self.store.promote(session_key, slots, run_id).await {
            Ok(rows) => {
                let mut state = self.lock();
                for s in &taken {
                    state
                        .records
                        .update(&s.run_id, |r| r.started_at = Some(crate::ids::now_ms()));
                }
                if let Some(active) = state
                    .lanes
                    .get_mut(session_key)
                    .and_then(|l| l.active.as_mut())
                    .filter(|a| a.run_id == run_id)
                {
                    active.absorbed.extend(taken.into_iter().map(|s| s.run_id));
                }
                Ok(rows)
            }
            Err(e) => {
                let mut state = self.lock();
                if let Some(active) = state
                    .lanes
                    .get_mut(session_key)
                    .and_then(|l| l.active.as_mut())
                    .filter(|a| a.run_id == run_id)
                {
                    let mut back = taken;
                    back.append(&mut active.steer);
                    active.steer = back;
                }
                Err(e)
            }
        }
    }
}

/// What the chat a run's message came from is told when the run ends: the
/// reply, or why there is none in one short line. Nothing for an aborted
/// run (whoever stopped it was told).
pub(super) fn answer(
    status: RunStatus,
    reply: Option<&str>,
    error: Option<&str>,
) -> Option<String> {
    match status {
        RunStatus::Ok => Some(match reply.map(str::trim) {
            Some(text) if !text.is_empty() => text.to_owned(),
            _ => "(the assistant finished without a reply)".to_owned(),
        }),
        RunStatus::Aborted | RunStatus::Queued | RunStatus::Running => None,
        _ => {
            let line = crate::store::error_line(error.unwrap_or_default());
            let line = if line.is_empty() {
                "the run failed".to_owned()
            } else {
                line
            };
            Some(format!("⚠️ Sorry, I could not answer: {line}"))
        }
    }
}
