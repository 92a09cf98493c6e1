//! Shared helpers for integration tests: an in-process gateway on
//! 127.0.0.1:0 with a temp state dir, and raw WebSocket helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pinclaw::client::{Client, ClientOptions};
use pinclaw::config::{AuthMode, Config, Secret};
use pinclaw::gateway::{GatewayHandle, GatewaySettings};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The token every test gateway uses unless changed.
pub const TOKEN: &str = "test-token-0123456789";

/// A gateway running inside the test's runtime.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub url: String,
    pub handle: GatewayHandle,
    pub settings: GatewaySettings,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Default test settings in `state_dir`.
pub fn settings(state_dir: &std::path::Path) -> GatewaySettings {
    let mut s = GatewaySettings::from_config(Config::default(), None)
        .unwrap_or_else(|e| panic!("settings: {e}"));
    s.port = 0;
    s.auth_mode = AuthMode::Token;
    s.token = Some(Secret::new(TOKEN));
    s.state_dir = state_dir.to_owned();
    s
}

impl TestGateway {
    /// Start with settings adjusted by `customize`.
    pub async fn start_with(settings: GatewaySettings) -> Self {
        let gateway = pinclaw::app::bind(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = gateway.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let handle = gateway.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            url: format!("ws://{addr}"),
            handle,
            settings,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Start with default settings in `dir`.
    pub async fn start(dir: &std::path::Path) -> Self {
        Self::start_with(settings(dir)).await
    }

    /// Stop gracefully and wait for the run loop to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Client options for a CLI-like operator with `scopes` and the token.
    pub fn cli(&self, scopes: &[&str]) -> ClientOptions {
        ClientOptions {
            token: Some(TOKEN.into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..ClientOptions::default()
        }
    }

    /// Connect a CLI-like operator.
    pub async fn client(&self, scopes: &[&str]) -> Client {
        Client::connect(&self.url, &self.cli(scopes))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a raw WebSocket, optionally with extra request headers.
pub async fn raw_connect(url: &str, headers: &[(&'static str, &str)]) -> RawWs {
    let mut request = url
        .into_client_request()
        .unwrap_or_else(|e| panic!("request: {e}"));
    for (name, value) in headers {
        request.headers_mut().insert(
            *name,
            value.parse().unwrap_or_else(|e| panic!("header: {e}")),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("ws connect: {e}"));
    ws
}

/// What the next frame was.
#[derive(Debug)]
pub enum Next {
    Json(Value),
    Close(u16, String),
    Ended,
}

/// Read the next text frame or close (skipping pings), with a timeout.
pub async fn next(ws: &mut RawWs) -> Next {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return Next::Json(
                        serde_json::from_str(&t).unwrap_or_else(|e| panic!("json: {e}: {t}")),
                    );
                }
                Some(Ok(Message::Close(f))) => {
                    return f
                        .map(|f| Next::Close(u16::from(f.code), f.reason.to_string()))
                        .unwrap_or(Next::Ended);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Next::Ended,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no frame within 20 s"))
}

/// The next frame, which must be JSON.
pub async fn next_json(ws: &mut RawWs) -> Value {
    match next(ws).await {
        Next::Json(v) => v,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// The next non-JSON outcome: a close code (0 when the socket just ended).
pub async fn expect_close(ws: &mut RawWs) -> (u16, String) {
    loop {
        match next(ws).await {
            Next::Json(_) => continue,
            Next::Close(code, reason) => return (code, reason),
            Next::Ended => return (0, String::new()),
        }
    }
}

/// Send a JSON value as a text frame.
pub async fn send(ws: &mut RawWs, value: &Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
}

/// A `connect` request frame from params.
pub fn connect_frame(params: Value) -> Value {
    serde_json::json!({"type": "req", "id": "c1", "method": "connect", "params": params})
}

/// Plain cli/cli connect params with the test token.
pub fn cli_params(scopes: &[&str]) -> Value {
    serde_json::json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": scopes, "auth": {"token": TOKEN},
    })
}

/// Raw connect: read the challenge, send `params`, return the response frame.
pub async fn raw_handshake(ws: &mut RawWs, params: Value) -> Value {
    let challenge = next_json(ws).await;
    assert_eq!(challenge["event"], "connect.challenge");
    send(ws, &connect_frame(params)).await;
    next_json(ws).await
}

/// A fresh Ed25519 key.
pub fn new_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap_or_else(|e| panic!("random: {e}"));
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// The next `res` frame, skipping events.
pub async fn next_res(ws: &mut RawWs) -> Value {
    loop {
        let frame = next_json(ws).await;
        if frame["type"] == "res" {
            return frame;
        }
    }
}

/// Connect a node (fresh device identity, role node) declaring `commands`
/// and have `admin` approve its command surface.
pub async fn paired_node(url: &str, admin: &mut Client, name: &str, commands: &[&str]) -> Client {
    let options = ClientOptions {
        token: Some(TOKEN.into()),
        role: "node".into(),
        client_id: "node-host".into(),
        mode: "node".into(),
        scopes: vec![],
        commands: commands.iter().map(|c| c.to_string()).collect(),
        device: Some(new_key()),
        display_name: Some(name.into()),
        ..ClientOptions::default()
    };
    let node = Client::connect(url, &options)
        .await
        .unwrap_or_else(|e| panic!("node connect: {e}"));
    let requested = admin
        .wait_event("node.pair.requested", Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    admin
        .call(
            "node.pair.approve",
            serde_json::json!({"requestId": requested["payload"]["requestId"]}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    node
}

/// Connect an operator with `token` and `scopes` to the gateway at `url`
/// (for tasks that do not hold a [`TestGateway`], or a gateway process).
pub async fn operator_at(url: &str, token: &str, scopes: &[&str]) -> Client {
    Client::connect(
        url,
        &ClientOptions {
            token: Some(token.into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}
