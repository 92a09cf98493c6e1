//! Persisted shapes of paired devices and pending pairing requests. Field
//! names follow OpenClaw's `device.pair.list` output.

use serde::{Deserialize, Serialize};

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
