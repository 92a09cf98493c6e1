//! What changed on the board, for everyone who watches it: the dashboard,
//! the automation engine, the MQTT bridge and the sensor history. Every
//! successful write, every sensor read and every debounced input edge is
//! published once on a bounded broadcast ([`crate::limits::BOARD_CHANGES_QUEUE`]);
//! a watcher that falls behind loses the oldest changes and is told how many
//! (it then re-reads what it needs), so no watcher can slow the board down.

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

/// The board's change feed: cheap to clone, publishing never blocks.
#[derive(Debug, Clone)]
pub struct Changes {
    tx: broadcast::Sender<BoardChange>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            tx: broadcast::channel(crate::limits::BOARD_CHANGES_QUEUE).0,
        }
    }
}

impl Changes {
    /// Publishes a change to every current watcher (none is fine).
    pub fn publish(&self, change: BoardChange) {
        let _ = self.tx.send(change);
    }

    /// A new watcher, seeing changes published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BoardChange> {
        self.tx.subscribe()
    }
}
