//! `device.pair.*` and `device.token.*`: operators approve, reject and
//! remove devices and rotate or revoke their tokens. Each change is one
//! transaction in the store.

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::{Shared, pairing};
use super::{Call, Reply, parse, store_error};
use crate::ids;
use crate::protocol::connect::Role;
use crate::protocol::error::ErrorShape;
use crate::protocol::scopes;

fn connected_devices(shared: &Shared) -> Vec<String> {
    shared
        .bus
        .connections()
        .iter()
        .filter_map(|c| c.device_id.clone())
        .collect()
}

/// `device.pair.list`: pending requests and paired devices (no secrets).
pub async fn pair_list(call: &Call, _params: Value) -> Reply {
    let shared = &call.shared;
    let pending = shared
        .store
        .pending(ids::now_ms())
        .await
        .map_err(store_error)?;
    let paired = shared.store.devices().await.map_err(store_error)?;
    let connected = connected_devices(shared);
    Ok(json!({
        "pending": pending.iter().map(pairing::pending_view).collect::<Vec<_>>(),
        "paired": paired.iter().map(|d| pairing::device_view(d, connected.contains(&d.device_id))).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIdParams {
    request_id: String,
}

fn unknown_request(id: &str) -> ErrorShape {
    ErrorShape::invalid(format!("unknown requestId: {id}"))
}

/// `device.pair.approve`: the request is taken and the device record
/// widened, in one transaction.
pub async fn pair_approve(call: &Call, params: Value) -> Reply {
    let p: RequestIdParams = parse("device.pair.approve", params)?;
    let shared = &call.shared;
    let (_, device) = shared
        .store
        .approve_pending(&p.request_id, ids::now_ms(), |request, current| {
            pairing::merge(request, current, "manual")
        })
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_request(&p.request_id))?;
    tracing::info!(device_id = %device.device_id, request_id = %p.request_id, "device pairing approved");
    pairing::announce_resolution(shared, &p.request_id, &device.device_id, "approved");
    Ok(json!({"requestId": p.request_id, "device": pairing::device_view(&device, false)}))
}

/// `device.pair.reject`.
pub async fn pair_reject(call: &Call, params: Value) -> Reply {
    let p: RequestIdParams = parse("device.pair.reject", params)?;
    let shared = &call.shared;
    let request = shared
        .store
        .take_pending(&p.request_id, ids::now_ms())
        .await
        .map_err(store_error)?
        .ok_or_else(|| unknown_request(&p.request_id))?;
    tracing::info!(device_id = %request.device_id, request_id = %p.request_id, "device pairing rejected");
    pairing::announce_resolution(shared, &p.request_id, &request.device_id, "rejected");
    Ok(json!({"requestId": p.request_id, "deviceId": request.device_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceIdParams {
    device_id: String,
}

/// Close live connections of a device (after removal or token revocation).
fn kick_device(shared: &Shared, device_id: &str, role: Option<Role>) {
    for conn in shared.bus.connections() {
        if conn.device_id.as_deref() == Some(device_id) && role.is_none_or(|r| r == conn.role) {
            conn.kick.notify_one();
        }
    }
}

/// `device.pair.remove`: forget the device and close its connections.
pub async fn pair_remove(call: &Call, params: Value) -> Reply {
    let p: DeviceIdParams = parse("device.pair.remove", params)?;
    let shared = &call.shared;
    if !shared
        .store
        .remove_device(&p.device_id)
        .await
        .map_err(store_error)?
    {
        return Err(ErrorShape::invalid(format!(
            "unknown deviceId: {}",
            p.device_id
        )));
    }
    tracing::info!(device_id = %p.device_id, "paired device removed");
    kick_device(shared, &p.device_id, None);
    Ok(json!({"deviceId": p.device_id, "removed": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenParams {
    device_id: String,
    role: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// Why a token change was refused (decided inside the transaction).
enum TokenRefusal {
    UnknownDevice,
    Refused(String),
}

impl TokenRefusal {
    fn into_error(self, device_id: &str) -> ErrorShape {
        match self {
            TokenRefusal::UnknownDevice => {
                ErrorShape::invalid(format!("unknown deviceId: {device_id}"))
            }
            TokenRefusal::Refused(why) => ErrorShape::invalid(why),
        }
    }
}

/// `device.token.rotate`: a new token for one role, in one transaction.
pub async fn token_rotate(call: &Call, params: Value) -> Reply {
    let p: TokenParams = parse("device.token.rotate", params)?;
    let now = ids::now_ms();
    let token = ids::new_token();
    let (role, requested, new_token) = (p.role.clone(), p.scopes.clone(), token.clone());
    let outcome = call
        .shared
        .store
        .update_device(&p.device_id, true, move |current| {
            let Some(mut device) = current else {
                return Ok((None, Err(TokenRefusal::UnknownDevice)));
            };
            if !device.roles.contains(&role) {
                let why = format!("device {} is not paired for role {role}", device.device_id);
                return Ok((None, Err(TokenRefusal::Refused(why))));
            }
            let approved = if role == "node" {
                Vec::new()
            } else {
                device.scopes.clone()
            };
            let scopes = requested.unwrap_or_else(|| approved.clone());
            if !scopes::covered(&approved, &scopes) {
                let why = "requested scopes exceed the device's approved scopes".to_owned();
                return Ok((None, Err(TokenRefusal::Refused(why))));
            }
            match device.tokens.iter_mut().find(|t| t.role == role) {
                Some(t) => {
                    t.token = new_token;
                    t.scopes = scopes.clone();
                    t.rotated_at_ms = Some(now);
                }
                None => device.tokens.push(crate::store::DeviceToken {
                    role: role.clone(),
                    token: new_token,
                    scopes: scopes.clone(),
                    created_at_ms: now,
                    rotated_at_ms: Some(now),
                }),
            }
            Ok((Some(device), Ok(scopes)))
        })
        .await;
    let scopes = outcome
        .map_err(store_error)?
        .map_err(|r| r.into_error(&p.device_id))?;
    tracing::info!(device_id = %p.device_id, role = %p.role, "device token rotated");
    Ok(
        json!({"deviceId": p.device_id, "role": p.role, "token": token, "scopes": scopes, "rotatedAtMs": now}),
    )
}

/// `device.token.revoke`: drop one role's token and close those connections.
pub async fn token_revoke(call: &Call, params: Value) -> Reply {
    let p: TokenParams = parse("device.token.revoke", params)?;
    let role = p.role.clone();
    let outcome = call
        .shared
        .store
        .update_device(&p.device_id, true, move |current| {
            let Some(mut device) = current else {
                return Ok((None, Err(TokenRefusal::UnknownDevice)));
            };
            let before = device.tokens.len();
            device.tokens.retain(|t| t.role != role);
            if device.tokens.len() == before {
                let why = format!("device {} has no {role} token", device.device_id);
                return Ok((None, Err(TokenRefusal::Refused(why))));
            }
            Ok((Some(device), Ok(())))
        })
        .await;
    outcome
        .map_err(store_error)?
        .map_err(|r| r.into_error(&p.device_id))?;
    tracing::info!(device_id = %p.device_id, role = %p.role, "device token revoked");
    let role = match p.role.as_str() {
        "node" => Role::Node,
        _ => Role::Operator,
    };
    kick_device(&call.shared, &p.device_id, Some(role));
    Ok(json!({"deviceId": p.device_id, "role": p.role, "revokedAtMs": ids::now_ms()}))
}
