//! Helpers for tests of the board: its calls run on the board's own threads,
//! in real time, so tests wait for them by condition, never by the clock.
//!
//! Under paused tokio time a waiting test must not let the runtime go idle
//! while a board thread works: tokio would auto-advance the clock (it holds
//! it only for its own blocking pool), firing timers such as a pulse's end
//! early. [`settle`] and [`frozen`] keep the runtime busy instead.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use pinclaw::board::profile::{self, DeviceKindName};
use pinclaw::board::sim::SimBoard;
use pinclaw::board::{BoardConfig, BoardSpec, DeviceSpec, DeviceTable};

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

/// `[board]` config for the sim profile with its demo devices plus `devices`.
pub fn sim_config(devices: Vec<DeviceSpec>) -> BoardConfig {
    BoardConfig {
        profile: "sim".into(),
        devices,
        ..BoardConfig::default()
    }
}

/// The sim profile with its demo devices plus `devices`, resolved.
pub fn sim_spec(devices: Vec<DeviceSpec>) -> BoardSpec {
    profile::resolve(&sim_config(devices)).unwrap()
}

/// The demo's `relay1` (pin 17, active-low) declared `confirm = true`.
pub fn guarded_relay1() -> DeviceSpec {
    DeviceSpec {
        name: "relay1".into(),
        kind: Some(DeviceKindName::Output),
        pin: Some(17),
        active_low: Some(true),
        confirm: Some(true),
        ..DeviceSpec::default()
    }
}

/// A device table over the sim profile plus `devices`, and a handle on the
/// simulator to script it.
pub fn sim_table(devices: Vec<DeviceSpec>) -> (DeviceTable, Arc<SimBoard>) {
    let spec = sim_spec(devices);
    let sim = Arc::new(SimBoard::for_spec(&spec));
    let table = DeviceTable::new_sim(Arc::clone(&sim), spec).unwrap();
    assert!(Arc::ptr_eq(table.sim().unwrap(), &sim));
    (table, sim)
}

/// The default `[board]` config (`profile = "auto"`) over sysfs root `root`.
/// Off a Pi (no device-tree model naming one) it picks the simulator; an
/// empty root makes a test mean the same on a real Pi.
pub fn auto_config(root: &Path) -> BoardConfig {
    BoardConfig {
        sysfs_root: Some(root.to_path_buf()),
        ..BoardConfig::default()
    }
}
