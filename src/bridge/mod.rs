//! The MQTT bridge: the board's declared devices as Home Assistant entities
//! on the home's broker, commands from the broker through the same gates
//! as every other caller, and MQTT messages for automations.
//!
//! - [`config`]: the `[mqtt]` section.
//! - [`topics`]: the topic layout and payloads.
//! - [`discovery`]: Home Assistant discovery payloads.
//! - this file: the running bridge. On every (re)connect it publishes
//!   `online`, discovery (removing entities no longer declared) and every
//!   state; then each board change as it happens, and every state again
//!   each `republish_s`. A `set` command runs through the invoke path (a
//!   `confirm = true` output waits for an operator); its state is published
//!   only after the write succeeded, and re-published unchanged when it was
//!   refused, so Home Assistant's switch snaps back. Retained commands are
//!   ignored (a stale one must never switch a relay at boot).
//!   `homeassistant/status` `online` gets discovery and states again.
//!
//! The MQTT client itself (`crate::mqtt`) runs on its own thread.

pub mod config;
pub mod discovery;
pub mod topics;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::automation::engine::{Hands, MqttMessage};
use crate::board::{BoardChange, DeviceKind};
use crate::mqtt::{Client, Event, Message, Options, Status};
use crate::node::BoardCommands;
use crate::store::Store;
use config::{DiscoveryMode, MqttConfig};
use discovery::NodeInfo;
use topics::{Command, Topics};

/// Key of the discovery inventory (what was last announced) in the store.
const INVENTORY_KEY: &str = "mqtt_discovery_inventory";

/// The running bridge.
pub struct Bridge {
    client: Client,
    topics: Topics,
    node: String,
    last_command_error: Mutex<Option<String>>,
}

/// What the bridge needs to start.
pub struct Setup {
    /// `[mqtt]`.
    pub config: MqttConfig,
    /// The board node's name (host name).
    pub board_name: String,
    /// Topics the automations listen to.
    pub trigger_topics: Vec<String>,
}

/// Everything the bridge task works with.
struct Context {
    bridge: Arc<Bridge>,
    config: MqttConfig,
    board: Arc<BoardCommands>,
    hands: Arc<dyn Hands>,
    store: Store,
    info_name: String,
    triggers: Vec<String>,
    to_engine: mpsc::Sender<MqttMessage>,
}

impl Bridge {
    /// Starts the client thread (it connects in the background) and the
    /// bridge task; MQTT messages on trigger topics go to `to_engine`.
    pub fn start(
        setup: Setup,
        board: Arc<BoardCommands>,
        hands: Arc<dyn Hands>,
        store: Store,
        to_engine: mpsc::Sender<MqttMessage>,
    ) -> Result<(Arc<Bridge>, tokio::task::JoinHandle<()>), String> {
        let config = setup.config;
        let node = config.node_id(&setup.board_name);
        let topics = Topics::new(&config.base_topic, &node);
        let mut options = client_options(&config, &node)?;
        options.will = Some(status(&topics, false));
        options.subscriptions = vec![topics.set_filter()];
        if !config.discovery_prefix.is_empty() {
            options
                .subscriptions
                .push(format!("{}/status", config.discovery_prefix));
        }
        for t in &setup.trigger_topics {
            if !options.subscriptions.contains(t) {
                options.subscriptions.push(t.clone());
            }
        }
        let (events_tx, events) = mpsc::channel(crate::limits::MQTT_EVENT_QUEUE);
        let client = Client::start(options, events_tx).map_err(|e| e.to_string())?;
        let bridge = Arc::new(Bridge {
            client,
            topics,
            node,
            last_command_error: Mutex::new(None),
        });
        let cx = Context {
            bridge: bridge.clone(),
            config,
            board,
            hands,
            store,
            info_name: setup.board_name,
            triggers: setup.trigger_topics,
            to_engine,
        };
        let task = tokio::spawn(run(cx, events));
        Ok((bridge, task))
    }

    /// Publishes a message (automations' `mqtt` action), QoS 1.
    pub fn publish(&self, topic: String, payload: String, retain: bool) -> Result<(), String> {
        self.client
            .publish(Message {
                topic,
                payload: payload.into_bytes(),
                qos: 1,
                retain,
            })
            .map_err(|e| e.to_string())
    }

    /// The connection's state and counters.
    pub fn status(&self) -> Status {
        self.client.status()
    }

    /// The status as `health` and `mqtt.status` show it (channel-account
    /// style: `running`, `connected`, `healthState`, `lastError`, …).
    pub fn status_json(&self) -> Value {
        let s = self.status();
        let health = if s.connected {
            "healthy"
        } else if s.attempts == 0 {
            "starting"
        } else {
            "disconnected"
        };
        json!({
            "running": true,
            "connected": s.connected,
            "healthState": health,
            "nodeId": self.node,
            "statusTopic": self.topics.status(),
            "since": s.since_ms,
            "lastError": s.last_error,
            "attempts": s.attempts,
            "reconnectCount": s.reconnects,
            "queued": s.queued,
            "droppedPublishes": s.dropped_publishes,
            "droppedEvents": s.dropped_events,
            "lastCommandError": self
                .last_command_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    /// Clean stop: `offline` (retained), then DISCONNECT, so the broker does
    /// not also send the will. Blocks up to a few seconds: call it on a
    /// blocking thread.
    pub fn stop(&self) {
        self.client.stop(Some(status(&self.topics, false)));
    }
}

/// The client options `[mqtt]` describes for node `node` (no will, no
/// subscriptions): what the bridge and `pinclaw mqtt check` connect with.
pub fn client_options(config: &MqttConfig, node: &str) -> Result<Options, String> {
    let url = config.url.clone().unwrap_or_default();
    let (host, port, tls) = crate::mqtt::parse_url(&url)?;
    let mut options = Options::new(host, port, tls, format!("pinclaw-{node}"));
    options.username = config.username.clone();
    options.password = config.password().map_err(|p| p.to_string())?;
    options.ca_file = config.ca_file.clone();
    options.keep_alive = Duration::from_secs(config.keep_alive_s);
    Ok(options)
}

fn status(topics: &Topics, online: bool) -> Message {
    Message {
        topic: topics.status(),
        payload: if online {
            b"online".to_vec()
        } else {
            b"offline".to_vec()
        },
        qos: 1,
        retain: true,
    }
}

/// The bridge task: client events, board changes, the republish timer.
async fn run(cx: Context, mut events: mpsc::Receiver<Event>) {
    let mut changes = cx.board.devices().changes().subscribe();
    let every = Duration::from_secs(cx.config.republish_s);
    let mut republish = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announce_at: Option<tokio::time::Instant> = None;
    loop {
        let announce = async {
            match announce_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Connected) => {
                    tracing::info!(node = %cx.bridge.node, "MQTT connected");
                    announce_all(&cx).await;
                }
                Some(Event::Disconnected { error }) => {
                    tracing::warn!("MQTT disconnected: {error}");
                }
                Some(Event::Message { topic, payload, retained }) => {
                    if on_message(&cx, topic, payload, retained) {
                        // Home Assistant (re)started: announce again after a
                        // short random pause, as its docs ask.
                        let [b] = crate::ids::random_bytes::<1>();
                        let jitter = Duration::from_millis(u64::from(b) * 20);
                        announce_at = Some(tokio::time::Instant::now() + jitter);
                    }
                }
                None => return,
            },
            change = changes.recv() => match change {
                Ok(change) => publish_change(&cx, &change),
                Err(broadcast::error::RecvError::Lagged(_)) => publish_states(&cx),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = republish.tick() => publish_states(&cx),
            _ = announce => {
                announce_at = None;
                announce_all(&cx).await;
            }
        }
    }
}

/// One message from the broker: a trigger for the automations, a command,
/// or Home Assistant's birth. Returns whether it was the birth (`online`).
fn on_message(cx: &Context, topic: String, payload: Vec<u8>, retained: bool) -> bool {
    if cx.triggers.contains(&topic) {
        let text: String = String::from_utf8_lossy(&payload)
            .chars()
            .take(crate::limits::AUTOMATION_MAX_TRIGGER_TEXT)
            .collect();
        let message = MqttMessage {
            topic: topic.clone(),
            payload: text,
            retained,
        };
        if cx.to_engine.try_send(message).is_err() {
            tracing::warn!("an MQTT trigger was dropped: the automation engine is busy");
        }
    }
    if let Some(device) = cx.bridge.topics.command_device(&topic) {
        if retained {
            tracing::info!(%topic, "ignored a retained MQTT command (a stale command must never switch)");
        } else if payload.is_empty() {
            // Someone cleared a retained command: nothing to do.
            tracing::debug!(%topic, "ignored an empty MQTT command");
        } else {
            command(cx, device.to_owned(), payload);
        }
        return false;
    }
    !cx.config.discovery_prefix.is_empty()
        && topic == format!("{}/status", cx.config.discovery_prefix)
        && payload == b"online"
}

fn send(cx: &Context, topic: String, payload: String, retain: bool) {
    if let Err(e) = cx.bridge.publish(topic, payload, retain) {
        tracing::debug!("MQTT publish not queued: {e}");
    }
}

/// One board change on its topic(s).
fn publish_change(cx: &Context, change: &BoardChange) {
    let t = &cx.bridge.topics;
    match change {
        BoardChange::Input { name, value, .. } => {
            send(cx, t.state(name), topics::on_off(*value).into(), true);
            let button = cx.board.spec().device(name).is_some_and(|d| {
                matches!(
                    d.kind,
                    DeviceKind::Input {
                        class: Some("button"),
                        ..
                    }
                )
            });
            if button && *value {
                send(
                    cx,
                    t.event(name),
                    json!({"event_type": "press"}).to_string(),
                    false,
                );
            }
        }
        BoardChange::Output { name, value, .. } => {
            send(cx, t.state(name), topics::on_off(*value).into(), true)
        }
        BoardChange::Pwm { name, duty, .. } => {
            send(cx, t.state(name), topics::duty_percent(*duty), true)
        }
        BoardChange::Reading { name, values, .. } => {
            for (field, value) in values {
                send(cx, t.field(name, field), topics::number(*value), true);
            }
        }
    }
}

/// Every device's last known state.
fn publish_states(cx: &Context) {
    let changes = cx.board.devices().changes();
    for d in &cx.board.spec().devices {
        if let Some(change) = changes.latest(&d.name) {
            // A replayed press is not a press: states only.
            if let BoardChange::Input { name, value, .. } = &change {
                send(
                    cx,
                    cx.bridge.topics.state(name),
                    topics::on_off(*value).into(),
                    true,
                );
            } else {
                publish_change(cx, &change);
            }
        }
    }
}

/// `online`, discovery (removing what is no longer declared) and states.
async fn announce_all(cx: &Context) {
    let t = &cx.bridge.topics;
    let online = status(t, true);
    send(cx, online.topic, "online".into(), true);
    if !cx.config.discovery_prefix.is_empty() {
        discover(cx).await;
    }
    publish_states(cx);
}

async fn discover(cx: &Context) {
    let t = &cx.bridge.topics;
    let spec = cx.board.spec();
    let model = spec
        .model
        .clone()
        .unwrap_or_else(|| spec.profile.name.clone());
    let info = NodeInfo {
        node: &cx.bridge.node,
        name: &cx.info_name,
        model: &model,
        version: env!("CARGO_PKG_VERSION"),
        expire_after_s: cx.config.republish_s * 3,
    };
    let entities = discovery::entities(&spec.devices, t, &info);
    let prefix = &cx.config.discovery_prefix;
    let current: Vec<(String, String)> = entities
        .iter()
        .map(|e| (e.object.clone(), e.platform.to_owned()))
        .collect();
    let before: Vec<(String, String)> = match cx.store.kv_get(INVENTORY_KEY).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
        _ => Vec::new(),
    };
    let removed: Vec<(String, String)> = before
        .into_iter()
        .filter(|old| !current.contains(old))
        .collect();
    match cx.config.discovery {
        DiscoveryMode::Device => {
            if !removed.is_empty() {
                let (topic, payload) =
                    discovery::device_payload(prefix, &entities, &removed, t, &info);
                send(cx, topic, payload, true);
            }
            let (topic, payload) = discovery::device_payload(prefix, &entities, &[], t, &info);
            send(cx, topic, payload, true);
        }
        DiscoveryMode::Entity => {
            for (object, platform) in &removed {
                let topic = discovery::entity_topic(prefix, platform, &cx.bridge.node, object);
                send(cx, topic, String::new(), true);
            }
            for (topic, payload) in discovery::entity_payloads(prefix, &entities, t, &info) {
                send(cx, topic, payload, true);
            }
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            "MQTT discovery: removed {} entit(ies) no longer declared",
            removed.len()
        );
    }
    let inventory = serde_json::to_vec(&current).unwrap_or_default();
    if let Err(e) = cx.store.kv_put(INVENTORY_KEY, inventory).await {
        tracing::warn!("MQTT discovery inventory not saved: {e}");
    }
}

/// A `set` command: through the invoke path in its own task (an approval
/// may take minutes); the state follows from the board's change feed when
/// the write happened, and is re-published unchanged when it did not.
fn command(cx: &Context, device: String, payload: Vec<u8>) {
    let kind = cx.board.spec().device(&device).map(|d| d.kind.clone());
    let pwm = matches!(kind, Some(DeviceKind::Pwm { .. }));
    let writable = matches!(
        kind,
        Some(DeviceKind::Output { .. } | DeviceKind::Pwm { .. })
    );
    let (bridge, board, hands) = (cx.bridge.clone(), cx.board.clone(), cx.hands.clone());
    let topic = cx.bridge.topics.set(&device);
    tokio::spawn(async move {
        let refused = |why: String| {
            tracing::warn!(%topic, "MQTT command refused: {why}");
            *bridge
                .last_command_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(format!("{topic}: {why}"));
        };
        if !writable {
            return refused(format!("`{device}` is not an output this board declares"));
        }
        let parsed = topics::parse_command(&payload, pwm);
        let (command, params) = match parsed {
            Ok(Command::Duty(duty)) => ("pwm.set", json!({"name": device, "duty": duty})),
            Ok(Command::Switch(on)) => ("gpio.write", json!({"name": device, "value": on})),
            Ok(Command::Toggle) => {
                let on = matches!(
                    board.devices().changes().latest(&device),
                    Some(BoardChange::Output { value: true, .. })
                );
                ("gpio.write", json!({"name": device, "value": !on}))
            }
            Err(e) => return refused(e),
        };
        let who = format!("mqtt command on {topic}");
        if let Err(e) = hands
            .invoke(who, "local".into(), command.into(), params)
            .await
        {
            refused(e);
            // Home Assistant waits for the state: tell it nothing changed.
            if let Some(change) = board.devices().changes().latest(&device) {
                let (state, payload) = match change {
                    BoardChange::Output { value, .. } => (
                        bridge.topics.state(&device),
                        topics::on_off(value).to_owned(),
                    ),
                    BoardChange::Pwm { duty, .. } => {
                        (bridge.topics.state(&device), topics::duty_percent(duty))
                    }
                    _ => return,
                };
                let _ = bridge.publish(state, payload, true);
            }
        }
    });
}
