//! A socket wrapper that enforces the pre-auth byte budget.
//!
//! Before `hello-ok` a client may send only its `connect` frame, capped at
//! [`limits::MAX_PREAUTH_PAYLOAD_BYTES`]. tungstenite's message cap is fixed
//! per connection, so the tighter pre-auth cap is enforced here, below the
//! WebSocket layer: once the budget is spent, reads fail with
//! [`PREAUTH_EXCEEDED`] and the connection closes with 1009 without buffering
//! the oversized frame.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::limits;

/// Message of the I/O error raised when the pre-auth budget is exceeded.
pub const PREAUTH_EXCEEDED: &str = "preauth payload too large";

/// Remaining bytes a connection may read before authenticating;
/// `usize::MAX` once authenticated.
#[derive(Clone)]
pub struct PreauthBudget(Arc<AtomicUsize>);

impl PreauthBudget {
    /// A fresh budget: one maximal frame plus its header.
    pub fn new() -> Self {
        Self(Arc::new(AtomicUsize::new(
            limits::MAX_PREAUTH_PAYLOAD_BYTES + 14,
        )))
    }
    /// Lift the budget after a successful handshake.
    pub fn lift(&self) {
        self.0.store(usize::MAX, Ordering::Relaxed);
    }
}

impl Default for PreauthBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP stream whose reads are limited by a [`PreauthBudget`].
pub struct GatewayStream {
    inner: TcpStream,
    budget: PreauthBudget,
}

impl GatewayStream {
    /// Wrap a socket.
    pub fn new(inner: TcpStream, budget: PreauthBudget) -> Self {
        Self { inner, budget }
    }
}

impl AsyncRead for GatewayStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let budget = this.budget.0.load(Ordering::Relaxed);
        if budget == usize::MAX {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if budget == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                PREAUTH_EXCEEDED,
            )));
        }
        // Pre-auth only: read through a small stack buffer (one copy) so the
        // budget can be enforced without unsafe code.
        let mut scratch = [0u8; 4096];
        let want = buf.remaining().min(budget).min(scratch.len());
        let mut limited = ReadBuf::new(&mut scratch[..want]);
        let result = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        if let Poll::Ready(Ok(())) = &result {
            let n = limited.filled().len();
            buf.put_slice(limited.filled());
            // Only subtract while still pre-auth (a lift may have raced).
            let _ = this
                .budget
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    (b != usize::MAX).then(|| b.saturating_sub(n))
                });
        }
        result
    }
}

impl AsyncWrite for GatewayStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
