//! `[[automations]]` and `[automation]` in the config file: what each
//! automation listens for (`when`), what it does (`do`), and the limits that
//! keep a home quiet at night and a feedback loop from switching a relay
//! forever. [`check`] validates every entry against the board, the channels
//! and the rest of the config, so `pinclaw config check` names each mistake
//! at `file:line:column`; the engine only ever sees checked entries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::{self, Schedule, TimeZone};
use super::template;
use crate::board::BoardSpec;
use crate::board::profile::DeviceKind;
use crate::config::{Config, Problem};

/// `[automation]`: settings of the engine itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Most actions all automations (and cron jobs) may take in any minute.
    /// One more stops the automation that asked (it is disabled until an
    /// operator enables it again): a relay that switches its own trigger
    /// cannot loop forever.
    pub max_actions_per_minute: u32,
    /// The time zone of `cron` schedules and quiet hours that name none
    /// (default: the system's, `/etc/localtime`).
    pub tz: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_actions_per_minute: 30,
            tz: None,
        }
    }
}

/// One `[[automations]]` entry as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationConfig {
    /// Unique name (`[a-z0-9_-]`, at most 64 characters).
    pub name: String,
    /// Whether it runs (`pinclaw automations disable` overrides at run time).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// What starts it.
    pub when: When,
    /// What it does.
    #[serde(rename = "do")]
    pub actions: Do,
    /// After firing, ignore the trigger for this long.
    #[serde(default)]
    pub cooldown_s: u64,
    /// A daily window in which it does not fire (`{from = "22:00", to = "07:00"}`).
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
}

fn enabled() -> bool {
    true
}

/// `when`: exactly one trigger, by the keys it uses.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// An input (or output) device: its edges, or with `field` a sensor.
    pub device: Option<String>,
    /// Edge direction: `on`, `off` or `any`.
    pub to: Option<String>,
    /// A sensor field for a threshold (`temperature_c`).
    pub field: Option<String>,
    /// Fire when the field rises above this.
    pub above: Option<f64>,
    /// Fire when the field falls below this.
    pub below: Option<f64>,
    /// … and stays there this many seconds.
    pub for_s: Option<u64>,
    /// How far back across the limit it must go to re-arm.
    pub hysteresis: Option<f64>,
    /// Read the sensor this often for this trigger (default 30 s).
    pub sample_s: Option<u64>,
    /// A 5- or 6-field cron expression.
    pub cron: Option<String>,
    /// Time zone of `cron` (IANA name).
    pub tz: Option<String>,
    /// A fixed interval (`15m`, `1h30m`).
    pub every: Option<String>,
    /// Once, at this RFC 3339 instant.
    pub at: Option<String>,
    /// Once at every gateway start.
    pub start: Option<bool>,
    /// An MQTT topic (exact; subscribed to because it is configured).
    pub mqtt: Option<String>,
    /// Only this payload (exact) fires it.
    pub payload: Option<String>,
    /// Also fire on retained MQTT messages (default: they are ignored).
    pub retained: Option<bool>,
}

/// `do`: one or more actions, run in this order: invoke, notify, agent,
/// mqtt (a notification can say that an invoke waits for approval).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Do {
    /// Switch something through the invoke path.
    pub invoke: Option<InvokeAction>,
    /// A channel message from a template; no model call.
    pub notify: Option<NotifyAction>,
    /// A turn of the agent in a session.
    pub agent: Option<AgentAction>,
    /// An MQTT message.
    pub mqtt: Option<MqttAction>,
}

/// `do.invoke`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeAction {
    /// The node (default: this board).
    #[serde(default)]
    pub node: Option<String>,
    /// The node command (`gpio.write`, `pwm.set`, `gpio.pulse`, …).
    pub command: String,
    /// Its params.
    #[serde(default)]
    pub params: Value,
    /// Undo it after this many seconds (survives a restart).
    #[serde(default)]
    pub for_s: Option<u64>,
}

/// `do.notify`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyAction {
    /// Channel id (`telegram`).
    pub channel: String,
    /// Chat id (as for `pinclaw send --to`).
    pub to: String,
    /// The text; `{time}`, `{value}`, … are filled in.
    pub text: String,
}

/// `do.agent`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAction {
    /// Session key (default `agent:main:main`).
    #[serde(default = "main_session")]
    pub session: String,
    /// The message; `{value}` and friends are filled in as quoted data.
    pub message: String,
    /// Where the reply goes besides the session.
    #[serde(default)]
    pub deliver: Option<Target>,
}

fn main_session() -> String {
    "agent:main:main".into()
}

/// A channel chat.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Channel id.
    pub channel: String,
    /// Chat id.
    pub to: String,
}

/// `do.mqtt`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttAction {
    /// Topic.
    pub topic: String,
    /// Payload (a template).
    #[serde(default)]
    pub payload: String,
    /// Retained.
    #[serde(default)]
    pub retain: bool,
}

/// `quiet_hours = {from = "22:00", to = "07:00", tz = "…"}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM` (before `from` = over midnight).
    pub to: String,
    /// Time zone (default: `[automation] tz`, else the system's).
    #[serde(default)]
    pub tz: Option<String>,
}

/// Which edges fire an edge trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeTo {
    /// On (active).
    On,
    /// Off.
    Off,
    /// Both.
    Any,
}

impl EdgeTo {
    /// Whether a change to `value` matches.
    pub fn matches(self, value: bool) -> bool {
        match self {
            EdgeTo::On => value,
            EdgeTo::Off => !value,
            EdgeTo::Any => true,
        }
    }
}

/// A checked trigger.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A device's on/off changes.
    Edge {
        /// Device name.
        device: String,
        /// Which changes.
        to: EdgeTo,
    },
    /// A sensor field crossing a limit.
    Threshold(Threshold),
    /// A time schedule.
    Schedule(Schedule),
    /// Each gateway start.
    Start,
    /// An MQTT message.
    Mqtt {
        /// Topic.
        topic: String,
        /// Only this payload.
        payload: Option<String>,
        /// Also retained messages.
        retained: bool,
    },
}

/// A checked threshold trigger.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// Sensor device.
    pub device: String,
    /// Field.
    pub field: &'static str,
    /// The limit.
    pub limit: f64,
    /// `true`: above; `false`: below.
    pub above: bool,
    /// How long the condition must hold, ms.
    pub for_ms: u64,
    /// Re-arm margin.
    pub hysteresis: f64,
    /// Read interval for this trigger, ms.
    pub sample_ms: u64,
}

impl Threshold {
    /// Whether `value` is past the limit.
    pub fn crossed(&self, value: f64) -> bool {
        if self.above {
            value > self.limit
        } else {
            value < self.limit
        }
    }

    /// Whether `value` is back far enough to re-arm.
    pub fn cleared(&self, value: f64) -> bool {
        if self.above {
            value <= self.limit - self.hysteresis
        } else {
            value >= self.limit + self.hysteresis
        }
    }
}

/// A quiet-hours window, minutes after local midnight.
#[derive(Debug, Clone)]
pub struct Quiet {
    /// Start minute.
    pub from: u32,
    /// End minute.
    pub to: u32,
    /// Its time zone.
    pub tz: TimeZone,
}

impl Quiet {
    /// Whether `at_ms` falls inside the window.
    pub fn contains(&self, at_ms: i64) -> bool {
        let offset = i64::from(self.tz.offset_at(at_ms.div_euclid(1000)));
        let minute = ((at_ms.div_euclid(1000) + offset).rem_euclid(86_400) / 60) as u32;
        if self.from <= self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

/// A checked automation, as the engine runs it.
#[derive(Debug, Clone)]
pub struct Automation {
    /// Its name.
    pub name: String,
    /// Enabled in the config.
    pub enabled: bool,
    /// What starts it.
    pub trigger: Trigger,
    /// What it does.
    pub actions: Do,
    /// Cooldown, ms.
    pub cooldown_ms: u64,
    /// Quiet hours.
    pub quiet: Option<Quiet>,
    /// The text of `when` for listings (`pir1 → on`, `cron 0 19 * * *`).
    pub describe: String,
}

/// Everything [`check`] needs to know besides the config file.
pub struct Context<'a> {
    /// The board's resolved devices, if the board resolved.
    pub board: Option<&'a BoardSpec>,
    /// The node commands of this board.
    pub commands: &'a [&'static str],
    /// Whether `command` with `params` is a valid call on this board (the
    /// board's own param checks).
    pub validate: &'a dyn Fn(&str, &Value) -> Result<(), String>,
}

/// The default time zone of automations.
pub fn default_tz(engine: &EngineConfig) -> TimeZone {
    engine
        .tz
        .as_deref()
        .and_then(|name| TimeZone::named(name).ok())
        .unwrap_or_else(TimeZone::local)
}

/// Checks every `[[automations]]` entry; returns the checked automations
/// and every problem found (each at its key path).
pub fn check(config: &Config, cx: &Context<'_>) -> (Vec<Automation>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let engine = &config.automation;
    if engine.max_actions_per_minute == 0 {
        problems.push(Problem::new(
            "automation.max_actions_per_minute",
            "must be at least 1",
        ));
    }
    if let Some(tz) = &engine.tz
        && let Err(e) = TimeZone::named(tz)
    {
        problems.push(Problem::new("automation.tz", e.to_string()));
    }
    let tz = default_tz(engine);
    for (i, a) in config.automations.iter().enumerate() {
        let key = |k: &str| format!("automations[{i}].{k}");
        let before = problems.len();
        let mut problem = |k: &str, m: String| problems.push(Problem::new(key(k), m));
        if !valid_name(&a.name) {
            problem(
                "name",
                "must be 1-64 characters of a-z, 0-9, _ and -".to_owned(),
            );
        } else if config.automations[..i].iter().any(|o| o.name == a.name) {
            problem("name", format!("`{}` is used twice", a.name));
        }
        let trigger = trigger(&a.when, &tz, config, cx, &mut problem);
        let known = template::placeholders(&a.when);
        actions(&a.actions, config, cx, &known, &mut problem);
        let quiet = a.quiet_hours.as_ref().and_then(|q| {
            let parsed = (hhmm(&q.from), hhmm(&q.to));
            let zone = match &q.tz {
                Some(name) => TimeZone::named(name)
                    .map_err(|e| problem("quiet_hours.tz", e.to_string()))
                    .ok()?,
                None => tz.clone(),
            };
            match parsed {
                (Some(from), Some(to)) if from != to => Some(Quiet { from, to, tz: zone }),
                (Some(_), Some(_)) => {
                    problem("quiet_hours.to", "must differ from `from`".to_owned());
                    None
                }
                (from, _) => {
                    let k = if from.is_none() {
                        "quiet_hours.from"
                    } else {
                        "quiet_hours.to"
                    };
                    problem(
                        k,
                        "expected a time of day as HH:MM (00:00-23:59)".to_owned(),
                    );
                    None
                }
            }
        });
        if problems.len() == before
            && let Some((trigger, describe)) = trigger
        {
            out.push(Automation {
                name: a.name.clone(),
                enabled: a.enabled,
                trigger,
                actions: a.actions.clone(),
                cooldown_ms: a.cooldown_s.saturating_mul(1000),
                quiet,
                describe,
            });
        }
    }
    (out, problems)
}

/// Automation and job names: `[a-z0-9_-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

/// The one trigger `when` describes, with its description.
fn trigger(
    w: &When,
    tz: &TimeZone,
    config: &Config,
    cx: &Context<'_>,
    problem: &mut dyn FnMut(&str, String),
) -> Option<(Trigger, String)> {
    let kinds = [
        ("device", w.device.is_some()),
        ("cron", w.cron.is_some()),
        ("every", w.every.is_some()),
        ("at", w.at.is_some()),
        ("start", w.start.is_some()),
        ("mqtt", w.mqtt.is_some()),
    ];
    let given: Vec<&str> = kinds
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    let stray = |keys: &[(&str, bool)], problem: &mut dyn FnMut(&str, String), what: &str| {
        for (k, set) in keys {
            if *set {
                problem(&format!("when.{k}"), format!("does not apply to {what}"));
            }
        }
    };
    match given.as_slice() {
        [] => {
            problem(
                "when",
                "give one trigger: device (an edge or, with field, a threshold), cron, every, at, start or mqtt".into(),
            );
            None
        }
        [_, _, ..] => {
            problem(
                "when",
                format!("give one trigger, not {}", given.join(" and ")),
            );
            None
        }
        ["device"] => {
            let name = w.device.as_deref().unwrap_or_default();
            let device = match cx.board.map(|b| b.device(name)) {
                Some(Some(d)) => d,
                Some(None) => {
                    problem(
                        "when.device",
                        format!("no device `{name}` is declared on this board"),
                    );
                    return None;
                }
                None => return None, // the board's own problems are reported
            };
            if w.field.is_some() || w.above.is_some() || w.below.is_some() {
                stray(
                    &[("to", w.to.is_some())],
                    problem,
                    "a threshold (it fires when the value crosses the limit)",
                );
                threshold(w, device, problem).map(|t| {
                    let describe = format!(
                        "{}.{} {} {}{}",
                        t.device,
                        t.field,
                        if t.above { ">" } else { "<" },
                        t.limit,
                        if t.for_ms > 0 {
                            format!(" for {} s", t.for_ms / 1000)
                        } else {
                            String::new()
                        }
                    );
                    (Trigger::Threshold(t), describe)
                })
            } else {
                stray(
                    &[
                        ("for_s", w.for_s.is_some()),
                        ("hysteresis", w.hysteresis.is_some()),
                        ("sample_s", w.sample_s.is_some()),
                    ],
                    problem,
                    "an edge trigger (add field and above or below for a threshold)",
                );
                edge(w, device, problem).map(|to| {
                    let word = match to {
                        EdgeTo::On => "on",
                        EdgeTo::Off => "off",
                        EdgeTo::Any => "any",
                    };
                    (
                        Trigger::Edge {
                            device: name.to_owned(),
                            to,
                        },
                        format!("{name} → {word}"),
                    )
                })
            }
        }
        ["start"] => {
            if w.start == Some(false) {
                problem(
                    "when.start",
                    "`start = false` never fires; remove the automation or set start = true".into(),
                );
                return None;
            }
            Some((Trigger::Start, "gateway start".into()))
        }
        ["mqtt"] => {
            let topic = w.mqtt.clone().unwrap_or_default();
            if !config.mqtt_configured() {
                problem(
                    "when.mqtt",
                    "needs the MQTT bridge: add an [mqtt] section with the broker's url".into(),
                );
                return None;
            }
            if topic.is_empty() || topic.contains(['+', '#']) || topic.len() > 256 {
                problem(
                    "when.mqtt",
                    "must be one exact topic (no + or # wildcards), at most 256 bytes".into(),
                );
                return None;
            }
            let describe = format!("mqtt {topic}");
            Some((
                Trigger::Mqtt {
                    topic,
                    payload: w.payload.clone(),
                    retained: w.retained.unwrap_or(false),
                },
                describe,
            ))
        }
        [_] => {
            let tz_for = match &w.tz {
                Some(name) if w.cron.is_some() => match TimeZone::named(name) {
                    Ok(z) => z,
                    Err(e) => {
                        problem("when.tz", e.to_string());
                        return None;
                    }
                },
                Some(_) => {
                    problem("when.tz", "only applies to cron".into());
                    return None;
                }
                None => tz.clone(),
            };
            let (key, parsed): (&str, Result<Schedule, String>) = if let Some(expr) = &w.cron {
                let parsed =
                    schedule::CronExpr::parse(expr).map(|expr| Schedule::Cron { expr, tz: tz_for });
                ("when.cron", parsed.map_err(|e| e.to_string()))
            } else if let Some(every) = &w.every {
                // Aligned to the clock (anchored at the epoch): `15m` runs
                // at :00, :15, :30 and :45, the same after every restart.
                let parsed = schedule::parse_duration(every).map(|d| Schedule::Every {
                    every_ms: d.as_millis() as u64,
                    anchor_ms: 0,
                });
                ("when.every", parsed.map_err(|e| e.to_string()))
            } else {
                let at = w.at.as_deref().unwrap_or_default();
                let parsed =
                    schedule::parse_instant(at, &tz_for).map(|at_ms| Schedule::At { at_ms });
                ("when.at", parsed.map_err(|e| e.to_string()))
            };
            match parsed {
                Ok(s) => {
                    let describe = s.to_string();
                    Some((Trigger::Schedule(s), describe))
                }
                Err(e) => {
                    problem(key, e.to_string());
                    None
                }
            }
        }
    }
}

fn edge(
    w: &When,
    device: &crate::board::Device,
    problem: &mut dyn FnMut(&str, String),
) -> Option<EdgeTo> {
    let to = match w.to.as_deref() {
        Some("on") => EdgeTo::On,
        Some("off") => EdgeTo::Off,
        Some("any") | None => EdgeTo::Any,
        Some(other) => {
            problem("when.to", format!("expected on, off or any, not `{other}`"));
            return None;
        }
    };
    match &device.kind {
        DeviceKind::Input { edge, .. } => {
            use crate::board::EdgeKind;
            // Logical on = the active level; an active-low input's "on" is a
            // falling edge, which the profile's edge filter must let through.
            let reported = |on: bool| {
                let high = if let DeviceKind::Input { active_low, .. } = device.kind {
                    on != active_low
                } else {
                    on
                };
                match edge {
                    EdgeKind::Both => true,
                    EdgeKind::Rising => high,
                    EdgeKind::Falling => !high,
                }
            };
            if to != EdgeTo::Any && !reported(to == EdgeTo::On) {
                problem(
                    "when.to",
                    format!(
                        "`{}` reports only {} edges (edge = \"{}\"), so it never turns {}",
                        device.name,
                        if reported(true) { "on" } else { "off" },
                        match edge {
                            EdgeKind::Both => "both",
                            EdgeKind::Rising => "rising",
                            EdgeKind::Falling => "falling",
                        },
                        if to == EdgeTo::On { "on" } else { "off" },
                    ),
                );
                return None;
            }
            Some(to)
        }
        DeviceKind::Output { .. } => Some(to),
        other => {
            problem(
                "when.device",
                format!(
                    "`{}` is a {}: edges come from inputs and outputs; for a sensor add field and above or below",
                    device.name,
                    other.name()
                ),
            );
            None
        }
    }
}

fn threshold(
    w: &When,
    device: &crate::board::Device,
    problem: &mut dyn FnMut(&str, String),
) -> Option<Threshold> {
    let fields: Vec<&'static str> = crate::board::sensors::reading::fields(&device.kind).collect();
    if fields.is_empty() {
        problem(
            "when.device",
            format!(
                "`{}` is a {}, not a sensor: thresholds need a sensor",
                device.name,
                device.kind.name()
            ),
        );
        return None;
    }
    let Some(name) = w.field.as_deref() else {
        problem(
            "when.field",
            format!(
                "which field of `{}`? one of {}",
                device.name,
                fields.join(", ")
            ),
        );
        return None;
    };
    let Some(field) = fields.iter().copied().find(|f| *f == name) else {
        problem(
            "when.field",
            format!(
                "`{}` has no field `{name}` (it has {})",
                device.name,
                fields.join(", ")
            ),
        );
        return None;
    };
    let (limit, above) = match (w.above, w.below) {
        (Some(v), None) => (v, true),
        (None, Some(v)) => (v, false),
        _ => {
            problem("when", "give one of above or below".into());
            return None;
        }
    };
    let hysteresis = w.hysteresis.unwrap_or(0.0);
    if !limit.is_finite() || !hysteresis.is_finite() || hysteresis < 0.0 {
        problem("when.hysteresis", "must be a number of at least 0".into());
        return None;
    }
    let sample_s = w.sample_s.unwrap_or(30);
    if !(1..=86_400).contains(&sample_s) {
        problem("when.sample_s", "must be between 1 and 86400".into());
        return None;
    }
    let for_s = w.for_s.unwrap_or(0);
    if for_s > 7 * 86_400 {
        problem("when.for_s", "must be at most 604800 (a week)".into());
        return None;
    }
    Some(Threshold {
        device: device.name.clone(),
        field,
        limit,
        above,
        for_ms: for_s * 1000,
        hysteresis,
        sample_ms: sample_s * 1000,
    })
}

fn actions(
    d: &Do,
    config: &Config,
    cx: &Context<'_>,
    placeholders: &[&str],
    problem: &mut dyn FnMut(&str, String),
) {
    if d.invoke.is_none() && d.notify.is_none() && d.agent.is_none() && d.mqtt.is_none() {
        problem(
            "do",
            "give at least one action: invoke, notify, agent or mqtt".into(),
        );
        return;
    }
    let mut text = |key: &str, text: &str| {
        if let Err(e) = template::check(text, placeholders) {
            problem(key, e);
        }
    };
    if let Some(n) = &d.notify {
        text("do.notify.text", &n.text);
    }
    if let Some(a) = &d.agent {
        text("do.agent.message", &a.message);
    }
    if let Some(m) = &d.mqtt {
        text("do.mqtt.payload", &m.payload);
    }
    if let Some(n) = &d.notify {
        target_problems(config, &n.channel, &n.to, "do.notify", problem);
        if n.text.trim().is_empty() {
            problem("do.notify.text", "must not be empty".into());
        }
    }
    if let Some(a) = &d.agent {
        if config.agent.model.is_none() {
            problem(
                "do.agent",
                "an agent action needs a model: set [agent] model (and a [[providers]] entry)"
                    .into(),
            );
        }
        if let Err(e) = crate::session::keys::resolve(Some(&a.session)) {
            problem("do.agent.session", e);
        }
        if a.message.trim().is_empty() {
            problem("do.agent.message", "must not be empty".into());
        }
        if let Some(t) = &a.deliver {
            target_problems(config, &t.channel, &t.to, "do.agent.deliver", problem);
        }
    }
    if let Some(inv) = &d.invoke {
        invoke_problems(inv, cx, problem);
    }
    if let Some(m) = &d.mqtt {
        if !config.mqtt_configured() {
            problem(
                "do.mqtt",
                "needs the MQTT bridge: add an [mqtt] section with the broker's url".into(),
            );
        }
        if m.topic.is_empty() || m.topic.contains(['+', '#']) || m.topic.len() > 256 {
            problem(
                "do.mqtt.topic",
                "must be one exact topic (no + or # wildcards), at most 256 bytes".into(),
            );
        }
    }
}

/// The chat channels a config can notify.
fn target_problems(
    config: &Config,
    channel: &str,
    to: &str,
    key: &str,
    problem: &mut dyn FnMut(&str, String),
) {
    match channel {
        "telegram" if config.channels.telegram.enabled => {
            if let Err(e) = crate::channel::telegram::parse_target(to, None) {
                problem(&format!("{key}.to"), e);
            }
        }
        "telegram" => problem(
            &format!("{key}.channel"),
            "the telegram channel is not enabled ([channels.telegram] enabled = true)".into(),
        ),
        other => problem(
            &format!("{key}.channel"),
            format!("unknown channel `{other}` (configured: telegram)"),
        ),
    }
}

fn invoke_problems(inv: &InvokeAction, cx: &Context<'_>, problem: &mut dyn FnMut(&str, String)) {
    if crate::node::policy::invoke_needs_admin(&inv.command) {
        problem(
            "do.invoke.command",
            format!(
                "`{}` needs operator.admin; automations act with operator.write",
                inv.command
            ),
        );
        return;
    }
    let local = matches!(inv.node.as_deref(), None | Some("local"));
    if local {
        if !cx.commands.contains(&inv.command.as_str()) {
            problem(
                "do.invoke.command",
                format!(
                    "this board has no command `{}` (it has {})",
                    inv.command,
                    cx.commands
                        .iter()
                        .filter(|c| !crate::node::policy::invoke_needs_admin(c))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return;
        }
        if let Err(e) = (cx.validate)(&inv.command, &inv.params) {
            problem("do.invoke.params", e);
        }
    }
    if inv.for_s.is_some() && !matches!(inv.command.as_str(), "gpio.write" | "pwm.set") {
        problem(
            "do.invoke.for_s",
            "only gpio.write and pwm.set can be undone after a while".into(),
        );
    }
    if inv.for_s == Some(0) {
        problem("do.invoke.for_s", "must be at least 1".into());
    }
}
