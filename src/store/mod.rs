//! Durable state in one redb file: the gateway's own identity, paired devices
//! and pending pairing requests.
//!
//! Rare, must-survive state (pairing, tokens) commits with
//! `Durability::Immediate`; bookkeeping such as `lastSeenAtMs` commits with
//! `Durability::None` and becomes durable with the next immediate commit or a
//! clean close, to spare SD cards an fsync per connection.

mod devices;
mod sessions;

pub use devices::{DeviceToken, NodeRecord, PairedDevice, PendingPairing, SurfaceRequest};
pub use sessions::{InboxItem, SessionMeta, TranscriptEntry};

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pairing_pending");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");

/// Key of the gateway's Ed25519 seed in the meta table.
const IDENTITY_SEED_KEY: &str = "gateway_identity_seed";

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

/// Handle on the state database.
pub struct Store {
    pub(super) db: Database,
}

impl Store {
    /// Open (or create) the database at `path`, with a small page cache.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(limits::STORE_CACHE_BYTES)
            .create(path)
            .map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        for table in [META, DEVICES, PENDING, NODES, sessions::SESSIONS] {
            txn.open_table(table).map_err(db_err)?;
        }
        txn.open_table(sessions::TRANSCRIPT).map_err(db_err)?;
        txn.open_table(sessions::INBOX).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// The gateway's persisted Ed25519 seed, created on first call.
    pub fn gateway_identity_seed(&self) -> Result<[u8; 32], StoreError> {
        if let Some(seed) = self.read_meta(IDENTITY_SEED_KEY)?
            && let Ok(seed) = <[u8; 32]>::try_from(seed.as_slice())
        {
            return Ok(seed);
        }
        let seed = crate::ids::random_bytes::<32>();
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(META)
            .map_err(db_err)?
            .insert(IDENTITY_SEED_KEY, seed.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(seed)
    }

    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(META).map_err(db_err)?;
        Ok(table.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
    }

    /// A paired device by id.
    pub fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError> {
        self.get_json(DEVICES, device_id)
    }

    /// Every paired device.
    pub fn devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.list_json(DEVICES)
    }

    /// Insert or replace a paired device (durable before return).
    pub fn put_device(&self, device: &PairedDevice) -> Result<(), StoreError> {
        if self.device(&device.device_id)?.is_none()
            && self.count(DEVICES)? >= limits::PAIRING_MAX_DEVICES
        {
            return Err(StoreError::Full(
                "too many paired devices; remove one first",
            ));
        }
        self.put_json(DEVICES, &device.device_id, device, Durability::Immediate)
    }

    /// Record bookkeeping on a device without forcing an fsync.
    pub fn touch_device(&self, device: &PairedDevice) -> Result<(), StoreError> {
        self.put_json(DEVICES, &device.device_id, device, Durability::None)
    }

    /// Remove a paired device; returns whether it existed.
    pub fn remove_device(&self, device_id: &str) -> Result<bool, StoreError> {
        self.remove(DEVICES, device_id)
    }

    /// Pending pairing requests that have not expired, oldest first.
    pub fn pending(&self, now_ms: i64) -> Result<Vec<PendingPairing>, StoreError> {
        let ttl = limits::PAIRING_PENDING_TTL.as_millis() as i64;
        let mut all: Vec<PendingPairing> = self.list_json(PENDING)?;
        all.retain(|p| now_ms - p.ts < ttl);
        all.sort_by_key(|p| p.ts);
        Ok(all)
    }

    /// Store a pending request, replacing any earlier one for the same device
    /// and role, evicting expired and (when full) the oldest requests.
    pub fn put_pending(&self, request: &PendingPairing, now_ms: i64) -> Result<(), StoreError> {
        let ttl = limits::PAIRING_PENDING_TTL.as_millis() as i64;
        let existing: Vec<PendingPairing> = self.list_json(PENDING)?;
        let mut stale: Vec<String> = existing
            .iter()
            .filter(|p| {
                now_ms - p.ts >= ttl || (p.device_id == request.device_id && p.role == request.role)
            })
            .map(|p| p.request_id.clone())
            .collect();
        let live = existing.len() - stale.len();
        if live >= limits::PAIRING_MAX_PENDING {
            let mut rest: Vec<&PendingPairing> = existing
                .iter()
                .filter(|p| !stale.contains(&p.request_id))
                .collect();
            rest.sort_by_key(|p| p.ts);
            stale.extend(
                rest.iter()
                    .take(live + 1 - limits::PAIRING_MAX_PENDING)
                    .map(|p| p.request_id.clone()),
            );
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(PENDING).map_err(db_err)?;
            for id in &stale {
                table.remove(id.as_str()).map_err(db_err)?;
            }
            let bytes = serde_json::to_vec(request).map_err(|source| StoreError::Corrupt {
                key: request.request_id.clone(),
                source,
            })?;
            table
                .insert(request.request_id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Remove and return a pending request (expired ones count as absent).
    pub fn take_pending(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<Option<PendingPairing>, StoreError> {
        let found: Option<PendingPairing> = self.get_json(PENDING, request_id)?;
        if found.is_some() {
            self.remove(PENDING, request_id)?;
        }
        let ttl = limits::PAIRING_PENDING_TTL.as_millis() as i64;
        Ok(found.filter(|p| now_ms - p.ts < ttl))
    }

    /// A node's pairing record.
    pub fn node_record(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.get_json(NODES, node_id)
    }

    /// Every node record.
    pub fn node_records(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.list_json(NODES)
    }

    /// The node record holding a pending surface request.
    pub fn node_record_by_request(
        &self,
        request_id: &str,
    ) -> Result<Option<NodeRecord>, StoreError> {
        Ok(self.node_records()?.into_iter().find(|r| {
            r.pending
                .as_ref()
                .is_some_and(|p| p.request_id == request_id)
        }))
    }

    /// Insert or replace a node record (durable before return).
    pub fn put_node_record(&self, record: &NodeRecord) -> Result<(), StoreError> {
        if self.node_record(&record.node_id)?.is_none()
            && self.count(NODES)? >= limits::MAX_NODE_RECORDS
        {
            return Err(StoreError::Full(
                "too many node records; remove one with node.pair.remove",
            ));
        }
        self.put_json(NODES, &record.node_id, record, Durability::Immediate)
    }

    /// Remove a node record; returns whether it existed.
    pub fn remove_node_record(&self, node_id: &str) -> Result<bool, StoreError> {
        self.remove(NODES, node_id)
    }

    pub(super) fn count(&self, table: TableDefinition<&str, &[u8]>) -> Result<usize, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        Ok(table.len().map_err(db_err)? as usize)
    }

    pub(super) fn get_json<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let Some(value) = table.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                key: key.to_owned(),
                source,
            })
    }

    pub(super) fn list_json<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let item =
                serde_json::from_slice(value.value()).map_err(|source| StoreError::Corrupt {
                    key: key.value().to_owned(),
                    source,
                })?;
            out.push(item);
        }
        Ok(out)
    }

    pub(super) fn put_json<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: key.to_owned(),
            source,
        })?;
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(durability).map_err(db_err)?;
        txn.open_table(table)
            .map_err(db_err)?
            .insert(key, bytes.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    fn remove(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = txn
            .open_table(table)
            .map_err(db_err)?
            .remove(key)
            .map_err(db_err)?
            .is_some();
        txn.commit().map_err(db_err)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, device: &str, ts: i64) -> PendingPairing {
        PendingPairing {
            request_id: id.into(),
            device_id: device.into(),
            public_key: "pk".into(),
            role: "operator".into(),
            scopes: vec![],
            client_id: "cli".into(),
            client_mode: "cli".into(),
            display_name: None,
            platform: None,
            device_family: None,
            remote_ip: None,
            reason: "not-paired".into(),
            ts,
        }
    }

    #[test]
    fn pending_requests_expire_replace_and_survive_reopen() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Db(e.into()))?;
        let path = dir.path().join("state.redb");
        let now = 1_000_000_000;
        {
            let store = Store::open(&path)?;
            store.put_pending(&pending("r1", "d1", now), now)?;
            store.put_pending(&pending("r2", "d1", now + 1), now + 1)?; // replaces r1
            store.put_pending(&pending("r3", "d2", now - 400_000), now)?; // already expired
            let ids: Vec<_> = store
                .pending(now + 2)?
                .into_iter()
                .map(|p| p.request_id)
                .collect();
            assert_eq!(ids, vec!["r2".to_owned()]);
        }
        let store = Store::open(&path)?;
        assert_eq!(store.pending(now + 2)?.len(), 1);
        assert!(store.take_pending("r2", now + 2)?.is_some());
        assert!(store.take_pending("r2", now + 2)?.is_none());
        let seed = store.gateway_identity_seed()?;
        assert_eq!(store.gateway_identity_seed()?, seed);
        Ok(())
    }

    #[test]
    fn pending_requests_are_capped() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Db(e.into()))?;
        let store = Store::open(&dir.path().join("s.redb"))?;
        let now = 5_000_000;
        for i in 0..(limits::PAIRING_MAX_PENDING + 5) {
            store.put_pending(
                &pending(&format!("r{i}"), &format!("d{i}"), now + i as i64),
                now + i as i64,
            )?;
        }
        let live = store.pending(now + 100)?;
        assert_eq!(live.len(), limits::PAIRING_MAX_PENDING);
        assert_eq!(live[0].request_id, "r5", "the oldest were evicted");
        Ok(())
    }
}
