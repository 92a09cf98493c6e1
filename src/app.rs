//! Wiring: from merged settings to a bound gateway. Opens the state
//! directory and store, loads or generates the token and identity, opens
//! the board, builds the providers, the agent runner and the session lanes,
//! binds the port, and re-queues the messages a crash left waiting.
//!
//! Every layer is built here and only here, so each layer's module knows
//! only the layers below it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::json;
use tokio::sync::watch;

use crate::channel::Channel;
use crate::channel::telegram::TelegramChannel;
use crate::config::Secret;
use crate::gateway::admission::Admission;
use crate::gateway::agent_bridge::{BusEvents, GatewayNodes};
use crate::gateway::auth::AuthLimiter;
use crate::gateway::bus::Bus;
use crate::gateway::local_node::LocalNode;
use crate::gateway::{
    Gateway, GatewayError, GatewaySettings, Shared, approvals, board_node, idempotency,
};
use crate::ids;
use crate::session::EventSink;
use crate::store::Store;

/// What [`check`] built on the way and [`bind`] uses: the providers (keys
/// read) and the system prompt (its file read).
pub struct Checked {
    providers: Option<Arc<crate::provider::Providers>>,
    system_prompt: String,
    automations: Vec<crate::automation::config::Automation>,
    home_assistant: Option<crate::home_assistant::Connection>,
}

/// Every reason the gateway would refuse `settings` at start, found
/// without touching the hardware, the state directory or the port: what
/// `pinclaw config check` reports, and what [`bind`] checks first.
pub fn check(settings: &GatewaySettings) -> Result<Checked, Vec<crate::config::Problem>> {
    use crate::config::Problem;
    let config = &settings.config;
    let mut problems = config.problems();
    if let Err(e) = settings.check_safety() {
        problems.push(Problem::new("gateway.auth.mode", e.to_string()));
    }
    let spec = crate::board::profile::resolve(&config.board)
        .map_err(|e| {
            problems.extend(
                e.each()
                    .into_iter()
                    .map(|e| Problem::new(e.key_path(&config.board), e.to_string())),
            )
        })
        .ok();
    let automations = check_automations(config, spec.as_ref(), &mut problems);
    problems.extend(config.mqtt.problems());
    let home_assistant = config
        .home_assistant
        .check()
        .map_err(|found| problems.extend(found))
        .ok()
        .flatten();
    let providers = providers(settings).map_err(|e| problems.push(e)).ok();
    let system_prompt = config
        .agent
        .load_system_prompt()
        .map_err(|e| problems.push(Problem::new("agent.system_prompt_file", e)))
        .ok();
    match (providers, system_prompt) {
        (Some(providers), Some(system_prompt)) if problems.is_empty() => Ok(Checked {
            providers,
            system_prompt,
            automations,
            home_assistant,
        }),
        _ => Err(problems),
    }
}

/// [`check`] from a loaded config (with `file`, where it came from): the
/// settings and what the check built, or every problem. What `pinclaw
/// config check`, `pinclaw doctor` and the gateway's start report.
pub fn check_config(
    config: crate::config::Config,
    file: Option<std::path::PathBuf>,
) -> Result<(GatewaySettings, Checked), Vec<crate::config::Problem>> {
    match GatewaySettings::from_config(config.clone(), file) {
        Ok(settings) => check(&settings).map(|checked| (settings, checked)),
        Err(_) => Err(config.problems()),
    }
}

/// Each problem on one line: at `file:line:column` when the config came
/// from `file`, else as `key: message`.
pub fn problem_lines(
    file: Option<&std::path::Path>,
    problems: Vec<crate::config::Problem>,
) -> Vec<String> {
    match file {
        Some(file) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            crate::config::Config::locate(&text, file, problems)
                .iter()
                .map(ToString::to_string)
                .collect()
        }
        None => problems.iter().map(ToString::to_string).collect(),
    }
}

/// The `[[automations]]` checked against the board's devices and commands.
fn check_automations(
    config: &crate::config::Config,
    spec: Option<&crate::board::BoardSpec>,
    problems: &mut Vec<crate::config::Problem>,
) -> Vec<crate::automation::config::Automation> {
    use crate::node::board_commands::{COMMANDS, SIM_COMMANDS, check_call};
    let commands = match spec.map(|s| s.backend) {
        Some(crate::board::profile::BackendKind::Sim) => SIM_COMMANDS,
        _ => COMMANDS,
    };
    let validate = |command: &str, params: &serde_json::Value| match spec {
        Some(spec) => check_call(spec, command, params).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let cx = crate::automation::config::Context {
        board: spec,
        commands,
        validate: &validate,
    };
    let (automations, found) = crate::automation::config::check(config, &cx);
    problems.extend(found);
    automations
}

/// Check `settings`, prepare everything the gateway needs, and bind its port.
pub async fn bind(settings: GatewaySettings) -> Result<Gateway, GatewayError> {
    settings.check_safety()?;
    let checked = check(&settings).map_err(|problems| {
        let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
        GatewayError::Config(all.join("\n"))
    })?;
    bind_checked(settings, checked).await
}

/// [`bind`] for settings [`check`] has passed already.
pub async fn bind_checked(
    mut settings: GatewaySettings,
    checked: Checked,
) -> Result<Gateway, GatewayError> {
    let Checked {
        providers,
        system_prompt,
        automations,
        home_assistant,
    } = checked;
    crate::gateway::create_state_dir(&settings.state_dir)?;
    let generated_token = ensure_token(&mut settings)?;
    let store = Store::open(&settings.state_dir.join("state.redb"))?;
    let identity = SigningKey::from_bytes(&store.gateway_identity_seed().await?);
    let board = crate::node::BoardCommands::from_config(&settings.config.board)
        .map(Arc::new)
        .map_err(|e| GatewayError::Config(format!("board: {e}")))?;
    let board_node_id =
        crate::protocol::device_auth::device_id_for(&identity.verifying_key().to_bytes());
    let hostname = crate::gateway::hostname();
    let local_node: Arc<dyn LocalNode> = Arc::new(board_node::BoardNode::new(
        board.clone(),
        board_node_id,
        hostname.clone(),
    ));
    let addr = std::net::SocketAddr::new(settings.bind, settings.port);
    let listener = crate::gateway::listen(addr)?;
    let bus = Arc::new(Bus::new(json!({
        "ts": ids::now_ms(),
        "host": hostname,
        "version": env!("CARGO_PKG_VERSION"),
        "platform": std::env::consts::OS,
        "mode": "gateway",
        "reason": "self",
    })));
    let agent_config = settings.config.agent.clone();
    let lanes = crate::session::LaneConfig {
        max_concurrent: agent_config.max_concurrent,
        queue_cap: agent_config.queue_cap,
        drop: agent_config.queue_drop,
        debounce: Duration::from_millis(agent_config.debounce_ms),
        default_mode: agent_config.queue_mode,
    };
    let nodes_config = settings.config.nodes.clone();
    let max_connections = settings.max_connections;
    let hub = crate::channel::Hub::new(
        store.clone(),
        settings.config.session.dm_scope,
        channels(&settings),
    );
    let (history, mut sample_plan) = sampling(&settings.config, &board);
    for a in &automations {
        if let crate::automation::config::Trigger::Threshold(t) = &a.trigger {
            sample_plan.read_every(&t.device, Duration::from_millis(t.sample_ms));
        }
    }
    let engine_settings = settings.config.automation.clone();
    if let Some(history) = &history {
        history.restore(&store, &board).await;
    }
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
        let bus_events: Arc<dyn EventSink> = Arc::new(BusEvents(bus.clone()));
        let events: Arc<dyn EventSink> = Arc::new(Fanout(vec![bus_events, hub.clone()]));
        let node_access = Arc::new(GatewayNodes(weak.clone()));
        let summary_access = node_access.clone();
        let mut tools = crate::agent::tools::ToolRegistry::builtin(Some(node_access));
        if let Some(connection) = home_assistant {
            tools.add(Arc::new(crate::home_assistant::HomeAssistantTool::new(
                connection,
            )));
        }
        let runner = crate::agent::AgentRunner::new(
            agent_config,
            system_prompt,
            providers.clone(),
            store.clone(),
            tools,
            events.clone(),
            Box::new(move || crate::agent::tools::NodeAccess::summary(summary_access.as_ref())),
        );
        let runner: Arc<dyn crate::session::Runner> = Arc::new(Arc::new(runner));
        let engine = crate::automation::engine::Engine::new(
            automations,
            Arc::new(crate::gateway::automations::GatewayHands(weak.clone())),
            store.clone(),
            Arc::new(ids::now_ms),
            engine_settings.max_actions_per_minute,
            crate::automation::config::default_tz(&engine_settings),
        );
        Shared {
            nodes: crate::node::NodeRegistry::new(nodes_config.max_nodes),
            node_policy: crate::node::CommandPolicy {
                allow: nodes_config.allow_commands.clone(),
                deny: nodes_config.deny_commands.clone(),
            },
            local_node: Some(local_node),
            approvals: approvals::Approvals::default(),
            board: Some(board),
            history,
            sample_plan,
            automations: engine,
            mqtt: std::sync::OnceLock::new(),
            idempotency: idempotency::Idempotency::default(),
            sessions: crate::session::Sessions::new(lanes, store.clone(), runner, events),
            channels: hub.clone(),
            providers,
            settings,
            store,
            identity,
            bus,
            started: Instant::now(),
            boot_id: ids::uuid_v4(),
            hostname: hostname.clone(),
            admission: Admission::new(max_connections),
            limiter: Mutex::new(AuthLimiter::default()),
            ready: AtomicBool::new(false),
            shutdown,
        }
    });
    hub.attach(
        shared.sessions.clone(),
        Arc::new(BusEvents(shared.bus.clone())),
        about(Arc::downgrade(&shared)),
    );
    if let Err(e) = shared.automations.load().await {
        tracing::warn!("automation state not restored: {e}");
    }
    match shared.sessions.recover().await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!("re-queued {n} acknowledged message(s) left waiting by the last run")
        }
        Err(e) => tracing::warn!("could not re-queue waiting messages: {e}"),
    }
    Ok(Gateway::new(shared, listener, generated_token))
}

/// The sensor history (unless `[history] hours = 0`) and which sensor the
/// sampler reads how often.
fn sampling(
    config: &crate::config::Config,
    board: &crate::node::BoardCommands,
) -> (
    Option<Arc<crate::gateway::sensors::SensorHistory>>,
    crate::gateway::sensors::SamplePlan,
) {
    let mut plan = crate::gateway::sensors::SamplePlan::default();
    if config.history.hours == 0 {
        return (None, plan);
    }
    let step = Duration::from_secs(config.history.step_s);
    for device in &board.spec().devices {
        if device.kind.is_sensor() {
            plan.read_every(&device.name, step);
        }
    }
    let history = crate::gateway::sensors::SensorHistory::new(step, config.history.slots());
    (Some(Arc::new(history)), plan)
}

/// The chat channels the config enables.
fn channels(settings: &GatewaySettings) -> Vec<Arc<dyn Channel>> {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    let telegram = &settings.config.channels.telegram;
    if telegram.enabled {
        channels.push(TelegramChannel::new(telegram.clone()));
    }
    channels
}

/// What `/status` says about the hub: the model and the board.
fn about(shared: Weak<Shared>) -> crate::channel::hub::About {
    Box::new(move || {
        let Some(shared) = shared.upgrade() else {
            return String::new();
        };
        let model = shared
            .settings
            .config
            .agent
            .model
            .clone()
            .unwrap_or_else(|| "none configured".into());
        let board = match &shared.board {
            Some(board) => {
                let spec = board.spec();
                format!(
                    "{} ({} devices)",
                    spec.model
                        .clone()
                        .unwrap_or_else(|| spec.profile.name.clone()),
                    spec.devices.len()
                )
            }
            None => "none".into(),
        };
        format!(
            "Model: {model}\nBoard: {board}; other nodes connected: {}",
            shared.nodes.list().len()
        )
    })
}

/// Session and agent events to every sink (the bus, the channels).
struct Fanout(Vec<Arc<dyn EventSink>>);

impl EventSink for Fanout {
    fn agent(&self, payload: &serde_json::Value, tool: bool) {
        self.0.iter().for_each(|s| s.agent(payload, tool));
    }
    fn chat(&self, payload: &serde_json::Value) {
        self.0.iter().for_each(|s| s.chat(payload));
    }
    fn session_changed(&self, session_key: &str) {
        self.0.iter().for_each(|s| s.session_changed(session_key));
    }
}

/// In token mode without a configured token, load the state dir's token or
/// generate one. Returns the token when it was generated now.
fn ensure_token(settings: &mut GatewaySettings) -> Result<Option<String>, GatewayError> {
    let configured = settings
        .token
        .as_ref()
        .is_some_and(|t| !t.expose().is_empty());
    if settings.auth_mode != crate::config::AuthMode::Token || configured {
        return Ok(None);
    }
    let (token, fresh) = crate::gateway::load_or_create_token(&settings.state_dir)?;
    settings.token = Some(Secret::new(token.clone()));
    Ok(fresh.then_some(token))
}

/// The configured providers, with the agent's model chain checked.
fn providers(
    settings: &GatewaySettings,
) -> Result<Option<Arc<crate::provider::Providers>>, crate::config::Problem> {
    use crate::config::Problem;
    let config = &settings.config;
    if config.providers.is_empty() {
        return match &config.agent.model {
            Some(model) => Err(Problem::new(
                "agent.model",
                format!("{model:?} names a provider, but no [[providers]] entry is configured"),
            )),
            None => Ok(None),
        };
    }
    let providers = crate::provider::Providers::new(config.providers.clone())
        .map_err(|e| Problem::new(e.key_path(&config.providers), e.to_string()))?;
    if let Some(model) = &config.agent.model {
        providers
            .resolve_chain(model, &config.agent.fallbacks)
            .map_err(|e| Problem::new("agent.model", e.to_string()))?;
    }
    Ok(Some(Arc::new(providers)))
}
