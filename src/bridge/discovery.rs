//! Home Assistant MQTT discovery for the board's declared devices (pure, no
//! I/O): every device becomes entities of one Home Assistant device — a
//! sensor per sensor field (temperature, humidity, atmospheric pressure,
//! with units, `measurement` state class and `expire_after`), a
//! `binary_sensor` per input (its class: motion for a PIR…), an `event`
//! per button, a `switch` per output, a `number` per PWM output — all with
//! `availability` on the status topic and `unique_id`s built from the node
//! and device names, so they are stable across restarts.
//!
//! Two layouts: device-based (`{prefix}/device/{node}/config`, one message
//! with `dev`, `o` and `cmps`) or one config topic per entity
//! (`{prefix}/{platform}/{node}/{object}/config`).

use serde_json::{Map, Value, json};

use super::topics::Topics;
use crate::board::profile::{Device, DeviceKind};
use crate::board::sensors::reading;

/// One entity: its object id (`room_temperature_c`), platform and config.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Unique within the node: `{device}` or `{device}_{field}`.
    pub object: String,
    /// `sensor`, `binary_sensor`, `event`, `switch`, `number`.
    pub platform: &'static str,
    /// The entity's discovery config (without `dev`/`o`).
    pub config: Map<String, Value>,
}

/// About the node, for the device entry.
pub struct NodeInfo<'a> {
    /// Node id (`hub`).
    pub node: &'a str,
    /// A human name (the host name).
    pub name: &'a str,
    /// The board's model.
    pub model: &'a str,
    /// pinclaw's version.
    pub version: &'a str,
    /// Seconds without an update after which a sensor shows unavailable.
    pub expire_after_s: u64,
}

/// Home Assistant's class and unit of a sensor field.
fn field_class(field: &str) -> (Option<&'static str>, Option<&'static str>) {
    match field {
        "temperature_c" => (Some("temperature"), Some("°C")),
        "humidity_pct" => (Some("humidity"), Some("%")),
        "pressure_hpa" => (Some("atmospheric_pressure"), Some("hPa")),
        _ => (None, None),
    }
}

/// `Temperature`, `Humidity`, `Pressure`, `Flags`.
fn field_title(field: &str) -> &'static str {
    match field {
        "temperature_c" => "Temperature",
        "humidity_pct" => "Humidity",
        "pressure_hpa" => "Pressure",
        _ => "Flags",
    }
}

/// The entities of the declared devices.
pub fn entities(devices: &[Device], topics: &Topics, info: &NodeInfo<'_>) -> Vec<Entity> {
    let mut out = Vec::new();
    let unique = |object: &str| format!("pinclaw_{}_{object}", info.node);
    let label = |d: &Device| d.label.clone().unwrap_or_else(|| d.name.clone());
    for d in devices {
        let mut config = Map::new();
        let mut put = |k: &str, v: Value| {
            config.insert(k.to_owned(), v);
        };
        match &d.kind {
            DeviceKind::Output { .. } => {
                put("name", json!(label(d)));
                put("stat_t", json!(topics.state(&d.name)));
                put("cmd_t", json!(topics.set(&d.name)));
                put("pl_on", json!("ON"));
                put("pl_off", json!("OFF"));
                put("qos", json!(1));
            }
            DeviceKind::Pwm { .. } => {
                put("name", json!(label(d)));
                put("stat_t", json!(topics.state(&d.name)));
                put("cmd_t", json!(topics.set(&d.name)));
                put("min", json!(0));
                put("max", json!(100));
                put("step", json!(1));
                put("mode", json!("slider"));
                put("unit_of_meas", json!("%"));
                put("qos", json!(1));
            }
            DeviceKind::Input {
                class: Some("button"),
                ..
            } => {
                put("name", json!(label(d)));
                put("stat_t", json!(topics.event(&d.name)));
                put("evt_typ", json!(["press"]));
                put("dev_cla", json!("button"));
            }
            DeviceKind::Input { class, .. } => {
                put("name", json!(label(d)));
                put("stat_t", json!(topics.state(&d.name)));
                put("pl_on", json!("ON"));
                put("pl_off", json!("OFF"));
                if let Some(class) = class {
                    put("dev_cla", json!(class));
                }
            }
            kind if kind.is_sensor() => {
                for field in reading::fields(kind) {
                    let object = format!("{}_{field}", d.name);
                    let mut config = Map::new();
                    let (class, unit) = field_class(field);
                    let name = format!("{} {}", label(d), field_title(field).to_lowercase());
                    config.insert("name".into(), json!(name));
                    config.insert("stat_t".into(), json!(topics.field(&d.name, field)));
                    if let Some(class) = class {
                        config.insert("dev_cla".into(), json!(class));
                        config.insert("stat_cla".into(), json!("measurement"));
                    } else {
                        config.insert("ent_cat".into(), json!("diagnostic"));
                    }
                    if let Some(unit) = unit {
                        config.insert("unit_of_meas".into(), json!(unit));
                    }
                    if matches!(kind, DeviceKind::CpuTemp { .. }) {
                        config.insert("ent_cat".into(), json!("diagnostic"));
                    }
                    config.insert("exp_aft".into(), json!(info.expire_after_s));
                    config.insert("uniq_id".into(), json!(unique(&object)));
                    out.push(Entity {
                        object,
                        platform: "sensor",
                        config,
                    });
                }
                continue;
            }
            _ => continue,
        }
        config.insert("uniq_id".into(), json!(unique(&d.name)));
        let platform = match &d.kind {
            DeviceKind::Output { .. } => "switch",
            DeviceKind::Pwm { .. } => "number",
            DeviceKind::Input {
                class: Some("button"),
                ..
            } => "event",
            _ => "binary_sensor",
        };
        out.push(Entity {
            object: d.name.clone(),
            platform,
            config,
        });
    }
    out
}

fn device_entry(info: &NodeInfo<'_>) -> Value {
    json!({
        "ids": [format!("pinclaw_{}", info.node)],
        "name": info.name,
        "mf": "pinclaw",
        "mdl": info.model,
        "sw": info.version,
    })
}

fn origin(info: &NodeInfo<'_>) -> Value {
    json!({"name": "pinclaw", "sw": info.version})
}

/// Device-based discovery: the topic and the one payload holding every
/// entity; `removed` (object, platform) pairs are reduced to `{"p": …}`
/// (Home Assistant's way to delete one component of a device).
pub fn device_payload(
    prefix: &str,
    entities: &[Entity],
    removed: &[(String, String)],
    topics: &Topics,
    info: &NodeInfo<'_>,
) -> (String, String) {
    let mut cmps = Map::new();
    for e in entities {
        let mut c = e.config.clone();
        c.insert("p".into(), json!(e.platform));
        cmps.insert(e.object.clone(), Value::Object(c));
    }
    for (object, platform) in removed {
        cmps.insert(object.clone(), json!({"p": platform}));
    }
    let payload = json!({
        "dev": device_entry(info),
        "o": origin(info),
        "avty_t": topics.status(),
        "cmps": cmps,
    });
    (
        format!("{prefix}/device/{}/config", info.node),
        payload.to_string(),
    )
}

/// Per-entity discovery: `(topic, payload)` for each entity.
pub fn entity_payloads(
    prefix: &str,
    entities: &[Entity],
    topics: &Topics,
    info: &NodeInfo<'_>,
) -> Vec<(String, String)> {
    entities
        .iter()
        .map(|e| {
            let mut c = e.config.clone();
            c.insert("dev".into(), device_entry(info));
            c.insert("o".into(), origin(info));
            c.insert("avty_t".into(), json!(topics.status()));
            (
                entity_topic(prefix, e.platform, info.node, &e.object),
                Value::Object(c).to_string(),
            )
        })
        .collect()
}

/// `{prefix}/{platform}/{node}/{object}/config`.
pub fn entity_topic(prefix: &str, platform: &str, node: &str, object: &str) -> String {
    format!("{prefix}/{platform}/{node}/{object}/config")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::BoardConfig;

    fn sim_devices() -> Vec<Device> {
        crate::board::profile::resolve(&BoardConfig::default())
            .unwrap()
            .devices
            .to_vec()
    }

    fn info() -> NodeInfo<'static> {
        NodeInfo {
            node: "hub",
            name: "hub",
            model: "sim",
            version: "0.1.0",
            expire_after_s: 900,
        }
    }

    #[test]
    fn every_device_becomes_an_entity_with_its_class_and_a_stable_id() {
        let topics = Topics::new("pinclaw", "hub");
        let list = entities(&sim_devices(), &topics, &info());
        let find = |object: &str| {
            list.iter()
                .find(|e| e.object == object)
                .unwrap_or_else(|| panic!("no entity {object}"))
        };
        let t = find("room_temperature_c");
        assert_eq!(t.platform, "sensor");
        assert_eq!(t.config["dev_cla"], "temperature");
        assert_eq!(t.config["unit_of_meas"], "°C");
        assert_eq!(t.config["stat_t"], "pinclaw/hub/room/temperature_c");
        assert_eq!(t.config["uniq_id"], "pinclaw_hub_room_temperature_c");
        assert_eq!(t.config["exp_aft"], 900);
        assert_eq!(
            find("room_pressure_hpa").config["dev_cla"],
            "atmospheric_pressure"
        );
        assert_eq!(find("room_humidity_pct").config["unit_of_meas"], "%");
        assert_eq!(find("pir1").platform, "binary_sensor");
        assert_eq!(find("pir1").config["dev_cla"], "motion");
        assert_eq!(find("button1").platform, "event");
        assert_eq!(
            find("button1").config["stat_t"],
            "pinclaw/hub/button1/event"
        );
        let relay = find("relay1");
        assert_eq!(relay.platform, "switch");
        assert_eq!(relay.config["cmd_t"], "pinclaw/hub/relay1/set");
        assert_eq!(find("fan").platform, "number");
        assert_eq!(find("throttled_flags").config["ent_cat"], "diagnostic");
        let (topic, payload) = device_payload(
            "homeassistant",
            &list,
            &[("gone".into(), "switch".into())],
            &topics,
            &info(),
        );
        assert_eq!(topic, "homeassistant/device/hub/config");
        let v: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["avty_t"], "pinclaw/hub/status");
        assert_eq!(v["dev"]["ids"][0], "pinclaw_hub");
        assert_eq!(v["o"]["name"], "pinclaw");
        assert_eq!(v["cmps"]["relay1"]["p"], "switch");
        assert_eq!(v["cmps"]["gone"], json!({"p": "switch"}));
        let per = entity_payloads("homeassistant", &list, &topics, &info());
        assert!(
            per.iter()
                .any(|(t, _)| t == "homeassistant/switch/hub/relay1/config")
        );
    }
}
