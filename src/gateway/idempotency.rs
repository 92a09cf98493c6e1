//! The idempotency cache of side-effecting methods (`node.invoke`): a
//! retried key returns the earlier result instead of doing the work twice.
//!
//! Bounds: entries live at most [`limits::IDEMPOTENCY_TTL`]; at most
//! [`limits::IDEMPOTENCY_MAX_ENTRIES`] entries and
//! [`limits::IDEMPOTENCY_MAX_BYTES`] of kept results, the oldest finished
//! entries evicted first. A result is kept once, as its JSON text; one
//! larger than [`limits::IDEMPOTENCY_MAX_RESULT_BYTES`] is replaced by what a
//! retry needs to know (the work ran and succeeded; the result was too large
//! to keep), so no sequence of requests can grow the cache past its budget.
//!
//! Work in flight is held by an [`InFlight`] guard: dropping it without
//! [`InFlight::finish`] (the caller went away, the task was cancelled)
//! forgets the key, so a retry runs instead of being refused forever. A key
//! reused with different parameters is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::limits;
use crate::protocol::error::{ErrorShape, codes};

/// How a finished request ended, as kept for retries.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The response payload as JSON text.
    Ok(String),
    /// The response payload was larger than the per-result cap.
    OkTooLarge,
    /// The error answered.
    Err(ErrorShape),
}

impl Outcome {
    fn from_result(result: &Result<Value, ErrorShape>) -> Self {
        match result {
            Ok(value) => {
                let text = value.to_string();
                if text.len() > limits::IDEMPOTENCY_MAX_RESULT_BYTES {
                    Outcome::OkTooLarge
                } else {
                    Outcome::Ok(text)
                }
            }
            Err(e) => Outcome::Err(e.clone()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Outcome::Ok(text) => text.len(),
            Outcome::OkTooLarge => 0,
            Outcome::Err(e) => e.message.len() + 64,
        }
    }

    fn replay(&self) -> Result<Value, ErrorShape> {
        match self {
            Outcome::Ok(text) => serde_json::from_str(text).map_err(|e| {
                ErrorShape::new(codes::UNAVAILABLE, format!("cached result unreadable: {e}"))
            }),
            Outcome::OkTooLarge => Ok(json!({
                "ok": true,
                "cached": true,
                "payloadOmitted": true,
                "note": "this request already ran and succeeded; its result was too large to keep for retries",
            })),
            Outcome::Err(e) => Err(e.clone()),
        }
    }
}

#[derive(Debug)]
enum State {
    InFlight,
    Done(Outcome),
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    fingerprint: String,
    state: State,
}

impl Entry {
    fn bytes(&self) -> usize {
        match &self.state {
            State::InFlight => 0,
            State::Done(o) => o.bytes(),
        }
    }
}

/// The cache proper (behind [`Idempotency`]'s lock).
#[derive(Debug)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// (stamp, key) in the order entries were stamped; stale stamps are
    /// skipped.
    order: VecDeque<(Instant, String)>,
    bytes: usize,
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
}

impl Cache {
    fn sweep(&mut self, now: Instant) {
        while let Some((stamp, _)) = self.order.front() {
            if now.duration_since(*stamp) < self.ttl {
                break;
            }
            if let Some((stamp, key)) = self.order.pop_front() {
                self.remove_if_done(&key, Some(stamp));
            }
        }
        if self.order.len() > 2 * self.max_entries.max(1) {
            let entries = &self.entries;
            self.order
                .retain(|(at, k)| entries.get(k).is_some_and(|e| e.at == *at));
        }
    }

    /// Remove a finished entry (only if stamped `stamp`, when given).
    fn remove_if_done(&mut self, key: &str, stamp: Option<Instant>) -> bool {
        let removable = self
            .entries
            .get(key)
            .is_some_and(|e| matches!(e.state, State::Done(_)) && stamp.is_none_or(|s| s == e.at));
        if removable && let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes();
        }
        removable
    }

    /// Evict the oldest finished entries until `need` more entries and
    /// `need_bytes` more bytes fit. False when only work in flight is left.
    fn make_room(&mut self, need: usize, need_bytes: usize) -> bool {
        let mut i = 0;
        while (self.entries.len() + need > self.max_entries
            || self.bytes + need_bytes > self.max_bytes)
            && i < self.order.len()
        {
            let (stamp, key) = self.order[i].clone();
            if self.remove_if_done(&key, Some(stamp)) {
                self.order.remove(i);
            } else {
                i += 1;
            }
        }
        self.entries.len() + need <= self.max_entries
    }
}

/// The answer to return instead of running the work (a replay of the
/// earlier result, or a refusal).
#[derive(Debug)]
pub struct Seen(pub Result<Value, ErrorShape>);

/// The bounded, expiring idempotency cache.
#[derive(Debug)]
pub struct Idempotency {
    cache: Mutex<Cache>,
}

impl Default for Idempotency {
    fn default() -> Self {
        Self::new(
            limits::IDEMPOTENCY_TTL,
            limits::IDEMPOTENCY_MAX_ENTRIES,
            limits::IDEMPOTENCY_MAX_BYTES,
        )
    }
}

/// Work under an idempotency key. Dropping it unfinished forgets the key.
#[must_use = "finish() records the result; dropping forgets the key"]
pub struct InFlight<'a> {
    owner: &'a Idempotency,
    key: String,
    done: bool,
}

impl InFlight<'_> {
    /// Record the result for retries.
    pub fn finish(mut self, result: &Result<Value, ErrorShape>) {
        self.done = true;
        self.owner.finish(&self.key, Outcome::from_result(result));
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.owner.forget(&self.key);
        }
    }
}

impl Idempotency {
    /// A cache with explicit bounds.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                ttl,
                max_entries,
                max_bytes,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start work under `key` with the request's `fingerprint`
    /// ([`crate::ids::fingerprint`] of its parameters): the guard to hold
    /// while working, or the answer to return now (the earlier result, a
    /// retryable "still running", a full cache, or a key reused for a
    /// different request).
    pub fn begin(&self, key: &str, fingerprint: &str) -> Result<InFlight<'_>, Seen> {
        let now = Instant::now();
        let mut cache = self.lock();
        cache.sweep(now);
        if let Some(entry) = cache.entries.get(key) {
            if entry.fingerprint != fingerprint {
                return Err(Seen(Err(ErrorShape::invalid(
                    "idempotencyKey was already used for a different request; use a new key for a new request",
                )
                .with_details(json!({"code": "IDEMPOTENCY_KEY_REUSED"})))));
            }
            return Err(Seen(match &entry.state {
                State::Done(outcome) => outcome.replay(),
                State::InFlight => Err(ErrorShape::new(
                    codes::UNAVAILABLE,
                    "a request with this idempotencyKey is still running",
                )
                .retry_after(500)),
            }));
        }
        if !cache.make_room(1, 0) {
            return Err(Seen(Err(ErrorShape::new(
                codes::UNAVAILABLE,
                "too many requests in flight; retry shortly",
            )
            .retry_after(1000))));
        }
        cache.entries.insert(
            key.to_owned(),
            Entry {
                at: now,
                fingerprint: fingerprint.to_owned(),
                state: State::InFlight,
            },
        );
        cache.order.push_back((now, key.to_owned()));
        Ok(InFlight {
            owner: self,
            key: key.to_owned(),
            done: false,
        })
    }

    fn finish(&self, key: &str, outcome: Outcome) {
        let now = Instant::now();
        let mut cache = self.lock();
        let bytes = outcome.bytes();
        if !cache.entries.contains_key(key) {
            return;
        }
        // Room for the result first (it may push out older results).
        let fits = {
            let _ = cache.make_room(0, bytes);
            cache.bytes + bytes <= cache.max_bytes
        };
        let outcome = if fits {
            outcome
        } else {
            match outcome {
                Outcome::Ok(_) => Outcome::OkTooLarge,
                other => other,
            }
        };
        let bytes = outcome.bytes();
        if let Some(entry) = cache.entries.get_mut(key) {
            entry.at = now;
            entry.state = State::Done(outcome);
        }
        cache.bytes += bytes;
        cache.order.push_back((now, key.to_owned()));
    }

    fn forget(&self, key: &str) {
        let mut cache = self.lock();
        if cache
            .entries
            .get(key)
            .is_some_and(|e| matches!(e.state, State::InFlight))
        {
            cache.entries.remove(key);
        }
    }

    /// Entries held and the bytes of results they keep.
    pub fn usage(&self) -> (usize, usize) {
        let cache = self.lock();
        (cache.entries.len(), cache.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(seen: Result<InFlight<'_>, Seen>) -> Result<Value, ErrorShape> {
        match seen {
            Ok(_) => panic!("expected an answer, got the go-ahead"),
            Err(Seen(a)) => a,
        }
    }

    #[test]
    fn retries_see_in_flight_then_the_cached_result() {
        let c = Idempotency::default();
        let work = c.begin("k", "f").unwrap_or_else(|_| panic!("start"));
        let busy = answer(c.begin("k", "f"));
        assert!(busy.is_err_and(|e| e.message.contains("still running")));
        work.finish(&Ok(json!({"n": 42})));
        assert_eq!(answer(c.begin("k", "f")).ok(), Some(json!({"n": 42})));
    }

    #[test]
    fn a_dropped_guard_forgets_the_key() {
        let c = Idempotency::default();
        drop(c.begin("k", "f").unwrap_or_else(|_| panic!("start")));
        assert!(c.begin("k", "f").is_ok(), "a retry runs again");
    }

    #[test]
    fn a_reused_key_with_other_params_is_refused() {
        let c = Idempotency::default();
        c.begin("k", "f1")
            .unwrap_or_else(|_| panic!("start"))
            .finish(&Ok(json!(1)));
        let refused = answer(c.begin("k", "f2"));
        assert!(refused.is_err_and(|e| e.detail_code() == Some("IDEMPOTENCY_KEY_REUSED")));
    }

    #[test]
    fn results_are_bounded_by_bytes() {
        let c = Idempotency::new(Duration::from_secs(300), 1000, 1024 * 1024);
        let big = json!({"payload": "x".repeat(limits::IDEMPOTENCY_MAX_RESULT_BYTES - 100)});
        for i in 0..300 {
            c.begin(&format!("k{i}"), "f")
                .unwrap_or_else(|_| panic!("start"))
                .finish(&Ok(big.clone()));
            assert!(c.usage().1 <= 1024 * 1024);
        }
        let huge = json!({"payload": "y".repeat(900 * 1024)});
        c.begin("huge", "f")
            .unwrap_or_else(|_| panic!("start"))
            .finish(&Ok(huge));
        let replay = answer(c.begin("huge", "f")).unwrap_or_default();
        assert_eq!(replay["payloadOmitted"], true, "{replay}");
        assert!(c.usage().1 <= 1024 * 1024);
    }

    #[test]
    fn entries_expire_but_in_flight_stay_and_fullness_refuses() {
        let c = Idempotency::new(Duration::from_millis(0), 2, 1024);
        let a = c.begin("a", "f").unwrap_or_else(|_| panic!("a"));
        let b = c.begin("b", "f").unwrap_or_else(|_| panic!("b"));
        let full = answer(c.begin("c", "f"));
        assert!(full.is_err_and(|e| e.message.contains("too many")));
        a.finish(&Ok(json!(1)));
        assert!(c.begin("a", "f").is_ok(), "expired (ttl 0)");
        drop(b);
    }
}
