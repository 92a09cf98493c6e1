//! Session lanes: one run per session at a time, a global cap across
//! sessions, and a defined policy for messages that arrive while a run is
//! active (queue modes steer | followup | collect | interrupt).
//!
//! Every accepted message is durable before it is acknowledged: straight
//! into the transcript when the session is idle, or into the session's
//! inbox when it is busy (moved into the transcript when its turn comes, so
//! the model always sees a well-ordered conversation). The runs themselves
//! are done by a [`Runner`] (the agent loop).

pub mod keys;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use crate::abort::Abort;
use crate::ids;
use crate::limits;
use crate::store::{InboxItem, Store, StoreError, TranscriptEntry};

/// What to do with a message that arrives while its session is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// Inject into the active run at its next model/tool boundary.
    #[default]
    Steer,
    /// Run as its own turn after the active one.
    Followup,
    /// Coalesce queued messages into one turn after a quiet window.
    Collect,
    /// Abort the active run and run this message next.
    Interrupt,
}

impl QueueMode {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::Steer => "steer",
            QueueMode::Followup => "followup",
            QueueMode::Collect => "collect",
            QueueMode::Interrupt => "interrupt",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "steer" => Some(Self::Steer),
            "followup" => Some(Self::Followup),
            "collect" => Some(Self::Collect),
            "interrupt" => Some(Self::Interrupt),
            _ => None,
        }
    }
}

/// What happens when a session's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropPolicy {
    /// Drop the oldest queued message silently.
    Old,
    /// Refuse the new message.
    New,
    /// Drop the oldest but tell the model what was dropped.
    #[default]
    Summarize,
}

/// Lane settings.
#[derive(Debug, Clone)]
pub struct LaneConfig {
    /// Runs across all sessions at once.
    pub max_concurrent: usize,
    /// Queued messages per session.
    pub queue_cap: usize,
    /// Policy when the queue is full.
    pub drop: DropPolicy,
    /// Quiet time before queued messages start.
    pub debounce: Duration,
    /// Mode when a request does not say.
    pub default_mode: QueueMode,
}

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
    /// Aborted by `chat.abort` or an interrupt.
    Aborted,
    /// Dropped from a full queue.
    Dropped,
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
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
    /// Final reply text (capped).
    pub reply: Option<String>,
    /// Error message.
    pub error: Option<String>,
    /// When the message was steered into or coalesced with another run.
    pub merged_into: Option<String>,
}

/// How a run ended, as the runner reports it.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Final status (Ok, Error, Timeout or Aborted).
    pub status: RunStatus,
    /// Reply text.
    pub reply: Option<String>,
    /// Error message.
    pub error: Option<String>,
}

/// One run for the runner.
pub struct Job {
    /// Run id.
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Fires on `chat.abort`, interrupts and shutdown.
    pub abort: Abort,
    /// Synthetic note about messages dropped from a full queue.
    pub dropped_note: Option<String>,
    /// The lanes, to pick up steered messages at boundaries.
    pub sessions: Arc<Sessions>,
}

/// A boxed future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs one job (the agent loop).
pub trait Runner: Send + Sync + 'static {
    /// Run until done, aborted or timed out.
    fn run(&self, job: Job) -> BoxFuture<RunResult>;
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The session's queue is full and the policy is `new`.
    #[error("the session's queue is full ({0} messages); try again after the current run")]
    QueueFull(usize),
    /// Too many sessions are busy.
    #[error("too many busy sessions; try again shortly")]
    Busy,
    /// Persisting the message failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a message was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It starts now (or as soon as a global slot frees).
    Started,
    /// It waits behind the active run.
    Queued,
    /// It was steered into the active run.
    Steered,
    /// It interrupted the active run.
    Interrupted,
}

struct Queued {
    run_id: String,
    /// Inbox slot; `None` when already in the transcript.
    slot: Option<u64>,
    mode: QueueMode,
}

struct Active {
    run_id: String,
    abort: Abort,
    steer: Vec<(u64, String)>,
}

#[derive(Default)]
struct Lane {
    active: Option<Active>,
    queue: VecDeque<Queued>,
    worker: bool,
    last_arrival: Option<Instant>,
    dropped: Vec<String>,
}

#[derive(Default)]
struct State {
    lanes: HashMap<String, Lane>,
    runs: HashMap<String, RunRecord>,
    order: VecDeque<String>,
}

/// The lanes of every busy session and the records of recent runs.
pub struct Sessions {
    state: Mutex<State>,
    global: Arc<Semaphore>,
    config: LaneConfig,
    store: Arc<Store>,
    runner: Arc<dyn Runner>,
    finished: Notify,
}

impl Sessions {
    /// Lanes over `store`, running jobs with `runner`.
    pub fn new(config: LaneConfig, store: Arc<Store>, runner: Arc<dyn Runner>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            global: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            store,
            runner,
            finished: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lane settings.
    pub fn config(&self) -> &LaneConfig {
        &self.config
    }

    /// Accept a message for a session. Durable before it returns.
    pub fn submit(
        self: &Arc<Self>,
        session_key: &str,
        run_id: &str,
        message: &str,
        mode: Option<QueueMode>,
    ) -> Result<Accepted, SubmitError> {
        let mode = mode.unwrap_or(self.config.default_mode);
        let now = ids::now_ms();
        let mut state = self.lock();
        if !state.lanes.contains_key(session_key)
            && state.lanes.len() >= limits::MAX_RESIDENT_SESSIONS
        {
            return Err(SubmitError::Busy);
        }
        let idle = state
            .lanes
            .get(session_key)
            .is_none_or(|l| l.active.is_none() && l.queue.is_empty());
        let accepted = if idle {
            let entry = TranscriptEntry::message("user", message, Some(run_id));
            self.store.append(session_key, vec![entry], true)?;
            let lane = state.lanes.entry(session_key.to_owned()).or_default();
            lane.queue.push_back(Queued {
                run_id: run_id.to_owned(),
                slot: None,
                mode,
            });
            Accepted::Started
        } else {
            let lane_has_active = state
                .lanes
                .get(session_key)
                .is_some_and(|l| l.active.is_some());
            let steer_room = state
                .lanes
                .get(session_key)
                .and_then(|l| l.active.as_ref())
                .is_some_and(|a| a.steer.len() < limits::MAX_STEER_PER_RUN);
            let queued = state
                .lanes
                .get(session_key)
                .map(|l| l.queue.len())
                .unwrap_or(0);
            let needs_queue_slot = !(mode == QueueMode::Steer && lane_has_active && steer_room);
            if needs_queue_slot
                && queued >= self.config.queue_cap
                && self.config.drop == DropPolicy::New
            {
                return Err(SubmitError::QueueFull(self.config.queue_cap));
            }
            let item = InboxItem {
                slot: 0,
                run_id: run_id.to_owned(),
                message: message.to_owned(),
                mode: mode.as_str().to_owned(),
                ts: now,
            };
            let slot = self.store.inbox_put(session_key, item)?;
            if needs_queue_slot && queued >= self.config.queue_cap {
                self.drop_oldest(&mut state, session_key, message);
            }
            let Some(lane) = state.lanes.get_mut(session_key) else {
                return Err(SubmitError::Busy);
            };
            lane.last_arrival = Some(Instant::now());
            match (mode, lane.active.as_mut()) {
                (QueueMode::Steer, Some(active)) if !needs_queue_slot => {
                    active.steer.push((slot, run_id.to_owned()));
                    Accepted::Steered
                }
                (QueueMode::Interrupt, Some(active)) => {
                    active.abort.abort();
                    lane.queue.push_front(Queued {
                        run_id: run_id.to_owned(),
                        slot: Some(slot),
                        mode,
                    });
                    Accepted::Interrupted
                }
                _ => {
                    lane.queue.push_back(Queued {
                        run_id: run_id.to_owned(),
                        slot: Some(slot),
                        mode,
                    });
                    Accepted::Queued
                }
            }
        };
        let merged_into = match accepted {
            Accepted::Steered => state
                .lanes
                .get(session_key)
                .and_then(|l| l.active.as_ref())
                .map(|a| a.run_id.clone()),
            _ => None,
        };
        let status = if accepted == Accepted::Steered {
            RunStatus::Running
        } else {
            RunStatus::Queued
        };
        self.put_record(
            &mut state,
            RunRecord {
                run_id: run_id.to_owned(),
                session_key: session_key.to_owned(),
                status,
                accepted_at: now,
                started_at: None,
                ended_at: None,
                reply: None,
                error: None,
                merged_into,
            },
        );
        self.ensure_worker(&mut state, session_key);
        Ok(accepted)
    }

    fn drop_oldest(&self, state: &mut State, session_key: &str, _incoming: &str) {
        let Some(lane) = state.lanes.get_mut(session_key) else {
            return;
        };
        let Some(victim) = lane.queue.pop_front() else {
            return;
        };
        if let Some(slot) = victim.slot {
            // The victim's text is needed for the summary before it goes.
            if self.config.drop == DropPolicy::Summarize
                && let Ok(Some(item)) = self.store.inbox_get(session_key, slot)
            {
                let line: String = item.message.chars().take(120).collect();
                if lane.dropped.len() < limits::MAX_DROPPED_SUMMARY_LINES {
                    lane.dropped.push(line);
                }
            }
            if let Err(e) = self.store.inbox_remove(session_key, &[slot]) {
                tracing::warn!("could not drop a queued message: {e}");
            }
        }
        tracing::info!(session = session_key, run_id = %victim.run_id, "queue full: dropped the oldest queued message");
        if let Some(record) = state.runs.get_mut(&victim.run_id) {
            record.status = RunStatus::Dropped;
            record.ended_at = Some(ids::now_ms());
            record.error = Some("dropped: the session's queue was full".into());
        }
        self.finished.notify_waiters();
    }

    fn put_record(&self, state: &mut State, record: RunRecord) {
        if state.runs.len() >= limits::MAX_RUN_RECORDS {
            // Evict the oldest finished record.
            if let Some(pos) = state
                .order
                .iter()
                .position(|id| state.runs.get(id).is_none_or(|r| r.status.is_final()))
                && let Some(id) = state.order.remove(pos)
            {
                state.runs.remove(&id);
            }
        }
        state.order.push_back(record.run_id.clone());
        state.runs.insert(record.run_id.clone(), record);
    }

    fn ensure_worker(self: &Arc<Self>, state: &mut State, session_key: &str) {
        let Some(lane) = state.lanes.get_mut(session_key) else {
            return;
        };
        if lane.worker {
            return;
        }
        lane.worker = true;
        let this = self.clone();
        let key = session_key.to_owned();
        tokio::spawn(async move { this.work(key).await });
    }

    /// A run's record.
    pub fn record(&self, run_id: &str) -> Option<RunRecord> {
        self.lock().runs.get(run_id).cloned()
    }

    /// Run ids running or queued in a session.
    pub fn runs_of(&self, session_key: &str) -> (Option<String>, Vec<String>) {
        let state = self.lock();
        match state.lanes.get(session_key) {
            Some(lane) => (
                lane.active.as_ref().map(|a| a.run_id.clone()),
                lane.queue.iter().map(|q| q.run_id.clone()).collect(),
            ),
            None => (None, Vec::new()),
        }
    }

    /// Sessions with work, and runs across all of them: (sessions, running).
    pub fn load(&self) -> (usize, usize) {
        let state = self.lock();
        let running = state.lanes.values().filter(|l| l.active.is_some()).count();
        (state.lanes.len(), running)
    }

    /// Wait until a run is over or `timeout` passes; the record as it stands.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Option<RunRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.finished.notified();
            let record = self.record(run_id)?;
            let record = match &record.merged_into {
                Some(target) if !record.status.is_final() => {
                    let mut merged = self.record(target).unwrap_or(record.clone());
                    merged.run_id = record.run_id.clone();
                    merged
                }
                _ => record,
            };
            if record.status.is_final() {
                return Some(record);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Some(record);
            }
        }
    }

    /// Abort work in a session: one run by id, or (without an id) every
    /// queued turn first and then the active run. Returns the aborted ids.
    pub fn abort(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let mut state = self.lock();
        let mut aborted = Vec::new();
        let mut slots = Vec::new();
        if let Some(lane) = state.lanes.get_mut(session_key) {
            let (drop, keep): (Vec<Queued>, Vec<Queued>) = lane
                .queue
                .drain(..)
                .partition(|q| run_id.is_none_or(|id| id == q.run_id));
            lane.queue = keep.into();
            for q in drop {
                slots.extend(q.slot);
                aborted.push(q.run_id);
            }
            if let Some(active) = &lane.active
                && run_id.is_none_or(|id| id == active.run_id)
            {
                active.abort.abort();
                aborted.push(active.run_id.clone());
            }
        }
        if !slots.is_empty()
            && let Err(e) = self.store.inbox_remove(session_key, &slots)
        {
            tracing::warn!("could not remove aborted messages: {e}");
        }
        let now = ids::now_ms();
        for id in &aborted {
            if let Some(r) = state.runs.get_mut(id)
                && r.status == RunStatus::Queued
            {
                r.status = RunStatus::Aborted;
                r.ended_at = Some(now);
            }
        }
        self.finished.notify_waiters();
        aborted
    }

    /// Abort every active run (shutdown).
    pub fn abort_all(&self) {
        for lane in self.lock().lanes.values() {
            if let Some(a) = &lane.active {
                a.abort.abort();
            }
        }
    }

    /// Messages steered into the active run since the last call, moved into
    /// the transcript under that run (called by the runner at boundaries).
    pub fn take_steered(
        &self,
        session_key: &str,
        run_id: &str,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let steered: Vec<(u64, String)> = {
            let mut state = self.lock();
            match state
                .lanes
                .get_mut(session_key)
                .and_then(|l| l.active.as_mut())
            {
                Some(active) if active.run_id == run_id => std::mem::take(&mut active.steer),
                _ => Vec::new(),
            }
        };
        if steered.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<u64> = steered.iter().map(|(s, _)| *s).collect();
        self.store.inbox_promote(session_key, &slots, run_id)
    }

    /// Re-queue messages a crash left in inboxes (call once at start).
    pub fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        let items = self.store.inbox_all()?;
        let count = items.len();
        let mut state = self.lock();
        for (key, item) in items {
            if !state.lanes.contains_key(&key) && state.lanes.len() >= limits::MAX_RESIDENT_SESSIONS
            {
                break;
            }
            let lane = state.lanes.entry(key.clone()).or_default();
            let mode = QueueMode::parse(&item.mode).unwrap_or(QueueMode::Followup);
            let mode = if mode == QueueMode::Steer {
                QueueMode::Followup
            } else {
                mode
            };
            lane.queue.push_back(Queued {
                run_id: item.run_id.clone(),
                slot: Some(item.slot),
                mode,
            });
            let record = RunRecord {
                run_id: item.run_id,
                session_key: key.clone(),
                status: RunStatus::Queued,
                accepted_at: item.ts,
                started_at: None,
                ended_at: None,
                reply: None,
                error: None,
                merged_into: None,
            };
            self.put_record(&mut state, record);
            self.ensure_worker(&mut state, &key);
        }
        Ok(count)
    }

    /// The worker of one lane: runs its queue, one job at a time.
    async fn work(self: Arc<Self>, session_key: String) {
        loop {
            // Pick the next turn (after the quiet window for queued ones).
            let wait = {
                let mut state = self.lock();
                let Some(lane) = state.lanes.get_mut(&session_key) else {
                    return;
                };
                if lane.queue.is_empty() {
                    lane.worker = false;
                    if lane.active.is_none() {
                        state.lanes.remove(&session_key);
                    }
                    return;
                }
                let queued = lane.queue.front().is_some_and(|q| q.slot.is_some());
                match lane.last_arrival {
                    Some(at) if queued && at.elapsed() < self.config.debounce => {
                        Some(self.config.debounce - at.elapsed())
                    }
                    _ => None,
                }
            };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
                continue;
            }
            let (run_id, merged, slots, dropped) = {
                let mut state = self.lock();
                let Some(lane) = state.lanes.get_mut(&session_key) else {
                    return;
                };
                let Some(first) = lane.queue.pop_front() else {
                    continue;
                };
                let mut merged = Vec::new();
                let mut slots: Vec<u64> = first.slot.into_iter().collect();
                if first.mode == QueueMode::Collect {
                    while lane
                        .queue
                        .front()
                        .is_some_and(|q| q.mode == QueueMode::Collect)
                    {
                        if let Some(next) = lane.queue.pop_front() {
                            slots.extend(next.slot);
                            merged.push(next.run_id);
                        }
                    }
                }
                let dropped = std::mem::take(&mut lane.dropped);
                lane.active = Some(Active {
                    run_id: first.run_id.clone(),
                    abort: Abort::new(),
                    steer: Vec::new(),
                });
                for id in &merged {
                    if let Some(r) = state.runs.get_mut(id) {
                        r.merged_into = Some(first.run_id.clone());
                        r.status = RunStatus::Running;
                    }
                }
                (first.run_id, merged, slots, dropped)
            };
            if !slots.is_empty()
                && let Err(e) = self.store.inbox_promote(&session_key, &slots, &run_id)
            {
                tracing::error!(session = %session_key, "could not move queued messages into the transcript: {e}");
            }
            let permit = self.global.clone().acquire_owned().await;
            let abort = {
                let mut state = self.lock();
                if let Some(r) = state.runs.get_mut(&run_id) {
                    r.status = RunStatus::Running;
                    r.started_at = Some(ids::now_ms());
                }
                state
                    .lanes
                    .get(&session_key)
                    .and_then(|l| l.active.as_ref())
                    .map(|a| a.abort.clone())
                    .unwrap_or_default()
            };
            let dropped_note = (!dropped.is_empty()).then(|| {
                format!(
                    "[{} earlier queued message(s) were dropped because the queue was full: {}]",
                    dropped.len(),
                    dropped
                        .iter()
                        .map(|d| format!("{d:?}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            });
            let result = if abort.is_aborted() {
                RunResult {
                    status: RunStatus::Aborted,
                    reply: None,
                    error: Some("aborted before it started".into()),
                }
            } else {
                let job = Job {
                    run_id: run_id.clone(),
                    session_key: session_key.clone(),
                    abort,
                    dropped_note,
                    sessions: self.clone(),
                };
                self.runner.run(job).await
            };
            drop(permit);
            let mut state = self.lock();
            let now = ids::now_ms();
            let leftover = state
                .lanes
                .get_mut(&session_key)
                .and_then(|l| l.active.take())
                .map(|a| a.steer)
                .unwrap_or_default();
            let reply = result.reply.map(|mut r| {
                if r.len() > limits::MAX_REPLY_BYTES {
                    let mut cut = limits::MAX_REPLY_BYTES;
                    while !r.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    r.truncate(cut);
                }
                r
            });
            for id in std::iter::once(&run_id).chain(merged.iter()) {
                if let Some(r) = state.runs.get_mut(id) {
                    r.status = result.status;
                    r.ended_at = Some(now);
                    r.reply = reply.clone();
                    r.error = result.error.clone();
                }
            }
            // Steered messages the run never reached wait as followups.
            let State { lanes, runs, .. } = &mut *state;
            if let Some(lane) = lanes.get_mut(&session_key) {
                for (slot, id) in leftover.into_iter().rev() {
                    lane.queue.push_front(Queued {
                        run_id: id.clone(),
                        slot: Some(slot),
                        mode: QueueMode::Followup,
                    });
                    if let Some(r) = runs.get_mut(&id) {
                        r.merged_into = None;
                        r.status = RunStatus::Queued;
                    }
                }
            }
            drop(state);
            self.finished.notify_waiters();
        }
    }
}
