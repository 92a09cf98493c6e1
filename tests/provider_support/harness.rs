//! Shared helpers of the provider integration tests (included by `#[path]`).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinclaw::provider::{
    Abort, ApiKind, Clock, FailoverPolicy, Message, ProviderConfig, Providers, StreamEvent,
    ToolCall, ToolSpec, TurnError, TurnRequest, TurnSummary,
};
use serde_json::json;
use tokio::sync::mpsc;

/// A provider entry pointing at a fake, with short timeouts.
pub fn provider(id: &str, api: ApiKind, base_url: &str) -> ProviderConfig {
    let mut p = ProviderConfig::new(id, api, base_url);
    p.connect_timeout_ms = Some(2_000);
    p.first_byte_timeout_ms = Some(5_000);
    p.idle_timeout_ms = Some(5_000);
    p
}

/// Fast backoff, no jitter, default cooldown steps.
pub fn fast_policy() -> FailoverPolicy {
    FailoverPolicy {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_retry_wait: Duration::from_secs(3),
        jitter: false,
        ..FailoverPolicy::default()
    }
}

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Instant>);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Instant::now())))
    }
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

pub fn providers(cfgs: Vec<ProviderConfig>) -> Providers {
    Providers::with_policy(
        cfgs,
        fast_policy(),
        Arc::new(pinclaw::provider::SystemClock),
    )
    .unwrap()
}

/// The request of providers.md §2.1 / §3.1: a tool round trip.
pub fn tool_request() -> TurnRequest {
    TurnRequest {
        system: Some("You run on a Raspberry Pi gateway.".into()),
        messages: vec![
            Message::User {
                content: "How hot is the CPU and how long has it been up?".into(),
            },
            Message::Assistant {
                content: "Reading both sensors.".into(),
                tool_calls: vec![
                    ToolCall {
                        id: "call_fx3a".into(),
                        name: "get_temp".into(),
                        arguments: json!({"sensor": "cpu"}),
                    },
                    ToolCall {
                        id: "call_fx3b".into(),
                        name: "get_uptime".into(),
                        arguments: json!({}),
                    },
                ],
            },
            Message::Tool {
                call_id: "call_fx3a".into(),
                name: "get_temp".into(),
                content: "51.2 C".into(),
                is_error: false,
            },
            Message::Tool {
                call_id: "call_fx3b".into(),
                name: "get_uptime".into(),
                content: "permission denied".into(),
                is_error: true,
            },
        ],
        tools: vec![
            ToolSpec {
                name: "get_temp".into(),
                description: "Read a temperature sensor.".into(),
                parameters: json!({"type": "object",
                    "properties": {"sensor": {"type": "string", "enum": ["cpu", "gpu"]}},
                    "required": ["sensor"]}),
            },
            ToolSpec {
                name: "get_uptime".into(),
                description: "System uptime.".into(),
                parameters: json!({"type": "object", "properties": {}}),
            },
        ],
        max_tokens: Some(1024),
    }
}

pub fn hello() -> TurnRequest {
    TurnRequest {
        system: None,
        messages: vec![Message::User {
            content: "hello".into(),
        }],
        tools: Vec::new(),
        max_tokens: Some(64),
    }
}

/// Run a turn and collect every event.
pub async fn collect(
    p: &Providers,
    primary: &str,
    fallbacks: &[String],
    req: &TurnRequest,
) -> (Vec<StreamEvent>, Result<TurnSummary, TurnError>) {
    collect_with(p, primary, fallbacks, req, &Abort::new()).await
}

pub async fn collect_with(
    p: &Providers,
    primary: &str,
    fallbacks: &[String],
    req: &TurnRequest,
    abort: &Abort,
) -> (Vec<StreamEvent>, Result<TurnSummary, TurnError>) {
    let (tx, mut rx) = mpsc::channel(8);
    let reader = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let r = p.run_turn(primary, fallbacks, req, tx, abort).await;
    let events = reader.await.unwrap();
    (events, r)
}

/// Concatenated visible text.
pub fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn tool_calls(events: &[StreamEvent]) -> Vec<ToolCall> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}
