//! Exponential backoff with a cap, and jitter: the retry rhythm of the
//! channel poller and the outbound delivery loop.

use std::time::Duration;

/// Waits that double from `first` up to `max`; [`Backoff::reset`] after a
/// success.
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starting at `first`, capped at `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The wait to use now (the next one doubles).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The wait [`Backoff::next_wait`] will return, without moving on.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Back to the first wait.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// ±20 % jitter, so that many clients behind one router do not retry in
/// step.
pub fn jitter(wait: Duration) -> Duration {
    let [b] = crate::ids::random_bytes::<1>();
    let factor = 0.8 + 0.4 * f64::from(b) / 255.0;
    wait.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_secs(1));
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10)).as_millis();
            assert!((8000..=12000).contains(&j), "{j}");
        }
    }
}
