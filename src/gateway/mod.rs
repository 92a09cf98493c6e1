//! The gateway: one port for HTTP probes and the OpenClaw WebSocket
//! protocol. Admits sockets at accept ([`admission`]), reads the request
//! head and upgrades ([`socket`], [`http`]), runs each connection
//! ([`conn`], [`handshake`]), dispatches requests through the method table
//! ([`methods`]), broadcasts events ([`bus`], [`events`]), and shuts down
//! gracefully. Everything is built and wired by [`crate::app`].
//!
//! Where things live: a method's handler is in `methods/<family>.rs`; the
//! one path by which node commands run is [`invoke`]; the bridge the agent
//! loop uses to reach the gateway is [`agent_bridge`].

pub mod admission;
pub mod agent_bridge;
pub mod approvals;
pub mod auth;
pub mod automations;
pub mod board_node;
pub mod bus;
mod conn;
pub mod errors;
pub mod events;
pub mod handshake;
pub mod http;
pub mod idempotency;
pub mod invoke;
pub mod local_node;
pub mod methods;
mod nodes;
pub mod outbound;
mod pairing;
pub mod sensors;
mod socket;
mod stream;
pub mod web;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::config::{AuthMode, Config, Secret};
use crate::ids;
use crate::limits;
use crate::store::{Store, StoreError};

use self::admission::Admission;
use self::auth::AuthLimiter;
use self::bus::Bus;

/// Everything the gateway needs to start, after flags, file and defaults
/// were merged.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Address to bind.
    pub bind: IpAddr,
    /// Port to bind (0 = any free port).
    pub port: u16,
    /// Auth mode.
    pub auth_mode: AuthMode,
    /// Shared token (token mode). `None` = load or generate in the state dir.
    pub token: Option<Secret>,
    /// Shared password (password mode).
    pub password: Option<Secret>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Connection cap.
    pub max_connections: usize,
    /// Config file in use, if any (reported by `config.get`).
    pub config_path: Option<PathBuf>,
    /// The effective configuration (served redacted by `config.get`).
    pub config: Config,
    /// Approve first-time devices on direct loopback connections silently.
    pub auto_approve_loopback: bool,
}

impl GatewaySettings {
    /// Settings from a config file's values with no overrides.
    pub fn from_config(config: Config, config_path: Option<PathBuf>) -> Result<Self, GatewayError> {
        let bind = crate::config::parse_bind(&config.gateway.bind).map_err(GatewayError::Config)?;
        Ok(Self {
            bind,
            port: config.gateway.port,
            auth_mode: config.gateway.auth.mode,
            token: config.gateway.auth.token.clone(),
            password: config.gateway.auth.password.clone(),
            state_dir: config
                .state_dir
                .clone()
                .unwrap_or_else(crate::config::default_state_dir),
            max_connections: config.gateway.max_connections,
            config_path,
            auto_approve_loopback: true,
            config,
        })
    }

    /// The configuration as it is in effect: the file's values with flags,
    /// environment and generated secrets applied.
    pub fn effective_config(&self) -> Config {
        let mut config = self.config.clone();
        config.state_dir = Some(self.state_dir.clone());
        config.gateway.bind = self.bind.to_string();
        config.gateway.port = self.port;
        config.gateway.max_connections = self.max_connections;
        config.gateway.auth.mode = self.auth_mode;
        config.gateway.auth.token = self.token.clone();
        config.gateway.auth.password = self.password.clone();
        config
    }

    /// Refuse settings that would expose the board: a non-loopback bind
    /// without auth, password auth without a password.
    pub fn check_safety(&self) -> Result<(), GatewayError> {
        let addr = SocketAddr::new(self.bind, self.port);
        if !self.bind.is_loopback() && self.auth_mode == AuthMode::None {
            return Err(GatewayError::Refused(format!(
                "refusing to bind the gateway to {addr} without auth: anyone on the network could control this board. \
                 Use --auth token (a token is generated if none is given) or --auth password --password P, or bind loopback."
            )));
        }
        if self.auth_mode == AuthMode::Password
            && self.password.as_ref().is_none_or(|p| p.expose().is_empty())
        {
            return Err(GatewayError::Refused(
                "password auth needs a password: pass --password P, set PINCLAW_GATEWAY_PASSWORD or gateway.auth.password"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Refused for safety (e.g. non-loopback bind without a secret).
    #[error("{0}")]
    Refused(String),
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The state directory or a file in it failed.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// State shared by every connection.
pub struct Shared {
    /// Effective settings (secrets resolved).
    pub settings: GatewaySettings,
    /// Durable state.
    pub store: Store,
    /// The gateway's own Ed25519 identity.
    pub identity: SigningKey,
    /// Live connections and broadcasts.
    pub bus: Arc<Bus>,
    /// Session lanes and run records.
    pub sessions: Arc<crate::session::Sessions>,
    /// Chat channels (Telegram), their delivery and status.
    pub channels: Arc<crate::channel::Hub>,
    /// Model providers, when configured.
    pub providers: Option<Arc<crate::provider::Providers>>,
    /// Connected nodes and their pending invokes.
    pub nodes: crate::node::NodeRegistry,
    /// The allow/deny policy for node commands.
    pub node_policy: crate::node::CommandPolicy,
    /// The gateway's own board node, when one is configured.
    pub local_node: Option<Arc<dyn local_node::LocalNode>>,
    /// Approvals waiting for an operator.
    pub approvals: approvals::Approvals,
    /// The board (also reachable as `local_node`), for edge events and shutdown.
    pub(crate) board: Option<Arc<crate::node::BoardCommands>>,
    /// Recent sensor values (`sensors.history`), when sampled.
    pub history: Option<Arc<sensors::SensorHistory>>,
    /// Which sensors the sampler reads how often.
    pub(crate) sample_plan: sensors::SamplePlan,
    /// The automation engine (config automations and cron jobs).
    pub automations: Arc<crate::automation::engine::Engine>,
    /// The MQTT bridge, once started (when `[mqtt]` is configured).
    pub mqtt: std::sync::OnceLock<Arc<crate::bridge::Bridge>>,
    /// Results of side-effecting requests, by idempotency key.
    pub idempotency: idempotency::Idempotency,
    /// Process start, for `uptimeMs`.
    pub started: Instant,
    /// Random id of this process run.
    pub boot_id: String,
    /// This machine's host name (the dashboard's `Host` check).
    pub hostname: String,
    /// Socket admission counters.
    pub admission: Arc<Admission>,
    pub(crate) limiter: Mutex<AuthLimiter>,
    pub(crate) ready: AtomicBool,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    fn limiter(&self) -> MutexGuard<'_, AuthLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the gateway accepts new connects.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// A handle other layers use to reach connected clients.
#[derive(Clone)]
pub struct GatewayHandle(Arc<Shared>);

impl GatewayHandle {
    /// Broadcast an event to every connection its scope guard admits.
    pub fn broadcast(&self, event: &str, payload: &Value) {
        self.0.bus.broadcast(event, payload);
    }
    /// Live connections by role: (operators, nodes).
    pub fn connection_counts(&self) -> (usize, usize) {
        self.0.bus.counts()
    }
    /// The gateway's own board (for embedding and for tests driving the
    /// simulator).
    pub fn board(&self) -> Option<Arc<crate::node::BoardCommands>> {
        self.0.board.clone()
    }
    /// The gateway's shared state (for tests and embedding).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

/// A bound, initialised gateway ready to run.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    generated_token: Option<String>,
}

/// Name of the generated token file in the state directory.
pub const TOKEN_FILE: &str = "gateway.token";

/// Read the token file, or create it with a new random token (mode 0600).
/// Returns the token and whether it was generated now.
pub fn load_or_create_token(state_dir: &Path) -> Result<(String, bool), GatewayError> {
    let path = state_dir.join(TOKEN_FILE);
    let state_err = |source| GatewayError::StateDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(state_err(e)),
    }
    let token = ids::new_token();
    crate::store::write_private_file(&path, &format!("{token}\n")).map_err(state_err)?;
    Ok((token, true))
}

/// Create the state directory (mode 0700) if missing.
pub fn create_state_dir(dir: &Path) -> Result<(), GatewayError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| GatewayError::StateDir {
            path: dir.to_owned(),
            source,
        })
}

/// Bind with a bounded kernel send buffer, inherited by accepted sockets.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    let bind = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_send_buffer_size(limits::SOCKET_SEND_BUFFER_BYTES)?;
        socket.bind(addr)?;
        socket.listen(limits::LISTEN_BACKLOG)
    };
    bind().map_err(|source| GatewayError::Bind { addr, source })
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "pinclaw".into())
}

impl Gateway {
    /// A gateway over wired state and a bound listener (see [`crate::app`]).
    pub fn new(
        shared: Arc<Shared>,
        listener: TcpListener,
        generated_token: Option<String>,
    ) -> Self {
        Self {
            shared,
            listener,
            generated_token,
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The token generated on this start, if one was (print it once).
    pub fn generated_token(&self) -> Option<&str> {
        self.generated_token.as_deref()
    }

    /// The shared token in effect (token mode).
    pub fn token(&self) -> Option<&str> {
        self.shared.settings.token.as_ref().map(Secret::expose)
    }

    /// A handle for other layers.
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle(self.shared.clone())
    }

    /// Serve until `shutdown` completes, then stop gracefully: refuse new
    /// connects, abort running turns, send `shutdown`, close every socket,
    /// switch outputs to their safe state, make the store durable and close
    /// it, and
    /// return within [`limits::SHUTDOWN_GRACE`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared;
        shared.ready.store(true, Ordering::Relaxed);
        shared.channels.start();
        let periodic = tokio::spawn(periodic_events(shared.clone()));
        let edges = match (&shared.board, &shared.local_node) {
            (Some(board), Some(node)) => Some(tokio::spawn(board_node::publish_board(
                board.clone(),
                node.node_id().to_owned(),
                shared.clone(),
            ))),
            _ => None,
        };
        let sampler = match &shared.board {
            Some(board) if !shared.sample_plan.is_empty() => Some(tokio::spawn(sensors::run(
                board.clone(),
                shared.sample_plan.clone(),
                shared.history.clone(),
                shared.store.clone(),
            ))),
            _ => None,
        };
        let retention = tokio::spawn(shared.store.clone().run_retention(
            shared.settings.config.session.retention(),
            limits::RETENTION_INTERVAL,
        ));
        let (bridge, mqtt_messages) = start_bridge(&shared);
        let automations = shared.board.as_ref().map(|board| {
            tokio::spawn(
                shared
                    .automations
                    .clone()
                    .run(board.devices().changes().subscribe(), mqtt_messages),
            )
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => socket::accepted(&shared, stream, peer),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down");
        let deadline = Instant::now() + limits::SHUTDOWN_GRACE - Duration::from_millis(1500);
        shared.ready.store(false, Ordering::Relaxed);
        periodic.abort();
        retention.abort();
        for task in [edges, sampler, automations, bridge].into_iter().flatten() {
            task.abort();
        }
        drop(self.listener);
        let running = shared.sessions.abort_all();
        if running > 0 {
            tracing::info!("aborting {running} running turn(s)");
            shared.sessions.idle(Duration::from_secs(1)).await;
        }
        shared.bus.broadcast(
            "shutdown",
            &json!({"reason": "gateway stopping", "restartExpectedMs": null}),
        );
        let _ = shared.shutdown.send(true);
        shared.channels.stop();
        while shared.admission.sockets() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(board) = &shared.board
            && let Err(e) = board.shutdown()
        {
            tracing::warn!("board shutdown: {e}");
        }
        if let Some(history) = &shared.history {
            history.snapshot(&shared.store).await;
        }
        if let Some(mqtt) = shared.mqtt.get().cloned() {
            // `offline`, then DISCONNECT (the broker keeps the will for a
            // crash); blocking, so off the event loop.
            let _ = tokio::task::spawn_blocking(move || mqtt.stop()).await;
        }
        shared.store.close().await;
        tracing::info!("gateway stopped");
    }
}

/// Starts the MQTT bridge when `[mqtt]` is configured; returns its task
/// and the receiver of the automations' MQTT messages.
fn start_bridge(
    shared: &Arc<Shared>,
) -> (
    Option<tokio::task::JoinHandle<()>>,
    Option<tokio::sync::mpsc::Receiver<crate::automation::engine::MqttMessage>>,
) {
    let config = &shared.settings.config;
    let (Some(board), true) = (&shared.board, config.mqtt_configured()) else {
        return (None, None);
    };
    let trigger_topics = shared
        .automations
        .list()
        .into_iter()
        .filter_map(|e| match e.automation.trigger {
            crate::automation::config::Trigger::Mqtt { topic, .. } => Some(topic),
            _ => None,
        })
        .collect();
    let (to_engine, from_bridge) = tokio::sync::mpsc::channel(limits::MQTT_EVENT_QUEUE);
    let setup = crate::bridge::Setup {
        config: config.mqtt.clone(),
        board_name: shared.hostname.clone(),
        trigger_topics,
    };
    let hands = Arc::new(automations::GatewayHands(Arc::downgrade(shared)));
    match crate::bridge::Bridge::start(setup, board.clone(), hands, shared.store.clone(), to_engine)
    {
        Ok((bridge, task)) => {
            let _ = shared.mqtt.set(bridge);
            (Some(task), Some(from_bridge))
        }
        Err(e) => {
            tracing::error!("the MQTT bridge did not start: {e}");
            (None, None)
        }
    }
}

/// `tick` every 30 s and a `health` snapshot every 60 s.
async fn periodic_events(shared: Arc<Shared>) {
    let start = tokio::time::Instant::now() + limits::TICK_INTERVAL;
    let mut tick = tokio::time::interval_at(start, limits::TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        shared.bus.broadcast("tick", &json!({"ts": ids::now_ms()}));
        if n.is_multiple_of(2) {
            shared.bus.health_changed();
            shared
                .bus
                .broadcast("health", &methods::health_snapshot(&shared));
        }
    }
}
