//! The index of accepted runs, by run id (= the caller's idempotency key):
//! a retry of an acknowledged `chat.send` or `agent` after a restart finds
//! its run here instead of starting a second one, and a key reused for a
//! different message is told apart by the message's fingerprint. Entries
//! are written in the same transaction as the message they index; the
//! oldest are pruned beyond [`limits::MAX_PERSISTED_RUNS`].

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{JsonTable, OutboxItem, Store, StoreError, db_err, get_json, put_json};
use crate::limits;

const RUNS: JsonTable = TableDefinition::new("runs");
/// `(acceptedAt, runId)`: the pruning order.
const RUNS_BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("runs_by_time");
/// Runs of channel messages accepted and not yet finished: after a crash,
/// each is answered (or run again) so that no chat waits forever.
const UNANSWERED: JsonTable = TableDefinition::new("runs_unanswered");

/// Longest error text kept in an index entry.
const MAX_INDEXED_ERROR_CHARS: usize = 512;

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(RUNS).map_err(db_err)?;
    txn.open_table(RUNS_BY_TIME).map_err(db_err)?;
    txn.open_table(UNANSWERED).map_err(db_err)?;
    Ok(())
}

/// The outcome of storing an input under a run id.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<T> {
    /// Stored now.
    New(T),
    /// The run id was already indexed: nothing was written.
    Known(Box<RunIndexEntry>),
}

/// The index entry of `run_id` inside `txn`, if any.
pub(super) fn find(
    txn: &WriteTransaction,
    run_id: &str,
) -> Result<Option<RunIndexEntry>, StoreError> {
    get_json(&txn.open_table(RUNS).map_err(db_err)?, run_id)
}

/// Where the reply to a run goes, when its message came from a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyRoute {
    /// Channel id (`telegram`).
    pub channel: String,
    /// Account id (`default`).
    pub account: String,
    /// Chat id.
    pub to: String,
    /// Forum topic / thread, if any.
    #[serde(default)]
    pub thread: Option<String>,
}

/// What is remembered of an accepted run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunIndexEntry {
    /// Run id (the idempotency key).
    pub run_id: String,
    /// Its session.
    pub session_key: String,
    /// Accepted (ms).
    pub accepted_at: i64,
    /// Fingerprint of the message ([`crate::ids::fingerprint`]).
    pub fingerprint: String,
    /// Final status once the run ended (`ok`, `error`, `dropped`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// Ended (ms).
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// Error text of a failed run (capped).
    #[serde(default)]
    pub error: Option<String>,
    /// Where its reply goes (a message from a channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ReplyRoute>,
    /// Scopes of a channel message's sender, to run it again after a crash
    /// (empty for other runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl RunIndexEntry {
    /// An entry for a run accepted now.
    pub fn accepted(run_id: &str, session_key: &str, message: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            session_key: session_key.to_owned(),
            accepted_at: crate::ids::now_ms(),
            fingerprint: crate::ids::fingerprint(message),
            status: None,
            ended_at: None,
            error: None,
            route: None,
            scopes: Vec::new(),
        }
    }
}

/// Index a run inside `txn`, pruning the oldest entries beyond the cap. An
/// id already indexed keeps its first entry.
pub(super) fn put(txn: &WriteTransaction, entry: &RunIndexEntry) -> Result<(), StoreError> {
    let mut runs = txn.open_table(RUNS).map_err(db_err)?;
    if runs.get(entry.run_id.as_str()).map_err(db_err)?.is_some() {
        return Ok(());
    }
    put_json(&mut runs, &entry.run_id, entry)?;
    let mut unanswered = txn.open_table(UNANSWERED).map_err(db_err)?;
    if entry.route.is_some() {
        unanswered
            .insert(entry.run_id.as_str(), [].as_slice())
            .map_err(db_err)?;
    }
    let mut by_time = txn.open_table(RUNS_BY_TIME).map_err(db_err)?;
    by_time
        .insert((entry.accepted_at, entry.run_id.as_str()), ())
        .map_err(db_err)?;
    while by_time.len().map_err(db_err)? as usize > limits::MAX_PERSISTED_RUNS {
        let oldest = by_time
            .pop_first()
            .map_err(db_err)?
            .map(|(k, _)| k.value().1.to_owned());
        match oldest {
            Some(id) => {
                runs.remove(id.as_str()).map_err(db_err)?;
                unanswered.remove(id.as_str()).map_err(db_err)?;
            }
            None => break,
        }
    }
    Ok(())
}

/// Record how a run ended, inside `txn`; returns its entry as updated
/// (`None` for an unknown id).
pub(super) fn set_status(
    txn: &WriteTransaction,
    run_id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<Option<RunIndexEntry>, StoreError> {
    let mut runs = txn.open_table(RUNS).map_err(db_err)?;
    let Some(mut entry): Option<RunIndexEntry> = get_json(&runs, run_id)? else {
        return Ok(None);
    };
    entry.status = Some(status.to_owned());
    entry.ended_at = Some(crate::ids::now_ms());
    entry.error = error.map(|e| e.chars().take(MAX_INDEXED_ERROR_CHARS).collect());
    put_json(&mut runs, run_id, &entry)?;
    if entry.route.is_some() {
        txn.open_table(UNANSWERED)
            .map_err(db_err)?
            .remove(run_id)
            .map_err(db_err)?;
    }
    Ok(Some(entry))
}

/// How a group of runs (one turn and the runs merged into it) ended.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// The session the runs belong to.
    pub session_key: String,
    /// The runner already wrote the error row (else this writes it).
    pub error_noted: bool,
    /// The runs.
    pub run_ids: Vec<String>,
    /// Final status (`ok`, `error`, …).
    pub status: String,
    /// Error text of a failed run.
    pub error: Option<String>,
    /// What the chats the runs came from are told (the reply, or the error
    /// in one line); `None`: nothing.
    pub answer: Option<String>,
    /// Aborted by the shutdown: runs of channel messages stay unfinished,
    /// so that the next start answers their chats.
    pub cut_off: bool,
}

impl Store {
    /// The index entry of a run id, if it was accepted and not yet pruned.
    pub async fn run_index(&self, run_id: &str) -> Result<Option<RunIndexEntry>, StoreError> {
        let id = run_id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(RUNS).map_err(db_err)?, &id))
            .await
    }

    /// Record how runs ended and, in the same transaction, put their answer
    /// in the outbound ledger for every chat they came from (once per chat).
    /// A failed run's error row goes into its session's transcript in the
    /// same transaction unless the runner wrote it. Not waited for and
    /// without an fsync: a final reply is already durable in the
    /// transcript, and [`Store::unanswered_runs`] finds a run whose end a
    /// crash lost. Wakes [`Store::outbox_signal`] once committed.
    pub fn finish_runs(&self, end: RunEnd) {
        let op = move |txn: &WriteTransaction| {
            if !end.cut_off
                && !end.error_noted
                && matches!(end.status.as_str(), "error" | "timeout" | "aborted")
            {
                let error = end.error.as_deref().unwrap_or(&end.status);
                let run_id = end.run_ids.first().map(String::as_str).unwrap_or_default();
                let row = super::TranscriptEntry::run_error(error, run_id, &end.status);
                super::sessions::append_rows(txn, &end.session_key, vec![row])?;
            }
            let mut routes: Vec<ReplyRoute> = Vec::new();
            for id in &end.run_ids {
                if end.cut_off && find(txn, id)?.is_some_and(|e| e.route.is_some()) {
                    continue;
                }
                if let Some(entry) = set_status(txn, id, &end.status, end.error.as_deref())?
                    && let Some(route) = entry.route
                    && !routes.contains(&route)
                {
                    routes.push(route);
                }
            }
            let Some(text) = end.answer.filter(|_| !routes.is_empty()) else {
                return Ok(0);
            };
            let run_id = end.run_ids.first().cloned();
            let items = routes
                .into_iter()
                .map(|r| OutboxItem::new(r, text.clone(), "reply", run_id.clone()))
                .collect();
            match super::channels::outbox_insert(txn, items) {
                Ok(stored) => Ok(stored.len()),
                Err(StoreError::Full(why)) => {
                    tracing::warn!("a run's answer is not delivered: {why}");
                    Ok(0)
                }
                Err(e) => Err(e),
            }
        };
        match self.write_queued(false, op) {
            Ok(committed) => {
                let signal = self.outbox_signal();
                tokio::spawn(async move {
                    if committed.await.is_ok_and(|n| n > 0) {
                        signal.notify_waiters();
                    }
                });
            }
            Err(e) => tracing::warn!("a run's end not recorded: {e}"),
        }
    }

    /// Runs of channel messages accepted but never finished (a crash cut
    /// them off), oldest first.
    pub async fn unanswered_runs(&self) -> Result<Vec<RunIndexEntry>, StoreError> {
        self.read(|txn| {
            let ids = txn.open_table(UNANSWERED).map_err(db_err)?;
            let runs = txn.open_table(RUNS).map_err(db_err)?;
            let mut out: Vec<RunIndexEntry> = Vec::new();
            for row in ids.iter().map_err(db_err)? {
                let (id, _) = row.map_err(db_err)?;
                if let Some(entry) = get_json::<RunIndexEntry>(&runs, id.value())? {
                    out.push(entry);
                }
            }
            out.sort_by_key(|e| e.accepted_at);
            Ok(out)
        })
        .await
    }
}
