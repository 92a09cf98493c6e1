//! The gateway's own facts: its Ed25519 identity seed, and small records
//! other parts keep (the MQTT bridge's discovery inventory).

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Store, StoreError, db_err};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Key of the gateway's Ed25519 seed in the meta table.
const IDENTITY_SEED_KEY: &str = "gateway_identity_seed";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META).map_err(db_err)?;
    Ok(())
}

impl Store {
    /// The gateway's persisted Ed25519 seed, created (durably) on first call.
    pub async fn gateway_identity_seed(&self) -> Result<[u8; 32], StoreError> {
        // Every start after the first only reads it (no write, no fsync).
        let stored = self
            .read(|txn| {
                let table = txn.open_table(META).map_err(db_err)?;
                Ok(table
                    .get(IDENTITY_SEED_KEY)
                    .map_err(db_err)?
                    .and_then(|seed| <[u8; 32]>::try_from(seed.value()).ok()))
            })
            .await?;
        if let Some(seed) = stored {
            return Ok(seed);
        }
        self.write(true, |txn| {
            let mut table = txn.open_table(META).map_err(db_err)?;
            if let Some(seed) = table.get(IDENTITY_SEED_KEY).map_err(db_err)?
                && let Ok(seed) = <[u8; 32]>::try_from(seed.value())
            {
                return Ok(seed);
            }
            let seed = crate::ids::random_bytes::<32>();
            table
                .insert(IDENTITY_SEED_KEY, seed.as_slice())
                .map_err(db_err)?;
            Ok(seed)
        })
        .await
    }
}

impl Store {
    /// A small record by key (`None` when absent).
    pub async fn kv_get(&self, key: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(META).map_err(db_err)?;
            Ok(table.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
        })
        .await
    }

    /// Saves a small record (no fsync: durable with the next one).
    pub async fn kv_put(&self, key: &'static str, value: Vec<u8>) -> Result<(), StoreError> {
        self.write(false, move |txn| {
            let mut table = txn.open_table(META).map_err(db_err)?;
            table.insert(key, value.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
