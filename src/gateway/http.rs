//! The HTTP side of the gateway port: reading a request head, the probe
//! endpoints, and the WebSocket upgrade response. Hand-rolled on `httparse`
//! (already a tungstenite dependency) to keep the binary small.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::limits;

/// A parsed HTTP request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path including any query.
    pub path: String,
    /// Headers with lowercased names.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// First header value by (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a header contains a comma-separated token (case-insensitive).
    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// The `Sec-WebSocket-Key` when this is a valid WebSocket upgrade request.
    pub fn websocket_key(&self) -> Option<&str> {
        let upgrade = self.method == "GET"
            && self.header_has_token("upgrade", "websocket")
            && self.header_has_token("connection", "upgrade")
            && self.header("sec-websocket-version") == Some("13");
        upgrade.then(|| self.header("sec-websocket-key")).flatten()
    }

    /// Whether the request came through a proxy or a browser, so its source
    /// is not the machine itself even on a loopback socket.
    pub fn is_forwarded_or_browser(&self) -> bool {
        [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-real-ip",
            "origin",
        ]
        .iter()
        .any(|h| self.header(h).is_some())
    }
}

/// Why a request head could not be read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed or the socket failed.
    Io,
    /// No complete head within the time limit.
    Timeout,
    /// Head larger than [`limits::MAX_HTTP_HEAD_BYTES`].
    TooLarge,
    /// Not HTTP/1.x.
    Malformed,
}

/// Read one request head; returns it and any bytes read past its end.
pub async fn read_head(stream: &mut TcpStream) -> Result<(RequestHead, Vec<u8>), HeadError> {
    tokio::time::timeout(limits::HTTP_HEAD_TIMEOUT, read_head_inner(stream))
        .await
        .unwrap_or(Err(HeadError::Timeout))
}

/// Parse a request head from the bytes read so far: `Ok(None)` while it is
/// incomplete, else the head and its length in bytes. Pure (no I/O), so it
/// can be fuzzed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; limits::MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > limits::MAX_HTTP_HEAD_BYTES => {
            Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Complete(len)) => {
            let head = RequestHead {
                method: req.method.unwrap_or("").to_owned(),
                path: req.path.unwrap_or("/").to_owned(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) if buf.len() < limits::MAX_HTTP_HEAD_BYTES => Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            Err(HeadError::TooLarge)
        }
        Err(_) => Err(HeadError::Malformed),
    }
}

async fn read_head_inner(stream: &mut TcpStream) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((head, len)) = parse_head(&buf)? {
            return Ok((head, buf.split_off(len)));
        }
    }
}

/// Write a complete response with a JSON body and `connection: close`
/// (best effort: the peer may be gone), without closing the socket.
pub async fn write_json(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.write_all(response.as_bytes()),
    )
    .await;
}

/// Write a complete response with a JSON body and close the sending side.
pub async fn respond_json(stream: &mut TcpStream, status: u16, body: &str) {
    write_json(stream, status, body).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Write the `101 Switching Protocols` answer. No extension is negotiated
/// (`permessage-deflate` offers are declined by omission).
pub async fn accept_upgrade(stream: &mut TcpStream, key: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await
}
