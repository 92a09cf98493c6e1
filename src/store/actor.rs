//! The threads that own the database: one writer, one reader.
//!
//! Every read and write of the state database runs on them, never on the
//! event loop: an SD card's flush can take tens of milliseconds, and one
//! flush on the event loop would stall every socket, ping and GPIO edge.
//! Callers send a job over a bounded queue and await a oneshot reply.
//!
//! **Group commit.** The thread takes every job waiting in the queue (up
//! to [`limits::STORE_MAX_BATCH`]) and runs all the writes in one write
//! transaction: N writes that arrive while a flush is in progress cost one
//! flush, not N. The batch commits with an fsync when any of its writes
//! asked for durability. Each job is one logical operation (its reads and
//! writes happen in that one transaction); a job that fails with a redb
//! error may have written part of its work, so the whole batch is rolled
//! back and every job in it is told. Jobs that fail for a logical reason
//! (a cap, a corrupt record) decide before they write, so they leave
//! nothing behind. Replies go out only after the commit: an input is
//! durable before anything acknowledges it.
//!
//! Reads run on their own thread (redb reads are snapshots and never wait
//! for a writer), in one read transaction per batch of queued reads, so a
//! read never waits for someone else's fsync. A read sees every write whose
//! reply came before the read was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::limits;

/// Sends a write job's result, or the batch's failure when there is one.
pub(super) type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// A write job's reply, sent once the batch's commit outcome is known.
pub(super) struct Pending {
    /// The job failed with a redb error: the batch must not commit.
    pub poisoned: bool,
    /// Sends the reply.
    pub finish: Finish,
}

/// What the store thread has done so far (for `status` and the bench).
#[derive(Debug, Default)]
pub struct Counters {
    /// Write jobs run.
    pub writes: AtomicU64,
    /// Commits (each may carry many writes).
    pub commits: AtomicU64,
    /// Commits with an fsync.
    pub durable_commits: AtomicU64,
    /// Read jobs run.
    pub reads: AtomicU64,
    /// Sessions in the store after the last commit (for `health`, which
    /// must answer without a read).
    pub sessions: AtomicU64,
}

/// A write: one logical operation inside the batch's transaction (`None`
/// when no transaction could be started; the job then only reports).
pub(super) type WriteJob = Box<dyn FnOnce(Option<&WriteTransaction>) -> Pending + Send>;

/// A read: runs in a read transaction (or learns why there is none).
pub(super) type ReadJob = Box<dyn FnOnce(Result<&ReadTransaction, &str>) + Send>;

/// What the writer thread is asked to do.
pub(super) enum Command {
    /// A write, committed with an fsync when `durable`.
    Write { durable: bool, job: WriteJob },
    /// Make every earlier write durable (an fsync if any commit was not).
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Finish the queued work, sync, stop the reader, close the database
    /// file and end; the reply comes once the file is closed (it can be
    /// reopened at once).
    Close(oneshot::Sender<()>),
}

/// What the reader thread is asked to do.
pub(super) enum ReadCommand {
    /// A read.
    Read(ReadJob),
    /// Drop the database handle and end.
    Stop(std::sync::mpsc::Sender<()>),
}

/// The sending sides of the two threads' queues.
pub(super) struct Queues {
    pub writes: mpsc::Sender<Command>,
    pub reads: mpsc::Sender<ReadCommand>,
}

/// Start the writer and reader threads over `db`. The writer ends on
/// `Close` or once every sender is dropped and its queue is drained, after
/// a last durable commit of anything still unsynced.
pub(super) fn spawn(db: Database, counters: Arc<Counters>) -> std::io::Result<Queues> {
    let db = Arc::new(db);
    let (writes, write_rx) = mpsc::channel(limits::STORE_QUEUE_DEPTH);
    let (reads, read_rx) = mpsc::channel(limits::STORE_QUEUE_DEPTH);
    let reader_db = db.clone();
    let reader_counters = counters.clone();
    std::thread::Builder::new()
        .name("pinclaw-store-read".into())
        .spawn(move || read_loop(reader_db, read_rx, &reader_counters))?;
    let stop_reader = reads.clone();
    std::thread::Builder::new()
        .name("pinclaw-store".into())
        .spawn(move || write_loop(db, write_rx, stop_reader, &counters))?;
    Ok(Queues { writes, reads })
}

fn read_loop(db: Arc<Database>, mut rx: mpsc::Receiver<ReadCommand>, counters: &Counters) {
    let mut reads: Vec<ReadJob> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut stop = None;
        while let Some(command) = next.take() {
            match command {
                ReadCommand::Read(job) => reads.push(job),
                ReadCommand::Stop(reply) => stop = Some(reply),
            }
            if reads.len() < limits::STORE_MAX_BATCH && stop.is_none() {
                next = rx.try_recv().ok();
            }
        }
        if !reads.is_empty() {
            counters
                .reads
                .fetch_add(reads.len() as u64, Ordering::Relaxed);
            match db.begin_read() {
                Ok(txn) => reads.drain(..).for_each(|job| job(Ok(&txn))),
                Err(e) => {
                    let e = e.to_string();
                    reads.drain(..).for_each(|job| job(Err(&e)));
                }
            }
        }
        if let Some(reply) = stop {
            drop(rx);
            drop(db);
            let _ = reply.send(());
            return;
        }
    }
}

fn write_loop(
    db: Arc<Database>,
    mut rx: mpsc::Receiver<Command>,
    reader: mpsc::Sender<ReadCommand>,
    counters: &Counters,
) {
    // A commit without an fsync happened since the last durable one.
    let mut unsynced = false;
    let mut writes: Vec<(bool, WriteJob)> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<Result<(), StoreError>>> = Vec::new();
    let mut closes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(command) = next.take() {
            taken += 1;
            match command {
                Command::Write { durable, job } => writes.push((durable, job)),
                Command::Flush(reply) => flushes.push(reply),
                Command::Close(reply) => closes.push(reply),
            }
            if taken < limits::STORE_MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let durable = writes.iter().any(|(d, _)| *d) || (!flushes.is_empty() && unsynced);
        let mut flush_error = None;
        if !writes.is_empty() || durable {
            counters
                .writes
                .fetch_add(writes.len() as u64, Ordering::Relaxed);
            counters.commits.fetch_add(1, Ordering::Relaxed);
            if durable {
                counters.durable_commits.fetch_add(1, Ordering::Relaxed);
            }
            match commit(&db, writes.drain(..).map(|(_, job)| job), durable, counters) {
                Ok(()) => unsynced = !durable,
                Err(e) => {
                    tracing::error!("state database commit failed: {e}");
                    flush_error = Some(e);
                }
            }
        }
        for reply in flushes.drain(..) {
            let _ = reply.send(match &flush_error {
                None => Ok(()),
                Some(e) => Err(StoreError::Batch(e.clone())),
            });
        }
        if !closes.is_empty() {
            break;
        }
    }
    if unsynced && let Err(e) = commit(&db, std::iter::empty(), true, counters) {
        tracing::warn!("final state database sync failed: {e}");
    }
    // Refuse what is still queued (its senders hear `Closed`), stop the
    // reader (it drops its handle), then close the file before saying so.
    drop(rx);
    let (stopped, wait) = std::sync::mpsc::channel();
    if reader.blocking_send(ReadCommand::Stop(stopped)).is_ok() {
        let _ = wait.recv();
    }
    drop(db);
    for reply in closes {
        let _ = reply.send(());
    }
}

/// Run `jobs` in one write transaction and commit it; each job hears the
/// outcome. Returns the batch's failure, if any.
fn commit(
    db: &Database,
    jobs: impl Iterator<Item = WriteJob>,
    durable: bool,
    counters: &Counters,
) -> Result<(), String> {
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let e = format!("cannot start a write: {e}");
            for job in jobs {
                (job(None).finish)(Some(&e));
            }
            return Err(e);
        }
    };
    let level = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    let pending: Vec<Pending> = jobs.map(|job| job(Some(&txn))).collect();
    if let Ok(sessions) = txn.open_table(super::sessions::SESSIONS) {
        use redb::ReadableTableMetadata;
        if let Ok(n) = sessions.len() {
            counters.sessions.store(n, Ordering::Relaxed);
        }
    }
    let outcome = if pending.iter().any(|p| p.poisoned) {
        let _ = txn.abort();
        Err("another write in the same commit failed; nothing was written".to_owned())
    } else {
        txn.set_durability(level)
            .map_err(|e| e.to_string())
            .and_then(|()| txn.commit().map_err(|e| format!("commit failed: {e}")))
    };
    let failure = outcome.as_ref().err().map(String::as_str);
    for p in pending {
        (p.finish)(failure);
    }
    outcome
}
