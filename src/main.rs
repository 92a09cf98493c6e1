//! The `pinclaw` command line. Library code returns typed errors; only this
//! file turns them into messages and exit codes (0 ok, 1 failure, 2 bad
//! configuration or refused settings).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use pinclaw::cli::tables;
use pinclaw::client::{Client, ClientOptions};
use pinclaw::config::{self, AuthMode, Config, Secret};
use pinclaw::gateway::{self, GatewaySettings};

#[derive(Parser)]
#[command(
    name = "pinclaw",
    version,
    about = "An OpenClaw-compatible gateway for Raspberry Pi boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Gateway(GatewayArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage paired devices on a running gateway.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Join a gateway (pinclaw or OpenClaw) as a node serving this board.
    Node(NodeArgs),
    /// Manage nodes (other boards, OpenClaw node hosts) on a running gateway.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Chat channels (Telegram) of a running gateway: their state.
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// DM pairing: who asked to talk to the bot, approve or reject them.
    Pairing {
        #[command(subcommand)]
        command: PairingCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Send a message to a chat through a channel (durable: delivered
    /// once the channel works).
    Send {
        /// Channel id (default: the only configured channel).
        #[arg(long)]
        channel: Option<String>,
        /// Chat id (a user's id for a DM; groups are negative), @channelname,
        /// or <chatId>:topic:<topicId>.
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Forum topic id.
        #[arg(long)]
        thread: Option<String>,
        /// The text (Markdown).
        message: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Chat with the assistant in this terminal (or `-m` for one message).
    Chat {
        /// Session key.
        #[arg(long, default_value = "main")]
        session: String,
        /// Send this one message, print the final answer and exit
        /// (non-zero when the run fails).
        #[arg(short, long)]
        message: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Who did what: actuator writes, node invokes, approvals, pairing
    /// decisions, oldest first.
    Audit {
        /// How far back: `90s`, `30m`, `1h`, `7d` (default: everything kept).
        #[arg(long)]
        since: Option<String>,
        /// At most this many entries (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Approvals: writes to `confirm = true` outputs wait here for a yes.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Call any gateway method and print the JSON result.
    Call {
        /// Method name, e.g. `health` or `status`.
        method: String,
        /// Parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (default: --config / PINCLAW_CONFIG).
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List pending requests and paired devices.
    List {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending pairing request.
    Approve {
        /// The request id (from `devices list`).
        request_id: String,
    },
    /// Reject a pending pairing request.
    Reject {
        /// The request id.
        request_id: String,
    },
    /// Remove a paired device (its connections are closed).
    Remove {
        /// The device id.
        device_id: String,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// What waits for an operator's decision.
    List {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let it happen (the id from `approvals list`; a unique prefix will do).
    Approve {
        /// The approval id.
        id: String,
    },
    /// Refuse it.
    Deny {
        /// The approval id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// One line per account: running, connected, health, last error.
    Status {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PairingCommand {
    /// Pending DM pairing requests.
    List {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let a sender talk to the bot: the code they were given (or the
    /// request id from `pairing list`).
    Approve {
        /// Channel id (`telegram`).
        channel: String,
        /// The pairing code.
        code: String,
        /// Tell the sender they were approved.
        #[arg(long)]
        notify: bool,
    },
    /// Dismiss a pairing request.
    Reject {
        /// Channel id (`telegram`).
        channel: String,
        /// The pairing code (or request id).
        code: String,
    },
}

#[derive(Args)]
struct NodeArgs {
    /// Gateway URL, e.g. ws://192.168.1.10:18789.
    #[arg(long, env = "PINCLAW_NODE_URL")]
    url: String,
    /// Gateway token.
    #[arg(long, env = "PINCLAW_NODE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Gateway password.
    #[arg(long, env = "PINCLAW_NODE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Display name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Subcommand)]
enum NodesCommand {
    /// List known nodes (connected or not).
    List {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Command surfaces waiting for approval.
    Pending {
        /// Print raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a node's declared commands.
    Approve {
        /// The request id (from `nodes pending`).
        request_id: String,
    },
    /// Reject a node's pending commands.
    Reject {
        /// The request id.
        request_id: String,
    },
}

#[derive(Args, Clone, Default)]
struct GatewayArgs {
    /// Config file.
    #[arg(long, env = "PINCLAW_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Port for HTTP and WebSocket.
    #[arg(long, env = "PINCLAW_GATEWAY_PORT", global = true)]
    port: Option<u16>,
    /// `loopback`, `lan` or an IP address.
    #[arg(long)]
    bind: Option<String>,
    /// `token`, `password` or `none`.
    #[arg(long)]
    auth: Option<AuthMode>,
    /// Shared token.
    #[arg(long, env = "PINCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Shared password.
    #[arg(long, env = "PINCLAW_GATEWAY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// State directory.
    #[arg(long, env = "PINCLAW_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RemoteArgs {
    /// Gateway URL (default: ws://127.0.0.1:<configured port>).
    #[arg(long, env = "PINCLAW_GATEWAY_URL", global = true)]
    url: Option<String>,
    /// Shared token (default: PINCLAW_GATEWAY_TOKEN, the config, or the state dir's token file).
    #[arg(
        long,
        env = "PINCLAW_GATEWAY_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Shared password.
    #[arg(
        long,
        env = "PINCLAW_GATEWAY_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    password: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run_gateway(cli.gateway),
        Some(Command::Gateway(mut args)) => {
            args.config = args.config.or(cli.gateway.config);
            args.state_dir = args.state_dir.or(cli.gateway.state_dir);
            run_gateway(args)
        }
        Some(Command::Config {
            command: ConfigCommand::Check { file },
        }) => config_check(file.or(cli.gateway.config)),
        Some(Command::Devices { command, remote }) => {
            let (method, params) = match &command {
                DevicesCommand::List { .. } => ("device.pair.list", json!({})),
                DevicesCommand::Approve { request_id } => {
                    ("device.pair.approve", json!({"requestId": request_id}))
                }
                DevicesCommand::Reject { request_id } => {
                    ("device.pair.reject", json!({"requestId": request_id}))
                }
                DevicesCommand::Remove { device_id } => {
                    ("device.pair.remove", json!({"deviceId": device_id}))
                }
            };
            let pretty = !matches!(command, DevicesCommand::List { json: true });
            remote_call(&cli.gateway, remote, method, params, |v| {
                if pretty && method == "device.pair.list" {
                    tables::print_devices(v)
                } else {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
                }
            })
        }
        Some(Command::Node(args)) => run_node(&cli.gateway, args),
        Some(Command::Nodes { command, remote }) => {
            let (method, params) = match &command {
                NodesCommand::List { .. } => ("node.list", json!({})),
                NodesCommand::Pending { .. } => ("node.pair.list", json!({})),
                NodesCommand::Approve { request_id } => {
                    ("node.pair.approve", json!({"requestId": request_id}))
                }
                NodesCommand::Reject { request_id } => {
                    ("node.pair.reject", json!({"requestId": request_id}))
                }
            };
            remote_call(&cli.gateway, remote, method, params, |v| match &command {
                NodesCommand::List { json: false } => tables::print_nodes(v),
                NodesCommand::Pending { json: false } => tables::print_node_requests(v),
                NodesCommand::List { json: true } | NodesCommand::Pending { json: true } => {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
                }
                NodesCommand::Approve { .. } => println!(
                    "approved node {}",
                    v["node"]["nodeId"]
                        .as_str()
                        .or(v["nodeId"].as_str())
                        .unwrap_or("?")
                ),
                NodesCommand::Reject { .. } => println!("rejected"),
            })
        }
        Some(Command::Channels {
            command: ChannelsCommand::Status { json },
            remote,
        }) => remote_call(&cli.gateway, remote, "channels.status", json!({}), |v| {
            if json {
                println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
            } else {
                tables::print_channels(v)
            }
        }),
        Some(Command::Pairing { command, remote }) => {
            let (method, params) = match &command {
                PairingCommand::List { .. } => ("channels.pairing.list", json!({})),
                PairingCommand::Approve {
                    channel,
                    code,
                    notify,
                } => (
                    "channels.pairing.approve",
                    json!({"channel": channel, "code": code, "notify": notify}),
                ),
                PairingCommand::Reject { channel, code } => (
                    "channels.pairing.dismiss",
                    json!({"channel": channel, "code": code}),
                ),
            };
            let pretty = !matches!(command, PairingCommand::List { json: true });
            remote_call(&cli.gateway, remote, method, params, |v| {
                match (&command, pretty) {
                    (PairingCommand::List { .. }, true) => tables::print_pairing(v),
                    (PairingCommand::Approve { .. }, _) => {
                        println!("approved sender {}", v["senderId"].as_str().unwrap_or("?"))
                    }
                    (PairingCommand::Reject { .. }, _) => {
                        println!("dismissed sender {}", v["senderId"].as_str().unwrap_or("?"))
                    }
                    _ => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
                }
            })
        }
        Some(Command::Send {
            channel,
            to,
            thread,
            message,
            remote,
        }) => {
            let params = json!({
                "channel": channel, "to": to, "threadId": thread, "message": message,
                "idempotencyKey": pinclaw::ids::uuid_v4(),
            });
            remote_call(&cli.gateway, remote, "send", params, |v| {
                println!(
                    "sent to {} (message {})",
                    v["chatId"].as_str().unwrap_or("?"),
                    v["messageId"].as_str().unwrap_or("?")
                )
            })
        }
        Some(Command::Chat {
            session,
            message,
            remote,
        }) => run_chat(&cli.gateway, remote, session, message),
        Some(Command::Audit {
            since,
            limit,
            json,
            remote,
        }) => {
            let since_ms = match since.as_deref().map(tables::parse_age) {
                None => 0,
                Some(Ok(age)) => pinclaw::ids::now_ms() - age.as_millis() as i64,
                Some(Err(e)) => {
                    eprintln!("error: --since: {e}");
                    return ExitCode::from(2);
                }
            };
            let params = json!({"sinceMs": since_ms, "limit": limit});
            remote_call(&cli.gateway, remote, "audit.list", params, |v| {
                if json {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
                } else {
                    tables::print_audit(v)
                }
            })
        }
        Some(Command::Approvals { command, remote }) => {
            let (method, params) = match &command {
                ApprovalsCommand::List { .. } => ("exec.approval.list", json!({})),
                ApprovalsCommand::Approve { id } => (
                    "exec.approval.resolve",
                    json!({"id": id, "decision": "allow"}),
                ),
                ApprovalsCommand::Deny { id } => (
                    "exec.approval.resolve",
                    json!({"id": id, "decision": "deny"}),
                ),
            };
            remote_call(&cli.gateway, remote, method, params, |v| match &command {
                ApprovalsCommand::List { json: false } => tables::print_approvals(v),
                ApprovalsCommand::List { json: true } => {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
                }
                _ => println!(
                    "{} {}",
                    if v["decision"] == "allow" {
                        "approved"
                    } else {
                        "denied"
                    },
                    v["id"].as_str().unwrap_or("?")
                ),
            })
        }
        Some(Command::Call {
            method,
            params,
            remote,
        }) => {
            let mut params: Value = match serde_json::from_str(&params) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: --params is not valid JSON: {e}");
                    return ExitCode::from(2);
                }
            };
            // A fresh key per call: a fixed one would answer a second,
            // different message from the first one's cache.
            if NEEDS_IDEMPOTENCY_KEY.contains(&method.as_str())
                && let Some(obj) = params.as_object_mut()
                && !obj.contains_key("idempotencyKey")
            {
                obj.insert("idempotencyKey".into(), json!(pinclaw::ids::uuid_v4()));
            }
            remote_call(&cli.gateway, remote, &method, params, |v| {
                // One answer per question: `payloadJSON` repeats `payload`
                // (OpenClaw clients read either).
                let mut v = v.clone();
                if let Some(obj) = v.as_object_mut()
                    && obj.contains_key("payload")
                {
                    obj.remove("payloadJSON");
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
            })
        }
    }
}

/// Methods that take an `idempotencyKey`; `pinclaw call` makes one up
/// when none is given.
const NEEDS_IDEMPOTENCY_KEY: &[&str] = &["chat.send", "agent", "node.invoke", "send"];

fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::default()),
        Some(path) => Config::load_schema(path).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }),
    }
}

fn config_check(file: Option<PathBuf>) -> ExitCode {
    let Some(file) = file else {
        eprintln!(
            "error: no config file given (pinclaw config check FILE, or --config / PINCLAW_CONFIG)"
        );
        return ExitCode::from(2);
    };
    let config = match Config::load_schema(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = GatewaySettings::from_config(config.clone(), Some(file.clone()))
        .map(|settings| pinclaw::app::check(&settings).err().unwrap_or_default())
        .unwrap_or_else(|_| config.problems());
    match report_problems(Some(&file), checked) {
        Ok(()) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Print every problem at once, each with its position in `file` (the
/// config file, if any); exit code 2 when there is one.
fn report_problems(
    file: Option<&std::path::Path>,
    problems: Vec<config::Problem>,
) -> Result<(), ExitCode> {
    if problems.is_empty() {
        return Ok(());
    }
    let count = problems.len();
    match file {
        Some(file) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for e in Config::locate(&text, file, problems) {
                eprintln!("error: {e}");
            }
            if count > 1 {
                eprintln!("{count} problems in {}", file.display());
            }
        }
        None => {
            for p in problems {
                eprintln!("error: {p}");
            }
        }
    }
    Err(ExitCode::from(2))
}

/// Merge flags (and their env vars) over the config file over defaults.
fn settings(args: &GatewayArgs) -> Result<(GatewaySettings, pinclaw::app::Checked), ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(port) = args.port {
        config.gateway.port = port;
    }
    if let Some(bind) = &args.bind {
        config.gateway.bind = bind.clone();
    }
    if let Some(mode) = args.auth {
        config.gateway.auth.mode = mode;
    }
    if let Some(token) = &args.token {
        config.gateway.auth.token = Some(Secret::new(token.clone()));
    }
    if let Some(password) = &args.password {
        config.gateway.auth.password = Some(Secret::new(password.clone()));
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    let settings = match GatewaySettings::from_config(config.clone(), args.config.clone()) {
        Ok(s) => s,
        Err(_) => {
            report_problems(args.config.as_deref(), config.problems())?;
            return Err(ExitCode::from(2));
        }
    };
    match pinclaw::app::check(&settings) {
        Ok(checked) => Ok((settings, checked)),
        Err(problems) => {
            report_problems(args.config.as_deref(), problems)?;
            Err(ExitCode::from(2))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn run_gateway(args: GatewayArgs) -> ExitCode {
    let (settings, checked) = match settings(&args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = pinclaw::logging::init(&settings.config.logging.filter) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let state_dir = settings.state_dir.clone();
        let gateway = match pinclaw::app::bind_checked(settings, checked).await {
            Ok(g) => g,
            Err(e @ (gateway::GatewayError::Refused(_) | gateway::GatewayError::Config(_))) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = match gateway.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let url = format!("ws://{addr}");
        if let Some(token) = gateway.generated_token() {
            say(&format!(
                "pinclaw: generated a gateway token (saved to {}):\n  {token}\n",
                state_dir.join(gateway::TOKEN_FILE).display()
            ));
        } else if gateway.token().is_some() {
            say(&format!(
                "pinclaw: token auth; the token is in {} (or your config/flags)",
                state_dir.join(gateway::TOKEN_FILE).display()
            ));
        }
        say(&format!(
            "try: openclaw gateway call health --url {url} --token <token>"
        ));
        // Last line: scripts wait for it.
        say(&format!("pinclaw gateway ready at {url}"));
        tracing::info!(%addr, "gateway listening");
        pinclaw::service::notify(&format!("READY=1\nSTATUS=serving on {url}"));
        let watchdog = tokio::spawn(pinclaw::service::watchdog());
        gateway
            .run(async {
                shutdown_signal().await;
                pinclaw::service::notify("STOPPING=1");
            })
            .await;
        watchdog.abort();
        ExitCode::SUCCESS
    })
}

fn run_node(gw: &GatewayArgs, args: NodeArgs) -> ExitCode {
    let config = match load_config(gw.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = pinclaw::logging::init(&config.logging.filter) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let state_dir = gw
        .state_dir
        .clone()
        .or(config.state_dir.clone())
        .unwrap_or_else(config::default_state_dir);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let board = match pinclaw::node::BoardCommands::from_config(&config.board) {
            Ok(b) => std::sync::Arc::new(b),
            Err(e) => {
                eprintln!("error: board: {e}");
                return ExitCode::from(2);
            }
        };
        let name = args.name.unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "pinclaw-node".into())
        });
        let mut options = pinclaw::node::host::NodeHostOptions::new(args.url, name, state_dir);
        options.token = args.token;
        options.password = args.password;
        let handler =
            std::sync::Arc::new(pinclaw::node::board_handler::BoardHandler(board.clone()));
        let result = pinclaw::node::host::run(options, handler, shutdown_signal()).await;
        if let Err(e) = board.shutdown() {
            tracing::warn!("board shutdown: {e}");
        }
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: node state: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Print a line to stdout; a closed stdout (a supervisor that stopped
/// reading) must never take the gateway down.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// Where the gateway is and how to authenticate: flags, then the
/// environment, then the config file, then the state directory's token, then (for
/// the local gateway) the packaged service's token.
fn connection(gw: &GatewayArgs, remote: RemoteArgs) -> Result<(String, ClientOptions), ExitCode> {
    let config = load_config(gw.config.as_ref())?;
    let local_url = remote.url.is_none();
    let url = remote
        .url
        .unwrap_or_else(|| format!("ws://127.0.0.1:{}", gw.port.unwrap_or(config.gateway.port)));
    let state_dir = gw
        .state_dir
        .clone()
        .or(config.state_dir.clone())
        .unwrap_or_else(config::default_state_dir);
    let read_token = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join(gateway::TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let token = remote
        .token
        .or_else(|| {
            config
                .gateway
                .auth
                .token
                .as_ref()
                .map(|t| t.expose().to_owned())
        })
        .or_else(|| read_token(&state_dir))
        // The packaged service's token (readable by the pinclaw group), for a login user
        // without one of their own; only for the gateway on this machine.
        .or_else(|| {
            if local_url {
                read_token(std::path::Path::new(config::SERVICE_STATE_DIR))
            } else {
                None
            }
        });
    let password = remote.password.or_else(|| {
        config
            .gateway
            .auth
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
    });
    let options = ClientOptions {
        token,
        password,
        scopes: vec!["operator.admin".into()],
        ..ClientOptions::default()
    };
    Ok((url, options))
}

fn run_chat(
    gw: &GatewayArgs,
    remote: RemoteArgs,
    session: String,
    message: Option<String>,
) -> ExitCode {
    let (url, client) = match connection(gw, remote) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = pinclaw::cli::chat::ChatOptions {
        url: url.clone(),
        client,
        session,
        message,
    };
    match rt.block_on(pinclaw::cli::chat::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(pinclaw::cli::chat::ChatError::Connection(e)) => {
            eprintln!("error: {}", connect_error(&url, &e));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn remote_call(
    gw: &GatewayArgs,
    remote: RemoteArgs,
    method: &str,
    params: Value,
    print: impl Fn(&Value),
) -> ExitCode {
    // One copy of the call for every printer (each closure type would
    // otherwise get its own, ~3 KB apiece).
    call_and_print(gw, remote, method, params, &print)
}

fn call_and_print(
    gw: &GatewayArgs,
    remote: RemoteArgs,
    method: &str,
    params: Value,
    print: &dyn Fn(&Value),
) -> ExitCode {
    let (url, options) = match connection(gw, remote) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let mut client = match Client::connect(&url, &options).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {}", connect_error(&url, &e));
                return ExitCode::FAILURE;
            }
        };
        // A write to a `confirm = true` output waits for an operator: say
        // what it waits for and how to answer.
        let result = client
            .call_watching(method, params, |event| {
                if event["event"] == "exec.approval.requested" {
                    let p = &event["payload"];
                    eprintln!(
                        "waiting for an operator's approval: {} (approval {})\n  \
                         approve: pinclaw approvals approve {}\n  deny:    pinclaw approvals deny {}",
                        p["summary"].as_str().unwrap_or("?"),
                        p["id"].as_str().unwrap_or("?"),
                        p["id"].as_str().unwrap_or("?"),
                        p["id"].as_str().unwrap_or("?"),
                    );
                }
            })
            .await;
        client.close().await;
        match result {
            Ok(value) => {
                print(&value);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {method}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Why a client could not reach the gateway, with what to do about it.
fn connect_error(url: &str, e: &pinclaw::client::ClientError) -> String {
    let text = e.to_string();
    if text.contains("Connection refused") {
        format!(
            "cannot connect to {url}: nothing is listening there. Is the gateway running? \
             Start it with `pinclaw` (or `sudo systemctl start pinclaw`), or pass --url"
        )
    } else {
        format!("cannot connect to {url}: {text}")
    }
}
