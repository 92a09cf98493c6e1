//! The operator's CLI against the real binary, as a user types it:
//! approvals from the command line (and a waiting caller that says what it
//! waits for), `pinclaw call` making up idempotency keys, and `pinclaw chat`.

#[path = "support/process.rs"]
mod process;

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
