//! The gateway's own facts: the store's format version, its Ed25519
//! identity seed, and small records other parts keep (the MQTT bridge's
//! discovery inventory).
//!
//! **Format version.** `format_version` (decimal text) says which layout
//! the file has. [`Store::open`](super::Store::open) reads it first: a store
//! without it (written before versioning) is format 0 and is migrated in
//! place, one [`MIGRATIONS`] step after the other, in the same transaction
//! that stamps the new version; a store of a newer format is refused before
//! anything is written, so an older binary never misreads it. A change of
//! layout (a table's key or value shape, what a record means) adds a step
//! and bumps [`FORMAT_VERSION`]; a new table alone does not (older binaries
//! ignore tables they do not know).

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};

use super::{Store, StoreError, db_err};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Key of the gateway's Ed25519 seed in the meta table.
const IDENTITY_SEED_KEY: &str = "gateway_identity_seed";

/// Key of the store's format version in the meta table.
const FORMAT_VERSION_KEY: &str = "format_version";

/// The store format this binary writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// One step of the format's history: what turns format `to - 1` into `to`.
struct Migration {
    /// The format after this step.
    to: u32,
    /// What it does, for the log.
    what: &'static str,
    /// The change, inside the transaction that stamps `to`.
    run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every migration, oldest first. Format 1 is the layout the stores written
/// before the version key already have: reaching it only stamps the version.
const MIGRATIONS: &[Migration] = &[Migration {
    to: 1,
    what: "stamp the format version (no change of layout)",
    run: |_| Ok(()),
}];

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META).map_err(db_err)?;
    Ok(())
}

/// The format a store was written in: `Ok(0)` for a new file or one from
/// before versioning, `Err(text)` for a value that is not a number.
pub(super) fn stored_version(txn: &ReadTransaction) -> Result<Result<u32, String>, StoreError> {
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Ok(0)),
        Err(e) => return Err(db_err(e)),
    };
    Ok(match table.get(FORMAT_VERSION_KEY).map_err(db_err)? {
        None => Ok(0),
        Some(value) => {
            let text = String::from_utf8_lossy(value.value()).into_owned();
            text.trim().parse::<u32>().map_err(|_| text)
        }
    })
}

/// Bring a store of format `from` to [`FORMAT_VERSION`] inside `txn`: each
/// step after `from`, then the new version.
pub(super) fn migrate(txn: &WriteTransaction, from: u32) -> Result<(), StoreError> {
    for step in MIGRATIONS.iter().filter(|m| m.to > from) {
        (step.run)(txn)?;
        tracing::info!(
            "state database: format {} -> {}: {}",
            step.to - 1,
            step.to,
            step.what
        );
    }
    let mut table = txn.open_table(META).map_err(db_err)?;
    table
        .insert(FORMAT_VERSION_KEY, FORMAT_VERSION.to_string().as_bytes())
        .map_err(db_err)?;
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
