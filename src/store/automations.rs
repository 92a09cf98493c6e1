//! What the automation engine keeps across restarts: runtime cron jobs
//! (`job:<id>`), the state of every automation (`state:<id>`: last run,
//! next run, errors, enabled by an operator or stopped by the rate cap),
//! pending reverts of `for_s` invokes (`revert:<key>`), and a bounded run
//! history ([`limits::MAX_AUTOMATION_RUNS`], the oldest entry goes).
//!
//! A firing is recorded (state, and the notification it sends when it has
//! nothing to wait for) in one fsynced transaction before anything is done,
//! so a crash never fires it twice, and a notification accepted then is
//! delivered after the restart.

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::channels::outbox_insert;
use super::{
    JsonTable, OutboxItem, Store, StoreError, append_capped, db_err, decode, get_json,
    list_json_prefixed, put_json,
};
use crate::limits;

const AUTOMATIONS: JsonTable = TableDefinition::new("automations");
const RUNS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("automation_runs");
const LOG: &str = "log";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(AUTOMATIONS).map_err(db_err)?;
    txn.open_table(RUNS).map_err(db_err)?;
    Ok(())
}

/// The durable state of one automation or job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutomationState {
    /// Set by an operator (`enable`/`disable`); `None` = as configured.
    pub enabled: Option<bool>,
    /// Stopped by the actions-per-minute cap until an operator enables it.
    pub auto_disabled: bool,
    /// When it last fired.
    pub last_run_ms: Option<i64>,
    /// `ok`, `error` or `skipped`.
    pub last_status: Option<String>,
    /// Why the last run failed or was skipped.
    pub last_error: Option<String>,
    /// How long the last run took.
    pub last_duration_ms: Option<u64>,
    /// Failures in a row.
    pub consecutive_errors: u32,
    /// When a schedule fires next.
    pub next_run_ms: Option<i64>,
    /// A threshold fired and has not cleared yet (no second alert after a
    /// restart while it is still hot).
    pub latched: bool,
}

/// A `for_s` invoke to undo when it is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revert {
    /// Unique key (`<automation id>:<fired at>`).
    pub key: String,
    /// The automation that switched it.
    pub automation: String,
    /// Node (`local` or an id).
    pub node: String,
    /// The command that undoes it.
    pub command: String,
    /// Its params.
    pub params: Value,
    /// When (ms).
    pub due_ms: i64,
}

/// One finished (or skipped) run, as `cron.runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationRun {
    /// Position in the history (assigned on append).
    #[serde(default)]
    pub seq: u64,
    /// When it ended (ms).
    pub ts: i64,
    /// The automation or job id.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// `ok`, `error` or `skipped`.
    pub status: String,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it did, in a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The run's id (`<job id>:<fired at>`).
    pub run_id: String,
    /// When it fired.
    pub run_at_ms: i64,
    /// How long it took.
    pub duration_ms: u64,
}

/// Everything the engine loads at start.
#[derive(Debug, Default)]
pub struct AutomationsSnapshot {
    /// Runtime jobs (as stored by `cron.add`), oldest id first.
    pub jobs: Vec<Value>,
    /// States by id.
    pub states: Vec<(String, AutomationState)>,
    /// Pending reverts.
    pub reverts: Vec<Revert>,
}

fn state_key(id: &str) -> String {
    format!("state:{id}")
}

impl Store {
    /// The jobs, states and reverts saved by earlier runs.
    pub async fn automations_load(&self) -> Result<AutomationsSnapshot, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            let jobs = list_json_prefixed::<Value>(&table, "job:")?;
            let states = list_json_prefixed::<AutomationState>(&table, "state:")?;
            let reverts = list_json_prefixed::<Revert>(&table, "revert:")?;
            Ok(AutomationsSnapshot {
                jobs: jobs.into_iter().map(|(_, v)| v).collect(),
                states: states
                    .into_iter()
                    .map(|(k, v)| (k.trim_start_matches("state:").to_owned(), v))
                    .collect(),
                reverts: reverts.into_iter().map(|(_, v)| v).collect(),
            })
        })
        .await
    }

    /// Records that `id` fired: its state, the notifications it sends
    /// without waiting for anything, and a revert to run later; one
    /// transaction with an fsync, before any action runs.
    pub async fn automation_fired(
        &self,
        id: &str,
        state: AutomationState,
        notify: Vec<OutboxItem>,
        revert: Option<Revert>,
    ) -> Result<(), StoreError> {
        let key = state_key(id);
        let wake = !notify.is_empty();
        self.write(true, move |txn| {
            let mut table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            put_json(&mut table, &key, &state)?;
            if let Some(r) = &revert {
                put_json(&mut table, &format!("revert:{}", r.key), r)?;
            }
            drop(table);
            outbox_insert(txn, notify)?;
            Ok(())
        })
        .await?;
        if wake {
            self.outbox_signal().notify_waiters();
        }
        Ok(())
    }

    /// Saves the state of `id`; `durable` when an operator waits for it.
    pub async fn automation_state(
        &self,
        id: &str,
        state: AutomationState,
        durable: bool,
    ) -> Result<(), StoreError> {
        let key = state_key(id);
        self.write(durable, move |txn| {
            let mut table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            put_json(&mut table, &key, &state)
        })
        .await
    }

    /// Saves a revert (durably) or, with `done`, removes it.
    pub async fn automation_revert(&self, revert: Revert, done: bool) -> Result<(), StoreError> {
        self.write(true, move |txn| {
            let mut table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            let key = format!("revert:{}", revert.key);
            if done {
                table.remove(key.as_str()).map_err(db_err)?;
                Ok(())
            } else {
                put_json(&mut table, &key, &revert)
            }
        })
        .await
    }

    /// Saves (creates or replaces) a runtime job with its state; refuses a
    /// new one beyond [`limits::MAX_CRON_JOBS`].
    pub async fn automation_job_put(
        &self,
        id: &str,
        job: Value,
        state: AutomationState,
    ) -> Result<(), StoreError> {
        let (job_key, key) = (format!("job:{id}"), state_key(id));
        self.write(true, move |txn| {
            let mut table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            if get_json::<Value>(&table, &job_key)?.is_none()
                && list_json_prefixed::<Value>(&table, "job:")?.len() >= limits::MAX_CRON_JOBS
            {
                return Err(StoreError::Full("too many cron jobs; remove one first"));
            }
            put_json(&mut table, &job_key, &job)?;
            put_json(&mut table, &key, &state)
        })
        .await
    }

    /// Removes a runtime job and its state.
    pub async fn automation_job_remove(&self, id: &str) -> Result<(), StoreError> {
        let (job_key, key) = (format!("job:{id}"), state_key(id));
        self.write(true, move |txn| {
            let mut table = txn.open_table(AUTOMATIONS).map_err(db_err)?;
            table.remove(job_key.as_str()).map_err(db_err)?;
            table.remove(key.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Appends a run to the history (not waited for; durable with the next
    /// flush), deleting the oldest beyond the cap.
    pub fn automation_run(&self, run: AutomationRun) {
        let queued = self.write_queued(false, move |txn| {
            let mut table = txn.open_table(RUNS).map_err(db_err)?;
            append_capped(
                &mut table,
                LOG,
                run,
                |r, seq| r.seq = seq,
                limits::MAX_AUTOMATION_RUNS,
            )?;
            Ok(())
        });
        if queued.is_err() {
            tracing::warn!("automation run history: the store queue is full; one entry dropped");
        }
    }

    /// Runs of `job` (or all), newest first, after skipping `offset`; at
    /// most `limit`. Also returns how many match in all.
    pub async fn automation_runs(
        &self,
        job: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AutomationRun>, usize), StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(RUNS).map_err(db_err)?;
            let mut out = Vec::new();
            let mut total = 0;
            for row in table
                .range((LOG, 0)..=(LOG, u64::MAX))
                .map_err(db_err)?
                .rev()
            {
                let (_, v) = row.map_err(db_err)?;
                let run: AutomationRun = decode("automation run", v.value())?;
                if job.as_ref().is_some_and(|j| *j != run.job_id) {
                    continue;
                }
                if total >= offset && out.len() < limit {
                    out.push(run);
                }
                total += 1;
            }
            Ok((out, total))
        })
        .await
    }
}
