//! A compact MQTT 3.1.1 client (QoS 0 and 1, clean sessions) for the Home
//! Assistant bridge, on the crates already in the tree (std sockets,
//! rustls with ring): about what rumqttc would do, without its 98 KB.
//!
//! - [`topic`]: topic names, filters and matching;
//! - [`packet`]: the codec (no I/O), strict and split-independent;
//! - [`session`]: outbox, in-flight QoS 1 messages, keep-alive clock;
//! - [`connection`]: TCP/TLS up to the CONNACK, then non-blocking reads
//!   and writes with the thread asleep in `epoll` in between;
//! - [`client`]: the `pinclaw-mqtt` thread that keeps the connection up
//!   (reconnect with backoff, resubscribe, will, clean stop);
//! - [`check`]: one timed round trip for `pinclaw mqtt check`.
//!
//! Caps and timings are the `MQTT_*` constants in `crate::limits`.

pub mod check;
pub mod client;
pub mod connection;
pub mod packet;
pub mod session;
pub mod topic;

pub use check::{CheckReport, check};
pub use client::{Client, Event, Message, Options, PublishError, Status, parse_url};
pub use connection::load_ca_file;
