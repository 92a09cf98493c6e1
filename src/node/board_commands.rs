//! The board's OpenClaw command surface: `board.info`, `sensors.list`,
//! `sensors.read`, `gpio.read`, `gpio.write`, `gpio.pulse` and `pwm.set`,
//! mapped onto the board's typed API ([`DeviceTable`]).
//!
//! [`BoardCommands`] parses JSON params into typed requests (unknown fields,
//! wrong types and out-of-range values are specific errors), returns JSON
//! payloads, and advertises a JSON-schema per command
//! ([`command_schemas`]). Writes to `confirm = true` outputs need an
//! operator: [`BoardCommands::invoke`] refuses them with
//! [`BoardError::ConfirmationRequired`]; the gateway asks
//! [`BoardCommands::confirmation`] first, obtains an operator's approval and
//! then calls [`BoardCommands::invoke_approved`]. Without approval the write
//! never happens.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::board::profile::MAX_PWM_HZ;
use crate::board::{
    BoardConfig, BoardError, BoardInfo, BoardSpec, DeviceTable, EdgeEvent, PlannedWrite, SimBoard,
    WriteOutcome, WriteRequest,
};
use crate::limits::MAX_PULSE_MS;

/// The commands of the board node.
pub const COMMANDS: &[&str] = &[
    "board.info",
    "sensors.list",
    "sensors.read",
    "gpio.read",
    "gpio.write",
    "gpio.pulse",
    "pwm.set",
];

/// The commands of the simulated board: the real ones plus `sim.set`
/// (admin only), which drives inputs and sensor values as if wired.
pub const SIM_COMMANDS: &[&str] = &[
    "board.info",
    "sensors.list",
    "sensors.read",
    "gpio.read",
    "gpio.write",
    "gpio.pulse",
    "pwm.set",
    "sim.set",
];

/// A write that needs an operator's approval before it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// The output device.
    pub device: String,
    /// The command (`gpio.write`, `gpio.pulse`, `pwm.set`).
    pub command: String,
    /// One line for the operator, e.g. `gpio.write relay1 = on`.
    pub summary: String,
}

/// The board's commands over a device table.
#[derive(Debug)]
pub struct BoardCommands {
    devices: Arc<DeviceTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    name: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PulseParams {
    name: String,
    ms: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PwmParams {
    name: String,
    duty: Value,
    #[serde(default)]
    hz: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// The `board.info` payload: the board's info plus the commands it answers.
#[derive(Serialize)]
struct InfoPayload<'a> {
    #[serde(flatten)]
    info: &'a BoardInfo,
    commands: &'static [&'static str],
}

fn parse<T: DeserializeOwned>(command: &str, params: Value) -> Result<T, BoardError> {
    let params = if params.is_null() { json!({}) } else { params };
    serde_json::from_value(params)
        .map_err(|e| BoardError::invalid_params(format!("{command}: {e}")))
}

/// Reads a logical on/off value: `true`/`false`, `1`/`0`, `"on"`/`"off"`.
pub fn parse_on_off(v: &Value) -> Result<bool, BoardError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(_) => Err(BoardError::OutOfRange {
            field: "value",
            value: v.to_string(),
            range: "0 or 1",
        }),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(BoardError::invalid_params(format!(
                "value `{s}` is not on/off (use true/false, 1/0 or \"on\"/\"off\")"
            ))),
        },
        _ => Err(BoardError::invalid_params(
            "value must be true/false, 1/0 or \"on\"/\"off\"",
        )),
    }
}

fn number(v: &Value, field: &'static str) -> Result<f64, BoardError> {
    v.as_f64()
        .ok_or_else(|| BoardError::invalid_params(format!("`{field}` must be a number")))
}

/// The typed request of a write command, or `None` for other commands.
fn write_request(command: &str, params: Value) -> Result<Option<WriteRequest>, BoardError> {
    let request = match command {
        "gpio.write" => {
            let p: WriteParams = parse(command, params)?;
            WriteRequest::Set {
                on: parse_on_off(&p.value)?,
                name: p.name,
            }
        }
        "gpio.pulse" => {
            let p: PulseParams = parse(command, params)?;
            let ms =
                p.ms.as_u64()
                    .ok_or_else(|| BoardError::pulse_out_of_range(p.ms.to_string()))?;
            WriteRequest::Pulse { name: p.name, ms }
        }
        "pwm.set" => {
            let p: PwmParams = parse(command, params)?;
            let hz = match &p.hz {
                None | Some(Value::Null) => None,
                Some(v) => Some(number(v, "hz")?),
            };
            WriteRequest::Pwm {
                duty: number(&p.duty, "duty")?,
                hz,
                name: p.name,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(request))
}

/// The payload of a write command.
fn write_payload(outcome: WriteOutcome) -> Value {
    match outcome {
        WriteOutcome::Switched { name, value } => json!({ "name": name, "value": value }),
        WriteOutcome::PwmSet { name, duty, hz } => json!({ "name": name, "duty": duty, "hz": hz }),
        WriteOutcome::Pulsed {
            name,
            ms,
            superseded: false,
        } => json!({ "name": name, "ms": ms, "value": false }),
        WriteOutcome::Pulsed {
            name,
            ms,
            superseded: true,
        } => json!({ "name": name, "ms": ms, "superseded": true }),
    }
}

fn to_payload(command: &str, value: impl Serialize) -> Result<Value, BoardError> {
    serde_json::to_value(value)
        .map_err(|e| BoardError::Hardware(format!("encoding the {command} payload: {e}")))
}

fn unknown(command: &str) -> BoardError {
    BoardError::UnknownCommand {
        command: command.to_string(),
    }
}

impl BoardCommands {
    /// The commands over `devices`.
    pub fn new(devices: Arc<DeviceTable>) -> Self {
        BoardCommands { devices }
    }

    /// Builds the device table from `[board]` config (see
    /// [`DeviceTable::from_config`]) and serves its commands.
    pub fn from_config(config: &BoardConfig) -> Result<Self, BoardError> {
        Ok(BoardCommands::new(Arc::new(DeviceTable::from_config(
            config,
        )?)))
    }

    /// The device table behind the commands.
    pub fn devices(&self) -> &Arc<DeviceTable> {
        &self.devices
    }

    /// The commands this node answers (`sim.set` only on the simulator).
    pub fn commands(&self) -> &'static [&'static str] {
        if self.devices.sim().is_some() {
            SIM_COMMANDS
        } else {
            COMMANDS
        }
    }

    /// The resolved profile and devices.
    pub fn spec(&self) -> &BoardSpec {
        self.devices.spec()
    }

    /// The simulator, when the board runs on the simulated backend.
    pub fn sim(&self) -> Option<&Arc<SimBoard>> {
        self.devices.sim()
    }

    /// Takes the receiver of debounced edge events (`{device, edge, active,
    /// ts}`) to publish as node events; only the first call gets it (see
    /// [`DeviceTable::take_events`]).
    pub fn take_events(&self) -> Option<mpsc::Receiver<EdgeEvent>> {
        self.devices.take_events()
    }

    /// Puts every output in its safe state (see [`DeviceTable::shutdown`]).
    pub fn shutdown(&self) -> Result<(), BoardError> {
        self.devices.shutdown()
    }

    /// Whether `command` with `params` needs an operator's approval, and what
    /// to show them. Validates the params as `invoke` would (so a bad call
    /// fails before anyone is asked). `Ok(None)` = no approval needed.
    pub fn confirmation(
        &self,
        command: &str,
        params: &Value,
    ) -> Result<Option<ConfirmRequest>, BoardError> {
        let Some(plan) = self.plan(command, params.clone())? else {
            return Ok(None);
        };
        Ok(plan.needs_confirmation().then(|| ConfirmRequest {
            device: plan.device().to_string(),
            command: command.to_string(),
            summary: format!("{command} {}", plan.summary()),
        }))
    }

    /// Runs a command. Writes to `confirm = true` outputs are refused with
    /// [`BoardError::ConfirmationRequired`]; use
    /// [`BoardCommands::invoke_approved`] once an operator approved.
    pub async fn invoke(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        self.run(command, params, false).await
    }

    /// Runs a command whose approval (if it needed one) has been granted.
    pub async fn invoke_approved(&self, command: &str, params: Value) -> Result<Value, BoardError> {
        self.run(command, params, true).await
    }

    /// The validated write of a write command; `None` for the other known
    /// commands; `UNKNOWN_COMMAND` for anything else.
    fn plan(&self, command: &str, params: Value) -> Result<Option<PlannedWrite>, BoardError> {
        match write_request(command, params)? {
            Some(request) => self.devices.plan(&request).map(Some),
            None if self.commands().contains(&command) => Ok(None),
            None => Err(unknown(command)),
        }
    }

    async fn run(&self, command: &str, params: Value, approved: bool) -> Result<Value, BoardError> {
        match command {
            "board.info" => {
                parse::<NoParams>(command, params)?;
                let info = self.devices.info();
                to_payload(
                    command,
                    InfoPayload {
                        info: &info,
                        commands: COMMANDS,
                    },
                )
            }
            "sensors.list" => {
                parse::<NoParams>(command, params)?;
                Ok(json!({ "sensors": to_payload(command, self.devices.sensors())? }))
            }
            "sensors.read" => {
                let p: NameParams = parse(command, params)?;
                to_payload(command, self.devices.read_sensor(&p.name).await?)
            }
            "gpio.read" => {
                let p: NameParams = parse(command, params)?;
                to_payload(command, self.devices.read_pin(&p.name).await?)
            }
            "sim.set" if self.devices.sim().is_some() => self.sim_set(params).await,
            _ => {
                let plan = self
                    .plan(command, params)?
                    .ok_or_else(|| unknown(command))?;
                if plan.needs_confirmation() && !approved {
                    return Err(BoardError::ConfirmationRequired {
                        name: plan.device().to_string(),
                        command: command.to_string(),
                    });
                }
                Ok(write_payload(self.devices.execute(plan).await?))
            }
        }
    }
}

/// Checks a call against `spec` without touching the board: the params of
/// every command, and for a write the device and value (what `config
/// check` says of an automation's `invoke`).
pub fn check_call(spec: &BoardSpec, command: &str, params: &Value) -> Result<(), BoardError> {
    if let Some(request) = write_request(command, params.clone())? {
        return crate::board::outputs::plan(spec, &request).map(|_| ());
    }
    match command {
        "board.info" | "sensors.list" => parse::<NoParams>(command, params.clone()).map(|_| ()),
        "sensors.read" | "gpio.read" => {
            let p: NameParams = parse(command, params.clone())?;
            let device = spec.device(&p.name).ok_or(BoardError::UnknownDevice {
                name: p.name.clone(),
            })?;
            let wanted_sensor = command == "sensors.read";
            let pin = matches!(
                device.kind,
                crate::board::DeviceKind::Input { .. } | crate::board::DeviceKind::Output { .. }
            );
            match (wanted_sensor, device.kind.is_sensor(), pin) {
                (true, false, _) => Err(BoardError::NotASensor {
                    name: p.name,
                    kind: device.kind.name(),
                }),
                (false, _, false) => Err(BoardError::NotAPin {
                    name: p.name,
                    kind: device.kind.name(),
                }),
                _ => Ok(()),
            }
        }
        _ => Err(unknown(command)),
    }
}

impl BoardCommands {
    /// `sim.set {name, value}` for an input, `{name, <field>: number, …}`
    /// for a sensor (`temperature_c`, `humidity_pct`, `pressure_hpa`).
    async fn sim_set(&self, params: Value) -> Result<Value, BoardError> {
        let Value::Object(mut fields) = params else {
            return Err(BoardError::invalid_params(
                "sim.set: params must be an object {name, value} or {name, <field>: number}",
            ));
        };
        let name = match fields.remove("name") {
            Some(Value::String(name)) => name,
            _ => {
                return Err(BoardError::invalid_params(
                    "sim.set: `name` (a string) is required",
                ));
            }
        };
        if let Some(value) = fields.remove("value") {
            if let Some(extra) = fields.keys().next() {
                return Err(BoardError::invalid_params(format!(
                    "sim.set: `value` drives an input; `{extra}` cannot be given with it"
                )));
            }
            let active = parse_on_off(&value)?;
            self.devices.sim_input(&name, active)?;
            return Ok(json!({ "name": name, "value": active }));
        }
        if fields.is_empty() {
            return Err(BoardError::invalid_params(
                "sim.set: give `value` for an input or at least one field for a sensor",
            ));
        }
        let values = fields
            .into_iter()
            .map(|(k, v)| match v.as_f64() {
                Some(n) => Ok((k, n)),
                None => Err(BoardError::invalid_params(format!(
                    "sim.set: `{k}` must be a number"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        to_payload("sim.set", self.devices.sim_sensor(&name, &values).await?)
    }
}

/// One line and a JSON-schema for the params of each command, for the node
/// layer to advertise and the agent to turn into tool schemas.
pub fn command_schemas() -> Value {
    let name = json!({ "type": "string", "description": "device name from board.info" });
    json!([
        {
            "command": "board.info",
            "description": "Board profile, backend, model and every declared device.",
            "params": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "command": "sensors.list",
            "description": "Declared sensors and the quantities each reports.",
            "params": { "type": "object", "properties": {}, "additionalProperties": false }
        },
        {
            "command": "sensors.read",
            "description": "Read a sensor: {name, value, unit, ts}, plus readings for multi-quantity sensors.",
            "params": { "type": "object", "properties": { "name": name }, "required": ["name"], "additionalProperties": false }
        },
        {
            "command": "gpio.read",
            "description": "Read an input or output: {name, value (logical on/active), level}.",
            "params": { "type": "object", "properties": { "name": name }, "required": ["name"], "additionalProperties": false }
        },
        {
            "command": "gpio.write",
            "description": "Switch an output on (true) or off (false); active-low wiring is handled.",
            "params": {
                "type": "object",
                "properties": { "name": name, "value": { "type": ["boolean", "integer", "string"], "description": "true/false, 1/0 or \"on\"/\"off\"" } },
                "required": ["name", "value"], "additionalProperties": false
            }
        },
        {
            "command": "gpio.pulse",
            "description": "Switch an output on for `ms` milliseconds, then off.",
            "params": {
                "type": "object",
                "properties": { "name": name, "ms": { "type": "integer", "minimum": 1, "maximum": MAX_PULSE_MS } },
                "required": ["name", "ms"], "additionalProperties": false
            }
        },
        {
            "command": "pwm.set",
            "description": "Set a PWM output's duty cycle (0.0-1.0) and optionally its frequency.",
            "params": {
                "type": "object",
                "properties": {
                    "name": name,
                    "duty": { "type": "number", "minimum": 0.0, "maximum": 1.0 },
                    "hz": { "type": "number", "exclusiveMinimum": 0.0, "maximum": MAX_PWM_HZ }
                },
                "required": ["name", "duty"], "additionalProperties": false
            }
        }
    ])
}
