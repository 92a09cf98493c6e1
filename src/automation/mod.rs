//! Automations: the board acts on its own. Triggers (input edges, sensor
//! thresholds, schedules, gateway start, MQTT messages) fire actions
//! (notifications, agent turns, node commands, MQTT messages), durably and
//! within a rate cap; OpenClaw's cron jobs run on the same engine.
//!
//! - [`schedule`]: the time arithmetic (cron expressions, time zones,
//!   `every`, `at`).
//! - [`config`]: `[[automations]]` and `[automation]`, checked against the
//!   board and channels.
//! - [`template`]: `{placeholder}` texts.
//! - [`engine`]: the running engine and what it needs from the gateway
//!   ([`engine::Hands`]).
//! - [`jobs`]: OpenClaw's cron job wire format.

pub mod config;
pub mod engine;
pub mod jobs;
pub mod schedule;
pub mod template;
