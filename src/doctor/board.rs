//! The board: which one was detected and which profile applies, every
//! declared sensor read once through the same reader the gateway uses (on
//! the simulator, the simulated board), and the firmware's under-voltage
//! and throttling flags.
//!
//! Only sensors are read: the board is opened without configuring a pin,
//! so a running gateway's outputs are never touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Check, Pending};
use crate::board::profile::{BackendKind, BoardSpec, Device, DeviceKind};
use crate::board::sensors::reading::{SensorState, quantities, read_named};
use crate::board::sensors::soc::{THROTTLED_PATH, Throttled};
use crate::board::{Board, Reading, ReadingValue, ThrottleDetail, ThrottleState};

/// The name of the power (under-voltage and throttling) check.
const POWER: &str = "power";

/// Which board was detected and which profile applies.
pub fn detected(spec: &BoardSpec) -> Check {
    let model = match &spec.model {
        Some(model) => model.clone(),
        None => format!(
            "not a Raspberry Pi (no /{})",
            crate::board::profile::DEVICE_TREE_MODEL_PATH
        ),
    };
    let backend = match (spec.backend, spec.profile.backend) {
        (BackendKind::Sim, BackendKind::Sim) => " (the simulated board)",
        (BackendKind::Sim, BackendKind::Rppal) => {
            " on the simulated backend ([board] simulate = true)"
        }
        _ => "",
    };
    let devices: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
    Check::pass(
        "board",
        format!(
            "{model}: profile {}{backend}, {} devices ({})",
            spec.profile.name,
            devices.len(),
            devices.join(", ")
        ),
    )
}

/// The sensor reads under way.
pub struct Reads(Result<Vec<Pending>, String>);

/// Open the board (no pin is configured) and start reading every declared
/// sensor, each on a thread of its own; on a Raspberry Pi without a
/// declared `throttled` device, the firmware's flags too.
pub fn start_reads(spec: &BoardSpec, timeout: Duration) -> Reads {
    let board = match crate::board::open_board(spec) {
        Ok(board) => board,
        Err(e) => return Reads(Err(e.to_string())),
    };
    let i2c_wait = if spec.backend == BackendKind::Sim {
        Duration::ZERO
    } else {
        crate::board::devices::HW_I2C_WAIT
    };
    let state = Arc::new(SensorState::new(spec.devices.iter(), i2c_wait));
    let on_pi = spec.backend == BackendKind::Rppal;
    let mut sensors: Vec<Device> = spec
        .devices
        .iter()
        .filter(|d| d.kind.is_sensor())
        .cloned()
        .collect();
    let declared_flags = sensors
        .iter()
        .any(|d| matches!(d.kind, DeviceKind::Throttled { .. }));
    if on_pi && !declared_flags {
        sensors.push(Device {
            name: POWER.into(),
            label: None,
            kind: DeviceKind::Throttled {
                path: THROTTLED_PATH.into(),
                search: true,
            },
        });
    }
    let pending = sensors
        .into_iter()
        .map(|device| {
            let (board, state) = (board.clone(), state.clone());
            let name = sensor_name(&device);
            let extra = on_pi && !declared_flags && device.name == POWER;
            Pending::spawn(name, timeout, move || {
                read_one(board.as_ref(), &device, &state, on_pi, extra)
            })
        })
        .collect();
    Reads(Ok(pending))
}

/// The checks of the reads, in declaration order, then the power check.
pub fn finish_reads(spec: &BoardSpec, reads: Reads, deadline: Instant) -> Vec<Check> {
    let mut checks = Vec::new();
    match reads.0 {
        Ok(pending) => {
            for p in pending {
                checks.extend(p.wait(deadline));
            }
        }
        Err(e) => checks.push(Check::fail(
            "sensors",
            format!("cannot open the board: {e}"),
            Some("see the gpio check above".into()),
        )),
    }
    if spec.backend == BackendKind::Sim {
        checks.push(Check::pass(
            POWER,
            "skipped: the simulated board has no power supply to check",
        ));
    }
    checks
}

fn sensor_name(device: &Device) -> String {
    format!("sensor {}", device.name)
}

/// Read `device` once: its sensor check, and on a Pi the power check when
/// it is the throttling flags (`only_power`: a flags read the profile did
/// not declare, reported as the power check alone).
fn read_one(
    board: &dyn Board,
    device: &Device,
    state: &SensorState,
    on_pi: bool,
    only_power: bool,
) -> Vec<Check> {
    let read = read_named(board, device, state);
    let mut checks = Vec::new();
    if !only_power {
        checks.push(match &read {
            Ok(reading) => Check::pass(sensor_name(device), describe(device, reading)),
            Err(e) => Check::fail(sensor_name(device), e.to_string(), sensor_hint(device)),
        });
    }
    if on_pi && matches!(device.kind, DeviceKind::Throttled { .. }) {
        checks.push(match &read {
            Ok(Reading {
                detail: Some(detail),
                ..
            }) => power(detail),
            Ok(_) => Check::pass(POWER, "unknown: no flags in the reading"),
            Err(e) => Check::pass(POWER, format!("unknown: {e}")),
        });
    }
    checks
}

/// A reading in one line: `21.4 °C, 54.0 %, 1006.5 hPa`, or the flags.
fn describe(device: &Device, reading: &Reading) -> String {
    if let Some(ReadingValue::Flags(bits)) = reading.value {
        let state = reading.detail.as_ref().map_or("", |d| state_word(d.state));
        return format!("flags 0x{bits:x} ({state})");
    }
    if reading.value.is_none() {
        let reason = reading
            .detail
            .as_ref()
            .and_then(|d| d.reason.clone())
            .unwrap_or_else(|| "no value".into());
        return format!("unknown: {reason}");
    }
    match &reading.readings {
        Some(all) => quantities(&device.kind)
            .iter()
            .filter_map(|q| all.get(q))
            .map(|q| format!("{:.1} {}", q.value, q.unit))
            .collect::<Vec<_>>()
            .join(", "),
        None => match reading.value {
            Some(ReadingValue::Measured(v)) => format!("{v:.1} {}", reading.unit),
            _ => String::new(),
        },
    }
}

fn state_word(state: ThrottleState) -> &'static str {
    match state {
        ThrottleState::Ok => "ok now",
        ThrottleState::Throttled => "limited now",
        ThrottleState::UnderVoltage => "under-voltage now",
        ThrottleState::Unknown => "unknown",
    }
}

/// What to look at when a sensor cannot be read.
fn sensor_hint(device: &Device) -> Option<String> {
    match &device.kind {
        DeviceKind::Bme280 { bus, address, .. } | DeviceKind::Sht31 { bus, address } => Some(
            format!(
                "check the wiring (SDA, SCL, 3.3 V, GND) and the address: `sudo i2cdetect -y {bus}` should show {address:02x}"
            ),
        ),
        DeviceKind::Ds18b20 { id, .. } => Some(format!(
            "check the wiring (data with a 4.7 kΩ pull-up to 3.3 V) and the id: `ls /sys/bus/w1/devices` should list {id}"
        )),
        DeviceKind::Dht22 { .. } => Some(
            "the kernel's dht11 driver reads it: add dtoverlay=dht11,gpiopin=<its pin> to /boot/firmware/config.txt, then reboot".into(),
        ),
        _ => None,
    }
}

/// The power check from the firmware's flags.
fn power(detail: &ThrottleDetail) -> Check {
    const SUPPLY: &str = "use the official power supply for this board (5.1 V) and a short, thick cable, with fewer USB devices on it; the since-boot flags clear at the next reboot";
    const COOLING: &str = "improve cooling (a heatsink, a fan, an open case)";
    match (detail.state, &detail.flags) {
        (ThrottleState::Unknown, _) => Check::pass(
            POWER,
            format!(
                "unknown: {}",
                detail.reason.as_deref().unwrap_or("no flags available")
            ),
        ),
        (ThrottleState::UnderVoltage, _) => Check::fail(
            POWER,
            "under-voltage now (the rpi_volt alarm)",
            Some(SUPPLY.into()),
        ),
        (_, Some(t)) if t.any_now() => Check::fail(
            POWER,
            format!("limited now: {} (flags 0x{:x})", now_flags(t), t.bits),
            Some(if t.under_voltage { SUPPLY } else { COOLING }.into()),
        ),
        (_, Some(t)) if t.under_voltage_occurred => Check::fail(
            POWER,
            format!(
                "fine now, but under-voltage has occurred since boot (flags 0x{:x})",
                t.bits
            ),
            Some(SUPPLY.into()),
        ),
        (_, Some(t)) if t.bits != 0 => Check::pass(
            POWER,
            format!(
                "fine now; the SoC was throttled or capped since boot (flags 0x{:x}): {COOLING}",
                t.bits
            ),
        ),
        _ => Check::pass(POWER, "no under-voltage or throttling (flags 0x0)"),
    }
}

fn now_flags(t: &Throttled) -> String {
    [
        (t.under_voltage, "under-voltage"),
        (t.freq_capped, "frequency capped"),
        (t.throttled, "throttled"),
        (t.soft_temp_limit, "soft temperature limit"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(bits: u32) -> ThrottleDetail {
        ThrottleDetail::from_flags(Throttled::from_bits(bits), None)
    }

    #[test]
    fn under_voltage_now_or_since_boot_fails_with_the_supply_hint() {
        let now = power(&detail(0x5_0005));
        assert!(!now.ok);
        assert!(now.detail.contains("under-voltage, throttled"), "{now:?}");
        assert!(
            now.hint
                .as_deref()
                .is_some_and(|h| h.contains("power supply"))
        );
        let earlier = power(&detail(0x5_0000));
        assert!(
            !earlier.ok && earlier.detail.contains("since boot"),
            "{earlier:?}"
        );
        let warm = power(&detail(0x4_0000));
        assert!(warm.ok && warm.detail.contains("cooling"), "{warm:?}");
        assert!(power(&detail(0)).ok);
        let hot = power(&detail(0x8));
        assert!(!hot.ok && hot.hint.as_deref().is_some_and(|h| h.contains("cooling")));
    }
}
