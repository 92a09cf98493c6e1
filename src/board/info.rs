//! What the device table reports about itself: the board and its declared
//! devices ([`BoardInfo`]), the sensors ([`SensorInfo`]) and the state of a
//! pin ([`PinState`]). Plain values that serialize with camelCase names.

use serde::{Serialize, Serializer};

use super::hal::{EdgeKind, Level, Pull};
use super::profile::{Device, DeviceKind};
use super::sensors::reading::quantities;

/// The board: profile, backend, model and every declared device.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardInfo {
    /// Profile name (`pi4`, `sim`, ...).
    pub profile: String,
    /// The profile's one-line description.
    pub description: String,
    /// Backend name: `sim` or `rppal`.
    pub backend: &'static str,
    /// Hardware model (config override, device tree, or "simulated").
    pub model: String,
    /// Where file-based sensors are read.
    pub sysfs_root: String,
    /// Every declared device, in declaration order.
    pub devices: Vec<DeviceInfo>,
    /// Edge events dropped because the queue was full.
    pub edge_drops: u64,
    /// Raw edges ignored by debouncing.
    pub edges_debounced: u64,
}

/// One declared device and how it is wired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// Its kind (`output`, `input`, `pwm`, `bme280`, ...).
    pub kind: &'static str,
    /// Human label, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Pin, bus or 1-Wire id, for devices that have one.
    #[serde(flatten)]
    pub wiring: Option<Wiring>,
}

/// How a device is attached (its fields appear beside the device's own).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Wiring {
    /// A digital output.
    #[serde(rename_all = "camelCase")]
    Output {
        /// BCM pin.
        pin: u8,
        /// On = low.
        active_low: bool,
        /// Writes need an operator's approval.
        confirm: bool,
        /// Rate limit (0 = unlimited).
        max_writes_per_minute: u32,
    },
    /// A digital input.
    #[serde(rename_all = "camelCase")]
    Input {
        /// BCM pin.
        pin: u8,
        /// Bias.
        pull: Pull,
        /// Reported edges.
        edge: EdgeKind,
        /// Debounce window.
        debounce_ms: u64,
        /// Active = low.
        active_low: bool,
        /// What it senses, if declared.
        #[serde(skip_serializing_if = "Option::is_none")]
        class: Option<&'static str>,
    },
    /// A hardware PWM output.
    #[serde(rename_all = "camelCase")]
    Pwm {
        /// BCM pin.
        pin: u8,
        /// Default frequency.
        hz: f64,
        /// Settings need an operator's approval.
        confirm: bool,
        /// Rate limit (0 = unlimited).
        max_writes_per_minute: u32,
    },
    /// A device on an I2C bus.
    I2c {
        /// Bus number (`/dev/i2c-N`).
        bus: u8,
        /// 7-bit address, shown as `0x76`.
        #[serde(serialize_with = "hex_address")]
        address: u8,
    },
    /// A 1-Wire device.
    OneWire {
        /// The 1-Wire id (`28-...`).
        id: String,
    },
}

fn hex_address<S: Serializer>(address: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{address:02x}"))
}

impl DeviceInfo {
    /// The description of a declared device.
    pub fn of(device: &Device) -> DeviceInfo {
        let wiring = match &device.kind {
            DeviceKind::Output {
                pin,
                active_low,
                confirm,
                max_writes_per_minute,
                ..
            } => Some(Wiring::Output {
                pin: *pin,
                active_low: *active_low,
                confirm: *confirm,
                max_writes_per_minute: *max_writes_per_minute,
            }),
            DeviceKind::Input {
                pin,
                pull,
                edge,
                debounce,
                active_low,
                class,
            } => Some(Wiring::Input {
                pin: *pin,
                pull: *pull,
                edge: *edge,
                debounce_ms: debounce.as_millis() as u64,
                active_low: *active_low,
                class: *class,
            }),
            DeviceKind::Pwm {
                pin,
                hz,
                confirm,
                max_writes_per_minute,
                ..
            } => Some(Wiring::Pwm {
                pin: *pin,
                hz: *hz,
                confirm: *confirm,
                max_writes_per_minute: *max_writes_per_minute,
            }),
            DeviceKind::Bme280 { bus, address, .. } | DeviceKind::Sht31 { bus, address } => {
                Some(Wiring::I2c {
                    bus: *bus,
                    address: *address,
                })
            }
            DeviceKind::Ds18b20 { id, .. } => Some(Wiring::OneWire { id: id.clone() }),
            DeviceKind::CpuTemp { .. }
            | DeviceKind::Throttled { .. }
            | DeviceKind::Dht22 { .. } => None,
        };
        DeviceInfo {
            name: device.name.clone(),
            kind: device.kind.name(),
            label: device.label.clone(),
            wiring,
        }
    }
}

/// A declared sensor and the quantities it reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorInfo {
    /// Device name.
    pub name: String,
    /// Its kind (`bme280`, `ds18b20`, ...).
    pub kind: &'static str,
    /// Human label (`null` when none is configured).
    pub label: Option<String>,
    /// Quantities, primary first (`temperature`, `humidity`, ...).
    pub quantities: &'static [&'static str],
}

impl SensorInfo {
    /// The description of a sensor device, or `None` for other devices.
    pub fn of(device: &Device) -> Option<SensorInfo> {
        device.kind.is_sensor().then(|| SensorInfo {
            name: device.name.clone(),
            kind: device.kind.name(),
            label: device.label.clone(),
            quantities: quantities(&device.kind),
        })
    }
}

/// The state of an input or output pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinState {
    /// Device name.
    pub name: String,
    /// Logical state: `true` = on / active (active-low wiring accounted for).
    pub value: bool,
    /// Electrical level.
    pub level: Level,
}
