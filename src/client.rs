//! A small OpenClaw-protocol client: handshake (with an optional device
//! identity), request/response, and a bounded buffer of received events.
//! Used by the CLI (`pinclaw call`, `pinclaw devices`) and by tests.

use std::collections::VecDeque;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::device_auth;

/// Events kept while waiting for responses; the oldest is dropped beyond it.
const EVENT_BUFFER: usize = 1024;

/// Who the client claims to be.
#[derive(Clone)]
pub struct ClientOptions {
    /// Shared token.
    pub token: Option<String>,
    /// Shared password.
    pub password: Option<String>,
    /// Device token from an earlier pairing.
    pub device_token: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub mode: String,
    /// `operator` or `node`.
    pub role: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Capabilities.
    pub caps: Vec<String>,
    /// Node commands.
    pub commands: Vec<String>,
    /// Device identity to prove, if any.
    pub device: Option<SigningKey>,
    /// Protocol range.
    pub protocol: (u32, u32),
    /// Display name.
    pub display_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            token: None,
            password: None,
            device_token: None,
            client_id: "cli".into(),
            mode: "cli".into(),
            role: "operator".into(),
            scopes: vec!["operator.admin".into()],
            caps: Vec::new(),
            commands: Vec::new(),
            device: None,
            protocol: (4, 4),
            display_name: None,
        }
    }
}

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("connection failed: {0}")]
    Transport(String),
    /// The gateway answered with an error.
    #[error("{code}: {message}")]
    Rpc {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// The whole error object.
        error: Value,
    },
    /// The gateway closed the connection.
    #[error("connection closed{}", .0.as_ref().map(|(c, r)| format!(" ({c} {r})")).unwrap_or_default())]
    Closed(Option<(u16, String)>),
    /// No answer in time.
    #[error("timed out waiting for the gateway")]
    Timeout,
}

/// A connected, authenticated client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: VecDeque<Value>,
    /// The `hello-ok` payload.
    pub hello: Value,
}

impl Client {
    /// Connect and complete the handshake.
    pub async fn connect(url: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut client = Self {
            ws,
            next_id: 0,
            events: VecDeque::new(),
            hello: Value::Null,
        };
        let challenge = client
            .wait_event("connect.challenge", Duration::from_secs(15))
            .await?;
        let nonce = challenge["payload"]["nonce"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let ts = challenge["payload"]["ts"]
            .as_i64()
            .unwrap_or_else(crate::ids::now_ms);
        let params = connect_params(options, &nonce, ts);
        client.hello = client.call("connect", params).await?;
        Ok(client)
    }

    /// Call a method and wait for its (final) response payload. An
    /// `accepted` first response of a two-phase method is skipped.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.send_request(method, params).await?;
        loop {
            let frame = self.read_frame().await?;
            if let Some(result) = response_to(&frame, &id) {
                return result;
            }
            self.keep_event(frame);
        }
    }

    /// [`Client::call`], handing every event that arrives meanwhile to
    /// `on_event` instead of buffering it (to show progress while waiting).
    pub async fn call_watching(
        &mut self,
        method: &str,
        params: Value,
        mut on_event: impl FnMut(&Value),
    ) -> Result<Value, ClientError> {
        let id = self.send_request(method, params).await?;
        loop {
            let frame = self.read_frame().await?;
            if let Some(result) = response_to(&frame, &id) {
                return result;
            }
            if frame["type"] == "event" {
                on_event(&frame);
            }
        }
    }

    async fn send_request(&mut self, method: &str, params: Value) -> Result<String, ClientError> {
        self.next_id += 1;
        let id = format!("{}:{}", self.next_id, crate::ids::uuid_v4());
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(id)
    }

    /// The next event (a buffered one first), whatever its name.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Value, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        tokio::time::timeout(timeout, async {
            loop {
                let frame = self.read_frame().await?;
                if frame["type"] == "event" {
                    return Ok(frame);
                }
            }
        })
        .await
        .unwrap_or(Err(ClientError::Timeout))
    }

    /// Wait for an event by name (buffered ones first).
    pub async fn wait_event(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(pos).ok_or(ClientError::Timeout);
        }
        tokio::time::timeout(timeout, async {
            loop {
                let frame = self.read_frame().await?;
                if frame["type"] == "event" && frame["event"] == name {
                    return Ok(frame);
                }
                self.keep_event(frame);
            }
        })
        .await
        .unwrap_or(Err(ClientError::Timeout))
    }

    /// Events received so far and not yet consumed.
    pub fn take_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }

    fn keep_event(&mut self, frame: Value) {
        if frame["type"] == "event" {
            if self.events.len() >= EVENT_BUFFER {
                self.events.pop_front();
            }
            self.events.push_back(frame);
        }
    }

    async fn read_frame(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map_err(|e| ClientError::Transport(format!("bad frame: {e}")));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Transport(e.to_string())),
                None => return Err(ClientError::Closed(None)),
            }
        }
    }

    /// Close politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// The outcome carried by `frame` if it is the final response to request
/// `id` (an `accepted` first response is not).
fn response_to(frame: &Value, id: &str) -> Option<Result<Value, ClientError>> {
    if frame["type"] != "res" || frame["id"] != id {
        return None;
    }
    if frame["ok"] == true {
        if frame["payload"]["status"] == "accepted" {
            return None;
        }
        return Some(Ok(frame["payload"].clone()));
    }
    let error = frame["error"].clone();
    Some(Err(ClientError::Rpc {
        code: error["code"].as_str().unwrap_or("").to_owned(),
        message: error["message"].as_str().unwrap_or("").to_owned(),
        error,
    }))
}

/// Build `connect` params, signing the v3 payload when a device key is given.
pub fn connect_params(options: &ClientOptions, nonce: &str, signed_at: i64) -> Value {
    let mut params = json!({
        "minProtocol": options.protocol.0,
        "maxProtocol": options.protocol.1,
        "client": {
            "id": options.client_id,
            "version": env!("CARGO_PKG_VERSION"),
            "platform": std::env::consts::OS,
            "mode": options.mode,
            "displayName": options.display_name,
        },
        "role": options.role,
        "scopes": options.scopes,
        "caps": options.caps,
        "commands": options.commands,
        "auth": {
            "token": options.token,
            "password": options.password,
            "deviceToken": options.device_token,
        },
    });
    // OpenClaw's schema rejects `null` for optional fields: leave them out.
    strip_nulls(&mut params);
    if let Some(key) = &options.device
        && let Ok(parsed) =
            serde_json::from_value::<crate::protocol::connect::ConnectParams>(params.clone())
    {
        let public = key.verifying_key().to_bytes();
        let device_id = device_auth::device_id_for(&public);
        let payload = device_auth::payload_v3(&parsed, &device_id, signed_at, nonce);
        let signature = key.sign(payload.as_bytes()).to_bytes();
        params["device"] = json!({
            "id": device_id,
            "publicKey": device_auth::encode_base64url(&public),
            "signature": device_auth::encode_base64url(&signature),
            "signedAt": signed_at,
            "nonce": nonce,
        });
    }
    params
}

/// Remove object members whose value is `null`, recursively.
fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}
