//! Sessions and their append-only transcripts.
//!
//! A transcript row is keyed by `(sessionKey, seq)`, so a session's history
//! is one ordered range and appending never rewrites earlier rows. Inputs
//! are committed with `Durability::Immediate` before they are acknowledged;
//! a crash at any point leaves the file at its last durable commit.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, StoreError, db_err};

pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(super) const TRANSCRIPT: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("transcript");

/// What the gateway remembers about a session besides its transcript.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionMeta {
    /// Session key, e.g. `agent:main:main`.
    pub key: String,
    /// Current session id (changes on reset).
    pub session_id: String,
    /// Operator label.
    #[serde(default)]
    pub label: Option<String>,
    /// Model override (`provider/model`).
    #[serde(default)]
    pub model: Option<String>,
    /// Created (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Seq of the newest transcript row (0 = empty).
    pub last_seq: u64,
    /// Seq of the newest compaction marker (0 = none).
    #[serde(default)]
    pub compacted_at_seq: u64,
    /// Transcript rows.
    pub entries: u64,
    /// Input tokens reported by providers.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens reported by providers.
    #[serde(default)]
    pub output_tokens: u64,
}

/// One transcript row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    /// Position in the session (assigned on append).
    #[serde(default)]
    pub seq: u64,
    /// `message`, `compaction` or `reset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `user`, `assistant` or `tool` for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text content (for compaction: the summary or the marker text).
    #[serde(default)]
    pub content: String,
    /// Assistant tool calls `[{id, name, arguments}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// Tool result: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Tool result: tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool result: failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// The run that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Compaction: the model context continues with rows from this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_from_seq: Option<u64>,
    /// Written (ms).
    pub ts: i64,
}

impl TranscriptEntry {
    /// A message row.
    pub fn message(role: &str, content: impl Into<String>, run_id: Option<&str>) -> Self {
        Self {
            seq: 0,
            kind: "message".into(),
            role: Some(role.to_owned()),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            is_error: None,
            run_id: run_id.map(str::to_owned),
            kept_from_seq: None,
            ts: crate::ids::now_ms(),
        }
    }
}

impl Store {
    /// A session's metadata.
    pub fn session(&self, key: &str) -> Result<Option<SessionMeta>, StoreError> {
        self.get_json(SESSIONS, key)
    }

    /// Every session, most recently updated first.
    pub fn sessions(&self) -> Result<Vec<SessionMeta>, StoreError> {
        let mut all: Vec<SessionMeta> = self.list_json(SESSIONS)?;
        all.sort_by_key(|m| std::cmp::Reverse(m.updated_at));
        Ok(all)
    }

    /// Write session metadata (label, model) without touching the transcript.
    pub fn put_session(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        self.put_json(SESSIONS, &meta.key, meta, Durability::Immediate)
    }

    /// Append rows to a session's transcript (creating the session), with
    /// seq numbers assigned in order; `durable` commits with an fsync before
    /// returning. Returns the updated metadata and the rows as stored.
    pub fn append(
        &self,
        key: &str,
        entries: Vec<TranscriptEntry>,
        durable: bool,
    ) -> Result<(SessionMeta, Vec<TranscriptEntry>), StoreError> {
        let now = crate::ids::now_ms();
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(db_err)?;
        let corrupt = |source| StoreError::Corrupt {
            key: key.to_owned(),
            source,
        };
        let mut stored = Vec::with_capacity(entries.len());
        let meta = {
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let mut meta: SessionMeta = match sessions.get(key).map_err(db_err)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(corrupt)?,
                None => SessionMeta {
                    key: key.to_owned(),
                    session_id: crate::ids::uuid_v4(),
                    created_at: now,
                    ..SessionMeta::default()
                },
            };
            let mut transcript = txn.open_table(TRANSCRIPT).map_err(db_err)?;
            for mut entry in entries {
                meta.last_seq += 1;
                meta.entries += 1;
                entry.seq = meta.last_seq;
                if entry.kind == "compaction" {
                    meta.compacted_at_seq = entry.seq;
                }
                let bytes = serde_json::to_vec(&entry).map_err(corrupt)?;
                transcript
                    .insert((key, entry.seq), bytes.as_slice())
                    .map_err(db_err)?;
                stored.push(entry);
            }
            meta.updated_at = now;
            let bytes = serde_json::to_vec(&meta).map_err(corrupt)?;
            sessions.insert(key, bytes.as_slice()).map_err(db_err)?;
            meta
        };
        txn.commit().map_err(db_err)?;
        Ok((meta, stored))
    }

    /// Add provider-reported token usage to a session (no fsync).
    pub fn add_usage(&self, key: &str, input: u64, output: u64) -> Result<(), StoreError> {
        if let Some(mut meta) = self.session(key)? {
            meta.input_tokens += input;
            meta.output_tokens += output;
            self.put_json(SESSIONS, key, &meta, Durability::None)?;
        }
        Ok(())
    }

    /// Rows with `seq >= from`, oldest first, at most `max` (the newest ones
    /// when there are more). Reads from the newest end, so the cost is
    /// bounded by `max`, not by the session's length.
    pub fn transcript_since(
        &self,
        key: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
        let mut rows = Vec::with_capacity(max.min(64));
        for row in table
            .range((key, from)..=(key, u64::MAX))
            .map_err(db_err)?
            .rev()
            .take(max)
        {
            let (_, value) = row.map_err(db_err)?;
            let entry: TranscriptEntry =
                serde_json::from_slice(value.value()).map_err(|source| StoreError::Corrupt {
                    key: key.to_owned(),
                    source,
                })?;
            rows.push(entry);
        }
        rows.reverse();
        Ok(rows)
    }

    /// One row by seq.
    pub fn transcript_row(
        &self,
        key: &str,
        seq: u64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
        let Some(value) = table.get((key, seq)).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                key: key.to_owned(),
                source,
            })
    }

    /// A page of rows, newest last: skip `offset` newest rows, return up to
    /// `limit` before them.
    pub fn transcript_page(
        &self,
        key: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
        let mut rows = Vec::with_capacity(limit.min(256));
        for row in table
            .range((key, 0)..=(key, u64::MAX))
            .map_err(db_err)?
            .rev()
            .skip(offset)
            .take(limit)
        {
            let (_, value) = row.map_err(db_err)?;
            rows.push(serde_json::from_slice(value.value()).map_err(|source| {
                StoreError::Corrupt {
                    key: key.to_owned(),
                    source,
                }
            })?);
        }
        rows.reverse();
        Ok(rows)
    }

    /// Drop a session's transcript; `keep_meta` keeps the session (reset)
    /// with a new id, otherwise the session is deleted. Returns whether it existed.
    pub fn clear_session(
        &self,
        key: &str,
        keep_meta: bool,
    ) -> Result<Option<SessionMeta>, StoreError> {
        let Some(mut meta) = self.session(key)? else {
            return Ok(None);
        };
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut transcript = txn.open_table(TRANSCRIPT).map_err(db_err)?;
            transcript
                .extract_from_if((key, 0)..=(key, u64::MAX), |_, _| true)
                .map_err(db_err)?
                .for_each(drop);
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            if keep_meta {
                meta.session_id = crate::ids::uuid_v4();
                meta.entries = 0;
                meta.compacted_at_seq = meta.last_seq;
                meta.updated_at = crate::ids::now_ms();
                let bytes = serde_json::to_vec(&meta).map_err(|source| StoreError::Corrupt {
                    key: key.to_owned(),
                    source,
                })?;
                sessions.insert(key, bytes.as_slice()).map_err(db_err)?;
            } else {
                sessions.remove(key).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(Some(meta))
    }
}

pub(super) const INBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inbox");

/// A message acknowledged while its session was busy, waiting for its turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    /// Arrival order within the session.
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
}

impl Store {
    /// Durably park a message for a busy session. Returns its slot.
    pub fn inbox_put(&self, key: &str, mut item: InboxItem) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let slot = {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let last = inbox
                .range((key, 0)..=(key, u64::MAX))
                .map_err(db_err)?
                .next_back()
                .transpose()
                .map_err(db_err)?
                .map(|(k, _)| k.value().1)
                .unwrap_or(0);
            item.slot = last + 1;
            let bytes = serde_json::to_vec(&item).map_err(|source| StoreError::Corrupt {
                key: key.to_owned(),
                source,
            })?;
            inbox
                .insert((key, item.slot), bytes.as_slice())
                .map_err(db_err)?;
            item.slot
        };
        txn.commit().map_err(db_err)?;
        Ok(slot)
    }

    /// Drop parked messages without running them (aborted or evicted).
    pub fn inbox_remove(&self, key: &str, slots: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            for slot in slots {
                inbox.remove((key, *slot)).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Move parked messages into the transcript as user messages, in one
    /// durable transaction (their turn has come).
    pub fn inbox_promote(
        &self,
        key: &str,
        slots: &[u64],
        run_id: &str,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let mut items = Vec::new();
        for slot in slots {
            items.extend(self.inbox_get(key, *slot)?);
        }
        self.inbox_remove(key, slots)?;
        let entries = items
            .into_iter()
            .map(|i| TranscriptEntry::message("user", i.message, Some(run_id)))
            .collect();
        Ok(self.append(key, entries, true)?.1)
    }

    /// One parked message.
    pub fn inbox_get(&self, key: &str, slot: u64) -> Result<Option<InboxItem>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let inbox = txn.open_table(INBOX).map_err(db_err)?;
        let Some(v) = inbox.get((key, slot)).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                key: key.to_owned(),
                source,
            })
    }

    /// The parked messages of one session, in arrival order.
    pub fn inbox_of(&self, key: &str) -> Result<Vec<InboxItem>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let inbox = txn.open_table(INBOX).map_err(db_err)?;
        let mut out = Vec::new();
        for row in inbox.range((key, 0)..=(key, u64::MAX)).map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|source| StoreError::Corrupt {
                    key: key.to_owned(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Number of sessions.
    pub fn session_count(&self) -> Result<usize, StoreError> {
        self.count(SESSIONS)
    }

    /// Every parked message of every session (recovery after a crash).
    pub fn inbox_all(&self) -> Result<Vec<(String, InboxItem)>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let inbox = txn.open_table(INBOX).map_err(db_err)?;
        let mut out = Vec::new();
        for row in inbox.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let key = k.value().0.to_owned();
            let item: InboxItem =
                serde_json::from_slice(v.value()).map_err(|source| StoreError::Corrupt {
                    key: key.clone(),
                    source,
                })?;
            out.push((key, item));
        }
        Ok(out)
    }
}
