//! Node records: who a node is and which of its commands an operator
//! approved, with the operations on them, each one transaction.

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{JsonTable, Store, StoreError, db_err, get_json, list_json, update_json};
use crate::limits;

const NODES: JsonTable = TableDefinition::new("nodes");

const NODES_FULL: &str = "too many node records; remove one with node.pair.remove";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(NODES).map_err(db_err)?;
    Ok(())
}

/// A node's command surface waiting for approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurfaceRequest {
    /// Id the operator approves (`node.pair.approve`).
    pub request_id: String,
    /// Commands the node declared.
    pub commands: Vec<String>,
    /// Capabilities the node declared.
    pub caps: Vec<String>,
    /// Created (ms since epoch).
    pub ts: i64,
}

/// A node's pairing record: who it is and which commands are approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// Node id (device id).
    pub node_id: String,
    /// Name the node gave itself.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Name an operator chose with `node.rename`; wins over the node's own.
    #[serde(default)]
    pub renamed_to: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client mode.
    pub client_mode: String,
    /// Platform.
    pub platform: String,
    /// Client version.
    pub version: String,
    /// Device family.
    #[serde(default)]
    pub device_family: Option<String>,
    /// Declared capabilities.
    pub caps: Vec<String>,
    /// Approved commands (gate 2).
    pub approved_commands: Vec<String>,
    /// A surface waiting for approval.
    #[serde(default)]
    pub pending: Option<SurfaceRequest>,
    /// First seen.
    pub created_at_ms: i64,
    /// Last approval.
    #[serde(default)]
    pub approved_at_ms: Option<i64>,
    /// Last connect.
    pub last_seen_at_ms: i64,
}

impl NodeRecord {
    /// The name to show.
    pub fn name(&self) -> Option<&str> {
        self.renamed_to.as_deref().or(self.display_name.as_deref())
    }
}

impl Store {
    /// A node's pairing record.
    pub async fn node_record(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        let id = node_id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(NODES).map_err(db_err)?, &id))
            .await
    }

    /// Every node record.
    pub async fn node_records(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read(|txn| list_json(&txn.open_table(NODES).map_err(db_err)?))
            .await
    }

    /// Read-modify-write of one node record in one durable transaction
    /// (see [`Store::update_device`]); a new record beyond
    /// [`limits::MAX_NODE_RECORDS`] is refused.
    pub async fn update_node_record<R: Send + 'static>(
        &self,
        node_id: &str,
        change: impl FnOnce(Option<NodeRecord>) -> Result<(Option<NodeRecord>, R), StoreError>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let id = node_id.to_owned();
        self.write(true, move |txn| {
            update_json(
                txn,
                NODES,
                &id,
                (limits::MAX_NODE_RECORDS, NODES_FULL),
                change,
            )
        })
        .await
    }

    /// Change the node record holding the pending surface request
    /// `request_id`, in one durable transaction. `None` when no record
    /// holds it.
    pub async fn update_node_by_request<R: Send + 'static>(
        &self,
        request_id: &str,
        change: impl FnOnce(&mut NodeRecord) -> R + Send + 'static,
    ) -> Result<Option<(NodeRecord, R)>, StoreError> {
        let id = request_id.to_owned();
        self.write(true, move |txn| {
            let mut table = txn.open_table(NODES).map_err(db_err)?;
            let records: Vec<NodeRecord> = list_json(&table)?;
            let Some(mut record) = records
                .into_iter()
                .find(|r| r.pending.as_ref().is_some_and(|p| p.request_id == id))
            else {
                return Ok(None);
            };
            let result = change(&mut record);
            super::put_json(&mut table, &record.node_id.clone(), &record)?;
            Ok(Some((record, result)))
        })
        .await
    }

    /// Remove a node record; returns whether it existed.
    pub async fn remove_node_record(&self, node_id: &str) -> Result<bool, StoreError> {
        let id = node_id.to_owned();
        self.write(true, move |txn| {
            let mut table = txn.open_table(NODES).map_err(db_err)?;
            Ok(table.remove(id.as_str()).map_err(db_err)?.is_some())
        })
        .await
    }
}
