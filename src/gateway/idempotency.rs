//! A bounded, expiring idempotency cache for side-effecting methods
//! (`agent`, `chat.send`, `node.invoke`, …): a retried key returns the cached
//! or in-flight result instead of doing the work twice.
//!
//! Entries live at most [`limits::IDEMPOTENCY_TTL`]; at
//! [`limits::IDEMPOTENCY_MAX_ENTRIES`] the oldest entry is evicted, except
//! entries still in flight, which are kept (a new key is then refused).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::limits;

/// State of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<V> {
    /// The work is running.
    InFlight,
    /// The work finished with this result.
    Done(V),
}

/// What [`IdempotencyCache::begin`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin<V> {
    /// New key: do the work, then call [`IdempotencyCache::finish`].
    Start,
    /// Seen before: return this instead.
    Seen(Entry<V>),
    /// Full of in-flight work: refuse.
    Full,
}

/// The cache. Keys are prefixed by kind by the caller (`agent:<key>`).
pub struct IdempotencyCache<V> {
    entries: HashMap<String, (Instant, Entry<V>)>,
    order: VecDeque<(Instant, String)>,
    ttl: Duration,
    max: usize,
}

impl<V: Clone> Default for IdempotencyCache<V> {
    fn default() -> Self {
        Self::new(limits::IDEMPOTENCY_TTL, limits::IDEMPOTENCY_MAX_ENTRIES)
    }
}

impl<V: Clone> IdempotencyCache<V> {
    /// A cache with explicit bounds.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            max,
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Look up `key`; when unseen, record it as in flight.
    pub fn begin(&mut self, key: &str, now: Instant) -> Begin<V> {
        self.sweep(now);
        if let Some((_, entry)) = self.entries.get(key) {
            return Begin::Seen(entry.clone());
        }
        if self.entries.len() >= self.max && !self.evict_oldest_done() {
            return Begin::Full;
        }
        self.entries.insert(key.to_owned(), (now, Entry::InFlight));
        self.order.push_back((now, key.to_owned()));
        Begin::Start
    }

    /// Record the result of work started with [`Self::begin`].
    pub fn finish(&mut self, key: &str, value: V, now: Instant) {
        if let Some(slot) = self.entries.get_mut(key) {
            *slot = (now, Entry::Done(value));
            self.order.push_back((now, key.to_owned()));
        }
    }

    /// Forget a key (the work failed before doing anything).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn sweep(&mut self, now: Instant) {
        while let Some((stamp, key)) = self.order.front() {
            if now.duration_since(*stamp) < self.ttl {
                break;
            }
            let (stamp, key) = (*stamp, key.clone());
            self.order.pop_front();
            // Remove only if the entry was not refreshed later and is finished.
            if let Some((at, entry)) = self.entries.get(&key)
                && *at == stamp
                && matches!(entry, Entry::Done(_))
            {
                self.entries.remove(&key);
            }
        }
        // Keep the order queue from accumulating stale stamps.
        if self.order.len() > 2 * self.max.max(1) {
            let entries = &self.entries;
            self.order
                .retain(|(at, k)| entries.get(k).is_some_and(|(t, _)| t == at));
        }
    }

    fn evict_oldest_done(&mut self) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(_, (_, e))| matches!(e, Entry::Done(_)))
            .min_by_key(|(_, (at, _))| *at)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                self.entries.remove(&k);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_see_in_flight_then_cached_result() {
        let mut c = IdempotencyCache::new(Duration::from_secs(300), 10);
        let t = Instant::now();
        assert_eq!(c.begin("chat:k", t), Begin::Start);
        assert_eq!(c.begin("chat:k", t), Begin::Seen(Entry::InFlight));
        c.finish("chat:k", 42, t);
        assert_eq!(c.begin("chat:k", t), Begin::Seen(Entry::Done(42)));
    }

    #[test]
    fn entries_expire_after_ttl_but_in_flight_stay() {
        let mut c = IdempotencyCache::new(Duration::from_secs(300), 10);
        let t = Instant::now();
        c.begin("a", t);
        c.finish("a", 1, t);
        c.begin("b", t);
        let later = t + Duration::from_secs(301);
        assert_eq!(c.begin("a", later), Begin::Start, "expired");
        assert_eq!(
            c.begin("b", later),
            Begin::Seen(Entry::InFlight),
            "in flight kept"
        );
    }

    #[test]
    fn bounded_evicting_oldest_finished_and_refusing_when_all_in_flight() {
        let max = crate::limits::IDEMPOTENCY_MAX_ENTRIES;
        let mut c: IdempotencyCache<u32> = IdempotencyCache::default();
        let t = Instant::now();
        for i in 0..max {
            let at = t + Duration::from_millis(i as u64);
            c.begin(&format!("k{i}"), at);
            c.finish(&format!("k{i}"), i as u32, at);
        }
        let at = t + Duration::from_secs(1);
        assert_eq!(c.begin("new", at), Begin::Start);
        assert_eq!(c.len(), max);
        assert_eq!(c.begin("k0", at), Begin::Start, "the oldest was evicted");

        let mut small = IdempotencyCache::<u32>::new(Duration::from_secs(300), 2);
        small.begin("x", t);
        small.begin("y", t);
        assert_eq!(small.begin("z", t), Begin::Full);
    }
}
