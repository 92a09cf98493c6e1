//! Bounded memory over real sockets: the connection cap, the per-IP
//! pre-auth cap, slow consumers, and the post-auth payload cap.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn http_status(err: WsError) -> u16 {
    match err {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn connection_cap_refuses_with_503_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut s = settings(dir.path());
    s.max_connections = 3;
    let gw = TestGateway::start_with(s).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(gw.client(&["operator.read"]).await);
    }
    let refused = tokio_tungstenite::connect_async(gw.url.as_str())
        .await
        .err();
    assert_eq!(refused.map(http_status), Some(503));
    // Existing connections keep working, and a slot frees on close.
    let health = clients[0]
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health["ok"], true);
    if let Some(c) = clients.pop() {
        c.close().await;
    }
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(gw.url.as_str()).await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a freed slot is reusable");
    gw.stop().await;
}

#[tokio::test]
async fn at_most_32_unauthenticated_sockets_per_ip() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut pending = Vec::new();
    for _ in 0..pinclaw::limits::MAX_PREAUTH_CONNECTIONS_PER_IP {
        let mut ws = raw_connect(&gw.url, &[]).await;
        let _ = next_json(&mut ws).await;
        pending.push(ws);
    }
    let refused = tokio_tungstenite::connect_async(gw.url.as_str())
        .await
        .err();
    assert_eq!(refused.map(http_status), Some(429));
    // Finishing one handshake frees its pre-auth slot.
    let mut first = pending.remove(0);
    send(&mut first, &connect_frame(cli_params(&[]))).await;
    assert_eq!(next_res(&mut first).await["ok"], true);
    let mut ws = raw_connect(&gw.url, &[]).await;
    assert_eq!(next_json(&mut ws).await["event"], "connect.challenge");
    gw.stop().await;
}

/// A client whose socket receive buffer is tiny and which stops reading.
async fn slow_client(gw: &TestGateway) -> RawWs {
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("{e}"));
    let stream = socket
        .connect(gw.addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut ws, _) = tokio_tungstenite::client_async(
        gw.url.as_str(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let res = raw_handshake(&mut ws, cli_params(&["operator.read"])).await;
    assert_eq!(res["ok"], true);
    ws
}

#[tokio::test]
async fn slow_consumer_is_closed_while_a_fast_client_keeps_answering() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut slow = slow_client(&gw).await;
    let mut fast = gw.client(&["operator.read"]).await;
    let (operators_before, _) = gw.handle.connection_counts();
    assert_eq!(operators_before, 2);

    let pad = "x".repeat(16 * 1024);
    let mut sent = 0;
    // Non-droppable events (chat) until the slow one is cut off; bounded.
    while sent < 4000 && gw.handle.connection_counts().0 == 2 {
        for _ in 0..20 {
            gw.handle
                .broadcast("chat", &json!({"state": "delta", "deltaText": pad}));
            sent += 1;
        }
        let health = fast
            .call("health", json!({}))
            .await
            .unwrap_or_else(|e| panic!("fast client: {e}"));
        assert_eq!(health["ok"], true);
        let _ = fast.take_events();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        gw.handle.connection_counts().0,
        1,
        "the slow consumer was not closed after {sent} events"
    );
    println!("slow consumer closed after {sent} events of 16 KiB");
    // The fast client is still fine.
    assert_eq!(
        fast.call("health", json!({}))
            .await
            .map(|h| h["ok"].clone())
            .ok(),
        Some(json!(true))
    );
    // The slow client eventually sees the end: a 1008 close or a dropped socket.
    let (code, reason) = expect_close(&mut slow).await;
    assert!(
        code == 0 || (code == 1008 && reason == "slow consumer"),
        "{code} {reason}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn droppable_events_are_dropped_with_a_seq_gap_instead_of_closing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // No sensor sampling: its board.change events would take seqs too.
    let mut settings = settings(dir.path());
    settings.config.history.hours = 0;
    let gw = TestGateway::start_with(settings).await;
    let mut slow = slow_client(&gw).await;
    let pad = "y".repeat(4 * 1024);
    for i in 0..3000 {
        gw.handle.broadcast("tick", &json!({"ts": i, "pad": pad}));
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(
        gw.handle.connection_counts().0,
        1,
        "ticks never close a connection"
    );
    // Read everything that arrived and look at the seq numbers.
    let mut seqs = Vec::new();
    send(&mut slow, &json!({"type":"req","id":"h","method":"health"})).await;
    loop {
        let frame = next_json(&mut slow).await;
        if frame["type"] == "res" {
            assert_eq!(frame["payload"]["ok"], true);
            break;
        }
        if let Some(seq) = frame["seq"].as_u64() {
            seqs.push(seq);
        }
    }
    // The next tick after the backlog drained shows how many were skipped.
    gw.handle.broadcast("tick", &json!({"ts": 3000}));
    loop {
        let frame = next_json(&mut slow).await;
        if frame["event"] == "tick" {
            seqs.push(frame["seq"].as_u64().unwrap_or(0));
            break;
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq increases");
    // 3,001 ticks, seq 1..=3001 (operator connects broadcast no presence).
    assert_eq!(seqs.last(), Some(&3001), "every tick consumed a seq");
    assert!(
        seqs.len() < 3001,
        "some ticks were dropped ({} received)",
        seqs.len()
    );
    assert_eq!(gw.handle.connection_counts().0, 1);
    gw.stop().await;
}

#[tokio::test]
async fn post_auth_frames_over_max_payload_close_1009() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut ws = raw_connect(&gw.url, &[]).await;
    assert_eq!(raw_handshake(&mut ws, cli_params(&[])).await["ok"], true);
    let big = "z".repeat(pinclaw::limits::MAX_PAYLOAD_BYTES + 1);
    let _ = ws.send(Message::text(big)).await;
    let mut code = 0;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Close(Some(frame)) = msg {
            code = u16::from(frame.code);
            break;
        }
    }
    assert_eq!(code, 1009);
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_missed_pong_closes_the_connection_but_a_live_client_stays() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = TestGateway::start(dir.path()).await;
    let mut silent = raw_connect(&gw.url, &[]).await;
    assert_eq!(
        raw_handshake(&mut silent, cli_params(&[])).await["ok"],
        true
    );
    let mut live = gw.client(&["operator.read"]).await;
    // The live client keeps reading (and so answers pings) for over two ping intervals.
    for _ in 0..6 {
        let _ = live.wait_event("never-sent", Duration::from_secs(10)).await;
    }
    assert!(
        live.call("health", json!({})).await.is_ok(),
        "a client that answers pings stays"
    );
    // The silent one never read its pings: closed for the missed pong.
    let (code, reason) = expect_close(&mut silent).await;
    assert_eq!((code, reason.as_str()), (1008, "keepalive timeout"));
    gw.stop().await;
}
