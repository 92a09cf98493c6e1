//! The bounded outbound queue of one connection.
//!
//! Frames wait here until the connection task writes them. The queue is
//! bounded in frames and bytes. When a frame does not fit, a droppable event
//! is dropped (its `seq` was already consumed, so the client sees the gap);
//! anything else marks the connection as a slow consumer, which closes it.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Outcome of [`Outbound::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The frame is queued.
    Queued,
    /// The frame was droppable and the queue was full: dropped.
    Dropped,
    /// The connection is (now) closed for being too slow, or already closing.
    Closed,
}

struct State {
    frames: VecDeque<String>,
    bytes: usize,
    slow: bool,
    closing: bool,
}

/// A bounded per-connection queue of serialized frames.
pub struct Outbound {
    state: Mutex<State>,
    max_frames: usize,
    max_bytes: usize,
    /// Woken when frames are queued.
    pub ready: Notify,
    /// Woken when the connection must close (slow consumer).
    pub slow: Notify,
}

impl Outbound {
    /// A queue with the given caps.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                slow: false,
                closing: false,
            }),
            max_frames,
            max_bytes,
            ready: Notify::new(),
            slow: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a frame. A frame that alone exceeds the byte cap is still
    /// accepted into an empty queue, so a large response is never lost.
    pub fn push(&self, frame: String, droppable: bool) -> Pushed {
        let mut s = self.lock();
        if s.slow || s.closing {
            return Pushed::Closed;
        }
        let fits = s.frames.is_empty()
            || (s.frames.len() < self.max_frames && s.bytes + frame.len() <= self.max_bytes);
        if !fits {
            if droppable {
                return Pushed::Dropped;
            }
            s.slow = true;
            s.frames.clear();
            s.frames.shrink_to_fit();
            s.bytes = 0;
            drop(s);
            self.slow.notify_one();
            return Pushed::Closed;
        }
        s.bytes += frame.len();
        s.frames.push_back(frame);
        drop(s);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Take the oldest queued frame. Frames leave the accounting only when
    /// taken, one at a time, so a blocked socket lets the queue fill up.
    pub fn pop(&self) -> Option<String> {
        let mut s = self.lock();
        let frame = s.frames.pop_front()?;
        s.bytes -= frame.len();
        if s.frames.is_empty() && s.frames.capacity() > 64 {
            s.frames.shrink_to(16);
        }
        Some(frame)
    }

    /// Whether the connection was closed as a slow consumer.
    pub fn is_slow(&self) -> bool {
        self.lock().slow
    }

    /// Refuse further frames (the connection is closing).
    pub fn close(&self) {
        self.lock().closing = true;
    }

    /// Queued bytes.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droppable_frames_drop_and_others_close_when_full() {
        let q = Outbound::new(2, 100);
        assert_eq!(q.push("a".repeat(40), false), Pushed::Queued);
        assert_eq!(q.push("b".repeat(40), false), Pushed::Queued);
        assert_eq!(q.push("c".into(), true), Pushed::Dropped, "frame cap");
        assert!(q.pop().is_some() && q.pop().is_some() && q.pop().is_none());
        assert_eq!(q.push("d".repeat(90), false), Pushed::Queued);
        assert_eq!(q.push("e".repeat(20), true), Pushed::Dropped, "byte cap");
        assert!(!q.is_slow());
        assert_eq!(q.push("f".repeat(20), false), Pushed::Closed);
        assert!(q.is_slow());
        assert_eq!(q.queued_bytes(), 0, "a slow connection's backlog is freed");
        assert_eq!(q.push("g".into(), false), Pushed::Closed);
    }

    #[test]
    fn one_oversized_frame_fits_an_empty_queue() {
        let q = Outbound::new(4, 10);
        assert_eq!(q.push("x".repeat(50), false), Pushed::Queued);
    }
}
