//! The gateway: one port for HTTP probes and the OpenClaw WebSocket
//! protocol. Accepts sockets, enforces connection caps, runs each
//! connection, broadcasts periodic events, and shuts down gracefully.
//!
//! `gateway/` knows nothing of providers or the board; other layers reach
//! connected clients through [`GatewayHandle`].

pub mod approvals;
pub mod auth;
mod board_node;
pub mod bus;
mod chat;
mod conn;
pub mod handshake;
pub mod http;
pub mod idempotency;
pub mod local_node;
pub mod methods;
mod nodes;
pub mod outbound;
mod pairing;
mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use crate::config::{AuthMode, Config, Secret};
use crate::ids;
use crate::limits;
use crate::protocol::error::ErrorShape;
use crate::store::{Store, StoreError};

use self::auth::AuthLimiter;
use self::bus::Bus;
use self::handshake::Peer;
use self::stream::{GatewayStream, PreauthBudget};

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
}

impl GatewaySettings {
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
    pub store: Arc<Store>,
    /// The gateway's own Ed25519 identity.
    pub identity: SigningKey,
    /// Live connections and broadcasts.
    pub bus: Arc<Bus>,
    /// Session lanes and run records.
    pub sessions: Arc<crate::session::Sessions>,
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
    board: Option<Arc<crate::node::BoardCommands>>,
    /// Results of side-effecting requests, by idempotency key.
    idempotency: Mutex<idempotency::IdempotencyCache<Result<Value, ErrorShape>>>,
    /// Process start, for `uptimeMs`.
    pub started: Instant,
    /// Random id of this process run.
    pub boot_id: String,
    limiter: Mutex<AuthLimiter>,
    preauth: Mutex<HashMap<IpAddr, usize>>,
    sockets: AtomicUsize,
    ready: AtomicBool,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn limiter(&self) -> MutexGuard<'_, AuthLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the gateway accepts new connects.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Start a side-effecting request under an idempotency key: `None` to go
    /// ahead, or the earlier result (or an in-flight refusal) to return.
    pub fn idempotency_begin(&self, key: &str) -> Option<Result<Value, ErrorShape>> {
        let mut cache = self.idempotency.lock().unwrap_or_else(|p| p.into_inner());
        match cache.begin(key, Instant::now()) {
            idempotency::Begin::Start => None,
            idempotency::Begin::Seen(idempotency::Entry::Done(result)) => Some(result),
            idempotency::Begin::Seen(idempotency::Entry::InFlight) => Some(Err(ErrorShape::new(
                crate::protocol::error::codes::UNAVAILABLE,
                "a request with this idempotencyKey is still running",
            )
            .retry_after(500))),
            idempotency::Begin::Full => Some(Err(ErrorShape::new(
                crate::protocol::error::codes::UNAVAILABLE,
                "too many requests in flight; retry shortly",
            )
            .retry_after(1000))),
        }
    }

    /// Record the result of a request started with [`Self::idempotency_begin`].
    pub fn idempotency_finish(&self, key: &str, result: &Result<Value, ErrorShape>) {
        let mut cache = self.idempotency.lock().unwrap_or_else(|p| p.into_inner());
        cache.finish(key, result.clone(), Instant::now());
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Claim a pre-auth slot for `ip`; `None` when the per-IP cap is reached.
    fn claim_preauth(self: &Arc<Self>, ip: IpAddr) -> Option<PreauthSlot> {
        let mut map = self.preauth.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(ip).or_insert(0);
        if *count >= limits::MAX_PREAUTH_CONNECTIONS_PER_IP {
            return None;
        }
        *count += 1;
        Some(PreauthSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// A held pre-auth slot, released on drop (handshake done or socket gone).
struct PreauthSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .preauth
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Counts a socket for the connection cap while alive.
struct SocketSlot(Arc<Shared>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
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

fn create_state_dir(dir: &Path) -> Result<(), GatewayError> {
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

impl Gateway {
    /// Check the settings for safety, prepare the state directory, open the
    /// store and bind the port.
    pub async fn bind(mut settings: GatewaySettings) -> Result<Self, GatewayError> {
        let addr = SocketAddr::new(settings.bind, settings.port);
        if !settings.bind.is_loopback() && settings.auth_mode == AuthMode::None {
            return Err(GatewayError::Refused(format!(
                "refusing to bind the gateway to {addr} without auth: anyone on the network could control this board. \
                 Use --auth token (a token is generated if none is given) or --auth password --password P, or bind loopback."
            )));
        }
        if settings.auth_mode == AuthMode::Password
            && settings
                .password
                .as_ref()
                .is_none_or(|p| p.expose().is_empty())
        {
            return Err(GatewayError::Refused(
                "password auth needs a password: pass --password P, set PINCLAW_GATEWAY_PASSWORD or gateway.auth.password"
                    .into(),
            ));
        }
        create_state_dir(&settings.state_dir)?;
        let mut generated_token = None;
        if settings.auth_mode == AuthMode::Token
            && settings
                .token
                .as_ref()
                .is_none_or(|t| t.expose().is_empty())
        {
            let (token, fresh) = load_or_create_token(&settings.state_dir)?;
            if fresh {
                generated_token = Some(token.clone());
            }
            settings.token = Some(Secret::new(token));
        }
        let store = Store::open(&settings.state_dir.join("state.redb"))?;
        let identity = SigningKey::from_bytes(&store.gateway_identity_seed()?);
        let board = crate::node::BoardCommands::from_config(&settings.config.board)
            .map(Arc::new)
            .map_err(|e| GatewayError::Config(format!("board: {e}")))?;
        let board_node_id =
            crate::protocol::device_auth::device_id_for(&identity.verifying_key().to_bytes());
        let local_node: Arc<dyn local_node::LocalNode> = Arc::new(board_node::BoardNode::new(
            board.clone(),
            board_node_id,
            hostname(),
        ));
        let listener = listen(addr).map_err(|source| GatewayError::Bind { addr, source })?;
        let self_presence = json!({
            "ts": ids::now_ms(),
            "host": hostname(),
            "version": env!("CARGO_PKG_VERSION"),
            "platform": std::env::consts::OS,
            "mode": "gateway",
            "reason": "self",
        });
        let (shutdown, _) = watch::channel(false);
        let nodes_config = &settings.config.nodes;
        let node_policy = crate::node::CommandPolicy {
            allow: nodes_config.allow_commands.clone(),
            deny: nodes_config.deny_commands.clone(),
        };
        let nodes = crate::node::NodeRegistry::new(nodes_config.max_nodes);
        let providers = if settings.config.providers.is_empty() {
            None
        } else {
            Some(Arc::new(
                crate::provider::Providers::new(settings.config.providers.clone())
                    .map_err(|e| GatewayError::Config(format!("providers: {e}")))?,
            ))
        };
        if let (Some(providers), Some(model)) = (&providers, &settings.config.agent.model) {
            providers
                .resolve_chain(model, &settings.config.agent.fallbacks)
                .map_err(|e| GatewayError::Config(format!("agent.model: {e}")))?;
        }
        let store = Arc::new(store);
        let bus = Arc::new(Bus::new(self_presence));
        let agent_config = settings.config.agent.clone();
        let lane_config = crate::session::LaneConfig {
            max_concurrent: agent_config.max_concurrent,
            queue_cap: agent_config.queue_cap,
            drop: agent_config.queue_drop,
            debounce: std::time::Duration::from_millis(agent_config.debounce_ms),
            default_mode: agent_config.queue_mode,
        };
        let system_prompt = agent_config
            .load_system_prompt()
            .map_err(GatewayError::Config)?;
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let node_access = Arc::new(chat::GatewayNodes(weak.clone()));
            let summary_access = node_access.clone();
            let tools = crate::agent::tools::ToolRegistry::builtin(Some(node_access));
            let runner = crate::agent::AgentRunner::new(
                agent_config,
                system_prompt,
                providers.clone(),
                store.clone(),
                tools,
                Arc::new(chat::BusEvents(bus.clone())),
                Box::new(move || crate::agent::tools::NodeAccess::summary(summary_access.as_ref())),
            );
            let runner: Arc<dyn crate::session::Runner> = Arc::new(Arc::new(runner));
            Shared {
                nodes,
                node_policy,
                local_node: Some(local_node),
                approvals: approvals::Approvals::default(),
                board: Some(board),
                idempotency: Mutex::new(idempotency::IdempotencyCache::default()),
                sessions: crate::session::Sessions::new(lane_config, store.clone(), runner),
                providers,
                settings,
                store,
                identity,
                bus,
                started: Instant::now(),
                boot_id: ids::uuid_v4(),
                limiter: Mutex::new(AuthLimiter::default()),
                preauth: Mutex::new(HashMap::new()),
                sockets: AtomicUsize::new(0),
                ready: AtomicBool::new(false),
                shutdown,
            }
        });
        match shared.sessions.recover() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("re-queued {n} acknowledged message(s) left waiting by the last run")
            }
            Err(e) => tracing::warn!("could not re-queue waiting messages: {e}"),
        }
        Ok(Self {
            shared,
            listener,
            generated_token,
        })
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
    /// connects, send `shutdown`, close every socket, and return within
    /// [`limits::SHUTDOWN_GRACE`].
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared;
        shared.ready.store(true, Ordering::Relaxed);
        let periodic = tokio::spawn(periodic_events(shared.clone()));
        let edges = match (&shared.board, &shared.local_node) {
            (Some(board), Some(node)) => Some(tokio::spawn(board_node::publish_edges(
                board.clone(),
                node.node_id().to_owned(),
                shared.clone(),
            ))),
            _ => None,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        shared.sockets.fetch_add(1, Ordering::Relaxed);
                        let slot = SocketSlot(shared.clone());
                        tokio::spawn(handle_socket(shared.clone(), stream, peer, slot));
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down");
        shared.ready.store(false, Ordering::Relaxed);
        periodic.abort();
        if let Some(edges) = edges {
            edges.abort();
        }
        drop(self.listener);
        shared.bus.broadcast(
            "shutdown",
            &json!({"reason": "gateway stopping", "restartExpectedMs": null}),
        );
        let _ = shared.shutdown.send(true);
        let deadline =
            Instant::now() + limits::SHUTDOWN_GRACE - std::time::Duration::from_millis(1500);
        while shared.sockets.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if let Some(board) = &shared.board
            && let Err(e) = board.shutdown()
        {
            tracing::warn!("board shutdown: {e}");
        }
        tracing::info!("gateway stopped");
    }
}

/// Bind with a bounded kernel send buffer, inherited by accepted sockets.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(limits::SOCKET_SEND_BUFFER_BYTES)?;
    socket.bind(addr)?;
    socket.listen(limits::LISTEN_BACKLOG)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "pinclaw".into())
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

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits::WS_READ_BUFFER_BYTES)
        .write_buffer_size(limits::WS_WRITE_BUFFER_BYTES)
        .max_write_buffer_size(limits::MAX_BUFFERED_BYTES + limits::MAX_PAYLOAD_BYTES)
        .max_message_size(Some(limits::MAX_PAYLOAD_BYTES))
        .max_frame_size(Some(limits::MAX_PAYLOAD_BYTES))
}

async fn handle_socket(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: SocketSlot,
) {
    let _ = stream.set_nodelay(true);
    // Boxed for the same reason as the handshake: its read buffer is
    // needed only until the request head is in.
    let (head, leftover) = match Box::pin(http::read_head(&mut stream)).await {
        Ok(x) => x,
        Err(http::HeadError::TooLarge) => {
            return http::respond_json(
                &mut stream,
                431,
                r#"{"ok":false,"error":"request head too large"}"#,
            )
            .await;
        }
        Err(http::HeadError::Malformed) => {
            return http::respond_json(
                &mut stream,
                400,
                r#"{"ok":false,"error":"malformed HTTP request"}"#,
            )
            .await;
        }
        Err(_) => return,
    };
    let Some(key) = head.websocket_key().map(str::to_owned) else {
        return serve_http(&shared, &mut stream, &head).await;
    };
    if shared.sockets.load(Ordering::Relaxed) > shared.settings.max_connections {
        tracing::warn!(ip = %peer.ip(), "connection cap reached; refusing upgrade");
        return http::respond_json(
            &mut stream,
            503,
            r#"{"ok":false,"error":"too many connections"}"#,
        )
        .await;
    }
    let Some(preauth) = shared.claim_preauth(peer.ip()) else {
        return http::respond_json(
            &mut stream,
            429,
            r#"{"ok":false,"error":"too many unauthenticated connections from this address"}"#,
        )
        .await;
    };
    if http::accept_upgrade(&mut stream, &key).await.is_err() {
        return;
    }
    let peer = Peer {
        ip: peer.ip(),
        direct_loopback: peer.ip().is_loopback() && !head.is_forwarded_or_browser(),
    };
    drop(head);
    let budget = PreauthBudget::new();
    let ws = WebSocketStream::from_partially_read(
        GatewayStream::new(stream, budget.clone()),
        leftover,
        WsRole::Server,
        Some(ws_config()),
    )
    .await;
    conn::run(shared, ws, peer, budget, preauth).await;
    drop(slot);
}

async fn serve_http(shared: &Shared, stream: &mut TcpStream, head: &http::RequestHead) {
    let path = head.path.split('?').next().unwrap_or("/");
    if head.method != "GET" && head.method != "HEAD" {
        return http::respond_json(stream, 405, r#"{"ok":false,"error":"method not allowed"}"#)
            .await;
    }
    match path {
        "/healthz" | "/health" => {
            http::respond_json(stream, 200, r#"{"ok":true,"status":"live"}"#).await
        }
        "/readyz" | "/ready" => {
            let ready = shared.is_ready();
            let body = json!({
                "ready": ready,
                "failing": if ready { json!([]) } else { json!(["gateway"]) },
                "uptimeMs": shared.started.elapsed().as_millis() as u64,
            });
            http::respond_json(stream, if ready { 200 } else { 503 }, &body.to_string()).await
        }
        _ => http::respond_json(stream, 404, r#"{"ok":false,"error":"not found"}"#).await,
    }
}
