//! Session lanes: one run per session at a time, a global cap across
//! sessions, and a defined policy for messages that arrive while a run is
//! active (queue modes steer | followup | collect | interrupt).
//!
//! Every accepted message is durable before it is acknowledged: straight
//! into the transcript when the session is idle, or into the session's
//! inbox when it is busy (moved into the transcript when its turn comes, so
//! the model always sees a well-ordered conversation). Decisions are made
//! under the lanes' lock; the write that carries them is queued to the
//! store under the lock (which fixes the order of writes) and awaited
//! outside it. A message whose write fails is taken back out and refused.
//! A message pushed out of a full queue is recorded in the transcript as
//! dropped and its run ends `dropped`: nothing acknowledged vanishes. The
//! runs themselves are done by a [`Runner`] (the agent loop).

pub mod keys;
mod lane;
pub mod records;
mod worker;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::abort::Abort;
use crate::limits;
use crate::store::{
    Eviction, InboxItem, RunEnd, RunIndexEntry, Store, StoreError, Stored, TranscriptEntry,
};

use self::lane::{Lane, Queued, Steered};
use self::records::Records;
pub use self::records::{RunRecord, RunStatus};

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
    /// Drop the oldest queued message (it is kept in the transcript, marked
    /// dropped, and its run ends `dropped`).
    Old,
    /// Refuse the new message before acknowledging it (retryable).
    New,
    /// Drop the oldest (as `old`) and tell the model what was dropped.
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

/// How a run ended, as the runner reports it.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Final status (Ok, Error, Timeout or Aborted).
    pub status: RunStatus,
    /// Reply text.
    pub reply: Option<String>,
    /// Error message.
    pub error: Option<String>,
    /// The runner already put the error row in the transcript.
    pub error_noted: bool,
}

impl RunResult {
    /// A run that failed with `error`.
    pub fn failed(status: RunStatus, error: impl Into<String>) -> Self {
        Self {
            status,
            reply: None,
            error: Some(error.into()),
            error_noted: false,
        }
    }
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
    /// Scopes of the client whose message started the run: every tool call
    /// of the run is checked against them.
    pub scopes: Vec<String>,
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

/// Where session and run events go (the gateway's event bus).
pub trait EventSink: Send + Sync + 'static {
    /// An `agent` event; `tool` marks tool-stream events (only for
    /// connections with the `tool-events` cap).
    fn agent(&self, payload: &Value, tool: bool);
    /// A `chat` event.
    fn chat(&self, payload: &Value);
    /// A session's transcript or state changed.
    fn session_changed(&self, session_key: &str);
}

/// A message to accept.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Session key (already resolved).
    pub session_key: String,
    /// Run id (the caller's idempotency key).
    pub run_id: String,
    /// The message.
    pub message: String,
    /// Queue mode; `None` = the configured default.
    pub mode: Option<QueueMode>,
    /// Scopes of the client sending it.
    pub scopes: Vec<String>,
    /// Where the reply goes, for a message from a channel (kept with the
    /// run, so a run re-queued after a restart still answers its chat).
    pub route: Option<crate::store::ReplyRoute>,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The session's queue is full and the policy is `new` (or every queued
    /// message is still being written).
    #[error("the session's queue is full ({0} messages); try again after the current run")]
    QueueFull(usize),
    /// Too many sessions are busy.
    #[error("too many busy sessions; try again shortly")]
    Busy,
    /// The idempotency key was used before for a different message.
    #[error(
        "idempotencyKey {0:?} was already used for a different message; use a new key for a new message"
    )]
    KeyReused(String),
    /// Persisting the message failed (nothing was acknowledged).
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

/// What [`Sessions::submit`] did.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new message, now durable.
    New(Accepted),
    /// A retry of an accepted message: its run as it stands.
    Retry(RunRecord),
}

#[derive(Default)]
struct State {
    lanes: HashMap<String, Lane>,
    records: Records,
}

/// The lanes of every busy session and the records of recent runs.
pub struct Sessions {
    state: Mutex<State>,
    global: Arc<Semaphore>,
    config: LaneConfig,
    store: Store,
    runner: Arc<dyn Runner>,
    events: Arc<dyn EventSink>,
    /// Woken when a run ends or a message becomes durable.
    changed: Notify,
    /// Next inbox slot (unique and increasing across sessions).
    next_slot: AtomicU64,
    /// Set by [`Sessions::abort_all`]: runs aborted by the shutdown are not
    /// recorded as ended, so the next start answers their chats.
    stopping: AtomicBool,
}

/// The queued write of an input: the rows it dropped, or the run it
/// turned out to repeat.
type InputWrite = BoxFuture<Result<Stored<Vec<TranscriptEntry>>, StoreError>>;

/// How the message of a submission is written.
enum Plan {
    /// Straight into the transcript (idle session).
    Accept,
    /// Into the inbox, pushing `victims` out of a full queue.
    Park { victims: Vec<Queued> },
}

impl Sessions {
    /// Lanes over `store`, running jobs with `runner`, reporting drops to
    /// `events`.
    pub fn new(
        config: LaneConfig,
        store: Store,
        runner: Arc<dyn Runner>,
        events: Arc<dyn EventSink>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            global: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            store,
            runner,
            events,
            changed: Notify::new(),
            next_slot: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lane settings.
    pub fn config(&self) -> &LaneConfig {
        &self.config
    }

    /// Accept a message for a session: durable before it returns
    /// [`Submitted::New`]. A run id seen before (in memory or, after a
    /// restart, in the store's run index) answers [`Submitted::Retry`]
    /// without writing anything, or [`SubmitError::KeyReused`] when it came
    /// with a different message.
    pub async fn submit(self: &Arc<Self>, sub: Submission) -> Result<Submitted, SubmitError> {
        let mode = sub.mode.unwrap_or(self.config.default_mode);
        let fingerprint = crate::ids::fingerprint(&sub.message);
        let key = sub.session_key.as_str();
        let (plan, accepted, write) = {
            let mut state = self.lock();
            if let Some(record) = state.records.get(&sub.run_id) {
                return retry_of(record.clone(), &fingerprint);
            }
            if !state.lanes.contains_key(key) && state.lanes.len() >= limits::MAX_RESIDENT_SESSIONS
            {
                return Err(SubmitError::Busy);
            }
            let mut run = RunIndexEntry::accepted(&sub.run_id, key, &sub.message);
            if sub.route.is_some() {
                run.route = sub.route.clone();
                run.scopes = sub.scopes.clone();
            }
            let lane = state.lanes.entry(key.to_owned()).or_default();
            let (plan, accepted, write) = if lane.is_idle() {
                let entry = TranscriptEntry::message("user", &sub.message, Some(&sub.run_id));
                let write = self.store.queue_accept(key, entry, run)?;
                lane.queue.push_back(Queued {
                    run_id: sub.run_id.clone(),
                    slot: None,
                    mode,
                    scopes: sub.scopes.clone(),
                    preview: lane::preview(&sub.message),
                    durable: false,
                });
                (
                    Plan::Accept,
                    Accepted::Started,
                    Box::pin(write) as InputWrite,
                )
            } else {
                let steer = mode == QueueMode::Steer
                    && lane
                        .active
                        .as_ref()
                        .is_some_and(|a| a.steer.len() < limits::MAX_STEER_PER_RUN);
                let mut victims = Vec::new();
                if !steer && lane.queue.len() >= self.config.queue_cap {
                    if self.config.drop == DropPolicy::New {
                        return Err(SubmitError::QueueFull(self.config.queue_cap));
                    }
                    let excess = lane.queue.len() + 1 - self.config.queue_cap;
                    victims = lane.take_oldest_durable(excess);
                    if victims.len() < excess {
                        restore_victims(lane, victims);
                        return Err(SubmitError::QueueFull(self.config.queue_cap));
                    }
                }
                let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
                let item = InboxItem {
                    slot,
                    run_id: sub.run_id.clone(),
                    message: sub.message.clone(),
                    mode: mode.as_str().to_owned(),
                    ts: run.accepted_at,
                    scopes: sub.scopes.clone(),
                };
                let evictions = victims
                    .iter()
                    .filter_map(|v| v.slot)
                    .map(|slot| Eviction {
                        slot,
                        why: "dropped: the session's queue was full".into(),
                    })
                    .collect();
                let write = match self.store.queue_park(key, item, run, evictions) {
                    Ok(write) => write,
                    Err(e) => {
                        restore_victims(lane, victims);
                        return Err(e.into());
                    }
                };
                lane.last_arrival = Some(Instant::now());
                let accepted = match (mode, lane.active.as_mut()) {
                    (QueueMode::Steer, Some(active)) if steer => {
                        active.steer.push(Steered {
                            slot,
                            run_id: sub.run_id.clone(),
                            scopes: sub.scopes.clone(),
                            durable: false,
                        });
                        Accepted::Steered
                    }
                    (QueueMode::Interrupt, Some(_)) => Accepted::Interrupted,
                    _ => Accepted::Queued,
                };
                let queued = Queued {
                    run_id: sub.run_id.clone(),
                    slot: Some(slot),
                    mode,
                    scopes: sub.scopes.clone(),
                    preview: lane::preview(&sub.message),
                    durable: false,
                };
                match accepted {
                    Accepted::Steered => {}
                    Accepted::Interrupted => lane.queue.push_front(queued),
                    _ => lane.queue.push_back(queued),
                }
                (
                    Plan::Park { victims },
                    accepted,
                    Box::pin(write) as InputWrite,
                )
            };
            let mut record = RunRecord::accepted(
                &sub.run_id,
                key,
                &sub.message,
                if accepted == Accepted::Steered {
                    RunStatus::Running
                } else {
                    RunStatus::Queued
                },
            );
            if accepted == Accepted::Steered {
                record.merged_into = lane.active.as_ref().map(|a| a.run_id.clone());
            }
            state.records.insert(record);
            self.ensure_worker(&mut state, key);
            (plan, accepted, write)
        };
        let outcome = write.await;
        let mut state = self.lock();
        let lane = state.lanes.get_mut(key);
        match outcome {
            Ok(Stored::New(dropped_rows)) => {
                let mut dropped_runs = Vec::new();
                if let Some(lane) = lane {
                    lane.mark_durable(&sub.run_id);
                    if accepted == Accepted::Interrupted
                        && let Some(active) = &lane.active
                    {
                        active.abort.abort();
                    }
                    if let Plan::Park { victims, .. } = plan {
                        for v in &victims {
                            if self.config.drop == DropPolicy::Summarize
                                && lane.dropped.len() < limits::MAX_DROPPED_SUMMARY_LINES
                            {
                                lane.dropped.push(v.preview.clone());
                            }
                        }
                        dropped_runs = victims.into_iter().map(|v| v.run_id).collect();
                    }
                }
                for run_id in &dropped_runs {
                    state.records.update(run_id, |r| {
                        r.status = RunStatus::Dropped;
                        r.ended_at = Some(crate::ids::now_ms());
                        r.error = Some("dropped: the session's queue was full".into());
                    });
                }
                drop(state);
                self.changed.notify_waiters();
                if !dropped_runs.is_empty() {
                    self.announce_dropped(key, &dropped_runs, dropped_rows.len());
                }
                Ok(Submitted::New(accepted))
            }
            other => {
                if let Some(lane) = lane {
                    lane.remove(&sub.run_id);
                    if let Plan::Park { victims, .. } = plan {
                        restore_victims(lane, victims);
                    }
                }
                state.records.remove(&sub.run_id);
                drop(state);
                self.changed.notify_waiters();
                match other {
                    Ok(Stored::Known(entry)) => retry_of(record_from_index(&entry), &fingerprint),
                    Err(e) => Err(e.into()),
                    Ok(Stored::New(_)) => unreachable!("handled above"),
                }
            }
        }
    }

    /// Tell clients that queued runs were dropped.
    fn announce_dropped(&self, session_key: &str, run_ids: &[String], rows: usize) {
        tracing::info!(
            session = session_key,
            dropped = run_ids.len(),
            rows,
            "queue full: the oldest queued message(s) were dropped (kept in the history)"
        );
        for run_id in run_ids {
            self.events.chat(&json!({
                "runId": run_id, "sessionKey": session_key, "seq": 0, "state": "error",
                "errorKind": "dropped", "errorMessage": "dropped: the session's queue was full",
            }));
        }
        self.events.session_changed(session_key);
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

    /// A run's record, if still held in memory.
    pub fn record(&self, run_id: &str) -> Option<RunRecord> {
        self.lock().records.get(run_id).cloned()
    }

    /// A run's record from memory, else from the store's run index (a run of
    /// an earlier process: status and error, no reply).
    pub async fn lookup(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        if let Some(record) = self.record(run_id) {
            return Ok(Some(record));
        }
        Ok(self
            .store
            .run_index(run_id)
            .await?
            .map(|e| record_from_index(&e)))
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

    /// Run records held and the bytes of text they keep.
    pub fn record_usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.records.len(), state.records.bytes())
    }

    /// Wait until a run is over or `timeout` passes; the record as it stands
    /// (a run merged into another reports that run's outcome).
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Option<RunRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let record = match self.record(run_id) {
                Some(record) => record,
                None => return self.lookup(run_id).await.ok().flatten(),
            };
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
    /// queued turn first and then the active run. Aborted queued messages
    /// stay in the history, marked as dropped. Returns the aborted ids.
    pub async fn abort(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let mut aborted = Vec::new();
        let mut evictions = Vec::new();
        {
            let mut state = self.lock();
            if let Some(lane) = state.lanes.get_mut(session_key) {
                let (drop, keep): (Vec<Queued>, Vec<Queued>) = lane
                    .queue
                    .drain(..)
                    .partition(|q| run_id.is_none_or(|id| id == q.run_id));
                lane.queue = keep.into();
                for q in drop {
                    if let Some(slot) = q.slot {
                        evictions.push(Eviction {
                            slot,
                            why: "aborted before it ran".into(),
                        });
                    }
                    aborted.push(q.run_id);
                }
                if let Some(active) = &lane.active
                    && run_id.is_none_or(|id| id == active.run_id)
                {
                    active.abort.abort();
                    aborted.push(active.run_id.clone());
                }
            }
            let now = crate::ids::now_ms();
            for id in &aborted {
                state.records.update(id, |r| {
                    if r.status == RunStatus::Queued {
                        r.status = RunStatus::Aborted;
                        r.ended_at = Some(now);
                        r.error = Some("aborted before it ran".into());
                    }
                });
            }
        }
        self.changed.notify_waiters();
        if !evictions.is_empty()
            && let Err(e) = self.store.drop_parked(session_key, evictions).await
        {
            tracing::warn!(
                session = session_key,
                "could not record aborted messages: {e}"
            );
        }
        aborted
    }

    /// The gateway is shutting down: runs aborted now were cut off, not
    /// stopped by anyone (the next start re-runs or closes them).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Abort every active run (shutdown). Queued messages stay in their
    /// inboxes and are re-queued by the next start.
    pub fn abort_all(&self) -> usize {
        self.stopping.store(true, Ordering::Relaxed);
        let state = self.lock();
        let mut n = 0;
        for lane in state.lanes.values() {
            if let Some(a) = &lane.active {
                a.abort.abort();
                n += 1;
            }
        }
        n
    }

    /// Wait until no run is active or `timeout` passes (shutdown).
    pub async fn idle(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.load().1 == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Re-queue messages a crash left in inboxes, and answer the chats of
    /// channel messages whose run a crash cut off (call once at start,
    /// before serving). Returns how many runs were re-queued.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        let items = self.store.inbox_all().await?;
        let parked: HashSet<String> = items.iter().map(|(_, i)| i.run_id.clone()).collect();
        let mut count = items.len();
        let max_slot = items.iter().map(|(_, i)| i.slot).max().unwrap_or(0);
        self.next_slot.fetch_max(max_slot + 1, Ordering::Relaxed);
        {
            let mut state = self.lock();
            for (key, item) in items {
                let mode = match QueueMode::parse(&item.mode) {
                    // A steered message's run is gone: it becomes its own turn.
                    Some(QueueMode::Steer) | None => QueueMode::Followup,
                    Some(mode) => mode,
                };
                let queued = Queued {
                    run_id: item.run_id.clone(),
                    slot: Some(item.slot),
                    mode,
                    scopes: item.scopes.clone(),
                    preview: lane::preview(&item.message),
                    durable: true,
                };
                let mut record =
                    RunRecord::accepted(&item.run_id, &key, &item.message, RunStatus::Queued);
                record.accepted_at = item.ts;
                self.requeue(&mut state, &key, queued, record, false);
            }
        }
        for entry in self.store.unanswered_runs().await? {
            if !parked.contains(&entry.run_id) && self.resume(entry).await? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Put a recovered turn in its lane (at the front: `first`).
    fn requeue(
        self: &Arc<Self>,
        state: &mut State,
        key: &str,
        queued: Queued,
        record: RunRecord,
        first: bool,
    ) {
        if !state.lanes.contains_key(key) && state.lanes.len() >= limits::MAX_RESIDENT_SESSIONS {
            tracing::warn!(
                session = %key,
                "too many sessions with waiting messages; the rest run after the next restart"
            );
            return;
        }
        let lane = state.lanes.entry(key.to_owned()).or_default();
        if first {
            lane.queue.push_front(queued);
        } else {
            lane.queue.push_back(queued);
        }
        state.records.insert(record);
        self.ensure_worker(state, key);
    }

    /// A channel message whose run a crash cut off (its message is in the
    /// transcript): if the run had written its final reply, that reply is
    /// sent; if it had started, the run goes again (first in its lane); if
    /// its rows are gone (absorbed into another run, the session reset) it
    /// is closed. Returns whether it was re-queued.
    async fn resume(self: &Arc<Self>, entry: RunIndexEntry) -> Result<bool, StoreError> {
        let window = self
            .store
            .session_window(&entry.session_key, limits::MAX_CONTEXT_ROWS)
            .await?;
        let last =
            window.rows.iter().rev().find(|r| {
                r.kind == "message" && r.run_id.as_deref() == Some(entry.run_id.as_str())
            });
        let finished = |status: RunStatus, answer: Option<String>, error: Option<&str>| RunEnd {
            session_key: entry.session_key.clone(),
            error_noted: false,
            run_ids: vec![entry.run_id.clone()],
            status: status.as_str().to_owned(),
            error: error.map(str::to_owned),
            answer,
            cut_off: false,
        };
        match last {
            None => {
                self.store.finish_runs(finished(
                    RunStatus::Error,
                    None,
                    Some("the gateway restarted before this run finished"),
                ));
                Ok(false)
            }
            Some(row)
                if row.role.as_deref() == Some("assistant")
                    && row.tool_calls.is_none()
                    && !row.content.trim().is_empty() =>
            {
                tracing::info!(run = %entry.run_id, "sending the reply a restart cut off");
                self.store
                    .finish_runs(finished(RunStatus::Ok, Some(row.content.clone()), None));
                Ok(false)
            }
            Some(_) => {
                tracing::info!(run = %entry.run_id, session = %entry.session_key, "running again a channel message a restart cut off");
                let queued = Queued {
                    run_id: entry.run_id.clone(),
                    slot: None,
                    mode: QueueMode::Followup,
                    scopes: entry.scopes.clone(),
                    preview: String::new(),
                    durable: true,
                };
                let mut record =
                    RunRecord::accepted(&entry.run_id, &entry.session_key, "", RunStatus::Queued);
                record.fingerprint = entry.fingerprint.clone();
                record.accepted_at = entry.accepted_at;
                let mut state = self.lock();
                self.requeue(&mut state, &entry.session_key, queued, record, true);
                Ok(true)
            }
        }
    }
}

/// Put victims chosen for a drop back at the front of the queue, in order.
fn restore_victims(lane: &mut Lane, victims: Vec<Queued>) {
    for v in victims.into_iter().rev() {
        lane.queue.push_front(v);
    }
}

/// A retry of a known run: its record, unless the message differs.
fn retry_of(record: RunRecord, fingerprint: &str) -> Result<Submitted, SubmitError> {
    if record.fingerprint == fingerprint {
        Ok(Submitted::Retry(record))
    } else {
        Err(SubmitError::KeyReused(record.run_id))
    }
}

/// A run record rebuilt from the store's run index.
fn record_from_index(entry: &RunIndexEntry) -> RunRecord {
    RunRecord {
        run_id: entry.run_id.clone(),
        session_key: entry.session_key.clone(),
        // An indexed run with no final status was cut off by a restart.
        status: entry
            .status
            .as_deref()
            .and_then(RunStatus::parse)
            .unwrap_or(RunStatus::Error),
        accepted_at: entry.accepted_at,
        started_at: None,
        ended_at: entry.ended_at,
        reply: None,
        error: entry.error.clone().or_else(|| {
            entry
                .status
                .is_none()
                .then(|| "the gateway restarted before this run finished".to_owned())
        }),
        merged_into: None,
        fingerprint: entry.fingerprint.clone(),
    }
}
