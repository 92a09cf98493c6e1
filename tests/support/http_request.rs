//! One HTTP/1.1 request read off a socket, for the fake servers
//! (`fake_provider.rs`, `fake_telegram.rs`): the head (at most 64 KiB),
//! then `content-length` bytes of body (at most 16 MiB). Reads wake every
//! 50 ms so a stopping server is noticed.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

/// Method, path, headers (names lowercased), body.
pub type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// Read one request; `None` when the client closed before a whole head, the
/// head does not parse, or `stopped()` says the server is stopping. A body
/// cut short by the client is returned as far as it came.
pub fn read_request(conn: &mut TcpStream, stopped: impl Fn() -> bool) -> Option<RawRequest> {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 || stopped() {
            return None;
        }
        match read_some(conn, &mut tmp) {
            Some(0) => return None,
            Some(n) => buf.extend_from_slice(&tmp[..n]),
            None => {}
        }
    };
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hdrs);
    req.parse(&buf[..head_end]).ok()?;
    let method = req.method?.to_owned();
    let path = req.path?.to_owned();
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
        .min(16 * 1024 * 1024);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len && !stopped() {
        match read_some(conn, &mut tmp) {
            Some(0) => break,
            Some(n) => body.extend_from_slice(&tmp[..n]),
            None => {}
        }
    }
    body.truncate(len);
    Some((method, path, headers, body))
}

/// One read: `Some(0)` when the peer closed (or the socket failed), `None`
/// when the 50 ms wait passed without data.
fn read_some(conn: &mut TcpStream, tmp: &mut [u8]) -> Option<usize> {
    match conn.read(tmp) {
        Ok(n) => Some(n),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(0),
    }
}
