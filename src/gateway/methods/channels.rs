//! `channels.status`, `channels.pairing.list|approve|dismiss` and `send`:
//! the chat channels as OpenClaw's clients see them (the CLI's
//! `openclaw channels status`, the Control UI's DM access requests).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Call, Reply, parse, store_error};
use crate::channel::delivery::Sent;
use crate::channel::pairing::{PairingError, request_id};
use crate::channel::{AccountStatus, DeliveryError};
use crate::ids;
use crate::protocol::error::{ErrorShape, codes};
use crate::store::{OutboxItem, ReplyRoute, StoreError};

/// How long `send` waits for the service to accept the message before it
/// answers "queued" (the message stays in the ledger and is delivered).
const SEND_WAIT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusParams {
    #[serde(default)]
    probe: bool,
    #[serde(default)]
    #[allow(dead_code)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    channel: Option<String>,
}

/// The per-channel summary OpenClaw shows for a token channel.
fn summary(s: &AccountStatus) -> Value {
    json!({
        "configured": s.configured, "running": s.running,
        "lastStartAt": s.last_start_at, "lastStopAt": s.last_stop_at,
        "lastError": s.last_error, "tokenSource": s.token_source,
        "probe": s.probe, "lastProbeAt": s.last_transport_activity_at, "mode": s.mode,
    })
}

/// What is wrong with an account, in OpenClaw's `statusIssues` shape.
fn issue(channel: &str, s: &AccountStatus) -> Option<Value> {
    if !s.degraded() {
        return None;
    }
    let (kind, fix) = match s.health_state {
        "blocked" if s.configured => (
            "auth",
            "check the bot token (BotFather) and restart pinclaw",
        ),
        "blocked" => (
            "config",
            "set channels.telegram.bot_token_env or bot_token_file",
        ),
        "conflict" => (
            "runtime",
            "stop the other poller (another gateway or script) or remove the webhook",
        ),
        _ => ("runtime", "check the network; pinclaw keeps retrying"),
    };
    let message = s
        .last_error
        .clone()
        .unwrap_or_else(|| format!("the account is {}", s.health_state));
    Some(json!({
        "channel": channel, "accountId": s.account_id, "kind": kind,
        "message": message, "fix": fix,
    }))
}

/// `channels.status`.
pub async fn status(call: &Call, params: Value) -> Reply {
    let p: StatusParams = parse("channels.status", params)?;
    let hub = &call.shared.channels;
    if let Some(wanted) = &p.channel
        && !hub.channels().iter().any(|c| c.id() == wanted)
    {
        return Err(ErrorShape::invalid(format!("unknown channel: {wanted}")));
    }
    let mut order: Vec<&str> = Vec::new();
    let mut labels = Map::new();
    let mut details = Map::new();
    let mut channels = Map::new();
    let mut accounts: Map<String, Value> = Map::new();
    let mut defaults = Map::new();
    let mut issues = Vec::new();
    for (id, label, mut status) in hub.statuses().await {
        if p.channel.as_deref().is_some_and(|c| c != id) {
            continue;
        }
        if p.probe {
            status.probe = Some(json!({
                "ok": status.connected && status.probe.is_some(),
                "error": status.last_error,
                "bot": status.probe.as_ref().map(|pr| pr["bot"].clone()),
            }));
        }
        if !order.contains(&id) {
            order.push(id);
            labels.insert(id.into(), json!(label));
            details.insert(id.into(), json!(format!("{label} Bot")));
            channels.insert(id.into(), summary(&status));
            defaults.insert(id.into(), json!(status.account_id));
        }
        issues.extend(issue(id, &status));
        let snapshot = serde_json::to_value(&status).unwrap_or(Value::Null);
        match accounts.get_mut(id).and_then(Value::as_array_mut) {
            Some(list) => list.push(snapshot),
            None => {
                accounts.insert(id.into(), json!([snapshot]));
            }
        }
    }
    let mut result = json!({
        "ts": ids::now_ms(),
        "channelOrder": order,
        "channelLabels": labels,
        "channelDetailLabels": details,
        "channels": channels,
        "channelAccounts": accounts,
        "channelDefaultAccountId": defaults,
    });
    if !issues.is_empty() {
        result["statusIssues"] = json!(issues);
    }
    Ok(result)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
}

/// `channels.pairing.list`.
pub async fn pairing_list(call: &Call, params: Value) -> Reply {
    let p: ListParams = parse("channels.pairing.list", params)?;
    call.shared
        .channels
        .pairing_list(p.channel.as_deref(), p.account_id.as_deref())
        .await
        .map_err(store_error)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResolveParams {
    channel: String,
    #[serde(default)]
    account_id: Option<String>,
    /// The Control UI's opaque id.
    #[serde(default)]
    request_id: Option<String>,
    /// pinclaw's extension: the code the sender was given.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    notify: bool,
    #[serde(default)]
    #[allow(dead_code)]
    bootstrap_command_owner: bool,
}

async fn resolve(call: &Call, method: &str, params: Value, approve: bool) -> Reply {
    let p: ResolveParams = parse(method, params)?;
    let name = p
        .request_id
        .or(p.code)
        .ok_or_else(|| ErrorShape::invalid_params(method, "requestId (or code) is required"))?;
    let account = p
        .account_id
        .unwrap_or_else(|| crate::channel::telegram::ACCOUNT.to_owned());
    let request = call
        .shared
        .channels
        .pairing_resolve(&p.channel, &account, &name, approve, p.notify)
        .await
        .map_err(|e| match e {
            PairingError::Store(e) => store_error(e),
            other => ErrorShape::invalid(other.to_string()),
        })?;
    let mut result = json!({"requestId": request_id(&request), "senderId": request.sender});
    if approve {
        result["notification"] = json!(if p.notify { "sent" } else { "not-requested" });
        result["commandOwnerBootstrap"] = json!("not-requested");
    }
    Ok(result)
}

/// `channels.pairing.approve`.
pub async fn pairing_approve(call: &Call, params: Value) -> Reply {
    resolve(call, "channels.pairing.approve", params, true).await
}

/// `channels.pairing.dismiss`.
pub async fn pairing_dismiss(call: &Call, params: Value) -> Reply {
    resolve(call, "channels.pairing.dismiss", params, false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendParams {
    to: String,
    idempotency_key: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(default)]
    media_url: Option<String>,
    #[serde(default)]
    media_urls: Option<Vec<String>>,
    #[serde(default)]
    buffer: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    agent_id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    silent: Option<bool>,
}

/// `send`: a message to a chat, durable in the outbound ledger before the
/// service is even asked; answered with the message id once delivered, or
/// `UNAVAILABLE` (`OUTBOUND_DELIVERY_QUEUED`) if that takes longer (it is
/// still delivered).
pub async fn send(call: &Call, params: Value) -> Reply {
    let p: SendParams = parse("send", params)?;
    let invalid = |why: String| ErrorShape::invalid(format!("invalid send params: {why}"));
    if p.media_url.is_some() || p.media_urls.is_some() || p.buffer.is_some() {
        return Err(invalid("media is not supported yet; send text".into()));
    }
    let text = p.message.clone().unwrap_or_default();
    if text.trim().is_empty() {
        return Err(invalid("text or media is required".into()));
    }
    if text.len() > crate::limits::MAX_MESSAGE_BYTES {
        return Err(invalid(format!(
            "message is larger than {} bytes",
            crate::limits::MAX_MESSAGE_BYTES
        )));
    }
    if p.to.trim().is_empty() || p.idempotency_key.trim().is_empty() {
        return Err(invalid("to and idempotencyKey must not be empty".into()));
    }
    let hub = &call.shared.channels;
    let channel_id = match p.channel.as_deref() {
        Some("webchat") => {
            return Err(ErrorShape::invalid(
                "channel webchat is internal-only. Use `chat.send` for WebChat.",
            ));
        }
        Some(id) => id.to_owned(),
        None => match hub.channels() {
            [only] => only.id().to_owned(),
            [] => return Err(ErrorShape::invalid("no chat channel is configured")),
            _ => return Err(invalid("channel is required".into())),
        },
    };
    let account = p
        .account_id
        .clone()
        .unwrap_or_else(|| crate::channel::telegram::ACCOUNT.to_owned());
    let Some(channel) = hub.channel(&channel_id, &account) else {
        return Err(ErrorShape::invalid(format!(
            "unsupported channel: {channel_id}"
        )));
    };
    let target = channel
        .target(&p.to, p.thread_id.as_deref())
        .map_err(invalid)?;
    let fingerprint = ids::fingerprint(
        &json!([channel_id, account, target.chat, target.thread, text]).to_string(),
    );
    let key = format!("send:{}", p.idempotency_key);
    let in_flight = match call.shared.idempotency.begin(&key, &fingerprint) {
        Ok(guard) => guard,
        Err(seen) => return seen.0,
    };
    let route = ReplyRoute {
        channel: channel_id.clone(),
        account,
        to: target.chat.clone(),
        thread: target.thread.clone(),
    };
    let item = OutboxItem::new(route, text, "send", Some(p.idempotency_key.clone()));
    let result = deliver(hub, item).await.map(|message_id| {
        json!({
            "runId": p.idempotency_key, "messageId": message_id,
            "channel": channel_id, "chatId": target.chat,
        })
    });
    in_flight.finish(&result);
    result
}

async fn deliver(hub: &crate::channel::Hub, item: OutboxItem) -> Result<String, ErrorShape> {
    match hub.send(item, SEND_WAIT).await {
        Ok(Sent::Delivered(delivered)) => Ok(delivered.message_id),
        Ok(Sent::Queued(why)) => Err(queued(why)),
        Ok(Sent::Failed(DeliveryError::Rejected(why))) => Err(ErrorShape::new(
            codes::UNAVAILABLE,
            format!("not delivered: {why}"),
        )
        .with_details(json!({"retryable": false}))),
        Ok(Sent::Failed(e)) => Err(ErrorShape::new(codes::UNAVAILABLE, e.to_string())),
        Err(StoreError::Full(why)) => {
            Err(ErrorShape::new(codes::UNAVAILABLE, why).retry_after(5000))
        }
        Err(other) => Err(store_error(other)),
    }
}

fn queued(why: Option<String>) -> ErrorShape {
    let message = match why {
        Some(why) => format!(
            "not delivered yet: the channel cannot deliver ({why}); the message is queued and will be delivered when it works"
        ),
        None => {
            "not delivered yet: the message is queued and will be delivered when the channel works"
                .into()
        }
    };
    ErrorShape::new(codes::UNAVAILABLE, message)
        .with_details(json!({"code": "OUTBOUND_DELIVERY_QUEUED"}))
}

/// `mqtt.status`: the MQTT bridge's connection, in a channel account's
/// shape (`running`, `connected`, `healthState`, `lastError`,
/// `reconnectCount`, …); `{running: false}` when `[mqtt]` is not
/// configured.
pub async fn mqtt_status(call: &Call, _params: Value) -> Reply {
    Ok(match call.shared.mqtt.get() {
        Some(bridge) => bridge.status_json(),
        None => {
            json!({"running": false, "configured": call.shared.settings.config.mqtt_configured()})
        }
    })
}
