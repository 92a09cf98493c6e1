//! One connection to the broker: TCP, or TLS over TCP (rustls with the
//! ring provider and the webpki roots, SNI = the host name), opened within
//! a deadline up to the CONNACK; then packets out ([`Link::send`]) and in
//! ([`Link::receive`], which waits at most [`limits::MQTT_POLL_INTERVAL`]).
//! Every wait is bounded: a stalled broker never wedges the caller.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::packet::{self, Connect, Decoder, Packet};
use crate::limits;

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// The TLS settings every `mqtts://` connection uses: rustls with ring
/// and the Mozilla roots from `webpki-roots`.
pub fn tls_config() -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A read timeout (Linux says `WouldBlock`, others `TimedOut`).
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The byte stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Where to connect.
pub struct Target<'a> {
    /// Host name or IP address.
    pub host: &'a str,
    /// TCP port.
    pub port: u16,
    /// `Some` for `mqtts://`.
    pub tls: Option<&'a Arc<ClientConfig>>,
}

/// An open connection that got a CONNACK accepting it.
pub struct Link {
    stream: Stream,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Packets that came in the same read as the CONNACK.
    early: Vec<Packet>,
}

fn tcp_connect(target: &Target<'_>, deadline: Instant) -> Result<TcpStream, String> {
    let (host, port) = (target.host, target.port);
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = format!("cannot resolve {host}: no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "connecting to {host}:{port} timed out after {} s",
                limits::MQTT_CONNECT_TIMEOUT.as_secs()
            ));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = format!("cannot connect to {host}:{port}: {e}"),
        }
    }
    Err(last)
}

fn tls_handshake(
    tcp: TcpStream,
    target: &Target<'_>,
    config: &Arc<ClientConfig>,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<Stream, String> {
    let host = target.host;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host} is not a valid TLS server name"))?;
    let mut conn = ClientConnection::new(config.clone(), name)
        .map_err(|e| format!("TLS setup for {host} failed: {e}"))?;
    let mut tcp = tcp;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if timed_out(&e) => {
                if stop() {
                    return Err("stopped".into());
                }
                if Instant::now() >= deadline {
                    return Err(format!("TLS handshake with {host} timed out"));
                }
            }
            Err(e) => return Err(format!("TLS handshake with {host} failed: {e}")),
        }
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

impl Link {
    /// Connect, handshake, send `connect` and wait for an accepting
    /// CONNACK, all before `deadline`; `stop` is polled while waiting.
    /// Errors are one readable line (they never contain the password).
    pub fn open(
        target: &Target<'_>,
        connect: &Connect<'_>,
        max_packet: usize,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Link, String> {
        let tcp = tcp_connect(target, deadline)?;
        let setup = |e: io::Error| format!("socket setup failed: {e}");
        tcp.set_nodelay(true).map_err(setup)?;
        tcp.set_read_timeout(Some(limits::MQTT_POLL_INTERVAL))
            .map_err(setup)?;
        tcp.set_write_timeout(Some(limits::MQTT_WRITE_TIMEOUT))
            .map_err(setup)?;
        let stream = match target.tls {
            Some(config) => tls_handshake(tcp, target, config, deadline, stop)?,
            None => Stream::Plain(tcp),
        };
        let mut link = Link {
            stream,
            decoder: Decoder::new(max_packet),
            buf: vec![0; READ_CHUNK_BYTES],
            early: Vec::new(),
        };
        let mut out = Vec::new();
        packet::encode_connect(connect, &mut out).map_err(|e| e.to_string())?;
        link.send(&out)?;
        let mut packets = Vec::new();
        loop {
            let received = link.receive(&mut packets);
            if !packets.is_empty() {
                return match packets.remove(0) {
                    Packet::ConnAck { return_code, .. } => {
                        match packet::connack_refusal(return_code) {
                            None => {
                                link.early = packets;
                                Ok(link)
                            }
                            Some(reason) => {
                                Err(format!("the broker refused the connection: {reason}"))
                            }
                        }
                    }
                    _ => Err("protocol error: the broker did not answer with a CONNACK".into()),
                };
            }
            received?;
            if stop() {
                return Err("stopped".into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no CONNACK from the broker within {} s",
                    limits::MQTT_CONNECT_TIMEOUT.as_secs()
                ));
            }
        }
    }

    /// Write `bytes` (whole packets) and flush.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| {
                if timed_out(&e) {
                    format!(
                        "the broker took no data for {} s",
                        limits::MQTT_WRITE_TIMEOUT.as_secs()
                    )
                } else {
                    format!("connection lost while writing: {e}")
                }
            })
    }

    /// Read once, waiting at most [`limits::MQTT_POLL_INTERVAL`]; the
    /// packets completed are appended to `out` (also those before an
    /// error). `Ok(true)` when bytes arrived.
    pub fn receive(&mut self, out: &mut Vec<Packet>) -> Result<bool, String> {
        if !self.early.is_empty() {
            out.append(&mut self.early);
            return Ok(true);
        }
        match self.stream.read(&mut self.buf) {
            Ok(0) => Err("the broker closed the connection".into()),
            Ok(n) => {
                self.decoder
                    .push(&self.buf[..n], out)
                    .map_err(|e| format!("protocol error from the broker: {e}"))?;
                Ok(true)
            }
            Err(e) if timed_out(&e) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(format!("connection lost: {e}")),
        }
    }

    /// Close: TLS close_notify (best effort), then the TCP socket.
    pub fn close(&mut self) {
        if let Stream::Tls(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.stream.tcp().shutdown(Shutdown::Both);
    }
}
