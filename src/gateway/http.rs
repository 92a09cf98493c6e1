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

/// Read one request head within `timeout`, starting with bytes already
/// read (`buf`); returns it and any bytes read past its end.
pub async fn read_head(
    stream: &mut TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    tokio::time::timeout(timeout, read_head_inner(stream, buf))
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

async fn read_head_inner(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut chunk = [0u8; 1024];
    if let Some((head, len)) = parse_head(&buf)? {
        return Ok((head, buf.split_off(len)));
    }
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

impl RequestHead {
    /// Whether the client keeps the connection open for another request
    /// (HTTP/1.1 unless it says `connection: close`).
    pub fn keep_alive(&self) -> bool {
        !self.header_has_token("connection", "close")
    }
}

/// One HTTP response: status, extra headers, body (`HEAD` sends none).
pub struct Response<'a> {
    /// Status code.
    pub status: u16,
    /// Headers besides `content-length` and `connection`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// A JSON answer that no cache keeps.
    pub fn json(status: u16, body: &'a str) -> Self {
        Response {
            status,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", "no-store".into()),
            ],
            body: body.as_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Write a response (best effort: the peer may be gone) with
/// `connection: keep-alive` or `close`, without closing the socket.
/// `head_only` leaves the body out (for `HEAD`).
pub async fn write_response(
    stream: &mut TcpStream,
    response: &Response<'_>,
    keep_alive: bool,
    head_only: bool,
) -> bool {
    use std::fmt::Write as _;
    let mut text = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let body_len = if response.status == 304 {
        0
    } else {
        response.body.len()
    };
    let _ = write!(
        text,
        "content-length: {body_len}\r\nconnection: {connection}\r\n\r\n"
    );
    let body = if head_only || response.status == 304 {
        &[][..]
    } else {
        response.body
    };
    let write = async {
        stream.write_all(text.as_bytes()).await?;
        stream.write_all(body).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), write).await,
        Ok(Ok(()))
    )
}

/// Write a complete response with a JSON body and `connection: close`
/// (best effort: the peer may be gone), without closing the socket.
pub async fn write_json(stream: &mut TcpStream, status: u16, body: &str) {
    write_response(stream, &Response::json(status, body), false, false).await;
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
