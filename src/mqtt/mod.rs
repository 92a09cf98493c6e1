//! A compact MQTT 3.1.1 client (QoS 0 and 1, clean sessions) for the Home
//! Assistant bridge, on the crates already in the tree.
//!
//! - [`topic`]: topic names, filters and matching;
//! - [`packet`]: the codec (no I/O), strict and split-independent.
//!
//! Caps are the `MQTT_*` constants in `crate::limits`.

pub mod packet;
pub mod topic;
