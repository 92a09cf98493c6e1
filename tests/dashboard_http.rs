//! The dashboard's HTTP side over a raw socket, no browser: the page and
//! its files gzipped with an ETag (a 304 for a match), a strict CSP naming
//! the WebSocket, keep-alive for the page and its assets, the `Host` check
//! against DNS rebinding, the `Origin` check on the WebSocket upgrade, and
//! `pinclaw dashboard`'s link.

#[path = "support/process.rs"]
mod process;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// One HTTP response read off a kept-alive connection.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(stream: &mut BufReader<TcpStream>, head: &str) -> Reply {
    stream.get_mut().write_all(head.as_bytes()).unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn connect(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    BufReader::new(stream)
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n{extra}\r\n")
}

#[tokio::test]
async fn the_page_is_gzipped_cached_by_etag_kept_alive_and_locked_down() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(dir.path()).await;
    let addr = gw.addr;
    let host = addr.to_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = connect(addr);
        let page = request(&mut conn, &get("/", &host, ""));
        assert_eq!(page.status, 200);
        assert_eq!(page.header("content-encoding"), Some("gzip"));
        assert_eq!(page.header("connection"), Some("keep-alive"));
        assert!(
            page.header("content-type")
                .unwrap_or("")
                .starts_with("text/html")
        );
        assert_eq!(&page.body[..2], &[0x1f, 0x8b], "gzip magic");
        let csp = page.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")),
            "{csp}"
        );
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe-"),
            "{csp}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        let etag = page
            .header("etag")
            .unwrap_or_else(|| panic!("no ETag"))
            .to_owned();
        // The same connection: a revalidation gets a bare 304.
        let again = request(
            &mut conn,
            &get("/", &host, &format!("If-None-Match: {etag}\r\n")),
        );
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        // HEAD: the headers without the body.
        conn.get_mut()
            .write_all(format!("HEAD / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap();
        let mut status = String::new();
        conn.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        // Still the same connection, and an unknown path closes it.
        let missing = request(&mut conn, &get("/no-such-file.js", &host, ""));
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("connection"), Some("close"));
        // A name the gateway does not answer to (DNS rebinding).
        let mut conn = connect(addr);
        let rebound = request(&mut conn, &get("/", "evil.example:18789", ""));
        assert_eq!(rebound.status, 421);
        assert!(String::from_utf8_lossy(&rebound.body).contains("gateway.allowed_hosts"));
    })
    .await
    .unwrap();
    gw.stop().await;
}

fn upgrade(addr: std::net::SocketAddr, host: &str, origin: Option<&str>) -> u16 {
    let mut conn = connect(addr);
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    );
    conn.get_mut().write_all(head.as_bytes()).unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    status
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn only_the_dashboard_and_listed_origins_may_open_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.config.gateway.allowed_origins = vec!["http://127.0.0.1:8080".into()];
    s.config.gateway.allowed_hosts = vec!["hub.example.org".into()];
    let gw = TestGateway::start_with(s).await;
    let addr = gw.addr;
    let host = addr.to_string();
    tokio::task::spawn_blocking(move || {
        assert_eq!(upgrade(addr, &host, None), 101, "a CLI sends no Origin");
        assert_eq!(
            upgrade(addr, &host, Some(&format!("http://{host}"))),
            101,
            "its own page"
        );
        assert_eq!(
            upgrade(addr, &host, Some("http://127.0.0.1:8080")),
            101,
            "a listed origin"
        );
        assert_eq!(upgrade(addr, &host, Some("http://evil.example")), 403);
        assert_eq!(
            upgrade(addr, &host, Some("http://127.0.0.1:9999")),
            403,
            "another port"
        );
        assert_eq!(upgrade(addr, &host, Some("null")), 403);
        let port = addr.port();
        assert_eq!(
            upgrade(
                addr,
                &format!("hub.example.org:{port}"),
                Some(&format!("http://hub.example.org:{port}"))
            ),
            101,
            "a listed name"
        );
        assert_eq!(
            upgrade(
                addr,
                &format!("evil.example:{port}"),
                Some(&format!("http://evil.example:{port}"))
            ),
            403,
            "DNS rebinding: same origin, but a name the gateway does not answer to"
        );
    })
    .await
    .unwrap();
    gw.stop().await;
}

#[test]
fn pinclaw_dashboard_prints_a_link_with_the_token_in_the_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let gw = process::start_args(
        &[
            "gateway".as_ref(),
            "--port".as_ref(),
            "0".as_ref(),
            "--state-dir".as_ref(),
            state.as_os_str(),
        ],
        &[],
    );
    let token = std::fs::read_to_string(state.join("gateway.token")).unwrap();
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let out = std::process::Command::new(process::BIN)
        .args(["dashboard", "--port", &port, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let link = format!("http://127.0.0.1:{port}/#token={}", token.trim());
    assert!(text.contains(&link), "{text}");
    assert!(!text.contains("?token"), "never in the query: {text}");
    // The link's page is served.
    let mut conn = connect(format!("127.0.0.1:{port}").parse().unwrap());
    let page = request(&mut conn, &get("/", &format!("127.0.0.1:{port}"), ""));
    assert_eq!(page.status, 200);
    gw.kill();
}
