//! The `pinclaw` command line. Library code returns typed errors; only this
//! file turns them into messages and exit codes (0 ok, 1 failure, 2 bad
//! configuration or refused settings).

// The musl release binaries (cross/release.sh) leave the unwinder out.
#[cfg(pinclaw_no_unwinder)]
mod no_backtrace;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use pinclaw::cli::args::{self, Matches, Stop};
use pinclaw::cli::{spec, tables};
use pinclaw::client::{Client, ClientOptions};
use pinclaw::config::{self, AuthMode, Config, Secret};
use pinclaw::gateway::{self, GatewaySettings};

/// The gateway's settings from flags and their environment variables.
#[derive(Clone, Default)]
struct GatewayArgs {
    config: Option<PathBuf>,
    port: Option<u16>,
    bind: Option<String>,
    auth: Option<AuthMode>,
    token: Option<String>,
    password: Option<String>,
    state_dir: Option<PathBuf>,
}

/// Where a client command finds the gateway, from flags and environment.
#[derive(Clone)]
struct RemoteArgs {
    url: Option<String>,
    token: Option<String>,
    password: Option<String>,
}

/// A flag's value, else its environment variable's (non-empty).
fn flag_or_env(m: &Matches, name: &str, env: &str) -> Option<String> {
    m.value(name)
        .map(str::to_owned)
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
}

/// A usage error in the parser's format, exit code 2.
fn usage_error(m: &Matches, message: &str) -> ExitCode {
    let command = m
        .path
        .iter()
        .fold(String::from("pinclaw"), |s, w| s + " " + w);
    eprintln!("error: {message}\n\nFor more information, try '{command} --help'.");
    ExitCode::from(2)
}

impl GatewayArgs {
    fn from_matches(m: &Matches) -> Result<Self, ExitCode> {
        let port = match flag_or_env(m, "port", "PINCLAW_GATEWAY_PORT") {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Err(usage_error(
                        m,
                        &format!(
                            "invalid value '{p}' for '--port': expected a port number 0–65535"
                        ),
                    ));
                }
            },
        };
        let auth = match m.value("auth").map(str::parse::<AuthMode>) {
            None => None,
            Some(Ok(mode)) => Some(mode),
            Some(Err(e)) => return Err(usage_error(m, &format!("--auth: {e}"))),
        };
        Ok(Self {
            config: flag_or_env(m, "config", "PINCLAW_CONFIG").map(PathBuf::from),
            port,
            bind: m.value("bind").map(str::to_owned),
            auth,
            token: flag_or_env(m, "token", "PINCLAW_GATEWAY_TOKEN"),
            password: flag_or_env(m, "password", "PINCLAW_GATEWAY_PASSWORD"),
            state_dir: flag_or_env(m, "state-dir", "PINCLAW_STATE_DIR").map(PathBuf::from),
        })
    }
}

impl RemoteArgs {
    fn from_matches(m: &Matches) -> Self {
        Self {
            url: flag_or_env(m, "url", "PINCLAW_GATEWAY_URL"),
            token: flag_or_env(m, "token", "PINCLAW_GATEWAY_TOKEN"),
            password: flag_or_env(m, "password", "PINCLAW_GATEWAY_PASSWORD"),
        }
    }
}

/// Print raw JSON.
fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
}

fn main() -> ExitCode {
    let words = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let m = match args::parse(&spec::ROOT, spec::GLOBALS, env!("CARGO_PKG_VERSION"), words) {
        Ok(m) => m,
        Err(Stop::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Stop::Usage(text)) => {
            eprint!("{text}");
            return ExitCode::from(2);
        }
    };
    let gw = match GatewayArgs::from_matches(&m) {
        Ok(gw) => gw,
        Err(code) => return code,
    };
    let remote = RemoteArgs::from_matches(&m);
    let json = m.flag("json");
    let pos = |i: usize| m.pos(i).unwrap_or_default().to_owned();
    let call = |method: &str, params: Value, print: &dyn Fn(&Value)| {
        call_and_print(&gw, remote.clone(), method, params, print)
    };
    match m.path.as_slice() {
        [] | ["gateway"] => run_gateway(gw.clone()),
        ["config", "check"] => config_check(m.pos(0).map(PathBuf::from).or(gw.config.clone())),
        ["devices", "list"] => call("device.pair.list", json!({}), &|v| {
            if json {
                print_json(v)
            } else {
                tables::print_devices(v)
            }
        }),
        ["devices", "approve"] => call(
            "device.pair.approve",
            json!({"requestId": pos(0)}),
            &print_json,
        ),
        ["devices", "reject"] => call(
            "device.pair.reject",
            json!({"requestId": pos(0)}),
            &print_json,
        ),
        ["devices", "remove"] => call(
            "device.pair.remove",
            json!({"deviceId": pos(0)}),
            &print_json,
        ),
        ["node"] => run_node(&gw, &m),
        ["nodes", "list"] => call("node.list", json!({}), &|v| {
            if json {
                print_json(v)
            } else {
                tables::print_nodes(v)
            }
        }),
        ["nodes", "pending"] => call("node.pair.list", json!({}), &|v| {
            if json {
                print_json(v)
            } else {
                tables::print_node_requests(v)
            }
        }),
        ["nodes", "approve"] => call("node.pair.approve", json!({"requestId": pos(0)}), &|v| {
            println!(
                "approved node {}",
                v["node"]["nodeId"]
                    .as_str()
                    .or(v["nodeId"].as_str())
                    .unwrap_or("?")
            )
        }),
        ["nodes", "reject"] => call("node.pair.reject", json!({"requestId": pos(0)}), &|_| {
            println!("rejected")
        }),
        ["channels", "status"] => call("channels.status", json!({}), &|v| {
            if json {
                print_json(v)
            } else {
                tables::print_channels(v)
            }
        }),
        ["pairing", "list"] => call("channels.pairing.list", json!({}), &|v| {
            if json {
                print_json(v)
            } else {
                tables::print_pairing(v)
            }
        }),
        ["pairing", "approve"] => call(
            "channels.pairing.approve",
            json!({"channel": pos(0), "code": pos(1), "notify": m.flag("notify")}),
            &|v| println!("approved sender {}", v["senderId"].as_str().unwrap_or("?")),
        ),
        ["pairing", "reject"] => call(
            "channels.pairing.dismiss",
            json!({"channel": pos(0), "code": pos(1)}),
            &|v| println!("dismissed sender {}", v["senderId"].as_str().unwrap_or("?")),
        ),
        ["send"] => {
            let Some(to) = m.value("to") else {
                return usage_error(&m, "the required option '--to <VALUE>' was not provided");
            };
            let params = json!({
                "channel": m.value("channel"), "to": to, "threadId": m.value("thread"),
                "message": pos(0), "idempotencyKey": pinclaw::ids::uuid_v4(),
            });
            call("send", params, &|v| {
                println!(
                    "sent to {} (message {})",
                    v["chatId"].as_str().unwrap_or("?"),
                    v["messageId"].as_str().unwrap_or("?")
                )
            })
        }
        ["dashboard"] => dashboard(&gw, remote.clone()),
        ["chat"] => run_chat(
            &gw,
            remote.clone(),
            m.value("session").unwrap_or("main").to_owned(),
            m.value("message").map(str::to_owned),
        ),
        ["audit"] => {
            let since_ms = match m.value("since").map(tables::parse_age) {
                None => 0,
                Some(Ok(age)) => pinclaw::ids::now_ms() - age.as_millis() as i64,
                Some(Err(e)) => return usage_error(&m, &format!("--since: {e}")),
            };
            let limit = match m.value("limit").map(str::parse::<usize>) {
                None => 100,
                Some(Ok(n)) => n,
                Some(Err(_)) => return usage_error(&m, "--limit: expected a whole number"),
            };
            let params = json!({"sinceMs": since_ms, "limit": limit});
            call("audit.list", params, &|v| {
                if json {
                    print_json(v)
                } else {
                    tables::print_audit(v)
                }
            })
        }
        ["approvals", "list"] => call("exec.approval.list", json!({}), &|v| {
            if json {
                // The method answers with OpenClaw's bare array; every list
                // command's JSON is an object naming what it lists.
                print_json(&json!({ "approvals": v }))
            } else {
                tables::print_approvals(v)
            }
        }),
        ["approvals", decision @ ("approve" | "deny")] => call(
            "exec.approval.resolve",
            json!({"id": pos(0), "decision": if *decision == "approve" { "allow" } else { "deny" }}),
            &|v| {
                println!(
                    "{} {}",
                    if v["decision"] == "allow" {
                        "approved"
                    } else {
                        "denied"
                    },
                    v["id"].as_str().unwrap_or("?")
                )
            },
        ),
        ["automations", "list"] => call(
            "cron.list",
            json!({"includeDisabled": true, "limit": 200}),
            &|v| {
                if json {
                    print_json(v)
                } else {
                    tables::print_automations(v)
                }
            },
        ),
        ["automations", "run"] => {
            call(
                "cron.run",
                json!({"id": pos(0), "mode": "force"}),
                &|v| match v["runId"].as_str() {
                    Some(run) => println!(
                        "started {} (run {run}); see `pinclaw automations runs`",
                        pos(0)
                    ),
                    None => println!("not started: {}", v["reason"].as_str().unwrap_or("?")),
                },
            )
        }
        ["automations", verb @ ("enable" | "disable")] => call(
            "cron.update",
            json!({"id": pos(0), "patch": {"enabled": *verb == "enable"}}),
            &|v| {
                println!(
                    "{} is {}",
                    v["name"].as_str().unwrap_or("?"),
                    if v["enabled"] == true {
                        "enabled"
                    } else {
                        "disabled"
                    }
                )
            },
        ),
        ["automations", "runs"] => {
            let limit = match m.value("limit").map(str::parse::<usize>) {
                None => 20,
                Some(Ok(n)) => n,
                Some(Err(_)) => return usage_error(&m, "--limit: expected a whole number"),
            };
            let params = match m.pos(0) {
                Some(name) => json!({"id": name, "limit": limit}),
                None => json!({"scope": "all", "limit": limit}),
            };
            call("cron.runs", params, &|v| {
                if json {
                    print_json(v)
                } else {
                    tables::print_automation_runs(v)
                }
            })
        }
        ["mqtt", "check"] => mqtt_check(&gw),
        ["doctor"] => doctor(&gw, json),
        ["call"] => {
            let method = pos(0);
            let mut params: Value = match serde_json::from_str(m.value("params").unwrap_or("{}")) {
                Ok(v) => v,
                Err(e) => return usage_error(&m, &format!("--params is not valid JSON: {e}")),
            };
            // A fresh key per call: a fixed one would answer a second,
            // different message from the first one's cache.
            if NEEDS_IDEMPOTENCY_KEY.contains(&method.as_str())
                && let Some(obj) = params.as_object_mut()
                && !obj.contains_key("idempotencyKey")
            {
                obj.insert("idempotencyKey".into(), json!(pinclaw::ids::uuid_v4()));
            }
            call(&method, params, &|v| {
                // One answer per question: `payloadJSON` repeats `payload`
                // (OpenClaw clients read either).
                let mut v = v.clone();
                if let Some(obj) = v.as_object_mut()
                    && obj.contains_key("payload")
                {
                    obj.remove("payloadJSON");
                }
                print_json(&v)
            })
        }
        other => usage_error(&m, &format!("unknown command '{}'", other.join(" "))),
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

/// The config file a command run by hand uses: `--config` (or
/// `PINCLAW_CONFIG`), else the installed service's when it exists (the
/// flag: it is the service's, whose state directory is
/// [`config::SERVICE_STATE_DIR`]), else none (the defaults).
fn chosen_config(gw: &GatewayArgs) -> (Option<PathBuf>, bool) {
    let service = PathBuf::from(config::SERVICE_CONFIG);
    match &gw.config {
        Some(file) => (Some(file.clone()), false),
        None if service.is_file() => (Some(service), true),
        None => (None, false),
    }
}

/// The config a client command (call, chat, dashboard, devices, mqtt
/// check, …) uses: [`chosen_config`], loaded; the service's only when the
/// user may read it (else the defaults, and a note on how to get in).
fn client_config(gw: &GatewayArgs) -> Result<(Config, bool), ExitCode> {
    let (file, packaged) = chosen_config(gw);
    if let Some(service) = file.as_ref().filter(|_| packaged)
        && let Err(e) = std::fs::File::open(service)
    {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            eprintln!(
                "note: {} is not readable by you, so the defaults apply; to use the \
                 installed service without sudo: sudo usermod -aG pinclaw $USER, then log in again",
                service.display()
            );
        }
        return Ok((Config::default(), false));
    }
    Ok((load_config(file.as_ref())?, packaged))
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
    let checked = pinclaw::app::check_config(config, Some(file.clone()))
        .err()
        .unwrap_or_default();
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
    for line in pinclaw::app::problem_lines(file, problems) {
        eprintln!("error: {line}");
    }
    if let Some(file) = file
        && count > 1
    {
        eprintln!("{count} problems in {}", file.display());
    }
    Err(ExitCode::from(2))
}

/// Merge flags (and their env vars) over the config file over defaults.
fn settings(args: &GatewayArgs) -> Result<(GatewaySettings, pinclaw::app::Checked), ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    apply_flags(&mut config, args);
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

/// Put the gateway's flags (and their environment variables) over `config`.
fn apply_flags(config: &mut Config, args: &GatewayArgs) {
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
            let saved = state_dir.join(gateway::TOKEN_FILE);
            // Shown to a person at a terminal; never into a log (journald,
            // a file): there it is only said where it is.
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                say(&format!(
                    "pinclaw: generated a gateway token (saved to {}):\n  {token}\n",
                    saved.display()
                ));
            } else {
                say(&format!(
                    "pinclaw: generated a gateway token, saved to {}",
                    saved.display()
                ));
            }
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

fn run_node(gw: &GatewayArgs, m: &Matches) -> ExitCode {
    let Some(url) = flag_or_env(m, "url", "PINCLAW_NODE_URL") else {
        return usage_error(
            m,
            "the gateway to join is required: --url <VALUE> (or PINCLAW_NODE_URL)",
        );
    };
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
        let name = m.value("name").map(str::to_owned).unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "pinclaw-node".into())
        });
        let mut options = pinclaw::node::host::NodeHostOptions::new(url, name, state_dir);
        options.token = flag_or_env(m, "token", "PINCLAW_NODE_TOKEN");
        options.password = flag_or_env(m, "password", "PINCLAW_NODE_PASSWORD");
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

/// `pinclaw doctor`: every check, printed; exit 1 when one fails. The
/// config is `--config` (or `PINCLAW_CONFIG`), else the packaged service's
/// when it is installed (with its state directory), else the defaults;
/// the gateway's flags apply as they would to `pinclaw gateway`.
fn doctor(gw: &GatewayArgs, json: bool) -> ExitCode {
    let (file, packaged) = chosen_config(gw);
    let loaded = match &file {
        None => Ok(Config::default()),
        Some(f) => Config::load_schema(f).map_err(|e| e.to_string()),
    };
    let loaded = loaded.map(|mut c| {
        apply_flags(&mut c, gw);
        c
    });
    let state_dir = gw
        .state_dir
        .clone()
        .or_else(|| loaded.as_ref().ok().and_then(|c| c.state_dir.clone()))
        .or_else(|| packaged.then(|| PathBuf::from(config::SERVICE_STATE_DIR)))
        .unwrap_or_else(config::default_state_dir);
    let loaded = loaded.map(|mut c| {
        c.state_dir = Some(state_dir.clone());
        c
    });
    let inputs = pinclaw::doctor::Inputs::new(file.clone(), loaded, state_dir.clone());
    let report = pinclaw::doctor::run(&inputs);
    if json {
        print_json(&report.to_json());
    } else {
        let header = format!(
            "pinclaw doctor: config {}, state {}",
            file.as_ref()
                .map_or("(the defaults)".into(), |f| f.display().to_string()),
            state_dir.display()
        );
        print!("{}", pinclaw::cli::doctor::human(&report, &header));
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `pinclaw mqtt check`: one timed round trip through the broker.
fn mqtt_check(gw: &GatewayArgs) -> ExitCode {
    let config = match client_config(gw) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    let Some(url) = config.mqtt.url.clone() else {
        eprintln!("error: no [mqtt] url in the config (pinclaw mqtt check --config FILE)");
        return ExitCode::from(2);
    };
    let node = config.mqtt.node_id(&gateway::hostname());
    let options = match pinclaw::bridge::client_options(&config.mqtt, &node) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: mqtt: {e}");
            return ExitCode::from(2);
        }
    };
    match pinclaw::mqtt::check(options, std::time::Duration::from_secs(10)) {
        Ok(r) => {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            println!("{url}: ok");
            println!("  connect (and auth)   {:>8.1} ms", ms(r.connect));
            println!("  subscribe            {:>8.1} ms", ms(r.subscribe));
            println!(
                "  publish -> received  {:>8.1} ms  ({})",
                ms(r.round_trip),
                r.topic
            );
            println!("  total                {:>8.1} ms", ms(r.total));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pinclaw dashboard`: the links to open, each with the token.
fn dashboard(gw: &GatewayArgs, remote: RemoteArgs) -> ExitCode {
    let config = match client_config(gw) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    let bind = match gw.bind.as_deref().map_or_else(
        || config::parse_bind(&config.gateway.bind),
        config::parse_bind,
    ) {
        Ok(ip) => ip,
        Err(e) => {
            eprintln!("error: gateway.bind: {e}");
            return ExitCode::from(2);
        }
    };
    let port = gw.port.unwrap_or(config.gateway.port);
    let (_, options) = match connection(gw, remote) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let urls = pinclaw::cli::dashboard::base_urls(bind, port, &gateway::hostname());
    match &options.token {
        Some(token) => {
            println!("Open the dashboard (the link carries the token; keep it to yourself):");
            for url in &urls {
                println!("  {}", pinclaw::cli::dashboard::with_token(url, token));
            }
        }
        None => {
            println!("Open the dashboard and log in with the gateway's token or password:");
            for url in &urls {
                println!("  {url}");
            }
        }
    }
    if bind.is_loopback() {
        println!(
            "The gateway listens on this machine only; to open it from a phone, set \
             gateway.bind = \"lan\" (with a token) and restart it."
        );
    }
    println!(
        "A new browser waits for approval: pinclaw devices list, then pinclaw devices approve <requestId>."
    );
    ExitCode::SUCCESS
}

/// Where the gateway is and how to authenticate: flags, then the
/// environment, then the config file ([`client_config`]: the installed
/// service's when none is given), then the state directory's token (the
/// service's with its config), then (for the local gateway) the packaged
/// service's token.
fn connection(gw: &GatewayArgs, remote: RemoteArgs) -> Result<(String, ClientOptions), ExitCode> {
    let (config, packaged) = client_config(gw)?;
    let local_url = remote.url.is_none();
    let url = remote
        .url
        .unwrap_or_else(|| format!("ws://127.0.0.1:{}", gw.port.unwrap_or(config.gateway.port)));
    let state_dir = gw
        .state_dir
        .clone()
        .or(config.state_dir.clone())
        .or_else(|| packaged.then(|| PathBuf::from(config::SERVICE_STATE_DIR)))
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
