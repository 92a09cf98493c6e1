//! Shared-secret checks (constant time) and the failed-auth rate limiter.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::limits;

/// Constant-time string equality (length is not secret).
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Default)]
struct IpRecord {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    last: Option<Instant>,
}

/// Failed-auth limiter: [`limits::AUTH_FAIL_MAX`] failures inside
/// [`limits::AUTH_FAIL_WINDOW`] lock the IP out for [`limits::AUTH_LOCKOUT`].
/// Tracks at most [`limits::AUTH_LIMITER_MAX_IPS`] IPs (stalest evicted).
#[derive(Default)]
pub struct AuthLimiter {
    ips: HashMap<IpAddr, IpRecord>,
}

impl AuthLimiter {
    /// Remaining lockout for `ip`, if locked.
    pub fn locked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let record = self.ips.get_mut(&ip)?;
        match record.locked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                record.locked_until = None;
                record.failures.clear();
                None
            }
            None => None,
        }
    }

    /// Count a failure; returns the lockout if this failure triggered one.
    pub fn fail(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if !self.ips.contains_key(&ip) && self.ips.len() >= limits::AUTH_LIMITER_MAX_IPS {
            let stalest = self
                .ips
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(ip, _)| *ip);
            if let Some(stalest) = stalest {
                self.ips.remove(&stalest);
            }
        }
        let record = self.ips.entry(ip).or_default();
        record.last = Some(now);
        while record
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limits::AUTH_FAIL_WINDOW)
        {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() >= limits::AUTH_FAIL_MAX as usize {
            record.failures.clear();
            record.locked_until = Some(now + limits::AUTH_LOCKOUT);
            return Some(limits::AUTH_LOCKOUT);
        }
        None
    }

    /// Forget failures after a success.
    pub fn succeed(&mut self, ip: IpAddr) {
        if self.ips.get(&ip).is_some_and(|r| r.locked_until.is_none()) {
            self.ips.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_minute_lock_out_for_five_minutes() {
        let mut l = AuthLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let t = Instant::now();
        for i in 0..9 {
            assert_eq!(l.fail(ip, t + Duration::from_secs(i)), None);
        }
        assert_eq!(
            l.fail(ip, t + Duration::from_secs(9)),
            Some(limits::AUTH_LOCKOUT)
        );
        assert!(l.locked(ip, t + Duration::from_secs(100)).is_some());
        assert!(l.locked(ip, t + Duration::from_secs(310)).is_none());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut l = AuthLimiter::default();
        let ip: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let t = Instant::now();
        for i in 0..20 {
            assert_eq!(l.fail(ip, t + Duration::from_secs(i * 7)), None, "at {i}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
    }
}
