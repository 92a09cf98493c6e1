//! One accepted socket: admission at accept, then HTTP requests (the
//! dashboard's files, `/healthz`, `/readyz`; kept alive for the next) until
//! a WebSocket upgrade passes the browser checks and becomes the
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::admission::{PreauthSlot, Refusal, SocketSlot};
use super::handshake::Peer;
use super::stream::{GatewayStream, PreauthBudget};
use super::{Shared, conn, http, web};
use crate::limits;

/// A socket was accepted: admit it (or answer why not) and serve it on its
/// own task.
pub(super) fn accepted(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    match shared.admission.admit(peer.ip()) {
        Ok((socket_slot, preauth_slot)) => {
            tokio::spawn(serve(
                shared.clone(),
                stream,
                peer,
                socket_slot,
                preauth_slot,
            ));
        }
        Err(refusal) => {
            if refusal != Refusal::TooManyFromAddress {
                tracing::warn!(ip = %peer.ip(), ?refusal, "refusing a socket");
            }
            tokio::spawn(refuse(stream, refusal));
        }
    }
}

/// Answer a refused socket without reading its request, then close it.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (status, body) = refusal.response();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        http::write_json(&mut stream, status, body).await;
        // Read what the client already sent, so closing sends FIN, not a
        // reset that could destroy the answer before the client reads it.
        let mut sink = [0u8; 1024];
        let _ = stream.read(&mut sink).await;
    })
    .await;
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits::WS_READ_BUFFER_BYTES)
        .write_buffer_size(limits::WS_WRITE_BUFFER_BYTES)
        .max_write_buffer_size(limits::MAX_BUFFERED_BYTES + limits::MAX_PAYLOAD_BYTES)
        .max_message_size(Some(limits::MAX_PAYLOAD_BYTES))
        .max_frame_size(Some(limits::MAX_PAYLOAD_BYTES))
}

async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    socket_slot: SocketSlot,
    preauth_slot: PreauthSlot,
) {
    let _ = stream.set_nodelay(true);
    let mut buffered = Vec::new();
    let mut timeout = limits::HTTP_HEAD_TIMEOUT;
    // HTTP/1.1 keep-alive: the page and its assets on one connection, up
    // to a number of requests, each head within its time limit.
    for _ in 0..limits::HTTP_KEEPALIVE_REQUESTS {
        // Boxed: the head's read buffer is needed only until the head is in.
        let (head, leftover) = match Box::pin(http::read_head(&mut stream, buffered, timeout)).await
        {
            Ok(x) => x,
            Err(http::HeadError::TooLarge) => {
                return http::respond_json(
                    &mut stream,
                    431,
                    r#"{"ok":false,"error":"request head too large"}"#,
                )
                .await;
            }
            Err(http::HeadError::Malformed) => {
                return http::respond_json(
                    &mut stream,
                    400,
                    r#"{"ok":false,"error":"malformed HTTP request"}"#,
                )
                .await;
            }
            Err(_) => return,
        };
        if head.websocket_key().is_some() {
            return upgrade(
                shared,
                stream,
                peer,
                head,
                leftover,
                socket_slot,
                preauth_slot,
            )
            .await;
        }
        let keep_alive = head.keep_alive();
        let response = serve_http(&shared, &head);
        let head_only = head.method == "HEAD";
        let kept = keep_alive && response.status() < 400;
        if !http::write_response(&mut stream, &response.as_response(), kept, head_only).await
            || !kept
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            return;
        }
        buffered = leftover;
        timeout = limits::HTTP_KEEPALIVE_IDLE;
    }
}

/// The WebSocket upgrade, after the browser checks: a `Host` the gateway
/// answers to, and a page origin it lets in.
async fn upgrade(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    head: http::RequestHead,
    leftover: Vec<u8>,
    socket_slot: SocketSlot,
    preauth_slot: PreauthSlot,
) {
    let config = &shared.settings.config.gateway;
    let host = head.header("host");
    let origin = head.header("origin");
    let refused = if !web::host_allowed(host, config, &shared.hostname) {
        Some(format!(
            "this gateway does not answer to the name {:?}; add it to gateway.allowed_hosts",
            host.unwrap_or_default()
        ))
    } else if !web::origin_allowed(origin, host, config) {
        Some(format!(
            "a page from {:?} may not open this gateway's WebSocket (only its own dashboard); add it to gateway.allowed_origins",
            origin.unwrap_or_default()
        ))
    } else {
        None
    };
    if let Some(why) = refused {
        tracing::warn!(ip = %peer.ip(), "WebSocket refused: {why}");
        let body = json!({"ok": false, "error": why}).to_string();
        return http::respond_json(&mut stream, 403, &body).await;
    }
    let Some(key) = head.websocket_key().map(str::to_owned) else {
        return;
    };
    if http::accept_upgrade(&mut stream, &key).await.is_err() {
        return;
    }
    let peer = Peer {
        ip: peer.ip(),
        direct_loopback: peer.ip().is_loopback() && !head.is_forwarded_or_browser(),
    };
    drop(head);
    let budget = PreauthBudget::new();
    let ws = WebSocketStream::from_partially_read(
        GatewayStream::new(stream, budget.clone()),
        leftover,
        WsRole::Server,
        Some(ws_config()),
    )
    .await;
    conn::run(shared, ws, peer, budget, preauth_slot).await;
    drop(socket_slot);
}

/// An HTTP answer: owned JSON, or an embedded file.
enum Answer {
    Json(u16, String),
    Asset {
        asset: &'static web::Asset,
        not_modified: bool,
        csp: Option<String>,
    },
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Json(status, _) => *status,
            Answer::Asset { not_modified, .. } => {
                if *not_modified {
                    304
                } else {
                    200
                }
            }
        }
    }

    fn as_response(&self) -> http::Response<'_> {
        match self {
            Answer::Json(status, body) => http::Response::json(*status, body),
            Answer::Asset { asset, csp, .. } => {
                let mut headers = vec![
                    ("content-type", asset.mime.to_owned()),
                    ("content-encoding", "gzip".to_owned()),
                    ("vary", "Accept-Encoding".to_owned()),
                    ("etag", asset.etag.to_owned()),
                    ("cache-control", "no-cache".to_owned()),
                    ("x-content-type-options", "nosniff".to_owned()),
                    ("referrer-policy", "no-referrer".to_owned()),
                ];
                if let Some(csp) = csp {
                    headers.push(("content-security-policy", csp.clone()));
                    headers.push(("x-frame-options", "DENY".to_owned()));
                    headers.push((
                        "permissions-policy",
                        "camera=(), microphone=(), geolocation=()".to_owned(),
                    ));
                }
                http::Response {
                    status: self.status(),
                    headers,
                    body: asset.gz,
                }
            }
        }
    }
}

fn serve_http(shared: &Shared, head: &http::RequestHead) -> Answer {
    let json = |status: u16, body: &str| Answer::Json(status, body.to_owned());
    let path = head.path.split('?').next().unwrap_or("/");
    if head.method != "GET" && head.method != "HEAD" {
        return json(405, r#"{"ok":false,"error":"method not allowed"}"#);
    }
    match path {
        "/healthz" | "/health" => json(200, r#"{"ok":true,"status":"live"}"#),
        "/readyz" | "/ready" => {
            let ready = shared.is_ready();
            // Degraded channels are named but do not fail readiness: the
            // gateway serves, and a restart would not fix a revoked token.
            let body = json!({
                "ready": ready,
                "failing": if ready { json!([]) } else { json!(["gateway"]) },
                "degraded": shared.channels.degraded(),
                "uptimeMs": shared.started.elapsed().as_millis() as u64,
            });
            Answer::Json(if ready { 200 } else { 503 }, body.to_string())
        }
        _ => match web::asset(path) {
            Some(asset) => {
                let host = head.header("host");
                if !web::host_allowed(host, &shared.settings.config.gateway, &shared.hostname) {
                    let body = json!({"ok": false, "error": format!(
                        "this gateway does not answer to the name {:?}; add it to gateway.allowed_hosts",
                        host.unwrap_or_default()
                    )});
                    return Answer::Json(421, body.to_string());
                }
                let not_modified = head
                    .header("if-none-match")
                    .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
                let csp = asset
                    .mime
                    .starts_with("text/html")
                    .then(|| web::csp(host.unwrap_or("localhost")));
                Answer::Asset {
                    asset,
                    not_modified,
                    csp,
                }
            }
            None => json(404, r#"{"ok":false,"error":"not found"}"#),
        },
    }
}
