//! Snapshots of the sensor history rings (`crate::board::history`): one
//! blob per `device/field`, written hourly and at shutdown without an fsync
//! (losing the last hour of sparkline data to a power cut is fine; wearing
//! the SD card every minute is not).

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{Store, StoreError, db_err};

const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("sensor_history");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(HISTORY).map_err(db_err)?;
    Ok(())
}

impl Store {
    /// Saves (replaces) the given series blobs in one transaction.
    pub async fn save_history(&self, blobs: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.write(false, move |txn| {
            let mut table = txn.open_table(HISTORY).map_err(db_err)?;
            for (key, blob) in &blobs {
                table
                    .insert(key.as_str(), blob.as_slice())
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    /// Every saved series blob, by `device/field`.
    pub async fn load_history(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(HISTORY).map_err(db_err)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                if out.len() >= crate::limits::MAX_HISTORY_SERIES {
                    break;
                }
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }
}
