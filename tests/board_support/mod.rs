//! Helpers for tests of the board: its calls run on the board's own threads,
//! in real time, so tests wait for them by condition, never by the clock.
//!
//! Under paused tokio time a waiting test must not let the runtime go idle
//! while a board thread works: tokio would auto-advance the clock (it holds
//! it only for its own blocking pool), firing timers such as a pulse's end
//! early. [`settle`] and [`frozen`] keep the runtime busy instead.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Longest a helper waits before failing the test: a hang guard only.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `fut` once: a board call enqueues its job on its first poll.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Yields until `done()` holds, without letting paused time advance.
pub async fn settle(what: &str, done: impl Fn() -> bool) {
    let give_up = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        tokio::task::yield_now().await;
    }
}

/// Awaits `fut` without letting paused time advance meanwhile.
pub async fn frozen<F: Future>(fut: F) -> F::Output {
    let mut fut = Box::pin(fut);
    let give_up = Instant::now() + HANG_GUARD;
    loop {
        if let Poll::Ready(out) = poll_once(&mut fut).await {
            return out;
        }
        assert!(Instant::now() < give_up, "a board call never finished");
        tokio::task::yield_now().await;
    }
}
