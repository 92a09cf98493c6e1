//! `connect` parameters and protocol negotiation.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{MIN_LEGACY_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// `connect.params.client`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// Client id, e.g. `cli`, `gateway-client`, `node-host`.
    pub id: String,
    /// Client version.
    pub version: String,
    /// Platform, e.g. `linux`.
    pub platform: String,
    /// Mode: `cli`, `backend`, `node`, `probe`, …
    pub mode: String,
    /// Optional display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Optional device family.
    #[serde(default)]
    pub device_family: Option<String>,
    /// Optional model identifier.
    #[serde(default)]
    pub model_identifier: Option<String>,
    /// Optional instance id.
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// `connect.params.auth`: every credential a client may present.
#[derive(Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    /// Shared token or device token.
    #[serde(default)]
    pub token: Option<String>,
    /// Shared password.
    #[serde(default)]
    pub password: Option<String>,
    /// Device token issued at pairing.
    #[serde(default)]
    pub device_token: Option<String>,
    /// Bootstrap (setup code) token.
    #[serde(default)]
    pub bootstrap_token: Option<String>,
}

impl std::fmt::Debug for ConnectAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("ConnectAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `connect.params.device`: the Ed25519 proof of a device identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProof {
    /// Hex SHA-256 of the raw public key.
    pub id: String,
    /// Raw 32-byte public key, base64url.
    pub public_key: String,
    /// Ed25519 signature over the v3 (or v2) payload, base64url.
    pub signature: String,
    /// Milliseconds since the epoch when signed.
    pub signed_at: i64,
    /// The challenge nonce.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// `connect` parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    /// Lowest protocol the client speaks.
    pub min_protocol: u32,
    /// Highest protocol the client speaks.
    pub max_protocol: u32,
    /// Who the client is.
    pub client: ClientInfo,
    /// `operator` (default) or `node`.
    #[serde(default)]
    pub role: Option<String>,
    /// Requested scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Client capabilities (operators) or capability categories (nodes).
    #[serde(default)]
    pub caps: Vec<String>,
    /// Node command claims.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Node permissions.
    #[serde(default)]
    pub permissions: Map<String, Value>,
    /// Node PATH.
    #[serde(default)]
    pub path_env: Option<String>,
    /// Credentials.
    #[serde(default)]
    pub auth: ConnectAuth,
    /// Device identity proof.
    #[serde(default)]
    pub device: Option<DeviceProof>,
}

/// The two roles a gateway connection may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Operator clients: CLI, UI, automations.
    Operator,
    /// Device nodes that expose commands.
    Node,
}

impl Role {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

impl ConnectParams {
    /// The role after defaulting; `None` for an invalid role string.
    pub fn role(&self) -> Option<Role> {
        match self.role.as_deref() {
            None | Some("operator") => Some(Role::Operator),
            Some("node") => Some(Role::Node),
            Some(_) => None,
        }
    }

    /// Whether the offered protocol range is acceptable (`admitGatewayConnect`):
    /// v4 for everyone, v3 also for probes and exact node identities.
    pub fn protocol_acceptable(&self) -> bool {
        let (min, max) = (self.min_protocol, self.max_protocol);
        if min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max {
            return true;
        }
        let legacy = MIN_LEGACY_PROTOCOL_VERSION;
        if self.client.mode == "probe" {
            // Probes: any overlap with [3, 4].
            return min <= PROTOCOL_VERSION && max >= legacy;
        }
        // Exact node identities: a range covering v3.
        let is_node = self.role() == Some(Role::Node) && self.client.mode == "node";
        is_node && min <= legacy && legacy <= max
    }

    /// The protocol version to speak on an accepted connection.
    pub fn negotiated_protocol(&self) -> u32 {
        self.max_protocol.min(PROTOCOL_VERSION)
    }

    /// The token used in the device signature payload: the first non-empty of
    /// `auth.token`, `auth.deviceToken`, `auth.bootstrapToken`.
    pub fn signature_token(&self) -> &str {
        [
            &self.auth.token,
            &self.auth.device_token,
            &self.auth.bootstrap_token,
        ]
        .into_iter()
        .filter_map(|t| t.as_deref())
        .find(|t| !t.is_empty())
        .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(min: u32, max: u32, role: &str, mode: &str) -> ConnectParams {
        serde_json::from_value(serde_json::json!({
            "minProtocol": min, "maxProtocol": max, "role": role,
            "client": {"id": "x", "version": "1", "platform": "linux", "mode": mode}
        }))
        .unwrap_or_else(|e| panic!("test params: {e}"))
    }

    #[test]
    fn protocol_negotiation() {
        assert!(params(4, 4, "operator", "cli").protocol_acceptable());
        assert!(params(3, 5, "operator", "cli").protocol_acceptable());
        assert!(!params(3, 3, "operator", "cli").protocol_acceptable());
        assert!(params(3, 3, "node", "node").protocol_acceptable());
        assert!(params(3, 4, "operator", "probe").protocol_acceptable());
        assert!(!params(2, 2, "node", "node").protocol_acceptable());
        assert!(!params(5, 6, "operator", "cli").protocol_acceptable());
        assert_eq!(params(3, 3, "node", "node").negotiated_protocol(), 3);
    }
}
