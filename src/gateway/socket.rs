//! One accepted socket: admission at accept, the request head, then either
//! an HTTP answer (`/healthz`, `/readyz`) or the WebSocket upgrade and the
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::admission::{PreauthSlot, Refusal, SocketSlot};
use super::handshake::Peer;
use super::stream::{GatewayStream, PreauthBudget};
use super::{Shared, conn, http};
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
    // Boxed: the head's read buffer is needed only until the head is in.
    let (head, leftover) = match Box::pin(http::read_head(&mut stream)).await {
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
    let Some(key) = head.websocket_key().map(str::to_owned) else {
        return serve_http(&shared, &mut stream, &head).await;
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

async fn serve_http(shared: &Shared, stream: &mut TcpStream, head: &http::RequestHead) {
    let path = head.path.split('?').next().unwrap_or("/");
    if head.method != "GET" && head.method != "HEAD" {
        return http::respond_json(stream, 405, r#"{"ok":false,"error":"method not allowed"}"#)
            .await;
    }
    match path {
        "/healthz" | "/health" => {
            http::respond_json(stream, 200, r#"{"ok":true,"status":"live"}"#).await
        }
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
            http::respond_json(stream, if ready { 200 } else { 503 }, &body.to_string()).await
        }
        _ => http::respond_json(stream, 404, r#"{"ok":false,"error":"not found"}"#).await,
    }
}
