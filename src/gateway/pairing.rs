//! Device pairing decisions shared by the handshake and the `device.pair.*`
//! methods: silent approval, pending requests, approval, token issue.

use serde_json::{Value, json};

use super::Shared;
use crate::ids;
use crate::store::{DeviceToken, PairedDevice, PendingPairing, StoreError};

/// The redacted view of a paired device (`device.pair.list`): tokens show
/// role, scopes and dates, never the secret.
pub fn device_view(device: &PairedDevice, connected: bool) -> Value {
    json!({
        "deviceId": device.device_id,
        "publicKey": device.public_key,
        "displayName": device.display_name,
        "platform": device.platform,
        "clientId": device.client_id,
        "clientMode": device.client_mode,
        "role": device.roles.first(),
        "roles": device.roles,
        "scopes": device.scopes,
        "approvedVia": device.approved_via,
        "createdAtMs": device.created_at_ms,
        "approvedAtMs": device.approved_at_ms,
        "lastSeenAtMs": device.last_seen_at_ms,
        "lastSeenReason": "connect",
        "connected": connected,
        "tokens": device.tokens.iter().map(|t| json!({
            "role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms, "rotatedAtMs": t.rotated_at_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The pending-request view (`device.pair.list`, `device.pair.requested`).
pub fn pending_view(p: &PendingPairing) -> Value {
    json!({
        "requestId": p.request_id,
        "deviceId": p.device_id,
        "publicKey": p.public_key,
        "displayName": p.display_name,
        "platform": p.platform,
        "deviceFamily": p.device_family,
        "clientId": p.client_id,
        "clientMode": p.client_mode,
        "role": p.role,
        "roles": [p.role],
        "scopes": p.scopes,
        "remoteIp": p.remote_ip,
        "reason": p.reason,
        "isRepair": p.reason != "not-paired",
        "ts": p.ts,
    })
}

/// The device record after approving `request`: the current record (if
/// any) widened by the request's role and scopes, with a token for the role.
pub fn merge(request: &PendingPairing, current: Option<PairedDevice>, via: &str) -> PairedDevice {
    let now = ids::now_ms();
    let mut device = current.unwrap_or_else(|| PairedDevice {
        device_id: request.device_id.clone(),
        public_key: request.public_key.clone(),
        display_name: request.display_name.clone(),
        platform: request.platform.clone(),
        client_id: request.client_id.clone(),
        client_mode: request.client_mode.clone(),
        roles: Vec::new(),
        scopes: Vec::new(),
        approved_via: via.to_owned(),
        created_at_ms: now,
        approved_at_ms: now,
        last_seen_at_ms: now,
        tokens: Vec::new(),
    });
    if !device.roles.contains(&request.role) {
        device.roles.push(request.role.clone());
    }
    for scope in &request.scopes {
        if !device.scopes.contains(scope) {
            device.scopes.push(scope.clone());
        }
    }
    device.approved_at_ms = now;
    device.approved_via = via.to_owned();
    let scopes = if request.role == "node" {
        Vec::new()
    } else {
        device.scopes.clone()
    };
    match device.tokens.iter_mut().find(|t| t.role == request.role) {
        Some(token) => token.scopes = scopes,
        None => device.tokens.push(DeviceToken {
            role: request.role.clone(),
            token: ids::new_token(),
            scopes,
            created_at_ms: now,
            rotated_at_ms: None,
        }),
    }
    device
}

/// Approve a request without a pending record (silent pairing on direct
/// loopback): one durable read-modify-write of the device.
pub async fn approve_silently(
    shared: &Shared,
    request: PendingPairing,
) -> Result<PairedDevice, StoreError> {
    let id = request.device_id.clone();
    shared
        .store
        .update_device(&id, true, move |current| {
            let device = merge(&request, current, "silent");
            Ok((Some(device.clone()), device))
        })
        .await
}

/// Record a pending request and tell pairing-scoped operators about it.
pub async fn request(
    shared: &Shared,
    request: PendingPairing,
) -> Result<PendingPairing, StoreError> {
    let ts = request.ts;
    let (request, created) = shared.store.put_pending(request, ts).await?;
    // A device retrying while it waits keeps its request: announced once.
    if created {
        tracing::info!(
            request_id = %request.request_id,
            device_id = %request.device_id,
            role = %request.role,
            "device pairing requested; approve with `pinclaw devices approve {}`",
            request.request_id
        );
        shared
            .bus
            .broadcast("device.pair.requested", &pending_view(&request));
    }
    Ok(request)
}

/// Tell pairing-scoped operators a request was decided.
pub fn announce_resolution(shared: &Shared, request_id: &str, device_id: &str, decision: &str) {
    shared.bus.broadcast(
        "device.pair.resolved",
        &json!({"requestId": request_id, "deviceId": device_id, "decision": decision, "ts": ids::now_ms()}),
    );
}
