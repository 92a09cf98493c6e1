//! Transcript retention: old turns are deleted in the background, so the
//! store stays bounded however long the board runs.
//!
//! A **turn** is a user message row and every row after it up to the next
//! one (assistant rows with tool calls, tool results, the reply, an error
//! row, a compaction marker). Turns go whole, oldest first: a turn whose
//! user message is older than the retention age, or that is not among the
//! session's newest `max_turns`, is deleted, so what is left always starts
//! with a user message and never holds a tool result without its call.
//!
//! The work is planned with reads (the reader thread: which sessions have
//! anything to delete, and where the turn cap cuts) and done in write jobs
//! of at most [`limits::TRANSCRIPT_PRUNE_BATCH`] rows each, so the writer
//! thread is held for one short batch at a time and other writes queue in
//! between. The batches commit without an fsync; one flush at the end makes
//! the pass durable, after which redb reuses the freed pages. A pass with
//! nothing to delete writes nothing. A session whose rows are all gone
//! keeps its metadata (key, id, label, model) with no messages.

use std::time::Duration;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::Deserialize;

use super::sessions::{SESSIONS, SessionMeta, TRANSCRIPT};
use super::{Store, StoreError, db_err, decode, get_json, put_json};
use crate::limits;

/// What the retention task keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Turns whose user message is older than this many milliseconds are
    /// deleted (`None`: kept forever).
    pub max_age_ms: Option<i64>,
    /// Turns beyond a session's newest this many are deleted (`None`: no
    /// cap).
    pub max_turns: Option<u64>,
}

impl Retention {
    /// Whether nothing is ever pruned.
    pub fn keeps_everything(&self) -> bool {
        self.max_age_ms.is_none() && self.max_turns.is_none()
    }
}

/// What one pruning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Transcript rows deleted.
    pub rows: u64,
    /// Sessions that lost rows.
    pub sessions: u64,
    /// Write transactions it took.
    pub batches: u64,
}

/// The fields of a transcript row pruning looks at (the rest of the JSON,
/// the content included, is skipped).
#[derive(Deserialize)]
struct RowHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    ts: i64,
}

impl RowHead {
    /// Whether this row starts a turn (a user message).
    fn starts_turn(&self) -> bool {
        self.kind == "message" && self.role.as_deref() == Some("user")
    }
}

/// Where a pass cuts one session: turns starting before `min_seq` or
/// whose user message was written before `min_ts` go.
#[derive(Debug, Clone, Copy)]
struct Cut {
    min_seq: u64,
    min_ts: i64,
}

impl Cut {
    fn dooms(&self, seq: u64, head: &RowHead) -> bool {
        seq < self.min_seq || head.ts < self.min_ts
    }
}

/// The cut for session `key`, or `None` when it has nothing to delete.
/// Reads newest first for the turn cap (at most `max_turns` user rows
/// counted), then looks at the oldest row.
fn plan(
    txn: &ReadTransaction,
    key: &str,
    policy: Retention,
    min_ts: i64,
) -> Result<Option<Cut>, StoreError> {
    let table = txn.open_table(TRANSCRIPT).map_err(db_err)?;
    let range = || table.range((key, 0)..=(key, u64::MAX)).map_err(db_err);
    let mut min_seq = 0;
    if let Some(max_turns) = policy.max_turns {
        let mut turns = 0;
        for row in range()?.rev() {
            let (k, v) = row.map_err(db_err)?;
            if decode::<RowHead>(key, v.value())?.starts_turn() {
                turns += 1;
                if turns == max_turns {
                    min_seq = k.value().1;
                    break;
                }
            }
        }
    }
    let cut = Cut { min_seq, min_ts };
    let Some(oldest) = range()?.next() else {
        return Ok(None);
    };
    let (k, v) = oldest.map_err(db_err)?;
    let head: RowHead = decode(key, v.value())?;
    Ok(cut.dooms(k.value().1, &head).then_some(cut))
}

/// Delete up to `max` of session `key`'s oldest rows that `cut` dooms, in
/// `txn`, and lower its row count. `in_doomed_turn` says whether the rows
/// before these (an earlier batch) ended inside a doomed turn. Returns the
/// rows deleted, whether more may follow, and the turn state to carry on.
fn prune_batch(
    txn: &WriteTransaction,
    key: &str,
    cut: Cut,
    mut in_doomed_turn: Option<bool>,
    max: usize,
) -> Result<(u64, bool, Option<bool>), StoreError> {
    let mut transcript = txn.open_table(TRANSCRIPT).map_err(db_err)?;
    let mut doomed = Vec::new();
    let mut more = false;
    for row in transcript
        .range((key, 0)..=(key, u64::MAX))
        .map_err(db_err)?
    {
        let (k, v) = row.map_err(db_err)?;
        let seq = k.value().1;
        let head: RowHead = decode(key, v.value())?;
        // A turn's rows share its user message's fate; rows before the
        // first user message are judged one by one.
        let goes = match in_doomed_turn {
            Some(turn) if !head.starts_turn() => turn,
            _ => cut.dooms(seq, &head),
        };
        if head.starts_turn() {
            in_doomed_turn = Some(goes);
        }
        if !goes {
            break;
        }
        if doomed.len() == max {
            more = true;
            break;
        }
        doomed.push(seq);
    }
    for seq in &doomed {
        transcript.remove((key, *seq)).map_err(db_err)?;
    }
    let deleted = doomed.len() as u64;
    if deleted > 0 {
        let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
        if let Some(mut meta) = get_json::<SessionMeta>(&sessions, key)? {
            meta.entries = meta.entries.saturating_sub(deleted);
            put_json(&mut sessions, key, &meta)?;
        }
    }
    Ok((deleted, more, in_doomed_turn))
}

impl Store {
    /// Delete the transcript turns `policy` no longer keeps, as of `now_ms`
    /// (ms since the epoch; the retention task passes the clock, tests and
    /// benchmarks a simulated one). Every session is planned with a read
    /// and pruned in write jobs of at most
    /// [`limits::TRANSCRIPT_PRUNE_BATCH`] rows; one flush at the end makes
    /// it durable when anything went. Nothing is written when nothing goes.
    pub async fn prune_transcripts(
        &self,
        policy: Retention,
        now_ms: i64,
    ) -> Result<Pruned, StoreError> {
        let mut out = Pruned::default();
        if policy.keeps_everything() {
            return Ok(out);
        }
        let min_ts = policy
            .max_age_ms
            .map_or(i64::MIN, |age| now_ms.saturating_sub(age));
        let keys: Vec<String> = self
            .read(|txn| {
                let table = txn.open_table(SESSIONS).map_err(db_err)?;
                let mut keys = Vec::new();
                for row in table.iter().map_err(db_err)? {
                    keys.push(row.map_err(db_err)?.0.value().to_owned());
                }
                Ok(keys)
            })
            .await?;
        for key in keys {
            let k = key.clone();
            let Some(cut) = self.read(move |txn| plan(txn, &k, policy, min_ts)).await? else {
                continue;
            };
            out.sessions += 1;
            let mut turn = None;
            loop {
                let k = key.clone();
                let (deleted, more, next) = self
                    .write(false, move |txn| {
                        prune_batch(txn, &k, cut, turn, limits::TRANSCRIPT_PRUNE_BATCH)
                    })
                    .await?;
                out.rows += deleted;
                out.batches += 1;
                turn = next;
                if !more {
                    break;
                }
            }
        }
        if out.rows > 0 {
            self.flush().await?;
        }
        Ok(out)
    }

    /// The retention task: prune at once, then every `every`, until the
    /// store closes. Failures are logged and retried at the next round.
    pub async fn run_retention(self, policy: Retention, every: Duration) {
        if policy.keeps_everything() {
            return;
        }
        loop {
            match self.prune_transcripts(policy, crate::ids::now_ms()).await {
                Ok(p) if p.rows > 0 => tracing::info!(
                    "retention: deleted {} transcript rows from {} sessions ({} batches)",
                    p.rows,
                    p.sessions,
                    p.batches
                ),
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!("retention: pruning failed (retried later): {e}"),
            }
            tokio::time::sleep(every).await;
        }
    }
}
