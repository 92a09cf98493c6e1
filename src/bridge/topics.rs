//! The bridge's topic layout and payloads (pure, no I/O):
//!
//! - `{base}/{node}/status`: `online` / `offline`, retained (also the will);
//! - `{base}/{node}/{device}/state`: inputs and outputs `ON`/`OFF`, PWM duty
//!   0–100, retained;
//! - `{base}/{node}/{device}/{field}`: one plain number per sensor field,
//!   retained;
//! - `{base}/{node}/{device}/set`: commands (`ON`/`OFF`/`TOGGLE`, or 0–100
//!   for PWM); retained commands are ignored;
//! - `{base}/{node}/{device}/event`: a button's presses (Home Assistant's
//!   `event` entity), not retained.

/// Topics of one node.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
}

impl Topics {
    /// The topics under `{base}/{node}`.
    pub fn new(base: &str, node: &str) -> Self {
        Topics {
            root: format!("{base}/{node}"),
        }
    }

    /// `{base}/{node}/status`.
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }

    /// `{base}/{node}/{device}/state`.
    pub fn state(&self, device: &str) -> String {
        format!("{}/{device}/state", self.root)
    }

    /// `{base}/{node}/{device}/{field}`.
    pub fn field(&self, device: &str, field: &str) -> String {
        format!("{}/{device}/{field}", self.root)
    }

    /// `{base}/{node}/{device}/set`.
    pub fn set(&self, device: &str) -> String {
        format!("{}/{device}/set", self.root)
    }

    /// `{base}/{node}/{device}/event`.
    pub fn event(&self, device: &str) -> String {
        format!("{}/{device}/event", self.root)
    }

    /// The filter every command topic matches.
    pub fn set_filter(&self) -> String {
        format!("{}/+/set", self.root)
    }

    /// The device a command topic is for.
    pub fn command_device<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let rest = topic.strip_prefix(self.root.as_str())?.strip_prefix('/')?;
        let device = rest.strip_suffix("/set")?;
        (!device.is_empty() && !device.contains('/')).then_some(device)
    }
}

/// `ON` / `OFF`.
pub fn on_off(on: bool) -> &'static str {
    if on { "ON" } else { "OFF" }
}

/// A PWM duty (0–1) as a percentage, the way Home Assistant's `number`
/// shows it (at most one decimal).
pub fn duty_percent(duty: f64) -> String {
    let pct = (duty * 1000.0).round() / 10.0;
    if pct.fract() == 0.0 {
        format!("{}", pct as i64)
    } else {
        format!("{pct}")
    }
}

/// A sensor value as a plain number (at most 3 decimals).
pub fn number(value: f64) -> String {
    let v = (value * 1000.0).round() / 1000.0;
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// What a command asks of an output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    /// Switch on or off.
    Switch(bool),
    /// The opposite of now.
    Toggle,
    /// PWM duty, 0–1.
    Duty(f64),
}

/// A command payload for a switch (`ON`, `OFF`, `TOGGLE`, `1`, `0`,
/// `true`, `false`), or for PWM (a number 0–100).
pub fn parse_command(payload: &[u8], pwm: bool) -> Result<Command, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| "the command is not text".to_owned())?
        .trim();
    if pwm {
        let pct: f64 = text
            .parse()
            .map_err(|_| format!("{:?} is not a number 0-100", shown(text)))?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("{pct} is outside 0-100"));
        }
        return Ok(Command::Duty(pct / 100.0));
    }
    match text.to_ascii_uppercase().as_str() {
        "ON" | "1" | "TRUE" => Ok(Command::Switch(true)),
        "OFF" | "0" | "FALSE" => Ok(Command::Switch(false)),
        "TOGGLE" => Ok(Command::Toggle),
        _ => Err(format!("{:?} is not ON, OFF or TOGGLE", shown(text))),
    }
}

fn shown(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_commands() {
        let t = Topics::new("pinclaw", "hub");
        assert_eq!(t.status(), "pinclaw/hub/status");
        assert_eq!(
            t.field("room", "temperature_c"),
            "pinclaw/hub/room/temperature_c"
        );
        assert_eq!(t.set_filter(), "pinclaw/hub/+/set");
        assert_eq!(t.command_device("pinclaw/hub/relay1/set"), Some("relay1"));
        assert_eq!(t.command_device("pinclaw/hub/relay1/state"), None);
        assert_eq!(t.command_device("pinclaw/other/relay1/set"), None);
        assert_eq!(t.command_device("pinclaw/hub/a/b/set"), None);
        assert_eq!(parse_command(b"ON", false), Ok(Command::Switch(true)));
        assert_eq!(parse_command(b" off\n", false), Ok(Command::Switch(false)));
        assert_eq!(parse_command(b"toggle", false), Ok(Command::Toggle));
        assert!(parse_command(b"maybe", false).is_err());
        assert_eq!(parse_command(b"40", true), Ok(Command::Duty(0.4)));
        assert!(parse_command(b"140", true).is_err());
        assert!(parse_command(&[0xff], false).is_err());
        assert_eq!(duty_percent(0.4), "40");
        assert_eq!(duty_percent(0.125), "12.5");
        assert_eq!(number(21.0), "21");
        assert_eq!(number(1006.5301), "1006.53");
    }
}
