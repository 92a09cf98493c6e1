//! One WebSocket connection: challenge, handshake, then requests, events
//! and keepalive until it closes.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::admission::PreauthSlot;
use super::bus::Conn;
use super::handshake::{self, Peer};
use super::methods::Run;
use super::stream::{GatewayStream, PREAUTH_EXCEEDED, PreauthBudget};
use super::{Shared, methods, nodes};
use crate::ids;
use crate::limits;
use crate::protocol::connect::{ConnectParams, Role};
use crate::protocol::error::{ErrorShape, codes};
use crate::protocol::frames;

type Ws = WebSocketStream<GatewayStream>;

/// Close the socket with a code and reason, without waiting long.
async fn close(ws: &mut Ws, code: u16, reason: &str) {
    close_within(ws, code, reason, std::time::Duration::from_secs(1)).await
}

/// Close, giving up after `limit` (a slow consumer's socket is full, so its
/// close frame may never get out).
async fn close_within(ws: &mut Ws, code: u16, reason: &str, limit: std::time::Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(limit, ws.close(Some(frame))).await;
}

/// Whether a read error is the pre-auth cap or tungstenite's message cap.
fn is_too_large(e: &WsError) -> bool {
    match e {
        WsError::Capacity(_) => true,
        WsError::Io(io) => io.to_string().contains(PREAUTH_EXCEEDED),
        _ => false,
    }
}

/// Wait for the first text frame, answering nothing else.
async fn first_frame(ws: &mut Ws) -> Result<Option<String>, u16> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(Some(text.to_string())),
            Some(Ok(Message::Binary(_))) => return Ok(None),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => return Err(0),
            Some(Err(e)) if is_too_large(&e) => return Err(1009),
            Some(Err(_)) => return Err(0),
        }
    }
}

/// Challenge, `connect`, admission and `hello-ok`. Returns the registered
/// connection, or `None` when the socket was refused or went away. Kept
/// apart from [`serve`] so everything built for the handshake (the request,
/// the hello-ok tree) is freed before the connection settles in.
async fn handshake(
    shared: &Arc<Shared>,
    ws: &mut Ws,
    peer: Peer,
    budget: PreauthBudget,
    preauth_slot: PreauthSlot,
) -> Option<Arc<Conn>> {
    let nonce = ids::uuid_v4();
    let challenge = frames::event_unsequenced(
        "connect.challenge",
        &json!({"nonce": nonce, "ts": ids::now_ms()}),
    );
    if ws.send(Message::text(challenge)).await.is_err() {
        return None;
    }
    let first = match tokio::time::timeout(limits::HANDSHAKE_TIMEOUT, first_frame(ws)).await {
        Err(_) => {
            close(ws, 1008, "handshake timeout").await;
            return None;
        }
        Ok(Err(0)) => return None,
        Ok(Err(code)) => {
            close(ws, code, "preauth payload too large").await;
            return None;
        }
        Ok(Ok(first)) => first,
    };
    let refuse = |id: &str, error: ErrorShape| frames::response_err(id, &error);
    let Some(text) = first else {
        let _ = ws
            .send(Message::text(refuse(
                "",
                ErrorShape::invalid("invalid request frame"),
            )))
            .await;
        close(ws, 1008, "invalid request frame").await;
        return None;
    };
    let req = match frames::parse_request(&text) {
        Ok(req) => req,
        Err(_) => {
            let reply = refuse(
                &frames::salvage_id(&text),
                ErrorShape::invalid("invalid request frame"),
            );
            let _ = ws.send(Message::text(reply)).await;
            close(ws, 1008, "invalid request frame").await;
            return None;
        }
    };
    if req.method != "connect" {
        let reply = refuse(
            &req.id,
            ErrorShape::invalid("invalid handshake: first request must be connect"),
        );
        let _ = ws.send(Message::text(reply)).await;
        close(ws, 1008, "invalid handshake: first request must be connect").await;
        return None;
    }
    if !shared.is_ready() {
        let error = ErrorShape::new(codes::UNAVAILABLE, "gateway not ready; retry shortly")
            .with_details(json!({"reason": "shutting-down"}))
            .retry_after(500);
        let _ = ws.send(Message::text(refuse(&req.id, error))).await;
        close(ws, 1013, "gateway not ready").await;
        return None;
    }
    let params: ConnectParams = match serde_json::from_value(req.params) {
        Ok(p) => p,
        Err(e) => {
            let reply = refuse(
                &req.id,
                ErrorShape::invalid(format!("invalid connect params: {e}")),
            );
            let _ = ws.send(Message::text(reply)).await;
            close(ws, 1008, "invalid connect params").await;
            return None;
        }
    };
    let admitted = match handshake::admit(shared, &params, &nonce, peer).await {
        Ok(a) => a,
        Err(refusal) => {
            // Like OpenClaw, the close reason repeats the error message.
            let reason: String = refusal.error.message.chars().take(120).collect();
            let _ = ws.send(Message::text(refuse(&req.id, refusal.error))).await;
            close(ws, refusal.close_code, &reason).await;
            return None;
        }
    };
    budget.lift();
    drop(preauth_slot);

    let conn_id = ids::uuid_v4();
    let node_info = match (&admitted.device, admitted.role) {
        (Some(device), Role::Node) => Some(nodes::node_info(
            &device.device_id,
            &params,
            &peer.ip.to_string(),
        )),
        _ => None,
    };
    if let Some(info) = &node_info
        && !shared.nodes.has_room_for(&info.node_id)
    {
        let error = ErrorShape::new(codes::UNAVAILABLE, "too many nodes connected; retry later")
            .retry_after(30_000);
        let _ = ws.send(Message::text(refuse(&req.id, error))).await;
        close(ws, 1013, "too many nodes connected").await;
        return None;
    }
    let hello = handshake::hello_ok(shared, &admitted, &conn_id);
    let presence = (admitted.role == Role::Node).then(|| {
        json!({
            "ts": ids::now_ms(),
            "host": params.client.display_name.clone().unwrap_or_else(|| params.client.id.clone()),
            "ip": peer.ip.to_string(),
            "version": params.client.version,
            "platform": params.client.platform,
            "deviceFamily": params.client.device_family,
            "mode": params.client.mode,
            "deviceId": admitted.device.as_ref().map(|d| d.device_id.clone()),
            "roles": [admitted.role.as_str()],
            "scopes": admitted.scopes,
            "instanceId": params.client.instance_id,
            "reason": "connect",
        })
    });
    let who = format!(
        "{} {}{} from {}",
        admitted.role.as_str(),
        params.client.id,
        admitted
            .device
            .as_ref()
            .map(|d| format!(
                " (device {})",
                d.device_id.chars().take(12).collect::<String>()
            ))
            .unwrap_or_default(),
        peer.ip,
    );
    let conn = Arc::new(Conn::new(
        conn_id,
        admitted.role,
        admitted.scopes,
        admitted.device.map(|d| d.device_id),
        params.caps,
        presence,
        who,
    ));
    // Registered before hello-ok goes out, so that whatever the client does
    // after hello-ok (list devices, invoke this node) already sees it.
    // Events queued meanwhile are written after hello-ok by `serve`.
    let node_id = node_info.as_ref().map(|i| i.node_id.clone());
    if let Some(info) = node_info
        && let Err(error) = nodes::on_connect(shared, &conn, info).await
    {
        tracing::warn!(conn = %conn.conn_id, "node registration failed: {}", error.message);
        let _ = ws.send(Message::text(refuse(&req.id, error.clone()))).await;
        close(ws, 1013, &error.message).await;
        return None;
    }
    shared.bus.register(conn.clone());
    if ws
        .send(Message::text(frames::response_ok(&req.id, &hello)))
        .await
        .is_err()
    {
        shared.bus.unregister(&conn.conn_id);
        if let Some(node_id) = node_id {
            nodes::on_disconnect(shared, &node_id, &conn.conn_id);
        }
        return None;
    }
    tracing::debug!(conn = %conn.conn_id, role = conn.role.as_str(), client = %params.client.id, "connected");
    Some(conn)
}

/// Run a freshly upgraded connection to its end.
pub async fn run(
    shared: Arc<Shared>,
    mut ws: Ws,
    peer: Peer,
    budget: PreauthBudget,
    preauth_slot: PreauthSlot,
) {
    // Boxed: the handshake's state lives on the heap only while it runs, so
    // the long-lived task stays small.
    let Some(conn) = Box::pin(handshake(&shared, &mut ws, peer, budget, preauth_slot)).await else {
        return;
    };
    let reason = serve(&shared, &conn, &mut ws, shared.shutdown_signal()).await;
    conn.outbound.close();
    shared.bus.unregister(&conn.conn_id);
    if conn.role == Role::Node
        && let Some(node_id) = &conn.device_id
    {
        nodes::on_disconnect(&shared, node_id, &conn.conn_id);
    }
    tracing::debug!(conn = %conn.conn_id, reason, "disconnected");
}

/// Write every queued frame. Returns false when the socket failed.
async fn flush(ws: &mut Ws, conn: &Conn) -> bool {
    while let Some(frame) = conn.outbound.pop() {
        if ws.feed(Message::text(frame)).await.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

/// Stop delivering to a slow consumer at once, then try to say why.
async fn close_slow(shared: &Shared, conn: &Conn, ws: &mut Ws) -> &'static str {
    tracing::warn!(conn = %conn.conn_id, "closing slow consumer");
    shared.bus.unregister(&conn.conn_id);
    close_within(
        ws,
        1008,
        "slow consumer",
        std::time::Duration::from_millis(250),
    )
    .await;
    "slow consumer"
}

/// The authenticated phase. Returns why the connection ended.
async fn serve(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    ws: &mut Ws,
    mut shutdown: watch::Receiver<bool>,
) -> &'static str {
    let start = tokio::time::Instant::now() + limits::PING_INTERVAL;
    let mut ping = tokio::time::interval_at(start, limits::PING_INTERVAL);
    let mut awaiting_pong = false;
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = shutdown.changed() => {
                // The `shutdown` event is already queued: deliver it, then close.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), flush(ws, conn)).await;
                close(ws, 1001, "gateway shutting down").await;
                return "shutdown";
            }
            _ = conn.outbound.slow.notified() => {
                return close_slow(shared, conn, ws).await;
            }
            _ = conn.kick.notified() => {
                close(ws, 4001, "device credentials revoked").await;
                return "kicked";
            }
            _ = conn.outbound.ready.notified() => {
                let ok = tokio::select! {
                    ok = flush(ws, conn) => ok,
                    _ = conn.outbound.slow.notified() => return close_slow(shared, conn, ws).await,
                };
                if !ok {
                    return "write failed";
                }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    close(ws, 1008, "keepalive timeout").await;
                    return "missed pong";
                }
                awaiting_pong = true;
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    return "write failed";
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    awaiting_pong = false;
                    match frames::parse_request(&text) {
                        Ok(req) if methods::run_of(&req.method) == Run::Beside => {
                            if running.len() >= limits::MAX_INFLIGHT_REQUESTS_PER_CONN {
                                let busy = ErrorShape::new(codes::UNAVAILABLE, "too many requests in flight on this connection")
                                    .retry_after(500);
                                conn.outbound.push(frames::response_err(&req.id, &busy), false);
                            } else {
                                // Aborted with the JoinSet when the connection ends,
                                // which cancels whatever it waits on.
                                let (shared, conn) = (shared.clone(), conn.clone());
                                running.spawn(async move {
                                    let reply = methods::handle(&shared, &conn, req).await;
                                    conn.outbound.push(reply, false);
                                });
                            }
                        }
                        Ok(req) => {
                            // Inline handlers never wait: answer and write at
                            // once, without a round trip through the select.
                            let reply = methods::handle(shared, conn, req).await;
                            conn.outbound.push(reply, false);
                            if !flush(ws, conn).await {
                                return "write failed";
                            }
                        }
                        Err(_) => {
                            let reply = frames::response_err(&frames::salvage_id(&text), &ErrorShape::invalid("invalid request frame"));
                            conn.outbound.push(reply, false);
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    conn.outbound.push(frames::response_err("", &ErrorShape::invalid("invalid request frame: binary frames are not supported")), false);
                }
                Some(Ok(Message::Pong(_) | Message::Ping(_) | Message::Frame(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(_))) | None => return "closed by peer",
                Some(Err(e)) if is_too_large(&e) => {
                    close(ws, 1009, "payload too large").await;
                    return "payload too large";
                }
                Some(Err(_)) => return "read failed",
            }
        }
    }
}
