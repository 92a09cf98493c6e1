//! Admission of a `connect` request: protocol negotiation, rate limiting,
//! shared-secret and device-token auth, device identity and pairing, and the
//! scopes the connection ends up with.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::{Value, json};

use super::{Shared, auth, pairing};
use crate::config::AuthMode;
use crate::ids;
use crate::limits;
use crate::protocol::connect::{ConnectParams, Role};
use crate::protocol::device_auth;
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::{PROTOCOL_VERSION, scopes};
use crate::store::{PairedDevice, PendingPairing};

/// Where a connection comes from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Socket peer address.
    pub ip: IpAddr,
    /// Loopback socket with no proxy or browser headers: the machine itself.
    pub direct_loopback: bool,
}

/// A successful admission.
#[derive(Debug)]
pub struct Admitted {
    /// Role.
    pub role: Role,
    /// Effective scopes (cleared to `[]` where the rules say so).
    pub scopes: Vec<String>,
    /// How the client authenticated: `token`, `password`, `device-token`, `none`.
    pub method: &'static str,
    /// The paired device, if the client proved an identity.
    pub device: Option<PairedDevice>,
    /// Protocol version negotiated.
    pub protocol: u32,
}

/// A refused connect: the error to answer and the close code.
#[derive(Debug)]
pub struct Refusal {
    /// The `res` error.
    pub error: ErrorShape,
    /// WebSocket close code.
    pub close_code: u16,
}

impl Refusal {
    fn policy(error: ErrorShape) -> Self {
        Self {
            error,
            close_code: 1008,
        }
    }
}

/// Result of checking the shared secret.
enum SecretCheck {
    Passed(&'static str),
    Failed(ErrorShape),
}

fn auth_error(message: &str, code: &str, reason: &str, next: &str) -> ErrorShape {
    ErrorShape::invalid(message).with_details(json!({
        "code": code,
        "authReason": reason,
        "canRetryWithDeviceToken": false,
        "recommendedNextStep": next,
    }))
}

fn check_shared_secret(shared: &Shared, params: &ConnectParams) -> SecretCheck {
    let settings = &shared.settings;
    let offered: Vec<&str> = [&params.auth.token, &params.auth.password]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    let (configured, kind) = match settings.auth_mode {
        AuthMode::None => return SecretCheck::Passed("none"),
        AuthMode::Token => (settings.token.as_ref(), "token"),
        AuthMode::Password => (settings.password.as_ref(), "password"),
    };
    let Some(configured) = configured else {
        let code = if kind == "token" {
            "AUTH_TOKEN_NOT_CONFIGURED"
        } else {
            "AUTH_PASSWORD_NOT_CONFIGURED"
        };
        return SecretCheck::Failed(auth_error(
            &format!("unauthorized: gateway {kind} not configured"),
            code,
            &format!("{kind}_not_configured"),
            "review_auth_configuration",
        ));
    };
    if offered
        .iter()
        .any(|o| auth::secret_eq(o, configured.expose()))
    {
        return SecretCheck::Passed(if kind == "token" { "token" } else { "password" });
    }
    let error = match (kind, offered.is_empty()) {
        ("token", true) => auth_error(
            "unauthorized: gateway token missing (pass the gateway's token, e.g. --token)",
            "AUTH_TOKEN_MISSING",
            "token_missing",
            "update_auth_credentials",
        ),
        ("token", false) => auth_error(
            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
            "AUTH_TOKEN_MISMATCH",
            "token_mismatch",
            "update_auth_credentials",
        ),
        (_, true) => auth_error(
            "unauthorized: gateway password missing (pass the gateway's password)",
            "AUTH_PASSWORD_MISSING",
            "password_missing",
            "update_auth_credentials",
        ),
        (_, false) => auth_error(
            "unauthorized: gateway password mismatch",
            "AUTH_PASSWORD_MISMATCH",
            "password_mismatch",
            "update_auth_credentials",
        ),
    };
    SecretCheck::Failed(error)
}

/// Whether a presented device token matches the device's token for `role`.
fn device_token_matches(params: &ConnectParams, device: &PairedDevice, role: Role) -> Option<bool> {
    let token = device.token_for(role.as_str())?;
    let presented: Vec<&str> = [&params.auth.device_token, &params.auth.token]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    if presented.is_empty() {
        return None;
    }
    Some(presented.iter().any(|p| auth::secret_eq(p, &token.token)))
}

fn rate_limited(retry_after_ms: u64) -> Refusal {
    Refusal::policy(
        ErrorShape::invalid("unauthorized: too many failed authentication attempts; retry later")
            .with_details(json!({
                "code": "AUTH_RATE_LIMITED",
                "authReason": "rate_limited",
                "canRetryWithDeviceToken": false,
                "recommendedNextStep": "wait_then_retry",
            }))
            .retry_after(retry_after_ms),
    )
}

/// Decide whether a `connect` is admitted. `nonce` is the challenge sent on
/// this socket. Pairing state is read and written through the store (off
/// the event loop); each pairing change is one transaction.
pub async fn admit(
    shared: &Shared,
    params: &ConnectParams,
    nonce: &str,
    peer: Peer,
) -> Result<Admitted, Refusal> {
    let Some(role) = params.role() else {
        return Err(Refusal::policy(ErrorShape::invalid("invalid role")));
    };
    if !params.protocol_acceptable() {
        return Err(Refusal {
            error: ErrorShape::invalid("protocol mismatch").with_details(json!({
                "code": "PROTOCOL_MISMATCH",
                "clientMinProtocol": params.min_protocol,
                "clientMaxProtocol": params.max_protocol,
                "expectedProtocol": PROTOCOL_VERSION,
                "minimumProbeProtocol": crate::protocol::MIN_LEGACY_PROTOCOL_VERSION,
            })),
            close_code: 1002,
        });
    }
    let rate_exempt = peer.direct_loopback;
    if !rate_exempt && let Some(wait) = shared.limiter().locked(peer.ip, Instant::now()) {
        return Err(rate_limited(wait.as_millis() as u64));
    }

    // Device identity proof, when offered.
    let proof = match &params.device {
        Some(proof) => {
            match device_auth::verify(
                params,
                proof,
                nonce,
                ids::now_ms(),
                limits::DEVICE_SIGNATURE_SKEW_MS,
            ) {
                Ok((device_id, public_key)) => Some((device_id, public_key)),
                Err(e) => {
                    return Err(Refusal::policy(
                        ErrorShape::invalid(e.message())
                            .with_details(json!({"code": e.code(), "reason": e.reason()})),
                    ));
                }
            }
        }
        None => None,
    };
    let known_device = match &proof {
        Some((device_id, _)) => shared
            .store
            .device(device_id)
            .await
            .map_err(|e| internal(&e))?,
        None => None,
    };

    // Shared secret first, then the device token of a paired device.
    let method = match check_shared_secret(shared, params) {
        SecretCheck::Passed(method) => method,
        SecretCheck::Failed(error) => {
            let via_device_token = known_device
                .as_ref()
                .and_then(|d| device_token_matches(params, d, role));
            match via_device_token {
                Some(true) => "device-token",
                other => {
                    let error = if other == Some(false) && params.auth.device_token.is_some() {
                        auth_error(
                            "unauthorized: device token mismatch (re-pair the device or rotate its token)",
                            "AUTH_DEVICE_TOKEN_MISMATCH",
                            "device_token_mismatch",
                            "update_auth_credentials",
                        )
                    } else {
                        error
                    };
                    if !rate_exempt
                        && let Some(wait) = shared.limiter().fail(peer.ip, Instant::now())
                    {
                        tracing::warn!(ip = %peer.ip, "auth failures: locking out for {} s", wait.as_secs());
                    }
                    tracing::info!(ip = %peer.ip, code = error.detail_code().unwrap_or(""), "connect refused");
                    return Err(Refusal::policy(error));
                }
            }
        }
    };
    if !rate_exempt {
        shared.limiter().succeed(peer.ip);
    }

    let requested: Vec<String> = match role {
        Role::Operator => params
            .scopes
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        Role::Node => Vec::new(),
    };
    let protocol = params.negotiated_protocol();

    let Some((device_id, public_key)) = proof else {
        if role == Role::Node {
            return Err(Refusal::policy(
                ErrorShape::new(codes::NOT_PAIRED, "device identity required")
                    .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
            ));
        }
        let keeps_scopes = peer.direct_loopback
            && method != "device-token"
            && matches!(
                (params.client.id.as_str(), params.client.mode.as_str()),
                ("cli", "cli") | ("gateway-client", "backend")
            );
        let scopes = if keeps_scopes { requested } else { Vec::new() };
        return Ok(Admitted {
            role,
            scopes,
            method,
            device: None,
            protocol,
        });
    };

    // Paired with this role and scopes already?
    let reason = match &known_device {
        None => "not-paired",
        Some(d) if !d.roles.iter().any(|r| r == role.as_str()) => "role-upgrade",
        Some(d) if !scopes::covered(&d.scopes, &requested) => "scope-upgrade",
        Some(_) => "",
    };
    let pending = PendingPairing {
        request_id: ids::uuid_v4(),
        device_id: device_id.clone(),
        public_key: device_auth::encode_base64url(&public_key),
        role: role.as_str().to_owned(),
        scopes: requested.clone(),
        client_id: params.client.id.clone(),
        client_mode: params.client.mode.clone(),
        display_name: params.client.display_name.clone(),
        platform: Some(params.client.platform.clone()),
        device_family: params.client.device_family.clone(),
        remote_ip: Some(peer.ip.to_string()),
        reason: reason.to_owned(),
        ts: ids::now_ms(),
    };
    let mut device = match (reason, known_device) {
        ("", Some(device)) => device,
        _ if peer.direct_loopback && shared.settings.auto_approve_loopback => {
            let device = pairing::approve_silently(shared, pending)
                .await
                .map_err(|e| internal(&e))?;
            tracing::info!(device_id = %device_id, role = role.as_str(), "device paired silently (direct loopback)");
            device
        }
        _ => {
            let request = pairing::request(shared, pending)
                .await
                .map_err(|e| internal(&e))?;
            let message = match reason {
                "role-upgrade" => "pairing required: role upgrade needs approval",
                "scope-upgrade" => "pairing required: scope upgrade needs approval",
                _ => "pairing required: device is not approved yet",
            };
            return Err(Refusal::policy(
                ErrorShape::new(codes::NOT_PAIRED, message).with_details(json!({
                    "code": "PAIRING_REQUIRED",
                    "reason": reason,
                    "requestId": request.request_id,
                    "deviceId": device_id,
                    "requestedRole": role.as_str(),
                    "requestedScopes": requested,
                    "recommendedNextStep": "wait_then_retry",
                    "retryable": true,
                    "pauseReconnect": false,
                })),
            ));
        }
    };
    let now = ids::now_ms();
    if device.token_for(role.as_str()).is_none() {
        // The token was revoked; a client that proved the shared secret and
        // its identity gets a fresh one (read-modify-write in one commit).
        let role_name = role.as_str().to_owned();
        device = shared
            .store
            .update_device(&device_id, true, move |current| {
                let Some(mut d) = current else {
                    return Err(crate::store::StoreError::Full(
                        "the device was removed while connecting",
                    ));
                };
                if d.token_for(&role_name).is_none() {
                    d.tokens.push(crate::store::DeviceToken {
                        scopes: if role_name == "node" {
                            Vec::new()
                        } else {
                            d.scopes.clone()
                        },
                        role: role_name,
                        token: ids::new_token(),
                        created_at_ms: now,
                        rotated_at_ms: None,
                    });
                }
                d.last_seen_at_ms = now;
                Ok((Some(d.clone()), d))
            })
            .await
            .map_err(|e| internal(&e))?;
    } else if now.saturating_sub(device.last_seen_at_ms)
        >= limits::LAST_SEEN_WRITE_INTERVAL.as_millis() as i64
    {
        // Bookkeeping: no fsync, and at most once per interval per device.
        device.last_seen_at_ms = now;
        if let Err(e) = shared
            .store
            .update_device(&device_id, false, move |current| {
                Ok((
                    current.map(|mut d| {
                        d.last_seen_at_ms = now;
                        d
                    }),
                    (),
                ))
            })
            .await
        {
            tracing::warn!("could not record last-seen time: {e}");
        }
    }
    let scopes = match role {
        Role::Operator => requested,
        Role::Node => Vec::new(),
    };
    Ok(Admitted {
        role,
        scopes,
        method,
        device: Some(device),
        protocol,
    })
}

fn internal(e: &dyn std::fmt::Display) -> Refusal {
    tracing::error!("state database error during connect: {e}");
    Refusal {
        error: ErrorShape::new(
            codes::UNAVAILABLE,
            "gateway state unavailable; retry shortly",
        )
        .retry_after(1000),
        close_code: 1011,
    }
}

/// The `hello-ok` payload for an admitted connection.
pub fn hello_ok(shared: &Shared, admitted: &Admitted, conn_id: &str) -> Value {
    let is_admin = scopes::satisfied(&admitted.scopes, scopes::ADMIN);
    let mut snapshot = json!({
        "presence": shared.bus.presence_list(),
        "health": super::methods::health_snapshot(shared),
        "stateVersion": shared.bus.state_version(),
        "uptimeMs": shared.started.elapsed().as_millis() as u64,
        "sessionDefaults": {
            "defaultAgentId": "main",
            "modelConfigured": false,
            "ownership": "sole",
            "selectionRequired": false,
            "mainKey": "main",
            "mainSessionKey": "agent:main:main",
            "scope": "per-sender",
        },
    });
    if is_admin && let Some(obj) = snapshot.as_object_mut() {
        obj.insert("stateDir".into(), json!(shared.settings.state_dir));
        obj.insert("configPath".into(), json!(shared.settings.config_path));
        obj.insert("authMode".into(), json!(shared.settings.auth_mode.as_str()));
    }
    let mut auth = json!({
        "method": admitted.method,
        "role": admitted.role.as_str(),
        "scopes": admitted.scopes,
    });
    if let Some(token) = admitted
        .device
        .as_ref()
        .and_then(|d| d.token_for(admitted.role.as_str()))
        && let Some(obj) = auth.as_object_mut()
    {
        obj.insert("deviceToken".into(), json!(token.token));
        obj.insert(
            "issuedAtMs".into(),
            json!(token.rotated_at_ms.unwrap_or(token.created_at_ms)),
        );
    }
    json!({
        "type": "hello-ok",
        "protocol": admitted.protocol,
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "connId": conn_id,
            "bootId": shared.boot_id,
        },
        "features": {
            "methods": super::methods::served_methods(),
            "events": super::events::served_events(),
            "capabilities": [],
        },
        "snapshot": snapshot,
        "auth": auth,
        "policy": {
            "maxPayload": limits::MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": limits::MAX_BUFFERED_BYTES,
            "tickIntervalMs": limits::TICK_INTERVAL.as_millis() as u64,
        },
    })
}
