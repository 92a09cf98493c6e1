//! Node-host mode: join any OpenClaw-compatible gateway (pinclaw or
//! OpenClaw) as role `node`, advertise this board's commands, and answer
//! `node.invoke.request` events.
//!
//! The identity (an Ed25519 seed) persists in the state directory so the
//! gateway's pairing survives restarts; the device token the gateway issues
//! is kept next to it. Reconnects back off exponentially with full jitter
//! (1 s doubling to 60 s); a pending pairing is waited out at a slow, fixed
//! pace instead of hammering the gateway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{ClientOptions, connect_params};
use crate::protocol::device_auth;
use crate::{ids, limits};

/// A boxed future returned by [`CommandHandler::handle`].
pub type HandlerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, HandlerError>> + Send>>;

/// A command failure reported back to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// Stable code, e.g. `UNKNOWN_DEVICE`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// What a node host serves.
pub trait CommandHandler: Send + Sync + 'static {
    /// Commands to declare at connect.
    fn commands(&self) -> Vec<String>;
    /// Capability categories to declare.
    fn caps(&self) -> Vec<String>;
    /// Run one command.
    fn handle(&self, command: String, params: Value) -> HandlerFuture;
}

/// Where and how to connect.
#[derive(Clone)]
pub struct NodeHostOptions {
    /// Gateway WebSocket URL.
    pub url: String,
    /// Gateway shared token.
    pub token: Option<String>,
    /// Gateway shared password.
    pub password: Option<String>,
    /// Display name.
    pub name: String,
    /// Directory for the identity and device token.
    pub state_dir: PathBuf,
    /// Pause between attempts while the device waits for pairing approval.
    pub pairing_retry: Duration,
}

impl NodeHostOptions {
    /// Options with the default pairing retry pace.
    pub fn new(url: impl Into<String>, name: impl Into<String>, state_dir: PathBuf) -> Self {
        Self {
            url: url.into(),
            token: None,
            password: None,
            name: name.into(),
            state_dir,
            pairing_retry: PAIRING_WAIT,
        }
    }
}

impl std::fmt::Debug for NodeHostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHostOptions")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Why a session with the gateway ended.
#[derive(Debug)]
enum SessionEnd {
    /// Connection lost or refused for a transient reason.
    Retry(String),
    /// The device is waiting for an operator's approval.
    AwaitingPairing(String),
    /// Credentials were rejected: retrying will not help until fixed.
    Unauthorized(String),
}

const IDENTITY_FILE: &str = "node-identity.key";
const TOKEN_FILE: &str = "node-device-tokens.json";
/// Pause between attempts while a pairing request is pending.
const PAIRING_WAIT: Duration = Duration::from_secs(15);
/// Pause after the gateway rejected our credentials.
const UNAUTHORIZED_WAIT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Commands served at once; more wait for a slot.
const MAX_CONCURRENT_COMMANDS: usize = 4;

/// Load the node's Ed25519 key from the state dir, creating it once.
pub fn load_identity(state_dir: &Path) -> std::io::Result<SigningKey> {
    let path = state_dir.join(IDENTITY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(seed) =
            device_auth::decode_base64_any(text.trim()).and_then(|b| <[u8; 32]>::try_from(b).ok())
    {
        return Ok(SigningKey::from_bytes(&seed));
    }
    std::fs::create_dir_all(state_dir)?;
    let seed = ids::random_bytes::<32>();
    crate::store::write_private_file(&path, &device_auth::encode_base64url(&seed))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn load_tokens(state_dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(state_dir.join(TOKEN_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_token(state_dir: &Path, url: &str, token: &str) {
    let mut tokens = load_tokens(state_dir);
    if tokens.get(url).map(String::as_str) == Some(token) {
        return;
    }
    tokens.insert(url.to_owned(), token.to_owned());
    let text = serde_json::to_string(&tokens).unwrap_or_default();
    if let Err(e) = crate::store::write_private_file(&state_dir.join(TOKEN_FILE), &text) {
        tracing::warn!("could not save the device token: {e}");
    }
}

/// A jittered delay in `[0, ceiling]` (full jitter).
fn jitter(ceiling: Duration) -> Duration {
    let r = u64::from_le_bytes(ids::random_bytes::<8>());
    let ms = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(r % (ms + 1))
}

/// The node's id (sha256 of its public key).
pub fn node_id(key: &SigningKey) -> String {
    device_auth::device_id_for(&key.verifying_key().to_bytes())
}

/// Run until `shutdown` resolves: connect, serve, reconnect.
pub async fn run(
    options: NodeHostOptions,
    handler: Arc<dyn CommandHandler>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let key = load_identity(&options.state_dir)?;
    tracing::info!(node_id = %node_id(&key), url = %options.url, "node host starting");
    tokio::pin!(shutdown);
    let mut backoff = BACKOFF_START;
    loop {
        let session = session(&options, &key, &handler, &mut backoff);
        let end = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            end = session => end,
        };
        let wait = match &end {
            SessionEnd::AwaitingPairing(request) => {
                tracing::info!(
                    "waiting for the gateway operator to approve this device ({request}); retrying in {} s",
                    options.pairing_retry.as_secs()
                );
                options.pairing_retry + jitter(options.pairing_retry / 5)
            }
            SessionEnd::Unauthorized(why) => {
                tracing::error!(
                    "gateway refused our credentials: {why}; retrying in {} s",
                    UNAUTHORIZED_WAIT.as_secs()
                );
                UNAUTHORIZED_WAIT
            }
            SessionEnd::Retry(why) => {
                let wait = jitter(backoff);
                tracing::warn!(
                    "gateway connection ended: {why}; reconnecting in {} ms",
                    wait.as_millis()
                );
                backoff = (backoff * 2).min(BACKOFF_MAX);
                wait
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn session(
    options: &NodeHostOptions,
    key: &SigningKey,
    handler: &Arc<dyn CommandHandler>,
    backoff: &mut Duration,
) -> SessionEnd {
    let (ws, _) = match tokio_tungstenite::connect_async(options.url.as_str()).await {
        Ok(x) => x,
        Err(e) => return SessionEnd::Retry(e.to_string()),
    };
    let (mut sink, mut stream) = ws.split();
    // Challenge.
    let challenge = loop {
        match tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["event"] == "connect.challenge" {
                    break v;
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return SessionEnd::Retry("closed before the challenge".into()),
            Err(_) => return SessionEnd::Retry("no challenge from the gateway".into()),
        }
    };
    let nonce = challenge["payload"]["nonce"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let ts = challenge["payload"]["ts"]
        .as_i64()
        .unwrap_or_else(ids::now_ms);
    let client = ClientOptions {
        token: options.token.clone(),
        password: options.password.clone(),
        device_token: load_tokens(&options.state_dir).get(&options.url).cloned(),
        client_id: "node-host".into(),
        mode: "node".into(),
        role: "node".into(),
        scopes: Vec::new(),
        caps: handler.caps(),
        commands: handler.commands(),
        device: Some(key.clone()),
        protocol: (4, 4),
        display_name: Some(options.name.clone()),
    };
    let mut params = connect_params(&client, &nonce, ts);
    params["client"]["id"] = json!("node-host");
    let connect = json!({"type": "req", "id": "1:connect", "method": "connect", "params": params});
    if sink.send(Message::text(connect.to_string())).await.is_err() {
        return SessionEnd::Retry("send failed".into());
    }
    let hello = loop {
        match tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["type"] == "res" && v["id"] == "1:connect" {
                    break v;
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return SessionEnd::Retry("closed during the handshake".into()),
            Err(_) => return SessionEnd::Retry("no hello from the gateway".into()),
        }
    };
    if hello["ok"] != true {
        let error = &hello["error"];
        let detail = error["details"]["code"].as_str().unwrap_or("");
        let message = error["message"].as_str().unwrap_or("refused").to_owned();
        return match detail {
            "PAIRING_REQUIRED" => SessionEnd::AwaitingPairing(format!(
                "request {}",
                error["details"]["requestId"].as_str().unwrap_or("?")
            )),
            d if d.starts_with("AUTH_") && d != "AUTH_RATE_LIMITED" => {
                SessionEnd::Unauthorized(message)
            }
            _ => SessionEnd::Retry(message),
        };
    }
    *backoff = BACKOFF_START;
    if let Some(token) = hello["payload"]["auth"]["deviceToken"].as_str() {
        save_token(&options.state_dir, &options.url, token);
    }
    let tick_ms = hello["payload"]["policy"]["tickIntervalMs"]
        .as_u64()
        .unwrap_or(30_000)
        .max(1000);
    tracing::info!(url = %options.url, "node host connected");

    // Serve: events in, results out through one writer.
    let (out_tx, mut out_rx) = mpsc::channel::<String>(64);
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_COMMANDS));
    let mut running: HashMap<String, AbortHandle> = HashMap::new();
    let mut next_id: u64 = 1;
    let silence = Duration::from_millis(tick_ms * 2);
    loop {
        tokio::select! {
            Some(frame) = out_rx.recv() => {
                if sink.send(Message::text(frame)).await.is_err() {
                    return SessionEnd::Retry("send failed".into());
                }
            }
            msg = tokio::time::timeout(silence, stream.next()) => match msg {
                Err(_) => return SessionEnd::Retry(format!("no frame from the gateway for {} s", silence.as_secs())),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    running.retain(|_, h| !h.is_finished());
                    match v["event"].as_str() {
                        Some("node.invoke.request") => {
                            let p = &v["payload"];
                            let invoke_id = p["id"].as_str().unwrap_or("").to_owned();
                            let node = p["nodeId"].as_str().unwrap_or("").to_owned();
                            let command = p["command"].as_str().unwrap_or("").to_owned();
                            let params: Value = p["paramsJSON"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(json!({}));
                            next_id += 1;
                            let req_id = format!("{next_id}:{}", ids::uuid_v4());
                            let (handler, out, slots) = (handler.clone(), out_tx.clone(), slots.clone());
                            let id = invoke_id.clone();
                            let task = tokio::spawn(async move {
                                let Ok(_slot) = slots.acquire_owned().await else { return };
                                let result = handler.handle(command, params).await;
                                let params = match result {
                                    Ok(payload) => json!({"id": id, "nodeId": node, "ok": true, "payloadJSON": payload.to_string()}),
                                    Err(e) => json!({"id": id, "nodeId": node, "ok": false, "error": {"code": e.code, "message": e.message}}),
                                };
                                let frame = json!({"type": "req", "id": req_id, "method": "node.invoke.result", "params": params});
                                let _ = out.send(frame.to_string()).await;
                            });
                            running.insert(invoke_id, task.abort_handle());
                        }
                        Some("node.invoke.cancel") => {
                            if let Some(h) = v["payload"]["invokeId"].as_str().and_then(|id| running.remove(id)) {
                                h.abort();
                            }
                        }
                        Some("node.pair.resolved") => {
                            tracing::info!(decision = %v["payload"]["decision"], "the gateway resolved this node's command approval");
                        }
                        _ => {}
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return SessionEnd::Retry(format!("closed by the gateway: {}", frame.map(|f| f.reason.to_string()).unwrap_or_default()));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return SessionEnd::Retry(e.to_string()),
                Ok(None) => return SessionEnd::Retry("connection closed".into()),
            }
        }
    }
}
