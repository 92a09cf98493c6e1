//! Sensor drivers: pure parsers for the kernel's text formats and bus
//! protocols, plus thin readers over [`crate::board::hal::Board`].
//!
//! Every parser is a plain function from text or bytes to a value or a
//! [`crate::board::BoardError`], so it can be tested against fixture files.

pub mod bme280;
pub mod dht22;
pub mod ds18b20;
pub mod reading;
pub mod sht31;
pub mod soc;

pub use reading::{
    Quantity, Reading, ReadingValue, SensorState, ThrottleDetail, ThrottleState, read_named,
    read_sensor,
};
