//! SIGKILL the real binary while an automation's `for_s` write is on: after
//! the restart the switch is undone on time, through the invoke path (the
//! audit log says who), exactly once. (The audit log is written without an
//! fsync, so the killed run's own entry may be gone; the undo is durable.)

#[path = "support/process.rs"]
mod process;
mod support;

use std::time::Duration;

use serde_json::{Value, json};

const TOKEN: &str = "automation-kill-token-0123456789";

async fn audit_writes(url: &str) -> Vec<Value> {
    let mut op = support::operator_at(url, TOKEN, &["operator.admin"]).await;
    let v = op
        .call("audit.list", json!({"limit": 100}))
        .await
        .unwrap_or_else(|e| panic!("audit.list: {e}"));
    v["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| {
                    e["what"]
                        .as_str()
                        .is_some_and(|w| w.starts_with("gpio.write relay1"))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_for_s_revert_happens_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = process::write_config(
        dir.path(),
        TOKEN,
        r#"
[[automations]]
name = "porch"
when = { device = "button1", to = "on" }
do = { invoke = { command = "gpio.write", params = { name = "relay1", value = true }, for_s = 2 } }
"#,
    );
    let gw = process::start(&config, &[]);
    let mut admin = support::operator_at(&gw.url, TOKEN, &["operator.admin"]).await;
    admin
        .call(
            "node.invoke",
            json!({"nodeId": "local", "command": "sim.set", "params": {"name": "button1", "value": true},
                   "idempotencyKey": "press"}),
        )
        .await
        .unwrap_or_else(|e| panic!("sim.set: {e}"));
    // Wait until the automation switched the relay on, then kill at once.
    let mut on = Vec::new();
    for _ in 0..100 {
        on = audit_writes(&gw.url).await;
        if !on.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["who"], "automation porch");
    assert_eq!(on[0]["what"], "gpio.write relay1 = on on node local");
    drop(admin);
    gw.kill();

    // Back up: the revert is due within two seconds and runs.
    let gw = process::start(&config, &[]);
    let undone = |writes: &[Value]| {
        writes
            .iter()
            .filter(|w| w["who"] == "automation porch (undoing after for_s)")
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut reverts = Vec::new();
    for _ in 0..150 {
        reverts = undone(&audit_writes(&gw.url).await);
        if !reverts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    assert_eq!(reverts[0]["what"], "gpio.write relay1 = off on node local");
    assert_eq!(reverts[0]["outcome"], "ok");
    // And only once, also after one more (graceful) restart.
    assert_eq!(gw.terminate(), Some(0));
    let gw = process::start(&config, &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(undone(&audit_writes(&gw.url).await).len(), 1);
    gw.kill();
}
