//! The `pinclaw` binary as a user runs it: first start, graceful stop,
//! refusal to bind insecurely, `config check`, and `devices` commands.

#[path = "support/process.rs"]
mod process;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_pinclaw");

fn spawn_gateway(state_dir: &std::path::Path, extra: &[&str]) -> process::GatewayProcess {
    let mut args: Vec<&std::ffi::OsStr> = ["gateway", "--port", "0", "--state-dir"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(state_dir.as_os_str());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    process::start_args(&args, &[])
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
}

#[tokio::test]
async fn first_start_says_where_the_token_is_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut gw = spawn_gateway(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("gateway.token")).unwrap_or_default();
    let token = token.trim().to_owned();
    assert_eq!(token.len(), 43);
    // Its stdout is a pipe here, as under systemd (journald keeps it):
    // where the token is, never the token.
    assert!(
        !gw.stdout_lines.iter().any(|l| l.contains(&token)),
        "token printed into a pipe: {:?}",
        gw.stdout_lines
    );
    assert!(
        gw.stdout_lines
            .iter()
            .any(|l| l.contains("generated a gateway token, saved to")),
        "{:?}",
        gw.stdout_lines
    );

    let options = pinclaw::client::ClientOptions {
        token: Some(token.clone()),
        scopes: vec!["operator.read".into()],
        ..Default::default()
    };
    let mut client = pinclaw::client::Client::connect(&gw.url, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        client
            .call("health", json!({}))
            .await
            .map(|h| h["ok"].clone())
            .ok(),
        Some(json!(true))
    );

    let started = Instant::now();
    gw.signal_term();
    let event = client
        .wait_event("shutdown", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("no shutdown event: {e}"));
    assert_eq!(event["payload"]["reason"], "gateway stopping");
    let closed = client.call("health", json!({})).await;
    assert!(
        matches!(
            closed,
            Err(pinclaw::client::ClientError::Closed(Some((1001, _))))
        ),
        "{closed:?}"
    );
    let status = loop {
        if let Some(status) = gw.try_exit() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not stopped within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    println!("SIGTERM → exit in {:?}", started.elapsed());

    // Second start: same token, not printed again.
    let gw = spawn_gateway(dir.path(), &[]);
    assert!(
        !gw.stdout_lines.iter().any(|l| l.contains(&token)),
        "token printed only once"
    );
    let again = std::fs::read_to_string(dir.path().join("gateway.token")).unwrap_or_default();
    assert_eq!(again.trim(), token);
}

/// At a terminal, the person who started it sees the new token once.
#[test]
fn first_start_at_a_terminal_shows_the_token() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    // util-linux's `script` gives the gateway a pseudo-terminal; `timeout`
    // stops it (SIGTERM) after it printed its first lines.
    let command = format!(
        "timeout -s TERM 3 {BIN} gateway --port 0 --state-dir {}",
        state.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .env_remove("PINCLAW_CONFIG")
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out else {
        process::skip(
            "first_start_at_a_terminal_shows_the_token",
            "no `script` (util-linux) to give the gateway a terminal",
        );
        return;
    };
    let shown = String::from_utf8_lossy(&out.stdout);
    let token = std::fs::read_to_string(state.join("gateway.token")).unwrap_or_default();
    assert_eq!(token.trim().len(), 43, "{shown}");
    assert!(shown.contains(token.trim()), "{shown}");
}

#[test]
fn refuses_a_lan_bind_without_auth() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(BIN)
        .args([
            "gateway",
            "--port",
            "0",
            "--bind",
            "lan",
            "--auth",
            "none",
            "--state-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to bind the gateway to 0.0.0.0"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_gateway_refuses_a_store_from_a_newer_pinclaw() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("state.redb");
    // A real store, then stamped as a newer binary would stamp it.
    let store = pinclaw::store::Store::open(&path).unwrap_or_else(|e| panic!("{e}"));
    store.close().await;
    let newer = pinclaw::store::FORMAT_VERSION + 1;
    {
        let db = redb::Database::create(&path).unwrap_or_else(|e| panic!("{e}"));
        let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        let mut meta = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap_or_else(|e| panic!("{e}"));
        meta.insert("format_version", newer.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(meta);
        txn.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    let out = Command::new(BIN)
        .args(["gateway", "--port", "0", "--state-dir"])
        .arg(dir.path())
        .env_remove("PINCLAW_CONFIG")
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "this store was written by a newer pinclaw (format {newer}); this binary reads up to {}; upgrade pinclaw or restore a backup",
            pinclaw::store::FORMAT_VERSION
        )),
        "{stderr}"
    );
}

#[test]
fn config_check_reports_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = Command::new(BIN)
        .args([
            "config",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/pinclaw.toml"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\nport = 18789\nmax_conections = 3\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:1: gateway.max_conections: unknown field `max_conections`"),
        "{stderr}"
    );
}

/// `config check` runs the validation the gateway runs at start and
/// reports every problem at once, each at its `file:line:column`, in the
/// config's words; the gateway refuses the same file with the same lines.
#[test]
fn config_check_catches_everything_the_gateway_refuses() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.toml");
    let text = "[board]\nprofile = \"sim\"\n\n[[board.devices]]\nname = \"x\"\nkind = \"output\"\npin = 99\n\n\
                [[board.devices]]\nname = \"y\"\nkind = \"output\"\npin = 17\n\n[agent]\nmodel = \"fake/m\"\n";
    std::fs::write(&bad, text).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("PINCLAW_CONFIG")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["config".as_ref(), "check".as_ref(), bad.as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
    let expected = [
        "bad.toml:7:1: board.devices[0].pin: device `x`: pin 99 is not a usable GPIO on profile `sim`",
        "bad.toml:12:1: board.devices[1].pin: pin 17 is used twice: by `relay1` and by `y`",
        "bad.toml:15:1: agent.model: \"fake/m\" names a provider, but no [[providers]] entry is configured",
        "3 problems in",
    ];
    for line in expected {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    let state = dir.path().join("state");
    let (code, started) = run(&[
        "gateway".as_ref(),
        "--port".as_ref(),
        "0".as_ref(),
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--config".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "the gateway refuses it too: {started}");
    assert_eq!(started, stderr, "the same report");

    std::fs::write(
        &bad,
        "[board]\nprofile = \"pi-9\"\n[gateway]\nport = 70000\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, stderr) = run(&["config".as_ref(), "check".as_ref(), bad.as_os_str()]);
    assert!(
        stderr.contains("bad.toml:4:8: gateway.port: invalid value: integer `70000`, expected a port number 1–65535"),
        "{stderr}"
    );
    assert!(!stderr.contains("u16"), "{stderr}");
    std::fs::write(&bad, "[board]\nprofile = \"pi-9\"\n").unwrap_or_else(|e| panic!("{e}"));
    let (_, stderr) = run(&["config".as_ref(), "check".as_ref(), bad.as_os_str()]);
    assert!(
        stderr.contains("bad.toml:2:1: board.profile: unknown board profile `pi-9` (known: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn devices_commands_approve_a_pending_device() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = spawn_gateway(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("gateway.token")).unwrap_or_default();
    // A device asks to pair through a proxy (so it is not silently approved).
    let key = new_key();
    let mut ws = raw_connect(&gw.url, &[("x-forwarded-for", "192.0.2.80")]).await;
    let challenge = next_json(&mut ws).await;
    let options = pinclaw::client::ClientOptions {
        token: Some(token.trim().to_owned()),
        device: Some(key),
        scopes: vec!["operator.read".into()],
        ..Default::default()
    };
    let params = pinclaw::client::connect_params(
        &options,
        challenge["payload"]["nonce"].as_str().unwrap_or(""),
        challenge["payload"]["ts"].as_i64().unwrap_or(0),
    );
    send(&mut ws, &connect_frame(params)).await;
    let res = next_json(&mut ws).await;
    let request_id = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!request_id.is_empty(), "{res}");

    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["--url", &gw.url, "--state-dir"])
            .arg(dir.path())
            .env_remove("PINCLAW_GATEWAY_TOKEN")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let list = run(&["devices", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && text.contains(&request_id),
        "{text} {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let approve = run(&["devices", "approve", &request_id]);
    assert!(
        approve.status.success(),
        "{:?} {} {}",
        approve.status,
        String::from_utf8_lossy(&approve.stdout),
        String::from_utf8_lossy(&approve.stderr)
    );
    let list = run(&["devices", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    assert_eq!(v["pending"], json!([]));
    assert_eq!(v["paired"][0]["approvedVia"], "manual");
    let missing = run(&["devices", "approve", "no-such-request"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unknown requestId"));
}

#[test]
fn tells_systemd_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(BIN)
        .args(["gateway", "--port", "0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut received = Vec::new();
    let mut buf = [0u8; 512];
    while received
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 2
    {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notify message: {e}"));
        received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        received[0].starts_with("READY=1\nSTATUS=serving on ws://127.0.0.1:"),
        "{received:?}"
    );
    sigterm(child.id());
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no STOPPING: {e}"));
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_commands() {
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(&["devices"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a subcommand is required"), "{err}");
    assert!(
        err.contains("approve  Approve a pending pairing request."),
        "{err}"
    );
    let out = run(&["send", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--to <VALUE>' was not provided"));
    let out = run(&["--port", "70000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a port number"));
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("approvals") && help.contains("--state-dir"),
        "{help}"
    );
    let out = run(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("pinclaw ", env!("CARGO_PKG_VERSION"))
    );
}

/// `config check` names every mistake in `[[automations]]`: unknown
/// devices, fields, channels, commands and placeholders, each at its
/// `file:line:column`.
#[test]
fn config_check_refuses_automations_that_name_what_does_not_exist() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("automations.toml");
    let text = r#"[[automations]]
name = "hall-motion"
when = { device = "pir9", to = "on" }
do = { notify = { channel = "telegram", to = "123456789", text = "Motion" } }

[[automations]]
name = "too-warm"
when = { device = "room", field = "temperature", above = 28.0 }
do = { notify = { channel = "signal", to = "1", text = "{value} {temp}" } }

[[automations]]
name = "porch"
when = { cron = "0 25 * * *", tz = "Europe/Berlin" }
do = { invoke = { command = "gpio.toggle", params = { name = "relay1" } } }

[[automations]]
name = "porch"
when = { every = "15m" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = "maybe" } } }
"#;
    std::fs::write(&bad, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "automations.toml:3:10: automations[0].when.device: no device `pir9` is declared on this board",
        "automations.toml:4:19: automations[0].do.notify.channel: the telegram channel is not enabled",
        "automations.toml:8:27: automations[1].when.field: `room` has no field `temperature` (it has temperature_c, humidity_pct, pressure_hpa)",
        "automations[1].do.notify.text: unknown placeholder {temp}",
        "automations[1].do.notify.channel: unknown channel `signal`",
        "automations.toml:13:10: automations[2].when.cron: hour field: 25 is out of range 0–23",
        "automations[2].do.invoke.command: this board has no command `gpio.toggle`",
        "automations.toml:17:1: automations[3].name: `porch` is used twice",
        "automations[3].do.invoke.params: invalid params: value `maybe` is not on/off",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(stderr.contains("9 problems in"), "{stderr}");
}
