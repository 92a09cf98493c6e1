//! The operator's CLI against the real binary, as a user types it:
//! approvals from the command line (and a waiting caller that says what it
//! waits for), `pinclaw call` making up idempotency keys, and `pinclaw chat`.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/process.rs"]
mod process;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "operator-cli-test-token";

/// `pinclaw --config CONFIG --url URL ARGS…`, waited for.
fn pinclaw(config: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(process::BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .args(["--url", url])
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .env_remove("PINCLAW_STATE_DIR")
        .output()
        .unwrap_or_else(|e| panic!("pinclaw {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const CONFIRMED_HEATER: &str =
    "[[board.devices]]\nname = \"heater\"\nkind = \"output\"\npin = 23\nconfirm = true\n";

/// Start `pinclaw call node.invoke` writing `heater`, and wait until it says
/// it waits for an approval; returns the child, the approval id and the
/// rest of its stderr (once it exits).
fn write_that_waits(
    config: &Path,
    url: &str,
    on: bool,
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    let params = format!(
        r#"{{"nodeId":"local","command":"gpio.write","params":{{"name":"heater","value":{on}}}}}"#
    );
    let mut child = Command::new(process::BIN)
        .arg("--config")
        .arg(config)
        .args(["call", "node.invoke", "--params", &params, "--url", url])
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("waiting for an operator's approval: gpio.write heater = "),
        "the waiting caller says what it waits for: {first:?}"
    );
    let approve = lines.next().and_then(Result::ok).unwrap_or_default();
    let id = approve
        .trim()
        .strip_prefix("approve: pinclaw approvals approve ")
        .unwrap_or_else(|| panic!("and how to answer: {approve:?}"))
        .to_owned();
    let rest =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    (child, id, rest)
}

#[test]
fn approvals_are_answered_from_the_cli_and_the_caller_says_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_config(dir.path(), TOKEN, CONFIRMED_HEATER);
    let gw = process::start(&config, &[]);

    let (child, id, _) = write_that_waits(&config, &gw.url, true);
    let listed = pinclaw(&config, &gw.url, &["approvals", "list"]);
    let table = text(&listed.stdout);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("WAITING FOR"),
        "{table}"
    );
    assert!(
        table.contains(&id) && table.contains("gpio.write heater = on"),
        "{table}"
    );
    let json = pinclaw(&config, &gw.url, &["approvals", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_default();
    assert_eq!(v["approvals"][0]["id"], id.as_str(), "{v}");

    // A unique prefix is enough at a prompt.
    let approved = pinclaw(&config, &gw.url, &["approvals", "approve", &id[..8]]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    assert_eq!(text(&approved.stdout).trim(), format!("approved {id}"));
    let done = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(done.status.success());
    let result: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap_or_default();
    assert_eq!(result["payload"]["value"], true, "{result}");
    assert!(
        result.get("payloadJSON").is_none(),
        "the payload is printed once: {result}"
    );

    let (child, id, rest) = write_that_waits(&config, &gw.url, false);
    let denied = pinclaw(&config, &gw.url, &["approvals", "deny", &id]);
    assert_eq!(text(&denied.stdout).trim(), format!("denied {id}"));
    let done = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!done.status.success(), "a denied write fails");
    let said = rest.join().unwrap_or_default();
    assert!(said.contains("was denied by an operator"), "{said}");
    let again = pinclaw(&config, &gw.url, &["approvals", "approve", &id]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no pending approval"),
        "{}",
        text(&again.stderr)
    );
    let empty = pinclaw(&config, &gw.url, &["approvals", "list"]);
    assert_eq!(text(&empty.stdout).trim(), "nothing waits for approval");

    // Who did what: the operator's two writes and both decisions.
    let audit = pinclaw(&config, &gw.url, &["audit", "--since", "1h", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap_or_default();
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let find = |what: &str, action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["what"].as_str().is_some_and(|w| w.contains(what)))
            .cloned()
            .unwrap_or_else(|| panic!("no {action} {what:?} in {v}"))
    };
    let on = find("gpio.write heater = on on node local", "invoke");
    assert_eq!(on["outcome"], "ok");
    assert!(
        on["who"]
            .as_str()
            .is_some_and(|w| w.starts_with("operator cli") && w.ends_with("from 127.0.0.1")),
        "{on}"
    );
    let off = find("gpio.write heater = off", "invoke");
    assert!(
        off["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("denied by an operator")),
        "{off}"
    );
    let allowed = find(
        &format!("id={}", &id_of_first(&entries)),
        "exec.approval.resolve",
    );
    assert_eq!(allowed["outcome"], "ok", "{allowed}");
    let table = text(&pinclaw(&config, &gw.url, &["audit"]).stdout);
    assert!(table.starts_with("WHEN (UTC)"), "{table}");
    assert!(
        table.contains("gpio.write heater = on on node local"),
        "{table}"
    );
    assert_eq!(gw.terminate(), Some(0));
}

#[test]
fn call_makes_up_an_idempotency_key_so_two_messages_are_two_runs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_config(dir.path(), TOKEN, "");
    let gw = process::start(&config, &[]);
    let send = |message: &str| {
        let params = format!(r#"{{"sessionKey":"main","message":"{message}"}}"#);
        let out = pinclaw(
            &config,
            &gw.url,
            &["call", "chat.send", "--params", &params],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["runId"].as_str().unwrap_or_default().to_owned()
    };
    let first = send("is the relay on?");
    let second = send("and the heater?");
    assert!(!first.is_empty() && first != second, "{first} / {second}");
    // Both messages are in the history: neither was answered from a cache.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pinclaw(
            &config,
            &gw.url,
            &[
                "call",
                "chat.history",
                "--params",
                r#"{"sessionKey":"main"}"#,
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let users: Vec<&str> = v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["text"].as_str())
            .collect();
        if users == ["is the relay on?", "and the heater?"] {
            break;
        }
        assert!(Instant::now() < deadline, "history: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.terminate(), Some(0));
}

#[test]
fn a_client_that_finds_no_gateway_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_config(dir.path(), TOKEN, "");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "ws://127.0.0.1:{}",
        free.local_addr().map(|a| a.port()).unwrap_or(1)
    );
    drop(free);
    let out = pinclaw(&config, &url, &["call", "health"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("cannot connect to {url}"))
            && said.contains("Is the gateway running?"),
        "{said}"
    );
}

/// `pinclaw chat` in a pseudo-terminal (`script`), typed at like a user:
/// a sensor question streams its answer with the tool call as one line, a
/// relay write asks for approval inline, `/history` and `/quit` work; and
/// `chat -m` prints the final text, or fails when the run fails.
#[test]
fn chat_streams_the_reply_shows_tool_lines_and_asks_for_approvals() {
    use agent_support::{text_reply, tool_reply};
    use serde_json::json;
    if Command::new("script").arg("--version").output().is_err() {
        process::skip(
            "chat_streams_…",
            "no `script` (util-linux) for a pseudo-terminal",
        );
        return;
    }
    let model = fake_provider::FakeProvider::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_fake_provider_config(dir.path(), TOKEN, &model.base_url(), "");
    let extra = format!(
        "{}\n{CONFIRMED_HEATER}",
        std::fs::read_to_string(&config).unwrap_or_default()
    );
    std::fs::write(&config, extra).unwrap_or_else(|e| panic!("{e}"));
    let gw = process::start(&config, &[]);
    model.push(tool_reply(
        "c1",
        "nodes",
        json!({"action": "invoke", "node": "local", "invokeCommand": "sensors.read", "invokeParamsJson": "{\"name\":\"room\"}"}),
    ));
    model.push(text_reply(
        "The room is 21.4 °C right now.",
        Duration::from_millis(30),
    ));

    let command = format!(
        "{} --config {} chat --url {}",
        process::BIN,
        config.display(),
        gw.url
    );
    let mut chat = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("script: {e}"));
    let mut input = chat.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let output = chat.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, screen) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut output = output;
        let mut buf = [0u8; 4096];
        while let Ok(n) = output.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match screen.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&chunk),
                Err(_) => panic!("waited for {needle:?}; the screen shows:\n{seen}"),
            }
        }
    };
    use std::io::Write as _;
    wait_for("/help for commands", &mut seen);
    let _ = writeln!(input, "how warm is the room?");
    wait_for("→ nodes invoke sensors.read room … ", &mut seen);
    wait_for(" °C, ", &mut seen);
    wait_for("The room is 21.4 °C right now.\r\n> ", &mut seen);
    // Streamed: the words arrived in more than one piece.
    let deltas = model.requests().len();
    assert_eq!(deltas, 2, "a tool round trip, then the answer");

    model.push(tool_reply(
        "c2",
        "nodes",
        json!({"action": "invoke", "node": "local", "invokeCommand": "gpio.write", "invokeParamsJson": "{\"name\":\"heater\",\"value\":true}"}),
    ));
    model.push(text_reply("The heater is on.", Duration::ZERO));
    let _ = writeln!(input, "switch the heater on");
    wait_for("→ nodes invoke gpio.write heater = on", &mut seen);
    wait_for(
        "approval needed: gpio.write heater = on. Approve? [y/n]",
        &mut seen,
    );
    let _ = writeln!(input, "y");
    wait_for("(approved)", &mut seen);
    wait_for("The heater is on.\r\n> ", &mut seen);
    let _ = writeln!(input, "/history");
    wait_for("you: switch the heater on", &mut seen);
    wait_for("assistant: The heater is on.", &mut seen);
    let _ = writeln!(input, "/quit");
    let status = chat.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{seen}");
    // The agent's write is in the audit log under its run and session.
    let audit = pinclaw(&config, &gw.url, &["audit", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap_or_default();
    let write = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["what"] == "gpio.write heater = on on node local")
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        write["who"].as_str().is_some_and(
            |w| w.starts_with("agent run ") && w.ends_with(" in session agent:main:main")
        ),
        "{write}"
    );
    assert_eq!(write["outcome"], "ok");
    println!("--- pinclaw chat, as the terminal showed it ---\n{seen}");

    // One-shot, for scripts: the final text on stdout, exit 0…
    model.push(text_reply("All quiet.", Duration::ZERO));
    let out = pinclaw(&config, &gw.url, &["chat", "-m", "anything new?"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "All quiet.\n");
    // …and non-zero with the reason when the run fails.
    model.push(fake_provider::Reply::http_error(
        401,
        r#"{"error":{"message":"bad key"}}"#,
        None,
    ));
    let out = pinclaw(&config, &gw.url, &["chat", "-m", "hello?"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("model fake/m authentication failed (HTTP 401)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(gw.terminate(), Some(0));
}

/// Every list command prints an aligned table by default and JSON with
/// `--json`.
#[test]
fn list_commands_print_a_table_or_json() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_config(dir.path(), TOKEN, "");
    let gw = process::start(&config, &[]);
    let cases: &[(&[&str], &str, &str)] = &[
        (&["nodes", "list"], "NAME", "nodes"),
        (
            &["nodes", "pending"],
            "no node waits for approval",
            "pending",
        ),
        (&["devices", "list"], "Paired (", "paired"),
        (
            &["approvals", "list"],
            "nothing waits for approval",
            "approvals",
        ),
        (
            &["pairing", "list"],
            "nobody waits for DM pairing",
            "requests",
        ),
    ];
    for (args, table_says, json_key) in cases {
        let out = pinclaw(&config, &gw.url, args);
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(shown.contains(table_says), "{args:?}:\n{shown}");
        assert!(
            !shown.trim_start().starts_with('{'),
            "{args:?} is a table:\n{shown}"
        );
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = pinclaw(&config, &gw.url, &with_json);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{with_json:?} is JSON: {e}: {}", text(&out.stdout)));
        assert!(v.get(*json_key).is_some(), "{with_json:?}: {v}");
    }
    // The board itself is a node, and its row says so, in aligned columns.
    let out = pinclaw(&config, &gw.url, &["nodes", "list"]);
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines.len() >= 2 && lines[1].ends_with("this board"),
        "{shown}"
    );
    let column = |line: &str| line.find("STATE").or_else(|| line.find("connected"));
    assert_eq!(column(lines[0]), column(lines[1]), "aligned:\n{shown}");
    assert_eq!(gw.terminate(), Some(0));
}

/// The approval id of the first resolve in the audit log.
fn id_of_first(entries: &[serde_json::Value]) -> String {
    entries
        .iter()
        .find(|e| e["action"] == "exec.approval.resolve")
        .and_then(|e| e["what"].as_str())
        .and_then(|w| w.split_whitespace().find_map(|p| p.strip_prefix("id=")))
        .unwrap_or_default()
        .to_owned()
}
