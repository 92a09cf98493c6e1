//! The device files the board profile needs, and whether this user may use
//! them: `/dev/gpiochip*` and `/dev/gpiomem*` for inputs and outputs,
//! `/dev/i2c-N` for I2C sensors, `/sys/bus/w1/devices` for DS18B20s,
//! `/sys/class/pwm/pwmchip*` for hardware PWM. Only what the profile's
//! devices use is checked. When a file is missing, the detail names the
//! device that needs it and the hint gives the exact line for
//! `/boot/firmware/config.txt`; when it is there but refused, the group to
//! join.
//!
//! Everything is looked up under a root (`/`, or `[board] sysfs_root`), so
//! tests point the doctor at a fake tree. A device file is only opened and
//! closed, never read or written.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Check;
use crate::board::profile::{BackendKind, BoardSpec, DeviceKind};

/// The access checks for `spec`: against `[board] sysfs_root` when set,
/// else `/` on a Raspberry Pi; the simulated board needs none.
pub fn check(spec: &BoardSpec) -> Vec<Check> {
    match (&spec.sysroot, spec.backend) {
        (Some(root), _) => check_at(root.path(), spec),
        (None, BackendKind::Rppal) => check_at(Path::new("/"), spec),
        (None, BackendKind::Sim) => vec![Check::pass(
            "devices",
            "skipped: the simulated board needs no device files",
        )],
    }
}

/// The access checks for `spec`'s devices, with every path under `root`.
pub fn check_at(root: &Path, spec: &BoardSpec) -> Vec<Check> {
    let mut gpio = Vec::new();
    let mut i2c: BTreeSet<u8> = BTreeSet::new();
    let mut one_wire = Vec::new();
    let mut pwm = Vec::new();
    for d in &spec.devices {
        match &d.kind {
            DeviceKind::Output { pin, .. } | DeviceKind::Input { pin, .. } => {
                gpio.push(format!("{} on GPIO{pin}", d.name))
            }
            DeviceKind::Pwm { pin, .. } => pwm.push((d.name.as_str(), *pin)),
            DeviceKind::Bme280 { bus, .. } | DeviceKind::Sht31 { bus, .. } => {
                i2c.insert(*bus);
            }
            DeviceKind::Ds18b20 { id, .. } => one_wire.push((d.name.as_str(), id.as_str())),
            _ => {}
        }
    }
    let mut checks = Vec::new();
    if !gpio.is_empty() {
        checks.push(gpio_check(root, &gpio.join(", ")));
    }
    for bus in i2c {
        let users: Vec<&str> = spec
            .devices
            .iter()
            .filter(|d| {
                matches!(d.kind, DeviceKind::Bme280 { bus: b, .. } | DeviceKind::Sht31 { bus: b, .. } if b == bus)
            })
            .map(|d| d.name.as_str())
            .collect();
        checks.push(i2c_check(root, bus, &users.join(", ")));
    }
    if !one_wire.is_empty() {
        checks.push(one_wire_check(
            root,
            &one_wire,
            spec.profile.one_wire_pin.unwrap_or(4),
        ));
    }
    if !pwm.is_empty() {
        checks.push(pwm_check(root, &pwm, spec.profile.name == "pi-5"));
    }
    checks
}

/// `/dev/…` shown as the real path, whatever the root.
fn shown(rel: &str) -> String {
    format!("/{rel}")
}

/// Join `rel` (no leading `/`) onto `root`.
fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

/// The sorted names in `dir` that start with `prefix` (none when `dir`
/// cannot be read).
fn entries(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .take(crate::board::hal::MAX_DIR_ENTRIES)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether this process may open `path` (read and write, or write only).
fn open(path: &Path, read: bool) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(read)
        .write(true)
        .open(path)
        .map(drop)
}

fn join_group(group: &str) -> String {
    format!(
        "join the {group} group: sudo usermod -aG {group} $USER, then log in again (the pinclaw service is in it already)"
    )
}

fn config_line(line: &str) -> String {
    format!(
        "add `{line}` to /boot/firmware/config.txt (/boot/config.txt before Bookworm), then reboot"
    )
}

/// Opening each of `rels`: the first refused one, if any.
fn refused(root: &Path, rels: &[String], read: bool) -> Option<(String, std::io::Error)> {
    rels.iter()
        .find_map(|rel| match open(&under(root, rel), read) {
            Err(e) if e.kind() != ErrorKind::NotFound => Some((rel.clone(), e)),
            _ => None,
        })
}

fn gpio_check(root: &Path, users: &str) -> Check {
    let chips: Vec<String> = entries(&under(root, "dev"), "gpiochip")
        .into_iter()
        .map(|n| format!("dev/{n}"))
        .collect();
    if chips.is_empty() {
        return Check::fail(
            "gpio",
            format!("no /dev/gpiochip* ({users}): the kernel's GPIO driver is not there"),
            Some("run Raspberry Pi OS (or another kernel with the Pi's GPIO driver) on a Raspberry Pi".into()),
        );
    }
    let mem: Vec<String> = ["dev/gpiomem0", "dev/gpiomem"]
        .iter()
        .filter(|rel| under(root, rel).exists())
        .map(|rel| (*rel).to_owned())
        .collect();
    if mem.is_empty() {
        return Check::fail(
            "gpio",
            format!("no /dev/gpiomem ({users}): only root could drive the pins (through /dev/mem)"),
            Some("use Raspberry Pi OS, whose kernel provides /dev/gpiomem".into()),
        );
    }
    let all: Vec<String> = chips.iter().chain(&mem).cloned().collect();
    usable_by_gpio_group("gpio", root, &all, &all, true, users)
}

/// `name`'s check once its files exist: failed on the first of `opened`
/// that cannot be opened (read, else written), with the gpio group to
/// join; else passed, naming `listed`.
fn usable_by_gpio_group(
    name: &str,
    root: &Path,
    opened: &[String],
    listed: &[String],
    read: bool,
    users: &str,
) -> Check {
    if let Some((rel, e)) = refused(root, opened, read) {
        return Check::fail(
            name,
            format!("{}: {e} ({users})", shown(&rel)),
            Some(join_group("gpio")),
        );
    }
    let names: Vec<String> = listed.iter().map(|r| shown(r)).collect();
    Check::pass(name, format!("{} usable ({users})", names.join(", ")))
}

fn i2c_check(root: &Path, bus: u8, users: &str) -> Check {
    let rel = format!("dev/i2c-{bus}");
    let name = format!("i2c-{bus}");
    match open(&under(root, &rel), true) {
        Ok(()) => Check::pass(name, format!("{} usable ({users})", shown(&rel))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let line = if bus == 1 {
                config_line("dtparam=i2c_arm=on") + " (or: sudo raspi-config nonint do_i2c 0)"
            } else {
                format!(
                    "enable I2C bus {bus} with its dtoverlay in /boot/firmware/config.txt (see /boot/firmware/overlays/README), then reboot"
                )
            };
            Check::fail(
                name,
                format!("{} is missing ({users}): I2C is off", shown(&rel)),
                Some(line),
            )
        }
        Err(e) => Check::fail(
            name,
            format!("{}: {e} ({users})", shown(&rel)),
            Some(join_group("i2c")),
        ),
    }
}

fn one_wire_check(root: &Path, sensors: &[(&str, &str)], pin: u8) -> Check {
    let rel = "sys/bus/w1/devices";
    let dir = under(root, rel);
    if !dir.is_dir() {
        let names: Vec<&str> = sensors.iter().map(|(n, _)| *n).collect();
        return Check::fail(
            "1-wire",
            format!(
                "{} is missing ({}): 1-Wire is off",
                shown(rel),
                names.join(", ")
            ),
            Some(config_line(&format!("dtoverlay=w1-gpio,gpiopin={pin}"))),
        );
    }
    let found: Vec<String> = entries(&dir, "")
        .into_iter()
        .filter(|n| !n.starts_with("w1_bus_master"))
        .collect();
    let missing: Vec<String> = sensors
        .iter()
        .filter(|(_, id)| !found.iter().any(|f| f == id))
        .map(|(name, id)| format!("{id} ({name})"))
        .collect();
    if missing.is_empty() {
        return Check::pass(
            "1-wire",
            format!("{} lists {}", shown(rel), found.join(", ")),
        );
    }
    Check::fail(
        "1-wire",
        format!(
            "the bus is up, but {} not on it; found: {}",
            missing.join(", ") + if missing.len() == 1 { " is" } else { " are" },
            if found.is_empty() {
                "nothing".to_owned()
            } else {
                found.join(", ")
            }
        ),
        Some(format!(
            "check the wiring (data to GPIO{pin}, a 4.7 kΩ pull-up to 3.3 V, GND) and the id in [[board.devices]]"
        )),
    )
}

/// The pin function that routes hardware PWM to a BCM pin (BCM2835/2711:
/// ALT0 on 12/13, ALT5 on 18/19).
fn pwm_func(pin: u8) -> u8 {
    if matches!(pin, 12 | 13) { 4 } else { 2 }
}

/// The `config.txt` line that routes hardware PWM to `pins`.
fn pwm_overlay(pins: &[u8]) -> String {
    match pins {
        [18, 19] | [19, 18] => "dtoverlay=pwm-2chan".into(),
        [a, b, ..] => format!(
            "dtoverlay=pwm-2chan,pin={a},func={},pin2={b},func2={}",
            pwm_func(*a),
            pwm_func(*b)
        ),
        [a] => format!("dtoverlay=pwm,pin={a},func={}", pwm_func(*a)),
        [] => "dtoverlay=pwm-2chan".into(),
    }
}

fn pwm_check(root: &Path, outputs: &[(&str, u8)], pi5: bool) -> Check {
    let users: Vec<String> = outputs
        .iter()
        .map(|(name, pin)| format!("{name} on GPIO{pin}"))
        .collect();
    let users = users.join(", ");
    let chips: Vec<String> = entries(&under(root, "sys/class/pwm"), "pwmchip")
        .into_iter()
        .map(|n| format!("sys/class/pwm/{n}"))
        .collect();
    if chips.is_empty() {
        let pins: Vec<u8> = outputs.iter().map(|(_, p)| *p).collect();
        let mut hint = config_line(&pwm_overlay(&pins));
        if pi5 {
            hint.push_str("; on a Pi 5 check the pin functions in /boot/firmware/overlays/README");
        }
        return Check::fail(
            "pwm",
            format!("no /sys/class/pwm/pwmchip* ({users}): hardware PWM is off"),
            Some(hint),
        );
    }
    let exports: Vec<String> = chips.iter().map(|c| format!("{c}/export")).collect();
    usable_by_gpio_group("pwm", root, &exports, &chips, false, &users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_line_routes_each_declared_pin() {
        assert_eq!(pwm_overlay(&[18]), "dtoverlay=pwm,pin=18,func=2");
        assert_eq!(pwm_overlay(&[12]), "dtoverlay=pwm,pin=12,func=4");
        assert_eq!(pwm_overlay(&[18, 19]), "dtoverlay=pwm-2chan");
        assert_eq!(
            pwm_overlay(&[12, 19]),
            "dtoverlay=pwm-2chan,pin=12,func=4,pin2=19,func2=2"
        );
    }
}
