//! Admission before the request head: a flood of idle sockets from one
//! address (each sending half a request line) holds at most the per-address
//! pre-auth cap; the rest are answered `429` at once and closed; a client
//! from another address (127.0.0.1 vs 127.0.0.2) is served meanwhile; the
//! gateway's memory does not grow with the flood.

#[path = "support/process.rs"]
mod process;

use std::net::SocketAddr;
use std::time::Duration;

use pinclaw::client::{Client, ClientOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "admission-token-0123456789";
const FLOOD: usize = 600;

async fn flood_socket(gateway: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind("127.0.0.2:0".parse().ok()?).ok()?;
    let mut stream = socket.connect(gateway).await.ok()?;
    stream.write_all(b"GET /healthz HTT").await.ok()?;
    Some(stream)
}

/// What a flood socket got: an immediate answer (its status), or nothing
/// before the gateway closed it (it was held until the head timeout).
async fn outcome(mut stream: TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

#[tokio::test]
async fn an_idle_socket_flood_from_one_address_does_not_lock_out_another() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    if TcpSocket::new_v4()
        .and_then(|s| s.bind("127.0.0.2:0".parse().unwrap_or_else(|e| panic!("{e}"))))
        .is_err()
    {
        return process::skip(
            "an_idle_socket_flood_from_one_address_does_not_lock_out_another",
            "cannot bind 127.0.0.2 on this machine",
        );
    }
    let gw = process::start(&process::write_config(dir.path(), TOKEN, ""), &[]);
    let addr: SocketAddr = gw
        .url
        .trim_start_matches("ws://")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let idle_rss = gw.rss_kb();
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        if let Some(s) = flood_socket(addr).await {
            flood.push(s);
        }
    }
    assert_eq!(flood.len(), FLOOD, "could not open the flood");

    // Another address is served while the flood is held.
    let mut client = Client::connect(
        &gw.url,
        &ClientOptions {
            token: Some(TOKEN.into()),
            scopes: vec!["operator.read".into()],
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("a client from 127.0.0.1 was locked out: {e}"));
    let health = client
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health["ok"], true);
    let flood_rss = gw.rss_kb();

    let outcomes = futures_util::future::join_all(flood.into_iter().map(outcome)).await;
    let refused = outcomes.iter().filter(|o| **o == Some(429)).count();
    let held = outcomes.iter().filter(|o| o.is_none()).count();
    println!(
        "{FLOOD} idle sockets from 127.0.0.2: {refused} refused with 429 at once, {held} held until the head timeout; RSS {idle_rss} → {flood_rss} KiB"
    );
    assert!(
        held <= pinclaw::limits::MAX_PREAUTH_CONNECTIONS_PER_IP,
        "{held} idle sockets were held from one address"
    );
    assert_eq!(refused + held, FLOOD, "{outcomes:?}");
    assert!(
        flood_rss < idle_rss + 8 * 1024,
        "the flood grew the gateway from {idle_rss} to {flood_rss} KiB"
    );
}
