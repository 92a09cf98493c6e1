//! The audit log: who did what to the board and its trust decisions, and
//! how it went: actuator writes and node invokes (by an operator, a device,
//! an agent run, an automation), approvals, pairing decisions. Bounded by
//! [`limits::MAX_AUDIT_ENTRIES`] (the oldest entry goes), written without
//! waiting for the disk and made durable with the store's next flush.

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, append_capped, db_err, decode};
use crate::limits;

/// One partition: entries in the order they happened.
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
const LOG: &str = "log";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(AUDIT).map_err(db_err)?;
    Ok(())
}

/// One audited action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Position in the log (assigned on append, increasing).
    #[serde(default)]
    pub seq: u64,
    /// When (ms since the epoch).
    pub ts: i64,
    /// Who: `operator cli (device 1a2b3c…)`, `agent run R in session S`, …
    pub who: String,
    /// The kind of action: `invoke`, `approval`, `device.pair`, `node.pair`,
    /// `dm.pair`.
    pub action: String,
    /// What exactly: `gpio.write relay1 = on on node local`.
    pub what: String,
    /// `ok`, `error: …`, `allow`, `deny`, `approved`, `rejected`, …
    pub outcome: String,
}

impl AuditEntry {
    /// An entry stamped now, its text cut to [`limits::MAX_AUDIT_TEXT_CHARS`].
    pub fn new(who: &str, action: &str, what: &str, outcome: &str) -> Self {
        let cut = |s: &str| s.chars().take(limits::MAX_AUDIT_TEXT_CHARS).collect();
        Self {
            seq: 0,
            ts: crate::ids::now_ms(),
            who: cut(who),
            action: action.to_owned(),
            what: cut(what),
            outcome: cut(outcome),
        }
    }
}

impl Store {
    /// Append an entry, deleting the oldest beyond the cap. Not waited for:
    /// the caller's action has happened already and must not wait on the
    /// disk; a full store queue drops the entry with a warning (the action
    /// itself is in the log line its caller wrote).
    pub fn audit(&self, entry: AuditEntry) {
        let what = format!("{} {}", entry.action, entry.what);
        let queued = self.write_queued(false, move |txn| {
            let mut table = txn.open_table(AUDIT).map_err(db_err)?;
            append_capped(
                &mut table,
                LOG,
                entry,
                |e, seq| e.seq = seq,
                limits::MAX_AUDIT_ENTRIES,
            )?;
            Ok(())
        });
        if let Err(e) = queued {
            tracing::warn!("audit entry not recorded ({e}): {what}");
        }
    }

    /// Entries since `since_ms` (inclusive), oldest first, at most the
    /// newest `limit`.
    pub async fn audit_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = limit.clamp(1, limits::MAX_AUDIT_PAGE);
        self.read(move |txn| {
            let table = txn.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for row in table
                .range((LOG, 0)..=(LOG, u64::MAX))
                .map_err(db_err)?
                .rev()
            {
                let (_, value) = row.map_err(db_err)?;
                let entry: AuditEntry = decode("audit", value.value())?;
                if entry.ts < since_ms || out.len() >= limit {
                    break;
                }
                out.push(entry);
            }
            out.reverse();
            Ok(out)
        })
        .await
    }
}
