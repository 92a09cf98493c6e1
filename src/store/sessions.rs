//! Sessions and their append-only transcripts.
//!
//! A transcript row is keyed by `(sessionKey, seq)`, so a session's history
//! is one ordered range and appending never rewrites earlier rows. The
//! session's metadata (last seq, counts, usage) changes in the same
//! transaction as its rows.

use redb::{ReadTransaction, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    JsonTable, Store, StoreError, count, db_err, decode, encode, get_json, list_json, put_json,
};

pub(super) const SESSIONS: JsonTable = TableDefinition::new("sessions");
pub(super) const TRANSCRIPT: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("transcript");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SESSIONS).map_err(db_err)?;
    txn.open_table(TRANSCRIPT).map_err(db_err)?;
    Ok(())
}

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
    /// How the newest run failed (`error`, `timeout`, `aborted`) and why;
    /// `None` once a run ends with a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
}

impl SessionMeta {
    /// A run's end written to the transcript: an `error` row marks the
    /// session failed, a final reply (an assistant message without tool
    /// calls) clears that.
    fn note_run_end(&mut self, row: &TranscriptEntry) {
        if row.kind == "error" {
            self.last_run = Some(LastRun {
                status: row.run_status.clone().unwrap_or_else(|| "error".into()),
                error: Some(row.content.clone()),
            });
        } else if row.kind == "message"
            && row.role.as_deref() == Some("assistant")
            && row.tool_calls.is_none()
        {
            self.last_run = None;
        }
    }
}

/// The end of a session's newest finished run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LastRun {
    /// `error`, `timeout` or `aborted`.
    pub status: String,
    /// Why it failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One transcript row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    /// Position in the session (assigned on append).
    #[serde(default)]
    pub seq: u64,
    /// `message`, `compaction`, `reset`, or `error` (how a run failed).
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
    /// A user message that was acknowledged but never run, and why (its
    /// session's queue was full, or it was aborted while queued). Shown in
    /// the history; never sent to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
    /// An `error` row: how the run ended (`error`, `timeout`, `aborted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<String>,
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
            dropped: None,
            run_status: None,
            ts: crate::ids::now_ms(),
        }
    }
}

impl TranscriptEntry {
    /// How a run failed, in one line: shown in the history (role
    /// `assistant`), never sent to the model.
    pub fn run_error(error: &str, run_id: &str, status: &str) -> Self {
        let mut row = Self::message("assistant", error_line(error), Some(run_id));
        row.kind = "error".into();
        row.is_error = Some(true);
        row.run_status = Some(status.to_owned());
        row
    }

    /// A user message that was acknowledged and will never run, with why.
    pub fn dropped_message(content: impl Into<String>, run_id: &str, why: &str) -> Self {
        let mut entry = Self::message("user", content, Some(run_id));
        entry.dropped = Some(why.to_owned());
        entry
    }
}

/// Longest error line kept in a transcript row or a session's last run.
const MAX_ERROR_LINE_CHARS: usize = 300;

/// The first non-empty line of an error, cut to a readable length.
pub fn error_line(error: &str) -> String {
    let line = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim().chars().take(MAX_ERROR_LINE_CHARS).collect()
}

/// Append rows to a session's transcript inside `txn` (creating the
/// session), assigning seq numbers in order. Returns the updated metadata
/// and the rows as stored.
pub(super) fn append_rows(
    txn: &WriteTransaction,
    key: &str,
    entries: Vec<TranscriptEntry>,
) -> Result<(SessionMeta, Vec<TranscriptEntry>), StoreError> {
    let now = crate::ids::now_ms();
    let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
    let mut meta: SessionMeta = get_json(&sessions, key)?.unwrap_or_else(|| SessionMeta {
        key: key.to_owned(),
        session_id: crate::ids::uuid_v4(),
        created_at: now,
        updated_at: now,
        ..SessionMeta::default()
    });
    let mut transcript = txn.open_table(TRANSCRIPT).map_err(db_err)?;
    let mut stored = Vec::with_capacity(entries.len());
    for mut entry in entries {
        meta.last_seq += 1;
        meta.entries += 1;
        entry.seq = meta.last_seq;
        if entry.kind == "compaction" {
            meta.compacted_at_seq = entry.seq;
        }
        meta.note_run_end(&entry);
        let bytes = encode(key, &entry)?;
        transcript
            .insert((key, entry.seq), bytes.as_slice())
            .map_err(db_err)?;
        stored.push(entry);
    }
    meta.updated_at = now;
    put_json(&mut sessions, key, &meta)?;
    Ok((meta, stored))
}

/// Rows of a session in `range` order, newest first, skipping `skip` and
/// taking at most `max`; returned oldest first.
fn rows_newest_first(
    txn: &ReadTransaction,
    key: &str,
    from: u64,
    skip: usize,
    max: usize,
) -> Result<Vec<TranscriptEntry>, StoreError> {
    let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
    let mut rows = Vec::with_capacity(max.min(64));
    for row in table
        .range((key, from)..=(key, u64::MAX))
        .map_err(db_err)?
        .rev()
        .skip(skip)
        .take(max)
    {
        let (_, value) = row.map_err(db_err)?;
        rows.push(decode(key, value.value())?);
    }
    rows.reverse();
    Ok(rows)
}

/// What the agent reads to build a context, in one read.
#[derive(Debug, Clone, Default)]
pub struct SessionWindow {
    /// The session's metadata (`None` for a session not written yet).
    pub meta: Option<SessionMeta>,
    /// The newest compaction marker, if any.
    pub marker: Option<TranscriptEntry>,
    /// The rows the marker keeps (all rows without one), oldest first, at
    /// most the newest `max`.
    pub rows: Vec<TranscriptEntry>,
}

impl Store {
    /// A session's metadata, newest compaction marker and the rows after
    /// it (at most the newest `max`), in one read transaction.
    pub async fn session_window(&self, key: &str, max: usize) -> Result<SessionWindow, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| {
            let meta: Option<SessionMeta> =
                get_json(&txn.open_table(SESSIONS).map_err(db_err)?, &key)?;
            let compacted_at = meta.as_ref().map_or(0, |m| m.compacted_at_seq);
            let mut from = 0;
            let mut marker = None;
            if compacted_at > 0 {
                let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
                if let Some(value) = table.get((key.as_str(), compacted_at)).map_err(db_err)? {
                    let row: TranscriptEntry = decode(&key, value.value())?;
                    from = row.kept_from_seq.unwrap_or(compacted_at + 1);
                    marker = Some(row);
                }
            }
            let rows = rows_newest_first(txn, &key, from, 0, max)?;
            Ok(SessionWindow { meta, marker, rows })
        })
        .await
    }

    /// A session's metadata.
    pub async fn session(&self, key: &str) -> Result<Option<SessionMeta>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| get_json(&txn.open_table(SESSIONS).map_err(db_err)?, &key))
            .await
    }

    /// Every session, most recently updated first.
    pub async fn sessions(&self) -> Result<Vec<SessionMeta>, StoreError> {
        self.read(|txn| {
            let mut all: Vec<SessionMeta> = list_json(&txn.open_table(SESSIONS).map_err(db_err)?)?;
            all.sort_by_key(|m| std::cmp::Reverse(m.updated_at));
            Ok(all)
        })
        .await
    }

    /// Number of sessions.
    pub async fn session_count(&self) -> Result<usize, StoreError> {
        self.read(|txn| count(&txn.open_table(SESSIONS).map_err(db_err)?))
            .await
    }

    /// Change an existing session's metadata in one durable transaction.
    /// `None` when there is no such session.
    pub async fn update_session(
        &self,
        key: &str,
        change: impl FnOnce(&mut SessionMeta) + Send + 'static,
    ) -> Result<Option<SessionMeta>, StoreError> {
        let key = key.to_owned();
        self.write(true, move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            let Some(mut meta): Option<SessionMeta> = get_json(&table, &key)? else {
                return Ok(None);
            };
            change(&mut meta);
            put_json(&mut table, &key, &meta)?;
            Ok(Some(meta))
        })
        .await
    }

    /// Append rows to a session's transcript (creating the session), with
    /// seq numbers assigned in order; `durable` commits with an fsync before
    /// returning. Returns the updated metadata and the rows as stored.
    pub async fn append(
        &self,
        key: &str,
        entries: Vec<TranscriptEntry>,
        durable: bool,
    ) -> Result<(SessionMeta, Vec<TranscriptEntry>), StoreError> {
        let key = key.to_owned();
        self.write(durable, move |txn| append_rows(txn, &key, entries))
            .await
    }

    /// Add provider-reported token usage to a session, in one transaction
    /// (bookkeeping: no fsync, and the caller does not wait for it).
    pub fn add_usage(&self, key: &str, input: u64, output: u64) {
        let key = key.to_owned();
        self.write_detached("token usage", move |txn| {
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            if let Some(mut meta) = get_json::<SessionMeta>(&table, &key)? {
                meta.input_tokens += input;
                meta.output_tokens += output;
                put_json(&mut table, &key, &meta)?;
            }
            Ok(())
        });
    }

    /// Rows with `seq >= from`, oldest first, at most `max` (the newest ones
    /// when there are more). Reads from the newest end, so the cost is
    /// bounded by `max`, not by the session's length.
    pub async fn transcript_since(
        &self,
        key: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| rows_newest_first(txn, &key, from, 0, max))
            .await
    }

    /// One row by seq.
    pub async fn transcript_row(
        &self,
        key: &str,
        seq: u64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
            match table.get((key.as_str(), seq)).map_err(db_err)? {
                Some(value) => decode(&key, value.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// A page of rows, newest last: skip `offset` newest rows, return up to
    /// `limit` before them.
    pub async fn transcript_page(
        &self,
        key: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| rows_newest_first(txn, &key, 0, offset, limit))
            .await
    }

    /// Drop a session's transcript and inbox in one durable transaction;
    /// `keep_meta` keeps the session (reset) with a new id, otherwise the
    /// session is deleted. `None` when there was no such session.
    pub async fn clear_session(
        &self,
        key: &str,
        keep_meta: bool,
    ) -> Result<Option<SessionMeta>, StoreError> {
        let key = key.to_owned();
        self.write(true, move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let Some(mut meta): Option<SessionMeta> = get_json(&sessions, &key)? else {
                return Ok(None);
            };
            let k = key.as_str();
            txn.open_table(TRANSCRIPT)
                .map_err(db_err)?
                .extract_from_if((k, 0)..=(k, u64::MAX), |_, _| true)
                .map_err(db_err)?
                .for_each(drop);
            super::inbox::clear(txn, k)?;
            if keep_meta {
                meta.session_id = crate::ids::uuid_v4();
                meta.entries = 0;
                meta.compacted_at_seq = meta.last_seq;
                meta.updated_at = crate::ids::now_ms();
                put_json(&mut sessions, k, &meta)?;
            } else {
                sessions.remove(k).map_err(db_err)?;
            }
            Ok(Some(meta))
        })
        .await
    }
}
