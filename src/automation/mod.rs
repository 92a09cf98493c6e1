//! Automations: things the gateway does on its own at scheduled times.

pub mod schedule;
