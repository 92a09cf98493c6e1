//! Session inboxes: messages acknowledged while their session was busy,
//! parked durably until their turn comes. Every move of a message happens
//! in one transaction with everything it implies: accepting an input
//! writes it and its run index entry together; promoting moves it from the
//! inbox into the transcript; dropping it (a full queue, an abort) moves
//! it into the transcript marked as dropped. A crash at any instant
//! therefore leaves each acknowledged message in exactly one place.

use std::future::Future;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::runs::{self, RunIndexEntry, Stored};
use super::sessions::{TranscriptEntry, append_rows};
use super::{Store, StoreError, db_err, decode, encode};

const INBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inbox");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(INBOX).map_err(db_err)?;
    Ok(())
}

/// A message acknowledged while its session was busy, waiting for its turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    /// Arrival order (unique across sessions, increasing).
    #[serde(default)]
    pub slot: u64,
    /// Run id (the idempotency key).
    pub run_id: String,
    /// The message.
    pub message: String,
    /// Queue mode it arrived with.
    pub mode: String,
    /// Arrived (ms).
    pub ts: i64,
    /// Scopes of the client that sent it: its run acts with these.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A parked message to move into the transcript as dropped.
#[derive(Debug, Clone)]
pub struct Eviction {
    /// Its inbox slot.
    pub slot: u64,
    /// Why it will never run (shown in the history).
    pub why: String,
}

/// Remove a session's parked messages inside `txn` (session reset/delete).
pub(super) fn clear(txn: &WriteTransaction, key: &str) -> Result<(), StoreError> {
    txn.open_table(INBOX)
        .map_err(db_err)?
        .extract_from_if((key, 0)..=(key, u64::MAX), |_, _| true)
        .map_err(db_err)?
        .for_each(drop);
    Ok(())
}

/// Take parked messages out of the inbox (missing slots are skipped).
fn take(txn: &WriteTransaction, key: &str, slots: &[u64]) -> Result<Vec<InboxItem>, StoreError> {
    let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
    let mut items = Vec::with_capacity(slots.len());
    for slot in slots {
        if let Some(value) = inbox.remove((key, *slot)).map_err(db_err)? {
            items.push(decode::<InboxItem>(key, value.value())?);
        }
    }
    Ok(items)
}

/// Move parked messages into the transcript as dropped, marking their runs.
fn evict(
    txn: &WriteTransaction,
    key: &str,
    evictions: &[Eviction],
) -> Result<Vec<TranscriptEntry>, StoreError> {
    let mut rows = Vec::with_capacity(evictions.len());
    for e in evictions {
        for item in take(txn, key, &[e.slot])? {
            runs::set_status(txn, &item.run_id, "dropped", Some(&e.why))?;
            rows.push(TranscriptEntry::dropped_message(
                item.message,
                &item.run_id,
                &e.why,
            ));
        }
    }
    if rows.is_empty() {
        return Ok(rows);
    }
    Ok(append_rows(txn, key, rows)?.1)
}

impl Store {
    /// Queue the durable acceptance of a message for an idle session: it
    /// goes straight into the transcript, with its run index entry. The
    /// future resolves after the fsync. A run id already indexed writes
    /// nothing and answers [`Stored::Known`].
    pub fn queue_accept(
        &self,
        key: &str,
        entry: TranscriptEntry,
        run: RunIndexEntry,
    ) -> Result<
        impl Future<Output = Result<Stored<Vec<TranscriptEntry>>, StoreError>> + Send + 'static,
        StoreError,
    > {
        let key = key.to_owned();
        self.write_queued(true, move |txn| {
            if let Some(known) = runs::find(txn, &run.run_id)? {
                return Ok(Stored::Known(Box::new(known)));
            }
            runs::put(txn, &run)?;
            Ok(Stored::New(append_rows(txn, &key, vec![entry])?.1))
        })
    }

    /// Queue the durable parking of a message for a busy session, with its
    /// run index entry; `evictions` are parked messages pushed out by it (a
    /// full queue), moved into the transcript as dropped in the same commit.
    /// The future resolves after the fsync with the dropped rows. A run id
    /// already indexed writes nothing and answers [`Stored::Known`].
    pub fn queue_park(
        &self,
        key: &str,
        item: InboxItem,
        run: RunIndexEntry,
        evictions: Vec<Eviction>,
    ) -> Result<
        impl Future<Output = Result<Stored<Vec<TranscriptEntry>>, StoreError>> + Send + 'static,
        StoreError,
    > {
        let key = key.to_owned();
        self.write_queued(true, move |txn| {
            if let Some(known) = runs::find(txn, &run.run_id)? {
                return Ok(Stored::Known(Box::new(known)));
            }
            let dropped = evict(txn, &key, &evictions)?;
            runs::put(txn, &run)?;
            let bytes = encode(&key, &item)?;
            txn.open_table(INBOX)
                .map_err(db_err)?
                .insert((key.as_str(), item.slot), bytes.as_slice())
                .map_err(db_err)?;
            Ok(Stored::New(dropped))
        })
    }

    /// Move parked messages into the transcript as user messages of
    /// `run_id`, in one durable transaction (their turn has come). Slots
    /// already gone are skipped. Returns the rows as stored.
    pub async fn promote(
        &self,
        key: &str,
        slots: Vec<u64>,
        run_id: &str,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let (key, run_id) = (key.to_owned(), run_id.to_owned());
        self.write(true, move |txn| {
            let items = take(txn, &key, &slots)?;
            if items.is_empty() {
                return Ok(Vec::new());
            }
            let rows = items
                .into_iter()
                .map(|i| TranscriptEntry::message("user", i.message, Some(&run_id)))
                .collect();
            Ok(append_rows(txn, &key, rows)?.1)
        })
        .await
    }

    /// Move parked messages into the transcript as dropped (aborted while
    /// queued), in one durable transaction. Returns the rows as stored.
    pub async fn drop_parked(
        &self,
        key: &str,
        evictions: Vec<Eviction>,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let key = key.to_owned();
        self.write(true, move |txn| evict(txn, &key, &evictions))
            .await
    }

    /// The parked messages of one session, in arrival order.
    pub async fn inbox_of(&self, key: &str) -> Result<Vec<InboxItem>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            let mut out = Vec::new();
            for row in inbox
                .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))
                .map_err(db_err)?
            {
                let (_, v) = row.map_err(db_err)?;
                out.push(decode(&key, v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Every parked message of every session, by session then arrival
    /// (recovery after a crash).
    pub async fn inbox_all(&self) -> Result<Vec<(String, InboxItem)>, StoreError> {
        self.read(|txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            let mut out = Vec::new();
            for row in inbox.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let key = k.value().0.to_owned();
                let item: InboxItem = decode(&key, v.value())?;
                out.push((key, item));
            }
            Ok(out)
        })
        .await
    }
}
