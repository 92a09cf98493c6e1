//! What changed on the board, for everyone who watches it: the dashboard,
//! the automation engine, the MQTT bridge and the sensor history. Every
//! successful write, every sensor read and every debounced input edge is
//! published once on a bounded broadcast ([`crate::limits::BOARD_CHANGES_QUEUE`]);
//! a watcher that falls behind loses the oldest changes and is told how many
//! (it then re-reads what it needs), so no watcher can slow the board down.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One change of a declared device's state.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardChange {
    /// An input (button, PIR) changed: `value` is its logical state
    /// (`true` = active: pressed, motion).
    Input {
        /// Device name.
        name: String,
        /// Logical state after the edge.
        value: bool,
        /// Milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A digital output was switched (`true` = on).
    Output {
        /// Device name.
        name: String,
        /// Logical state now.
        value: bool,
        /// Milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A PWM output's duty cycle was set (0.0–1.0).
    Pwm {
        /// Device name.
        name: String,
        /// Duty cycle now.
        duty: f64,
        /// Milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A sensor was read: every field it reports (`temperature_c`, …).
    Reading {
        /// Device name.
        name: String,
        /// Field name and value.
        values: Vec<(&'static str, f64)>,
        /// Milliseconds since the Unix epoch.
        ts: u64,
    },
}

impl BoardChange {
    /// The device it is about.
    pub fn name(&self) -> &str {
        match self {
            BoardChange::Input { name, .. }
            | BoardChange::Output { name, .. }
            | BoardChange::Pwm { name, .. }
            | BoardChange::Reading { name, .. } => name,
        }
    }

    /// As JSON: `{kind, name, value | duty | values, ts}`, `kind` one of
    /// `input`, `output`, `pwm`, `reading`.
    pub fn to_json(&self) -> Value {
        match self {
            BoardChange::Input { name, value, ts } => {
                json!({"kind": "input", "name": name, "value": value, "ts": ts})
            }
            BoardChange::Output { name, value, ts } => {
                json!({"kind": "output", "name": name, "value": value, "ts": ts})
            }
            BoardChange::Pwm { name, duty, ts } => {
                json!({"kind": "pwm", "name": name, "duty": duty, "ts": ts})
            }
            BoardChange::Reading { name, values, ts } => {
                let values: serde_json::Map<String, Value> = values
                    .iter()
                    .map(|(f, v)| ((*f).to_owned(), json!(v)))
                    .collect();
                json!({"kind": "reading", "name": name, "values": values, "ts": ts})
            }
        }
    }
}

/// The board's change feed: cheap to clone, publishing never blocks. It
/// also remembers the latest change of every device (at most one per
/// declared device), which is the board's last known state.
#[derive(Debug, Clone)]
pub struct Changes {
    tx: broadcast::Sender<BoardChange>,
    latest: Arc<Mutex<Vec<BoardChange>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(crate::limits::BOARD_CHANGES_QUEUE).0,
            latest: Arc::default(),
        }
    }
}

impl Changes {
    /// Publishes a change to every current watcher (none is fine).
    pub fn publish(&self, change: BoardChange) {
        {
            let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
            match latest.iter().position(|c| c.name() == change.name()) {
                Some(i) => latest[i] = change.clone(),
                None if latest.len() < crate::board::MAX_DEVICES => latest.push(change.clone()),
                None => {}
            }
        }
        let _ = self.tx.send(change);
    }

    /// The latest change of device `name`: its last known state.
    pub fn latest(&self, name: &str) -> Option<BoardChange> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.iter().find(|c| c.name() == name).cloned()
    }

    /// A new watcher, seeing changes published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BoardChange> {
        self.tx.subscribe()
    }
}
