//! Admission of accepted sockets, decided at `accept` before a byte is read:
//! the total socket cap, the cap on unauthenticated sockets per address and
//! overall. A refused socket gets a one-line HTTP answer and is closed at
//! once, so a flood of idle sockets from one address holds at most
//! [`limits::MAX_PREAUTH_CONNECTIONS_PER_IP`] of them (each for at most
//! [`limits::HTTP_HEAD_TIMEOUT`] before its request head is in), and a client
//! from another address is still served.
//!
//! IPv6 addresses count per /64 (one home network's worth of addresses).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::limits;

/// The address a cap is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// IPv4 (and IPv4-mapped IPv6) addresses as they are; IPv6 by /64.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let seg = v6.segments();
                    Self(IpAddr::V6(std::net::Ipv6Addr::new(
                        seg[0], seg[1], seg[2], seg[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// Why a socket was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway holds its maximum number of sockets.
    Full,
    /// Too many unauthenticated sockets from this address.
    TooManyFromAddress,
    /// Too many unauthenticated sockets overall.
    TooManyUnauthenticated,
}

impl Refusal {
    /// HTTP status and JSON body of the answer.
    pub fn response(self) -> (u16, &'static str) {
        match self {
            Refusal::Full => (503, r#"{"ok":false,"error":"too many connections"}"#),
            Refusal::TooManyFromAddress => (
                429,
                r#"{"ok":false,"error":"too many unauthenticated connections from this address"}"#,
            ),
            Refusal::TooManyUnauthenticated => (
                503,
                r#"{"ok":false,"error":"too many unauthenticated connections"}"#,
            ),
        }
    }
}

/// The counters behind admission.
pub struct Admission {
    max_sockets: usize,
    sockets: AtomicUsize,
    preauth_total: AtomicUsize,
    preauth: Mutex<HashMap<AddressKey, usize>>,
}

/// One admitted socket: released when dropped.
pub struct SocketSlot(Arc<Admission>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One unauthenticated socket of an address: released when dropped (after
/// `hello-ok`, or when the socket ends).
pub struct PreauthSlot {
    admission: Arc<Admission>,
    key: AddressKey,
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        self.admission.preauth_total.fetch_sub(1, Ordering::Relaxed);
        let mut map = self
            .admission
            .preauth
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Admission {
    /// Counters for at most `max_sockets` sockets.
    pub fn new(max_sockets: usize) -> Arc<Self> {
        Arc::new(Self {
            max_sockets,
            sockets: AtomicUsize::new(0),
            preauth_total: AtomicUsize::new(0),
            preauth: Mutex::new(HashMap::new()),
        })
    }

    /// Sockets held now.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Unauthenticated sockets held now.
    pub fn unauthenticated(&self) -> usize {
        self.preauth_total.load(Ordering::Relaxed)
    }

    /// Admit a socket from `ip`, or say why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(SocketSlot, PreauthSlot), Refusal> {
        let key = AddressKey::of(ip);
        let mut map = self.preauth.lock().unwrap_or_else(|p| p.into_inner());
        if self.sockets.load(Ordering::Relaxed) >= self.max_sockets {
            return Err(Refusal::Full);
        }
        let from_here = map.get(&key).copied().unwrap_or(0);
        if from_here >= limits::MAX_PREAUTH_CONNECTIONS_PER_IP {
            return Err(Refusal::TooManyFromAddress);
        }
        if self.preauth_total.load(Ordering::Relaxed) >= limits::MAX_PREAUTH_CONNECTIONS {
            return Err(Refusal::TooManyUnauthenticated);
        }
        *map.entry(key).or_insert(0) += 1;
        self.preauth_total.fetch_add(1, Ordering::Relaxed);
        self.sockets.fetch_add(1, Ordering::Relaxed);
        Ok((
            SocketSlot(self.clone()),
            PreauthSlot {
                admission: self.clone(),
                key,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn per_address_and_total_caps_are_released_on_drop() {
        let a = Admission::new(1000);
        let held: Vec<_> = (0..limits::MAX_PREAUTH_CONNECTIONS_PER_IP)
            .map(|_| a.admit(ip("127.0.0.2")))
            .collect();
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(
            a.admit(ip("127.0.0.2")).err(),
            Some(Refusal::TooManyFromAddress)
        );
        assert!(
            a.admit(ip("127.0.0.1")).is_ok(),
            "another address is served"
        );
        drop(held);
        assert_eq!(a.sockets(), 0);
        assert_eq!(a.unauthenticated(), 0);
        assert!(a.admit(ip("127.0.0.2")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_the_socket_cap_holds() {
        let a = Admission::new(limits::MAX_PREAUTH_CONNECTIONS_PER_IP + 1);
        let held: Vec<_> = (0..limits::MAX_PREAUTH_CONNECTIONS_PER_IP)
            .map(|i| a.admit(ip(&format!("2001:db8:1:2::{:x}", i + 1))))
            .collect();
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(
            a.admit(ip("2001:db8:1:2:ffff::1")).err(),
            Some(Refusal::TooManyFromAddress),
            "same /64"
        );
        let other = a.admit(ip("2001:db8:1:3::1"));
        assert!(other.is_ok());
        assert_eq!(a.admit(ip("192.0.2.9")).err(), Some(Refusal::Full));
        assert_eq!(
            AddressKey::of(ip("::ffff:10.0.0.1")),
            AddressKey::of(ip("10.0.0.1"))
        );
    }
}
