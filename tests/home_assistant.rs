//! The agent's `home_assistant` tool against a fake Home Assistant REST API
//! on loopback: states listed by domain, an allowed service called with the
//! long-lived token, a service outside `allow_services` refused without a
//! request, and every failure (unknown entity, wrong token, a stalled
//! server) back to the model as one readable tool error. The token never
//! reaches a log line, a transcript or an error.

mod agent_support;
#[path = "support/fake_home_assistant.rs"]
mod fake_home_assistant;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/log_capture.rs"]
mod log_capture;
mod support;

use std::time::Duration;

use agent_support::*;
use fake_home_assistant::{FakeHomeAssistant, entity};
use fake_provider::FakeProvider;
use log_capture::Capture;
use pinclaw::home_assistant::HomeAssistantConfig;
use serde_json::{Value, json};
use support::*;

const HA_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.SECRET-long-lived-token";

fn house() -> Vec<Value> {
    vec![
        entity("light.kitchen", "off", "Kitchen light", None),
        entity("light.porch", "on", "Porch light", None),
        entity("switch.kettle", "off", "Kettle", None),
        entity("lock.front_door", "locked", "Front door", None),
        entity("sensor.outside_temperature", "3.5", "Outside", Some("°C")),
    ]
}

/// A gateway on `fake` with `[home_assistant]` on `ha`, its token in a file.
async fn gateway(
    dir: &std::path::Path,
    fake: &FakeProvider,
    ha: &FakeHomeAssistant,
    token: &str,
) -> TestGateway {
    let token_file = dir.join("ha.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap_or_else(|e| panic!("{e}"));
    let mut s = agent_settings(dir, fake, 16_384);
    s.config.home_assistant = HomeAssistantConfig {
        url: Some(ha.url()),
        token_file: Some(token_file),
        token_env: None,
        allow_services: vec!["light.*".into(), "switch.turn_on".into()],
        timeout_s: 1,
    };
    TestGateway::start_with(s).await
}

/// Send `message` in session `key` and wait for the run to finish.
async fn run(gw: &TestGateway, key: &str, message: &str) {
    let mut admin = gw.client(&["operator.admin"]).await;
    let id = format!("{key}-run");
    admin
        .call(
            "chat.send",
            json!({"sessionKey": key, "message": message, "idempotencyKey": id}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = admin
        .call("agent.wait", json!({"runId": id, "timeoutMs": 20_000}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done["status"], "ok", "{done}");
}

/// The tool message answering `call_id` in a recorded model request.
fn tool_result(body: &Value, call_id: &str) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["tool_call_id"] == call_id))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_else(|| panic!("no tool result for {call_id} in {body}"))
        .to_owned()
}

#[tokio::test]
async fn the_agent_reads_and_switches_the_house_within_the_allow_list() {
    let cap = Capture::install();

    let fake = FakeProvider::start();
    let ha = FakeHomeAssistant::start(HA_TOKEN, house());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = gateway(dir.path(), &fake, &ha, HA_TOKEN).await;

    fake.push(tool_reply(
        "c1",
        "home_assistant",
        json!({"action": "list_states", "domain": "light"}),
    ));
    fake.push(tool_reply(
        "c2",
        "home_assistant",
        json!({"action": "call_service", "service": "light.turn_on",
               "serviceDataJson": "{\"entity_id\":\"light.kitchen\",\"brightness_pct\":40}"}),
    ));
    fake.push(tool_reply(
        "c3",
        "home_assistant",
        json!({"action": "call_service", "service": "lock.unlock",
               "serviceDataJson": "{\"entity_id\":\"lock.front_door\"}"}),
    ));
    fake.push(tool_reply(
        "c4",
        "home_assistant",
        json!({"action": "get_state", "entityId": "sensor.outside_temperature"}),
    ));
    fake.push(tool_reply(
        "c5",
        "home_assistant",
        json!({"action": "get_state", "entityId": "sensor.attic"}),
    ));
    fake.push(tool_reply(
        "c6",
        "home_assistant",
        json!({"action": "call_service", "service": "switch.turn_on",
               "serviceDataJson": "not json"}),
    ));
    fake.push(text_reply("The kitchen light is on.", Duration::ZERO));
    run(&gw, "house", "turn on the kitchen light").await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 7, "six tool rounds and the answer");
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    // The tool is offered with its allow-list in its description.
    let tools = bodies[0]["tools"].as_array().cloned().unwrap_or_default();
    let spec = tools
        .iter()
        .find(|t| t["function"]["name"] == "home_assistant")
        .unwrap_or_else(|| panic!("home_assistant not offered: {tools:?}"));
    let description = spec["function"]["description"].as_str().unwrap_or("");
    assert!(
        description.contains("light.*, switch.turn_on"),
        "{description}"
    );

    // list_states by domain: only lights, summarised.
    let listed: Value = serde_json::from_str(&tool_result(&bodies[1], "c1"))
        .unwrap_or_else(|e| panic!("list_states result is not JSON: {e}"));
    assert_eq!(listed["count"], 2, "{listed}");
    assert_eq!(listed["states"][0]["entity_id"], "light.kitchen");
    assert_eq!(listed["states"][1]["name"], "Porch light");

    // The allowed service reached Home Assistant, with the token, and acted.
    let calls: Vec<_> = ha
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(calls.len(), 1, "only the allowed call was made: {calls:?}");
    assert_eq!(calls[0].path, "/api/services/light/turn_on");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {HA_TOKEN}").as_str())
    );
    assert_eq!(
        calls[0].body,
        json!({"entity_id": "light.kitchen", "brightness_pct": 40})
    );
    assert_eq!(ha.state_of("light.kitchen").as_deref(), Some("on"));
    assert!(tool_result(&bodies[2], "c2").contains("\"state\":\"on\""));

    // The refused service never left the gateway and says why.
    let refused = tool_result(&bodies[3], "c3");
    assert!(
        refused.contains("lock.unlock is not allowed")
            && refused.contains("allow_services")
            && refused.contains("light.*"),
        "{refused}"
    );
    assert_eq!(ha.state_of("lock.front_door").as_deref(), Some("locked"));

    // get_state: the whole state object; an unknown entity is readable.
    let outside = tool_result(&bodies[4], "c4");
    assert!(
        outside.contains("\"state\":\"3.5\"") && outside.contains("°C"),
        "{outside}"
    );
    let missing = tool_result(&bodies[5], "c5");
    assert!(
        missing.contains("Home Assistant has no /api/states/sensor.attic"),
        "{missing}"
    );
    // Bad service data is refused before any request.
    let bad = tool_result(&bodies[6], "c6");
    assert!(
        bad.contains("serviceDataJson must be a JSON object"),
        "{bad}"
    );

    // The token is nowhere but in the Authorization header.
    let mut admin = gw.client(&["operator.admin"]).await;
    let history = admin
        .call("chat.history", json!({"sessionKey": "house"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = admin
        .call("status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = cap.text();
    assert!(
        logs.contains("tool=home_assistant error=the service lock.unlock is not allowed"),
        "the tool calls were logged at all"
    );
    for (what, text) in [
        ("logs", logs),
        ("history", history.to_string()),
        ("status", status.to_string()),
        ("model requests", format!("{bodies:?}")),
    ] {
        assert!(
            !text.contains("SECRET-long-lived"),
            "the token is in {what}"
        );
    }
}

#[tokio::test]
async fn a_wrong_token_and_a_stalled_server_come_back_as_readable_tool_errors() {
    let fake = FakeProvider::start();
    let ha = FakeHomeAssistant::start(HA_TOKEN, house());
    ha.stall("sensor.outside_temperature");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = gateway(dir.path(), &fake, &ha, "revoked-token-0000").await;

    fake.push(tool_reply(
        "c1",
        "home_assistant",
        json!({"action": "list_states"}),
    ));
    fake.push(text_reply("Home Assistant refused me.", Duration::ZERO));
    run(&gw, "wrong", "what is on?").await;
    let body: Value =
        serde_json::from_slice(&fake.requests()[1].body).unwrap_or_else(|e| panic!("{e}"));
    let refused = tool_result(&body, "c1");
    assert!(
        refused.contains("refused the access token") && refused.contains("token_file"),
        "{refused}"
    );
    assert!(!refused.contains("revoked-token"), "{refused}");
    drop(gw);

    // The right token, but Home Assistant never answers: the 1 s deadline.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let gw = gateway(dir.path(), &fake, &ha, HA_TOKEN).await;
    fake.push(tool_reply(
        "c2",
        "home_assistant",
        json!({"action": "get_state", "entityId": "sensor.outside_temperature"}),
    ));
    fake.push(text_reply("It did not answer.", Duration::ZERO));
    run(&gw, "stalled", "how cold is it outside?").await;
    let body: Value =
        serde_json::from_slice(&fake.requests()[3].body).unwrap_or_else(|e| panic!("{e}"));
    let stalled = tool_result(&body, "c2");
    assert!(
        stalled.contains("did not answer") && stalled.contains(&ha.url()),
        "{stalled}"
    );
    assert!(!stalled.contains(HA_TOKEN), "{stalled}");
}
