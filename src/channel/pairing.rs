//! DM pairing seen from the operator's side: the pending requests of every
//! pairing account (`channels.pairing.list`, `pinclaw pairing list`),
//! approving one (the sender may talk from then on, across restarts) and
//! dismissing one. Requests are named as the Control UI names them (an
//! opaque `requestId`); pinclaw's CLI also accepts the code the sender was
//! given.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::access::{DmPolicy, normalize_code};
use super::hub::Hub;
use crate::limits;
use crate::store::{OutboxItem, PairingRequest, ReplyRoute, StoreError};

/// OpenClaw's request id: the first 32 characters of
/// base64url(sha256(channel \0 account \0 sender \0 createdAt)).
pub fn request_id(request: &PairingRequest) -> String {
    let mut hash = Sha256::new();
    for part in [
        request.channel.as_str(),
        request.account.as_str(),
        request.sender.as_str(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(request.created_at.to_string().as_bytes());
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize());
    encoded.chars().take(32).collect()
}

/// Why a pairing request could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// No such channel account.
    #[error("unknown channel account: {0}")]
    UnknownAccount(String),
    /// The account does not pair (its `dm_policy` is not `pairing`).
    #[error("channel account does not use DM pairing: {0}")]
    NotPairing(String),
    /// No live request has that id or code.
    #[error(
        "no pending pairing request {0:?} (it may have expired; the sender gets a new code by writing again)"
    )]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn iso(ms: i64) -> String {
    crate::agent::tools::iso8601(ms)
}

impl Hub {
    /// The pending requests (of one channel / account, or all), in the
    /// shape of `channels.pairing.list`.
    pub async fn pairing_list(
        &self,
        channel: Option<&str>,
        account: Option<&str>,
    ) -> Result<Value, StoreError> {
        let now = crate::ids::now_ms();
        let mut accounts = Vec::new();
        let mut requests = Vec::new();
        for ch in self.channels() {
            if channel.is_some_and(|c| c != ch.id())
                || account.is_some_and(|a| a != ch.account())
                || ch.rules().dm != DmPolicy::Pairing
            {
                continue;
            }
            accounts.push(json!({
                "channel": ch.id(), "channelLabel": ch.label(), "accountId": ch.account(),
                "notifySupported": true,
            }));
            for r in self
                .store
                .pairing_requests(ch.id(), ch.account(), now)
                .await?
            {
                requests.push(json!({
                    "requestId": request_id(&r),
                    "channel": r.channel, "channelLabel": ch.label(), "accountId": r.account,
                    "senderId": r.sender, "senderLabel": r.sender_label,
                    "createdAt": iso(r.created_at), "lastSeenAt": iso(r.last_seen_at),
                    "expiresAt": iso(r.expires_at()),
                    "notifySupported": true,
                }));
            }
        }
        Ok(json!({
            "accounts": accounts,
            "requests": requests,
            "commandOwnerConfigured": false,
            "limits": {
                "pendingPerAccount": limits::CHANNEL_PAIRING_MAX_PENDING,
                "ttlMs": limits::CHANNEL_PAIRING_TTL.as_millis() as u64,
            },
        }))
    }

    /// Approve (`approve = true`) or dismiss a pending request, named by
    /// its request id or its code. An approval with `notify` tells the
    /// sender. Returns the request.
    pub async fn pairing_resolve(
        &self,
        channel: &str,
        account: &str,
        id_or_code: &str,
        approve: bool,
        notify: bool,
    ) -> Result<PairingRequest, PairingError> {
        let name = format!("{channel}:{account}");
        let ch = self
            .channel(channel, account)
            .ok_or_else(|| PairingError::UnknownAccount(name.clone()))?;
        if ch.rules().dm != DmPolicy::Pairing {
            return Err(PairingError::NotPairing(name));
        }
        let now = crate::ids::now_ms();
        let code = normalize_code(id_or_code);
        let pending = self.store.pairing_requests(channel, account, now).await?;
        let Some(request) = pending
            .into_iter()
            .find(|r| r.code == code || request_id(r) == id_or_code)
        else {
            return Err(PairingError::NotFound(id_or_code.to_owned()));
        };
        let resolved = self
            .store
            .pairing_resolve(channel, account, &request.code, approve, now)
            .await?
            .ok_or_else(|| PairingError::NotFound(id_or_code.to_owned()))?;
        tracing::info!(
            channel,
            account,
            sender = %resolved.sender,
            "pairing request {}",
            if approve { "approved" } else { "dismissed" }
        );
        if approve && notify {
            let route = ReplyRoute {
                channel: channel.to_owned(),
                account: account.to_owned(),
                to: resolved.sender.clone(),
                thread: None,
            };
            let text = "You are approved: write to me any time.".to_owned();
            self.enqueue(OutboxItem::new(route, text, "notice", None))
                .await?;
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_opaque_and_stable() {
        let r = PairingRequest {
            channel: "telegram".into(),
            account: "default".into(),
            sender: "42".into(),
            sender_label: "Ann".into(),
            code: "ABCDEFGH".into(),
            created_at: 1_764_600_000_000,
            last_seen_at: 1_764_600_000_000,
        };
        let id = request_id(&r);
        assert_eq!(id.len(), 32);
        assert_eq!(id, request_id(&r));
        assert!(!id.contains("ABCDEFGH"));
        let other = PairingRequest {
            sender: "43".into(),
            ..r
        };
        assert_ne!(id, request_id(&other));
    }
}
