//! Paired devices and pending pairing requests: their persisted shapes
//! (field names follow OpenClaw's `device.pair.list` output) and the
//! operations on them, each one transaction.

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    JsonTable, Store, StoreError, count, db_err, get_json, list_json, put_json, update_json,
};
use crate::limits;

const DEVICES: JsonTable = TableDefinition::new("devices");
const PENDING: JsonTable = TableDefinition::new("pairing_pending");

const DEVICES_FULL: &str = "too many paired devices; remove one first";

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DEVICES).map_err(db_err)?;
    txn.open_table(PENDING).map_err(db_err)?;
    Ok(())
}

/// A device token bound to one role.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    /// Role the token authenticates.
    pub role: String,
    /// The token (32 random bytes, base64url).
    pub token: String,
    /// Scopes the token carries.
    pub scopes: Vec<String>,
    /// When issued.
    pub created_at_ms: i64,
    /// When last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<i64>,
}

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceToken")
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// An approved device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    /// Hex sha256 of the public key.
    pub device_id: String,
    /// Raw public key, base64url.
    pub public_key: String,
    /// Optional human label.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Platform at pairing time.
    #[serde(default)]
    pub platform: Option<String>,
    /// Client id at pairing time.
    pub client_id: String,
    /// Client mode at pairing time.
    pub client_mode: String,
    /// Approved roles.
    pub roles: Vec<String>,
    /// Approved scopes (operators).
    pub scopes: Vec<String>,
    /// `silent` (direct loopback) or `manual`.
    pub approved_via: String,
    /// First seen.
    pub created_at_ms: i64,
    /// Approved.
    pub approved_at_ms: i64,
    /// Last connect.
    pub last_seen_at_ms: i64,
    /// Tokens, one per role.
    pub tokens: Vec<DeviceToken>,
}

impl PairedDevice {
    /// The token for a role, if issued.
    pub fn token_for(&self, role: &str) -> Option<&DeviceToken> {
        self.tokens.iter().find(|t| t.role == role)
    }
}

/// A pairing request waiting for an operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPairing {
    /// Id the operator approves.
    pub request_id: String,
    /// The device asking.
    pub device_id: String,
    /// Its public key.
    pub public_key: String,
    /// Requested role.
    pub role: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Client id.
    pub client_id: String,
    /// Client mode.
    pub client_mode: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// Device family.
    #[serde(default)]
    pub device_family: Option<String>,
    /// Remote IP.
    #[serde(default)]
    pub remote_ip: Option<String>,
    /// `not-paired`, `role-upgrade` or `scope-upgrade`.
    pub reason: String,
    /// Created (ms since epoch).
    pub ts: i64,
}

fn live(p: &PendingPairing, now_ms: i64) -> bool {
    now_ms.saturating_sub(p.ts) < limits::PAIRING_PENDING_TTL.as_millis() as i64
}

impl Store {
    /// A paired device by id.
    pub async fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError> {
        let id = device_id.to_owned();
        self.read(move |txn| get_json(&txn.open_table(DEVICES).map_err(db_err)?, &id))
            .await
    }

    /// Every paired device.
    pub async fn devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.read(|txn| list_json(&txn.open_table(DEVICES).map_err(db_err)?))
            .await
    }

    /// Read-modify-write of one device in one transaction: `change` sees
    /// the record (if any) and returns the new one (`None`: unchanged) and a
    /// result. A new device beyond [`limits::PAIRING_MAX_DEVICES`] is
    /// refused. `durable`: fsync before returning (pairing, tokens); without
    /// it the change rides on the next durable commit (last-seen times).
    pub async fn update_device<R: Send + 'static>(
        &self,
        device_id: &str,
        durable: bool,
        change: impl FnOnce(Option<PairedDevice>) -> Result<(Option<PairedDevice>, R), StoreError>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let id = device_id.to_owned();
        self.write(durable, move |txn| {
            update_json(
                txn,
                DEVICES,
                &id,
                (limits::PAIRING_MAX_DEVICES, DEVICES_FULL),
                change,
            )
        })
        .await
    }

    /// Remove a paired device; returns whether it existed.
    pub async fn remove_device(&self, device_id: &str) -> Result<bool, StoreError> {
        let id = device_id.to_owned();
        self.write(true, move |txn| {
            let mut table = txn.open_table(DEVICES).map_err(db_err)?;
            Ok(table.remove(id.as_str()).map_err(db_err)?.is_some())
        })
        .await
    }

    /// Pending pairing requests that have not expired, oldest first.
    pub async fn pending(&self, now_ms: i64) -> Result<Vec<PendingPairing>, StoreError> {
        self.read(move |txn| {
            let mut all: Vec<PendingPairing> =
                list_json(&txn.open_table(PENDING).map_err(db_err)?)?;
            all.retain(|p| live(p, now_ms));
            all.sort_by_key(|p| p.ts);
            Ok(all)
        })
        .await
    }

    /// Store a pending request. A device that asks again for no more than
    /// its live request asks (a client retrying while it waits) refreshes
    /// that request: same id, new time, so the id an operator copied stays
    /// good. A wider ask replaces it. Expired and (when full) the oldest
    /// requests are evicted. A device already paired for what it asks (a
    /// retry that raced the approval) stores nothing. Returns the stored
    /// request and whether it is new.
    pub async fn put_pending(
        &self,
        request: PendingPairing,
        now_ms: i64,
    ) -> Result<(PendingPairing, bool), StoreError> {
        self.write(true, move |txn| {
            // Approved while this retry was on its way: nothing to ask.
            let paired: Option<PairedDevice> = get_json(
                &txn.open_table(DEVICES).map_err(db_err)?,
                &request.device_id,
            )?;
            if paired.is_some_and(|d| {
                d.public_key == request.public_key
                    && d.roles.contains(&request.role)
                    && (request.role == "node"
                        || crate::protocol::scopes::covered(&d.scopes, &request.scopes))
            }) {
                return Ok((request, false));
            }
            let mut table = txn.open_table(PENDING).map_err(db_err)?;
            let existing: Vec<PendingPairing> = list_json(&table)?;
            if let Some(same) = existing.iter().find(|p| {
                live(p, now_ms)
                    && p.device_id == request.device_id
                    && p.role == request.role
                    && p.public_key == request.public_key
                    && crate::protocol::scopes::covered(&p.scopes, &request.scopes)
            }) {
                let refreshed = PendingPairing {
                    request_id: same.request_id.clone(),
                    scopes: same.scopes.clone(),
                    ..request
                };
                put_json(&mut table, &refreshed.request_id, &refreshed)?;
                return Ok((refreshed, false));
            }
            let mut stale: Vec<String> = existing
                .iter()
                .filter(|p| {
                    !live(p, now_ms) || (p.device_id == request.device_id && p.role == request.role)
                })
                .map(|p| p.request_id.clone())
                .collect();
            let live_count = existing.len() - stale.len();
            if live_count >= limits::PAIRING_MAX_PENDING {
                let mut rest: Vec<&PendingPairing> = existing
                    .iter()
                    .filter(|p| !stale.contains(&p.request_id))
                    .collect();
                rest.sort_by_key(|p| p.ts);
                stale.extend(
                    rest.iter()
                        .take(live_count + 1 - limits::PAIRING_MAX_PENDING)
                        .map(|p| p.request_id.clone()),
                );
            }
            for id in &stale {
                table.remove(id.as_str()).map_err(db_err)?;
            }
            put_json(&mut table, &request.request_id, &request)?;
            Ok((request, true))
        })
        .await
    }

    /// Remove and return a pending request (expired ones count as absent).
    pub async fn take_pending(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<Option<PendingPairing>, StoreError> {
        let id = request_id.to_owned();
        self.write(true, move |txn| {
            let mut table = txn.open_table(PENDING).map_err(db_err)?;
            let found: Option<PendingPairing> = get_json(&table, &id)?;
            if found.is_some() {
                table.remove(id.as_str()).map_err(db_err)?;
            }
            Ok(found.filter(|p| live(p, now_ms)))
        })
        .await
    }

    /// Approve a pending request in one transaction: the request is taken
    /// and `merge` turns it and the device's current record into the new
    /// record, which is stored. `None` when the request is unknown or
    /// expired (nothing changes).
    pub async fn approve_pending(
        &self,
        request_id: &str,
        now_ms: i64,
        merge: impl FnOnce(&PendingPairing, Option<PairedDevice>) -> PairedDevice + Send + 'static,
    ) -> Result<Option<(PendingPairing, PairedDevice)>, StoreError> {
        let id = request_id.to_owned();
        self.write(true, move |txn| {
            let request: Option<PendingPairing> = {
                let table = txn.open_table(PENDING).map_err(db_err)?;
                get_json(&table, &id)?
            };
            let Some(request) = request.filter(|p| live(p, now_ms)) else {
                return Ok(None);
            };
            let device = update_json(
                txn,
                DEVICES,
                &request.device_id,
                (limits::PAIRING_MAX_DEVICES, DEVICES_FULL),
                |current| {
                    let device = merge(&request, current);
                    Ok((Some(device.clone()), device))
                },
            )?;
            txn.open_table(PENDING)
                .map_err(db_err)?
                .remove(id.as_str())
                .map_err(db_err)?;
            Ok(Some((request, device)))
        })
        .await
    }

    /// Number of paired devices.
    pub async fn device_count(&self) -> Result<usize, StoreError> {
        self.read(|txn| count(&txn.open_table(DEVICES).map_err(db_err)?))
            .await
    }
}
