//! One connection to the broker: TCP, or TLS over TCP (rustls with the
//! ring provider and the webpki roots, SNI = the host name), opened within
//! a deadline up to the CONNACK as a blocking [`Link`] (packets out with
//! [`Link::send`], in with [`Link::receive`], which waits at most
//! [`limits::MQTT_POLL_INTERVAL`]); the client then turns it into a
//! non-blocking [`LiveLink`] that sleeps in `epoll` until the socket, the
//! outbox or a clock needs it, so a quiet connection costs no wake-ups.
//! Every wait is bounded: a stalled broker never wedges the caller.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::packet::{self, Connect, Decoder, Packet};
use crate::limits;

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// The poll token of a [`LiveLink`]'s socket.
pub const SOCKET: Token = Token(0);
/// The poll token of the client's waker (a publish, a stop).
pub const WAKE: Token = Token(1);

/// The TLS settings every `mqtts://` connection uses: rustls with ring
/// and the Mozilla roots from `webpki-roots`, or only the CA certificates
/// in the PEM file `ca_file`.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            for cert in load_ca_file(path)? {
                roots.add(cert).map_err(|e| {
                    format!("{}: a certificate rustls cannot use: {e}", path.display())
                })?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates in a PEM file (at least one).
pub fn load_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no \"BEGIN CERTIFICATE\" block in it",
            path.display()
        ));
    }
    Ok(certs)
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

impl Link {
    /// The accepted connection as a non-blocking [`LiveLink`] registered
    /// with `poll` (token [`SOCKET`]).
    pub fn into_live(self, poll: &Poll) -> Result<LiveLink, String> {
        let (tcp, tls) = match self.stream {
            Stream::Plain(tcp) => (tcp, None),
            Stream::Tls(stream) => {
                let StreamOwned { conn, sock } = *stream;
                (sock, Some(Box::new(conn)))
            }
        };
        tcp.set_nonblocking(true)
            .map_err(|e| format!("socket setup failed: {e}"))?;
        let mut sock = mio::net::TcpStream::from_std(tcp);
        poll.registry()
            .register(&mut sock, SOCKET, Interest::READABLE)
            .map_err(|e| format!("socket setup failed: {e}"))?;
        Ok(LiveLink {
            sock,
            tls,
            out: Vec::new(),
            written: 0,
            stalled_since: None,
            decoder: self.decoder,
            buf: self.buf,
            early: self.early,
            writable_interest: false,
        })
    }
}

/// An accepted connection in non-blocking mode: packets are queued
/// ([`LiveLink::queue`]) and written as the socket takes them
/// ([`LiveLink::pump`]); reads take what has arrived
/// ([`LiveLink::receive`]); [`LiveLink::wait`] sleeps until either side
/// can move, a wake-up, or a deadline.
pub struct LiveLink {
    sock: mio::net::TcpStream,
    tls: Option<Box<ClientConnection>>,
    /// Bytes for the socket (TLS records when TLS), from `written` on.
    out: Vec<u8>,
    written: usize,
    /// When queued bytes last found the socket full with none taken.
    stalled_since: Option<Instant>,
    decoder: Decoder,
    buf: Vec<u8>,
    early: Vec<Packet>,
    writable_interest: bool,
}

impl LiveLink {
    /// Queue whole packets for the socket (encrypted at once when TLS).
    pub fn queue(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        let Some(conn) = &mut self.tls else {
            self.out.extend_from_slice(bytes);
            return Ok(());
        };
        while !bytes.is_empty() {
            let n = conn
                .writer()
                .write(bytes)
                .map_err(|e| format!("TLS failed: {e}"))?;
            bytes = &bytes[n..];
            let drained = drain_tls(conn, &mut self.out)?;
            if n == 0 && !drained {
                return Err("TLS took no data".into());
            }
        }
        Ok(())
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn backlog(&self) -> usize {
        self.out.len() - self.written
    }

    /// Write what the socket takes now, without waiting.
    pub fn pump(&mut self, now: Instant) -> Result<(), String> {
        while self.written < self.out.len() {
            match self.sock.write(&self.out[self.written..]) {
                Ok(0) => return Err("connection lost while writing".into()),
                Ok(n) => {
                    self.written += n;
                    self.stalled_since = None;
                }
                Err(e) if timed_out(&e) => {
                    self.stalled_since.get_or_insert(now);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("connection lost while writing: {e}")),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.written >= READ_CHUNK_BYTES && self.written * 2 >= self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }

    /// `Some(error)` when queued bytes have found the socket full for
    /// [`limits::MQTT_WRITE_TIMEOUT`]: the broker stopped reading.
    pub fn write_stalled(&self, now: Instant) -> Option<String> {
        let since = self.stalled_since?;
        (now.duration_since(since) >= limits::MQTT_WRITE_TIMEOUT).then(|| {
            format!(
                "the broker took no data for {} s",
                limits::MQTT_WRITE_TIMEOUT.as_secs()
            )
        })
    }

    /// Everything that has arrived, decoded; the packets completed are
    /// appended to `out` (also those before an error). `Ok(true)` when
    /// bytes arrived. Never waits.
    pub fn receive(&mut self, out: &mut Vec<Packet>) -> Result<bool, String> {
        let mut got = !self.early.is_empty();
        out.append(&mut self.early);
        let decode = |decoder: &mut Decoder, bytes: &[u8], out: &mut Vec<Packet>| {
            decoder
                .push(bytes, out)
                .map_err(|e| format!("protocol error from the broker: {e}"))
        };
        let closed = || Err("the broker closed the connection".to_owned());
        loop {
            let Some(conn) = &mut self.tls else {
                match self.sock.read(&mut self.buf) {
                    Ok(0) => return closed(),
                    Ok(n) => {
                        decode(&mut self.decoder, &self.buf[..n], out)?;
                        got = true;
                    }
                    Err(e) if timed_out(&e) => return Ok(got),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("connection lost: {e}")),
                }
                continue;
            };
            // Plaintext rustls has decrypted already, then more records.
            match conn.reader().read(&mut self.buf) {
                Ok(0) => return closed(),
                Ok(n) => {
                    decode(&mut self.decoder, &self.buf[..n], out)?;
                    got = true;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("connection lost: {e}")),
            }
            match conn.read_tls(&mut self.sock) {
                Ok(0) => return closed(),
                Ok(_) => {
                    conn.process_new_packets()
                        .map_err(|e| format!("TLS error from the broker: {e}"))?;
                    drain_tls(conn, &mut self.out)?;
                }
                Err(e) if timed_out(&e) => return Ok(got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("connection lost: {e}")),
            }
        }
    }

    /// Sleep in `poll` until the socket is readable (or writable, while
    /// bytes wait), a wake-up, or `timeout`.
    pub fn wait(
        &mut self,
        poll: &mut Poll,
        events: &mut mio::Events,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        let want_write = self.backlog() > 0;
        if want_write != self.writable_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry()
                .reregister(&mut self.sock, SOCKET, interest)
                .map_err(|e| format!("waiting for the broker failed: {e}"))?;
            self.writable_interest = want_write;
        }
        match poll.poll(events, Some(timeout)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(format!("waiting for the broker failed: {e}")),
        }
    }

    /// Close: TLS close_notify (best effort, without waiting), then the
    /// socket, unregistered from `poll`.
    pub fn close(&mut self, poll: &Poll) {
        if let Some(conn) = &mut self.tls {
            conn.send_close_notify();
            let _ = drain_tls(conn, &mut self.out);
            let _ = self.pump(Instant::now());
        }
        let _ = poll.registry().deregister(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Move the TLS records rustls has ready into `out`; whether any moved.
fn drain_tls(conn: &mut ClientConnection, out: &mut Vec<u8>) -> Result<bool, String> {
    let mut moved = false;
    while conn.wants_write() {
        conn.write_tls(out)
            .map_err(|e| format!("TLS failed: {e}"))?;
        moved = true;
    }
    Ok(moved)
}
