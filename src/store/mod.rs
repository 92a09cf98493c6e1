//! Durable state in one redb file: the gateway's identity, paired devices
//! and pairing requests, node records, sessions with their transcripts and
//! inboxes, and the index of accepted runs.
//!
//! The database is owned by two threads ([`actor`]: a writer with group
//! commit and a reader); a [`Store`] is a cheap handle that sends them jobs
//! and awaits the reply, so the event loop never waits on the disk. Each public operation is one logical operation and
//! runs in one transaction (read-modify-writes included), so a crash at any
//! instant leaves either all of it or none of it. Writes that must survive
//! a crash (inputs before their ack, pairing, tokens) commit with an fsync;
//! bookkeeping (`lastSeenAtMs`, token usage, tool results) commits without
//! one and becomes durable with the next fsync, to spare SD cards.
//! Concurrent writes are committed together (group commit). Old transcript
//! turns are pruned in the background ([`Store::run_retention`]), and the
//! file carries a format version ([`FORMAT_VERSION`]).

mod actor;
mod audit;
mod automations;
mod channels;
mod devices;
mod history;
mod inbox;
mod meta;
mod nodes;
mod retention;
mod runs;
mod sessions;

pub use audit::AuditEntry;
pub use automations::{AutomationRun, AutomationState, AutomationsSnapshot, Revert};
pub use channels::{AllowedSender, ChannelCursor, OutboxItem, PairingRequest};
pub use devices::{DeviceToken, PairedDevice, PendingPairing};
pub use inbox::{Eviction, InboxItem};
pub use nodes::{NodeRecord, SurfaceRequest};
pub use retention::{Pruned, Retention};
pub use runs::{ReplyRoute, RunEnd, RunIndexEntry, Stored};
pub use sessions::{LastRun, SessionMeta, SessionWindow, TranscriptEntry, error_line};

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::limits;

pub use self::actor::Counters;
use self::actor::{Command, Pending, ReadCommand};
pub use self::meta::FORMAT_VERSION;

/// How many tables the store has (the `create_tables` of its modules).
const TABLES: usize = 21;

/// A table of JSON records by string key.
pub(super) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, lock held by another process).
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record could not be decoded.
    #[error("state database record {key:?} is corrupt: {source}")]
    Corrupt {
        /// The record key.
        key: String,
        /// Decoder error.
        source: serde_json::Error,
    },
    /// A cap from `limits` was reached.
    #[error("{0}")]
    Full(&'static str),
    /// The store's queue is full (the disk is slower than the writes).
    #[error("the state database is busy; retry shortly")]
    Busy,
    /// The store thread is gone (shutting down).
    #[error("the state database is closed")]
    Closed,
    /// The commit this operation was part of failed.
    #[error("state database: {0}")]
    Batch(String),
    /// The file was written by a newer pinclaw, in a format this binary
    /// does not know; nothing was read or written.
    #[error(
        "{path}: this store was written by a newer pinclaw (format {found}); this binary reads up to {supported}; upgrade pinclaw or restore a backup"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its format version, as stored.
        found: String,
        /// The newest format this binary reads.
        supported: u32,
    },
}

impl StoreError {
    /// Whether a retry may succeed (busy, closing or a failed commit).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Busy | StoreError::Closed | StoreError::Batch(_) | StoreError::Db(_)
        )
    }
}

pub(super) fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// Write a small secret file (token, key) readable by the owner only, and
/// sync it to disk before returning.
pub fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Handle on the state database (cheap to clone; every clone talks to the
/// same store thread).
#[derive(Clone)]
pub struct Store {
    queue: mpsc::Sender<Command>,
    reads: mpsc::Sender<ReadCommand>,
    counters: Arc<Counters>,
    outbox_ready: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Turn an operation into a write job and the receiver of its result.
fn write_job<T: Send + 'static>(
    op: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
) -> (actor::WriteJob, oneshot::Receiver<Result<T, StoreError>>) {
    let (tx, rx) = oneshot::channel();
    let job: actor::WriteJob = Box::new(move |txn| {
        let result = match txn {
            Some(txn) => op(txn),
            None => Err(StoreError::Batch("no write transaction".into())),
        };
        let poisoned = matches!(result, Err(StoreError::Db(_)));
        Pending {
            poisoned,
            finish: Box::new(move |failure| {
                let reply = match (result, failure) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(why)) => Err(StoreError::Batch(why.to_owned())),
                    (Ok(v), None) => Ok(v),
                };
                let _ = tx.send(reply);
            }),
        }
    });
    (job, rx)
}

async fn reply<T>(rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    rx.await.unwrap_or(Err(StoreError::Closed))
}

impl Store {
    /// Open (or create) the database at `path` with a small page cache,
    /// check its format (a newer one is refused with
    /// [`StoreError::TooNew`], an older one migrated in place), create its
    /// tables, and start the thread that owns it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(limits::STORE_CACHE_BYTES)
            .create(path)
            .map_err(db_err)?;
        // Create missing tables and migrate an older format; a current
        // database that has every table is only read (no commit, no fsync
        // on every start).
        let txn = db.begin_read().map_err(db_err)?;
        let existing = txn.list_tables().map_err(db_err)?.count();
        let version = meta::stored_version(&txn)?;
        drop(txn);
        let version = match version {
            Ok(v) if v <= FORMAT_VERSION => v,
            Ok(v) => return Err(too_new(path, v.to_string())),
            Err(text) => return Err(too_new(path, format!("{text:?}"))),
        };
        if existing < TABLES || version < FORMAT_VERSION {
            let txn = db.begin_write().map_err(db_err)?;
            meta::create_tables(&txn)?;
            devices::create_tables(&txn)?;
            nodes::create_tables(&txn)?;
            sessions::create_tables(&txn)?;
            inbox::create_tables(&txn)?;
            runs::create_tables(&txn)?;
            channels::create_tables(&txn)?;
            audit::create_tables(&txn)?;
            history::create_tables(&txn)?;
            automations::create_tables(&txn)?;
            if version < FORMAT_VERSION {
                meta::migrate(&txn, version)?;
            }
            txn.commit().map_err(db_err)?;
        }
        let counters = Arc::new(Counters::default());
        let sessions = db.begin_read().map_err(db_err).and_then(|txn| {
            txn.open_table(sessions::SESSIONS)
                .map_err(db_err)?
                .len()
                .map_err(db_err)
        })?;
        counters
            .sessions
            .store(sessions, std::sync::atomic::Ordering::Relaxed);
        let queues = actor::spawn(db, counters.clone()).map_err(|e| StoreError::Db(e.into()))?;
        Ok(Self {
            queue: queues.writes,
            reads: queues.reads,
            counters,
            outbox_ready: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Run one logical operation in a write transaction and wait for its
    /// commit (with an fsync when `durable`). Waits for room in the queue.
    pub async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        op: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (job, rx) = write_job(op);
        self.queue
            .send(Command::Write { durable, job })
            .await
            .map_err(|_| StoreError::Closed)?;
        reply(rx).await
    }

    /// Queue a write at once, without waiting (for a caller that holds a
    /// lock and must fix the order of writes); the returned future resolves
    /// after the commit. A full queue is refused with [`StoreError::Busy`].
    pub fn write_queued<T: Send + 'static>(
        &self,
        durable: bool,
        op: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<impl Future<Output = Result<T, StoreError>> + Send + 'static, StoreError> {
        let (job, rx) = write_job(op);
        self.queue
            .try_send(Command::Write { durable, job })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        Ok(reply(rx))
    }

    /// Woken (`notify_waiters`) when messages were added to the outbound
    /// ledger: the channels' delivery tasks wait on it.
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// Queue bookkeeping (no fsync) without waiting for it: the caller does
    /// not need the outcome (token usage, a run's final status). A full
    /// queue drops it with a log line.
    pub fn write_detached(
        &self,
        what: &'static str,
        op: impl FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    ) {
        if let Err(e) = self.write_queued(false, op) {
            tracing::debug!("{what} not recorded: {e}");
        }
    }

    /// Run a read on the reader thread (it never waits for a writer's
    /// fsync); it sees every write whose reply came before it was sent.
    pub async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: actor::ReadJob = Box::new(move |txn| {
            let result = match txn {
                Ok(txn) => op(txn),
                Err(why) => Err(StoreError::Batch(why.to_owned())),
            };
            let _ = tx.send(result);
        });
        self.reads
            .send(ReadCommand::Read(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        reply(rx).await
    }

    /// Finish the work queued so far, make it durable and close the
    /// database file (shutdown). Later operations fail with
    /// [`StoreError::Closed`]; the file can be opened again at once.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// What the store thread has done so far: writes, commits, fsyncs.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Make every earlier write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Command::Flush(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        reply(rx).await
    }
}

/// The refusal of a store whose format is newer than this binary's.
fn too_new(path: &Path, found: String) -> StoreError {
    StoreError::TooNew {
        path: path.display().to_string(),
        found,
        supported: FORMAT_VERSION,
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

/// A JSON record by key.
pub(super) fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(db_err)? {
        Some(value) => decode(key, value.value()).map(Some),
        None => Ok(None),
    }
}

/// Every JSON record of a table, in key order.
pub(super) fn list_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for entry in table.iter().map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        out.push(decode(key.value(), value.value())?);
    }
    Ok(out)
}

/// The JSON records whose keys start with `prefix`, in key order, with
/// their keys.
pub(super) fn list_json_prefixed<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range(prefix..).map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_owned(), decode(key, value.value())?));
    }
    Ok(out)
}

/// Append `value` to a log partition (`(partition, seq)` keys) with the
/// next sequence number (`set_seq` stamps it into the record first), then
/// delete the oldest entries of the table beyond `cap`. Returns the seq.
pub(super) fn append_capped<T: Serialize>(
    table: &mut Table<(&'static str, u64), &'static [u8]>,
    partition: &str,
    mut value: T,
    set_seq: impl FnOnce(&mut T, u64),
    cap: usize,
) -> Result<u64, StoreError> {
    use redb::ReadableTableMetadata;
    let last = table
        .range((partition, 0)..=(partition, u64::MAX))
        .map_err(db_err)?
        .next_back()
        .transpose()
        .map_err(db_err)?
        .map(|(k, _)| k.value().1)
        .unwrap_or(0);
    let seq = last + 1;
    set_seq(&mut value, seq);
    let bytes = encode(partition, &value)?;
    table
        .insert((partition, seq), bytes.as_slice())
        .map_err(db_err)?;
    let over = (table.len().map_err(db_err)? as usize).saturating_sub(cap);
    if over > 0 {
        let oldest: Vec<u64> = table
            .range((partition, 0)..=(partition, u64::MAX))
            .map_err(db_err)?
            .take(over)
            .map(|row| row.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        for seq in oldest {
            table.remove((partition, seq)).map_err(db_err)?;
        }
    }
    Ok(seq)
}

/// Insert or replace a JSON record.
pub(super) fn put_json<T: Serialize>(
    table: &mut Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(key, value)?;
    table.insert(key, bytes.as_slice()).map_err(db_err)?;
    Ok(())
}

/// Read-modify-write of one record in one transaction. `change` sees the
/// current record and returns the new one (`None`: leave it as it is) and
/// a result. Creating a record beyond `cap` records is refused with
/// [`StoreError::Full`] (`full` says what to do) before anything is written.
pub(super) fn update_json<T: Serialize + DeserializeOwned, R>(
    txn: &WriteTransaction,
    definition: JsonTable,
    key: &str,
    cap: (usize, &'static str),
    change: impl FnOnce(Option<T>) -> Result<(Option<T>, R), StoreError>,
) -> Result<R, StoreError> {
    let mut table = txn.open_table(definition).map_err(db_err)?;
    let current: Option<T> = get_json(&table, key)?;
    let existed = current.is_some();
    let (next, result) = change(current)?;
    if let Some(next) = next {
        if !existed && table.len().map_err(db_err)? as usize >= cap.0 {
            return Err(StoreError::Full(cap.1));
        }
        put_json(&mut table, key, &next)?;
    }
    Ok(result)
}

/// Number of rows of a table.
pub(super) fn count(table: &impl ReadableTableMetadata) -> Result<usize, StoreError> {
    Ok(table.len().map_err(db_err)? as usize)
}

#[cfg(test)]
mod tests;
