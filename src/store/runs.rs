//! The index of accepted runs, by run id (= the caller's idempotency key):
//! a retry of an acknowledged `chat.send` or `agent` after a restart finds
//! its run here instead of starting a second one, and a key reused for a
//! different message is told apart by the message's fingerprint. Entries
//! are written in the same transaction as the message they index; the
//! oldest are pruned beyond [`limits::MAX_PERSISTED_RUNS`].

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Store, StoreError, db_err, get_json, put_json};
use crate::limits;

const RUNS: JsonTable = TableDefinition::new("runs");
/// `(acceptedAt, runId)`: the pruning order.
const RUNS_BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("runs_by_time");

/// Longest error text kept in an index entry.
const MAX_INDEXED_ERROR_CHARS: usize = 512;

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(RUNS).map_err(db_err)?;
    txn.open_table(RUNS_BY_TIME).map_err(db_err)?;
    Ok(())
}

/// The outcome of storing an input under a run id.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<T> {
    /// Stored now.
    New(T),
    /// The run id was already indexed: nothing was written.
    Known(RunIndexEntry),
}

/// The index entry of `run_id` inside `txn`, if any.
pub(super) fn find(
    txn: &WriteTransaction,
    run_id: &str,
) -> Result<Option<RunIndexEntry>, StoreError> {
    get_json(&txn.open_table(RUNS).map_err(db_err)?, run_id)
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
            }
            None => break,
        }
    }
    Ok(())
}

/// Record how a run ended, inside `txn` (unknown ids are ignored).
pub(super) fn set_status(
    txn: &WriteTransaction,
    run_id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let mut runs = txn.open_table(RUNS).map_err(db_err)?;
    let Some(mut entry): Option<RunIndexEntry> = get_json(&runs, run_id)? else {
        return Ok(());
    };
    entry.status = Some(status.to_owned());
    entry.ended_at = Some(crate::ids::now_ms());
    entry.error = error.map(|e| e.chars().take(MAX_INDEXED_ERROR_CHARS).collect());
    put_json(&mut runs, run_id, &entry)
}

impl Store {
    /// The index entry of a run id, if it was accepted and not yet pruned.
    pub async fn run_index(&self, run_id: &str) -> Result<Option<RunIndexEntry>, StoreError> {
        let id = run_id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(RUNS).map_err(db_err)?, &id))
            .await
    }

    /// Record how a run ended (bookkeeping: no fsync, not waited for; the
    /// transcript holds what matters).
    pub fn finish_run(&self, run_id: &str, status: &str, error: Option<String>) {
        let (id, status) = (run_id.to_owned(), status.to_owned());
        self.write_detached("a run's end", move |txn| {
            set_status(txn, &id, &status, error.as_deref())
        });
    }
}
