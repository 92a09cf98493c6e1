//! Retry, backoff, failover, cooldown / circuit breaker, abort and status
//! snapshots, against fake providers on 127.0.0.1.

#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "provider_support/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_provider::{FakeProvider, Reply, Step};
use harness::*;
use pinclaw::provider::failover::ModelState;
use pinclaw::provider::{
    Abort, ApiKind, ConfigError, ModelConfig, ProviderConfig, Providers, StreamEvent, TurnError,
};

const OVERLOADED: &str = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_fx9"}"#;
const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

fn openai(id: &str, fake: &FakeProvider) -> ProviderConfig {
    provider(id, ApiKind::OpenAiChat, &format!("{}/v1", fake.base_url()))
}

fn anthropic(id: &str, fake: &FakeProvider) -> ProviderConfig {
    provider(id, ApiKind::AnthropicMessages, &fake.base_url())
}

fn fb(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    fake.push(Reply::http_error(429, RATE_LIMITED, Some("1")));
    fake.push(Reply::fixture("openai_text.sse"));
    let (ev, r) = collect(&p, "a/m", &[], &hello()).await;
    assert_eq!(r.unwrap().requests, 2);
    assert_eq!(text_of(&ev), "Pi is online.");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    println!("retry-after: 1 -> gap between requests {gap:?}");
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
}

#[tokio::test]
async fn retry_after_ms_wins_and_backoff_is_used_without_it() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    fake.push(Reply::http_error(503, "{}", Some("9")).header("retry-after-ms", "300"));
    fake.push(Reply::http_error(
        500,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
        None,
    ));
    fake.push(Reply::fixture("openai_text.sse"));
    let (_, r) = collect(&p, "a/m", &[], &hello()).await;
    assert_eq!(r.unwrap().requests, 3);
    let reqs = fake.requests();
    let g1 = reqs[1].at - reqs[0].at;
    let g2 = reqs[2].at - reqs[1].at;
    println!("retry-after-ms: 300 -> {g1:?}; backoff 2x20ms -> {g2:?}");
    assert!(
        g1 >= Duration::from_millis(290) && g1 < Duration::from_secs(5),
        "{g1:?}"
    );
    assert!(
        g2 >= Duration::from_millis(40),
        "second retry doubles the base: {g2:?}"
    );
}

#[tokio::test]
async fn overloaded_primary_fails_over_and_stays_cooled_down() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let p = providers(vec![anthropic("a", &fa), openai("b", &fbk)]);
    fa.set_default(Reply::http_error(529, OVERLOADED, None));
    fbk.set_default(Reply::fixture("openai_text.sse"));

    let (ev, r) = collect(&p, "a/claude", &fb(&["b/gpt"]), &hello()).await;
    let s = r.unwrap();
    assert_eq!(s.model, "b/gpt");
    assert_eq!(text_of(&ev), "Pi is online.");
    assert_eq!(fa.requests().len(), 3, "first attempt + 2 retries");
    assert_eq!(s.requests, 4);
    assert_eq!(s.failed.len(), 1);
    assert!(
        s.failed[0].reason.contains("overloaded (HTTP 529)"),
        "{:?}",
        s.failed
    );

    let snap = p.models_snapshot();
    let a = snap.iter().find(|m| m.id == "a/claude").unwrap();
    assert_eq!(a.status, ModelState::Cooldown);
    assert!(
        (55_000..=60_000).contains(&a.cooldown_remaining_ms),
        "{a:?}"
    );
    assert_eq!(a.failures, 1);

    // the next turn goes straight to the backup
    let (_, r) = collect(&p, "a/claude", &fb(&["b/gpt"]), &hello()).await;
    let s = r.unwrap();
    assert_eq!(s.model, "b/gpt");
    assert_eq!(fa.requests().len(), 3, "no request to a cooling model");
    assert!(
        s.failed[0].reason.starts_with("skipped: cooling down"),
        "{:?}",
        s.failed
    );
}

#[tokio::test]
async fn auth_and_billing_errors_fail_over_without_retry() {
    for (status, body) in [
        (
            401,
            r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        ),
        (
            403,
            r#"{"type":"error","error":{"type":"permission_error","message":"no"}}"#,
        ),
        (
            429,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        ),
        (
            404,
            r#"{"error":"model \"m\" not found, try pulling it first"}"#,
        ),
    ] {
        let fa = FakeProvider::start();
        let fbk = FakeProvider::start();
        let p = providers(vec![openai("a", &fa), openai("b", &fbk)]);
        fa.set_default(Reply::http_error(status, body, Some("1")));
        fbk.set_default(Reply::fixture("openai_text.sse"));
        let (_, r) = collect(&p, "a/m", &fb(&["b/m"]), &hello()).await;
        let s = r.unwrap();
        assert_eq!(s.model, "b/m", "{status}");
        assert_eq!(fa.requests().len(), 1, "{status}: no retry");
        println!("{status}: {}", s.failed[0].reason);
    }
}

#[tokio::test]
async fn context_overflow_asks_for_compaction_and_does_not_fail_over() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let p = providers(vec![openai("a", &fa), openai("b", &fbk)]);
    fa.set_default(Reply::http_error(
        400,
        r#"{"error":{"message":"This model's maximum context length is 2048 tokens. However, your messages resulted in 3000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        None,
    ));
    let (_, r) = collect(&p, "a/m", &fb(&["b/m"]), &hello()).await;
    match r {
        Err(TurnError::ContextOverflow { model, message }) => {
            assert_eq!(model, "a/m");
            assert!(message.contains("maximum context length"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fa.requests().len(), 1);
    assert_eq!(fbk.requests().len(), 0);
    let a = p.models_snapshot();
    assert!(a.is_empty() || a.iter().all(|m| m.status == ModelState::Available));
}

#[tokio::test]
async fn long_retry_after_fails_over_at_once_and_cools_down_that_long() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let mut a = openai("a", &fa);
    a.models = vec![ModelConfig {
        id: "m".into(),
        context_window: Some(8000),
        max_output_tokens: None,
    }];
    let p = providers(vec![a, openai("b", &fbk)]);
    fa.set_default(Reply::http_error(429, RATE_LIMITED, Some("600")));
    fbk.set_default(Reply::fixture("openai_text.sse"));
    let t = Instant::now();
    let (_, r) = collect(&p, "a/m", &fb(&["b/m"]), &hello()).await;
    assert_eq!(r.unwrap().model, "b/m");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "did not sleep: {:?}",
        t.elapsed()
    );
    assert_eq!(fa.requests().len(), 1);
    let m = p
        .models_snapshot()
        .into_iter()
        .find(|m| m.id == "a/m")
        .unwrap();
    assert!(m.cooldown_remaining_ms > 590_000, "{m:?}");
    assert_eq!(m.context_window, Some(8000));
}

#[tokio::test]
async fn fails_over_across_models_of_one_provider() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    fake.push(Reply::http_error(503, "{}", None).for_model("big"));
    fake.push(Reply::http_error(503, "{}", None).for_model("big"));
    fake.push(Reply::http_error(503, "{}", None).for_model("big"));
    fake.push(Reply::fixture("openai_text.sse").for_model("small"));
    let (_, r) = collect(&p, "a/big", &fb(&["a/small"]), &hello()).await;
    assert_eq!(r.unwrap().model, "a/small");
    let models: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| {
            r.json.as_ref().unwrap()["model"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(models, ["big", "big", "big", "small"]);
    // cooldown is per (provider, model): a/small is still available
    let snap = p.models_snapshot();
    assert_eq!(
        snap.iter().find(|m| m.id == "a/big").unwrap().status,
        ModelState::Cooldown
    );
    assert!(
        snap.iter()
            .all(|m| m.id != "a/small" || m.status == ModelState::Available)
    );
}

#[tokio::test]
async fn no_retry_and_no_failover_after_first_output() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let p = providers(vec![openai("a", &fa), openai("b", &fbk)]);
    fa.set_default(Reply::fixture("openai_text_then_error.sse"));
    fbk.set_default(Reply::fixture("openai_text.sse"));
    let (ev, r) = collect(&p, "a/m", &fb(&["b/m"]), &hello()).await;
    match r {
        Err(TurnError::Interrupted { model, error }) => {
            assert_eq!(model, "a/m");
            assert!(error.after_output);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        text_of(&ev),
        "Pi is",
        "partial text delivered once, not duplicated"
    );
    assert_eq!(fa.requests().len(), 1);
    assert_eq!(fbk.requests().len(), 0);
}

#[tokio::test]
async fn exhausted_chain_names_every_attempt() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let p = providers(vec![openai("a", &fa), anthropic("b", &fbk)]);
    fa.set_default(Reply::http_error(401, r#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#, None));
    fbk.set_default(Reply::http_error(529, OVERLOADED, None));
    let (_, r) = collect(&p, "a/m", &fb(&["b/c"]), &hello()).await;
    let Err(TurnError::Exhausted(f)) = r else {
        panic!("{r:?}")
    };
    let msg = f.to_string();
    println!("{msg}");
    assert_eq!(f.attempts.len(), 2);
    assert_eq!((f.attempts[0].requests, f.attempts[1].requests), (1, 3));
    assert!(
        msg.starts_with("all 2 models failed: a/m authentication failed (HTTP 401)")
            && msg.contains("(1 attempt)"),
        "{msg}"
    );
    assert!(
        msg.contains("b/c overloaded (HTTP 529)") && msg.contains("(3 attempts)"),
        "{msg}"
    );
    assert!(msg.contains("next try possible in"), "{msg}");
    assert!(f.retry_in.is_some_and(|d| d <= Duration::from_secs(60)));
}

#[tokio::test]
async fn cooldown_steps_and_circuit_breaker() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let clock = ManualClock::new();
    let mut policy = fast_policy();
    policy.max_retries = 0;
    let p = Providers::with_policy(
        vec![openai("a", &fa), openai("b", &fbk)],
        policy,
        clock.clone(),
    )
    .unwrap();
    fa.set_default(Reply::http_error(500, "{}", None));
    fbk.set_default(Reply::fixture("openai_text.sse"));
    let chain = fb(&["b/m"]);
    let cooldown_of = |p: &Providers| {
        p.models_snapshot()
            .into_iter()
            .find(|m| m.id == "a/m")
            .map(|m| (m.status, m.cooldown_remaining_ms / 1000, m.failures))
    };

    let mut a_requests = 0;
    for (step, want_secs) in [(1, 60), (2, 300), (3, 1500), (4, 3600), (5, 3600)] {
        let (_, r) = collect(&p, "a/m", &chain, &hello()).await;
        assert_eq!(r.unwrap().model, "b/m");
        a_requests += 1;
        assert_eq!(fa.requests().len(), a_requests, "one probe per cooldown");
        assert_eq!(
            cooldown_of(&p),
            Some((ModelState::Cooldown, want_secs, step)),
            "step {step}"
        );
        // while open, a is skipped
        let (_, r) = collect(&p, "a/m", &chain, &hello()).await;
        assert!(r.unwrap().failed[0].reason.starts_with("skipped"));
        assert_eq!(fa.requests().len(), a_requests);
        clock.advance(Duration::from_secs(want_secs - 1));
        let (_, r) = collect(&p, "a/m", &chain, &hello()).await;
        r.unwrap();
        assert_eq!(
            fa.requests().len(),
            a_requests,
            "still open 1 s before the end"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(cooldown_of(&p).map(|c| c.0), Some(ModelState::Probing));
    }
    // a recovers: the trial succeeds and closes the circuit
    fa.push(Reply::fixture("openai_text.sse"));
    let (_, r) = collect(&p, "a/m", &chain, &hello()).await;
    assert_eq!(r.unwrap().model, "a/m");
    assert_eq!(cooldown_of(&p), None, "healthy and unlisted: no row");
    let h = p.health();
    assert_eq!((h.available, h.cooling_down), (h.models, 0));
}

#[tokio::test]
async fn half_open_admits_a_single_trial() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let clock = ManualClock::new();
    let mut policy = fast_policy();
    policy.max_retries = 0;
    let p = Providers::with_policy(
        vec![openai("a", &fa), openai("b", &fbk)],
        policy,
        clock.clone(),
    )
    .unwrap();
    fbk.set_default(Reply::fixture("openai_text.sse"));
    fa.push(Reply::http_error(500, "{}", None));
    let chain = fb(&["b/m"]);
    collect(&p, "a/m", &chain, &hello()).await.1.unwrap();
    clock.advance(Duration::from_secs(61));
    // the trial is slow; a concurrent turn must not pile onto a
    fa.push(Reply::fixture("openai_text.sse").delay_headers(Duration::from_millis(1500)));
    let req = hello();
    let slow = collect(&p, "a/m", &chain, &req);
    let other = async {
        fa.arrived(2, Duration::from_secs(5)).await;
        collect(&p, "a/m", &chain, &hello()).await
    };
    let ((_, r1), (_, r2)) = tokio::join!(slow, other);
    assert_eq!(r1.unwrap().model, "a/m");
    let s2 = r2.unwrap();
    assert_eq!(s2.model, "b/m");
    assert!(s2.failed[0].reason.contains("half-open"), "{:?}", s2.failed);
    assert_eq!(fa.requests().len(), 2);
}

#[tokio::test]
async fn abort_during_stalled_read_ends_the_request_promptly() {
    for stall_headers in [false, true] {
        let fake = FakeProvider::start();
        let mut cfg = openai("a", &fake);
        cfg.idle_timeout_ms = Some(30_000);
        cfg.first_byte_timeout_ms = Some(30_000);
        let p = providers(vec![cfg]);
        let reply = if stall_headers {
            Reply::fixture("openai_text.sse").delay_headers(Duration::from_secs(20))
        } else {
            Reply::fixture("openai_text.sse").cut_after(2, Step::Sleep(Duration::from_secs(20)))
        };
        fake.set_default(reply);
        let abort = Abort::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let a2 = abort.clone();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            if stall_headers {
                tokio::time::sleep(Duration::from_millis(300)).await;
            } else {
                // wait for the first text, then abort
                while let Some(e) = rx.recv().await {
                    let is_text = matches!(e, StreamEvent::TextDelta { .. });
                    got.push(e);
                    if is_text {
                        break;
                    }
                }
            }
            let t = Instant::now();
            a2.abort();
            (t, got, rx)
        });
        let r = p.run_turn("a/m", &[], &hello(), tx, &abort).await;
        let done = Instant::now();
        let (t_abort, got, _rx) = waiter.await.unwrap();
        let latency = done - t_abort;
        println!("abort latency (stall_headers={stall_headers}): {latency:?}");
        assert!(matches!(r, Err(TurnError::Aborted)), "{r:?}");
        assert!(latency < Duration::from_secs(1), "{latency:?}");
        assert_eq!(got.is_empty(), stall_headers);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(fake.requests().len(), 1, "no request after an abort");
    }
}

#[tokio::test]
async fn abort_during_backoff_sleep() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    fake.set_default(Reply::http_error(429, RATE_LIMITED, Some("2")));
    let abort = Abort::new();
    let a2 = abort.clone();
    let t0 = Instant::now();
    let aborter = async {
        fake.arrived(1, Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        a2.abort();
        Instant::now()
    };
    let req = hello();
    let ((_, r), t_abort) = tokio::join!(collect_with(&p, "a/m", &[], &req, &abort), aborter);
    let latency = t_abort.elapsed();
    println!("abort during backoff: returned {latency:?} after the abort");
    assert!(matches!(r, Err(TurnError::Aborted)), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "did not sleep out retry-after"
    );
    assert_eq!(fake.requests().len(), 1);
    // an abort is not a provider failure
    assert!(
        p.models_snapshot()
            .iter()
            .all(|m| m.status != ModelState::Cooldown)
    );
}

#[tokio::test]
async fn dropped_receiver_ends_the_turn() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    fake.set_default(Reply::fixture("openai_text.sse").gap(Duration::from_millis(50)));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let r = p.run_turn("a/m", &[], &hello(), tx, &Abort::new()).await;
    assert!(matches!(r, Err(TurnError::Aborted)), "{r:?}");
}

#[tokio::test]
async fn invalid_chains_and_configs_are_refused() {
    let fake = FakeProvider::start();
    let p = providers(vec![openai("a", &fake)]);
    let (_, r) = collect(&p, "zzz/m", &[], &hello()).await;
    assert!(
        matches!(&r, Err(TurnError::InvalidChain(m)) if m.contains("unknown provider \"zzz\"")),
        "{r:?}"
    );
    assert!(matches!(
        p.resolve_chain("a/m", &fb(&["nope"])),
        Err(ConfigError::InvalidModelRef(_))
    ));
    let mut bad = openai("k", &fake);
    bad.api_key_file = Some("/nonexistent/pinclaw/key".into());
    assert!(matches!(
        Providers::new(vec![bad]),
        Err(ConfigError::KeyFile { .. })
    ));
    assert!(matches!(
        Providers::new(vec![openai("a", &fake), openai("a", &fake)]),
        Err(ConfigError::DuplicateProvider(_))
    ));
    assert!(fake.requests().is_empty());
    let _ = Arc::new(p);
}

#[tokio::test]
async fn snapshot_and_health_for_the_gateway() {
    let fa = FakeProvider::start();
    let mut a = openai("a", &fa);
    a.models = vec![
        ModelConfig {
            id: "m1".into(),
            context_window: Some(128_000),
            max_output_tokens: Some(4096),
        },
        ModelConfig {
            id: "m2".into(),
            context_window: None,
            max_output_tokens: None,
        },
    ];
    let p = providers(vec![a]);
    fa.set_default(Reply::http_error(503, "{}", None));
    let _ = collect(&p, "a/m1", &[], &hello()).await;
    let snap = p.models_snapshot();
    assert_eq!(snap.len(), 2);
    let v = serde_json::to_value(&snap).unwrap();
    assert_eq!(v[0]["id"], "a/m1");
    assert_eq!(v[0]["status"], "cooldown");
    assert_eq!(v[0]["contextWindow"], 128_000);
    assert!(v[0]["lastError"].as_str().unwrap().contains("HTTP 503"));
    assert_eq!(v[1]["status"], "available");
    assert_eq!(v[1]["cooldownRemainingMs"], 0);
    let h = p.health();
    println!("health: {}", h.summary);
    assert_eq!(
        (h.providers, h.models, h.available, h.cooling_down),
        (1, 2, 1, 1)
    );
    assert!(
        h.summary
            .starts_with("1/2 models available; a/m1 cooling down"),
        "{}",
        h.summary
    );
}

#[tokio::test]
async fn single_model_chain_gets_a_last_resort_request_while_cooling() {
    let fake = FakeProvider::start();
    let clock = ManualClock::new();
    let p = Providers::with_policy(vec![openai("a", &fake)], fast_policy(), clock.clone()).unwrap();
    fake.set_default(Reply::http_error(503, "{}", None));
    let (_, r) = collect(&p, "a/m", &[], &hello()).await;
    assert!(matches!(r, Err(TurnError::Exhausted(_))));
    assert_eq!(fake.requests().len(), 3);

    // cooling down: one request, no retries, and the error says why
    let (_, r) = collect(&p, "a/m", &[], &hello()).await;
    let Err(TurnError::Exhausted(f)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(fake.requests().len(), 4);
    // one line for the one model: the last-resort try replaces "skipped"
    assert_eq!(f.attempts.len(), 1, "{f}");
    assert!(
        f.attempts[0]
            .reason
            .ends_with("(a last-resort try while cooling down)"),
        "{f}"
    );
    assert!(
        f.to_string().starts_with("model a/m overloaded (HTTP 503)"),
        "{f}"
    );

    // the provider recovers: the last resort answers and closes the circuit
    fake.push(Reply::fixture("openai_text.sse"));
    let (ev, r) = collect(&p, "a/m", &[], &hello()).await;
    assert_eq!(r.unwrap().model, "a/m");
    assert_eq!(text_of(&ev), "Pi is online.");
    assert!(p.models_snapshot().is_empty(), "healthy again");

    // with the policy off, a cooling single-model chain sends nothing
    let fake2 = FakeProvider::start();
    let mut policy = fast_policy();
    policy.probe_when_all_cooling = false;
    policy.max_retries = 0;
    let p2 = Providers::with_policy(vec![openai("a", &fake2)], policy, clock.clone()).unwrap();
    fake2.set_default(Reply::http_error(503, "{}", None));
    let _ = collect(&p2, "a/m", &[], &hello()).await;
    let (_, r) = collect(&p2, "a/m", &[], &hello()).await;
    assert!(matches!(r, Err(TurnError::Exhausted(_))));
    assert_eq!(fake2.requests().len(), 1);
}

#[tokio::test]
async fn proxy_comes_from_config() {
    // the fake plays the HTTP proxy: ureq tunnels through it with CONNECT
    let proxy = FakeProvider::start();
    let mut cfg = provider("a", ApiKind::OpenAiChat, "http://provider.invalid/v1");
    cfg.proxy = Some(proxy.base_url());
    let mut policy = fast_policy();
    policy.max_retries = 0;
    let p = Providers::with_policy(vec![cfg], policy, Arc::new(pinclaw::provider::SystemClock))
        .unwrap();
    proxy.set_default(Reply::status(403).framing(fake_provider::Framing::ContentLength));
    let (_, r) = collect(&p, "a/m", &[], &hello()).await;
    assert!(matches!(r, Err(TurnError::Exhausted(_))), "{r:?}");
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "CONNECT");
    assert_eq!(reqs[0].path, "provider.invalid:80");
}

#[tokio::test]
async fn spawn_turn_streams_to_a_bounded_receiver() {
    let fake = FakeProvider::start();
    let mut cfg = openai("a", &fake);
    cfg.models = vec![ModelConfig {
        id: "m".into(),
        context_window: Some(32_768),
        max_output_tokens: Some(2048),
    }];
    let p = Arc::new(providers(vec![cfg]));
    assert_eq!(
        p.model_config("a/m").and_then(|m| m.context_window),
        Some(32_768)
    );
    assert!(p.model_config("a/other").is_none());
    fake.set_default(Reply::fixture("openai_parallel_tools.sse"));
    let (mut rx, handle) = p.spawn_turn("a/m".into(), Vec::new(), tool_request(), Abort::new());
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    let s = handle.await.unwrap().unwrap();
    assert_eq!(tool_calls(&events).len(), 2);
    assert!(matches!(events.last(), Some(StreamEvent::Finish { .. })));
    assert_eq!(s.usage.map(|u| u.total()), Some(119));
    assert_eq!(
        fake.requests()[0].json.as_ref().unwrap()["max_tokens"],
        1024
    );
}

/// A "provider" that answers the headers and one chunk, then stalls; it
/// reports when the client's connection closes.
fn stalling_server() -> (String, std::sync::mpsc::Receiver<&'static str>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}/v1",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 65536];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
        let _ = s.write_all(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n");
        let _ = tx.send("streaming");
        // Stall; a read of 0 (or an error) means the client hung up.
        let _ = s.read(&mut buf);
        let _ = tx.send("closed");
    });
    (url, rx)
}

#[tokio::test]
async fn dropping_a_turn_mid_stream_closes_its_connection() {
    let (url, events) = stalling_server();
    let mut cfg = provider("s", ApiKind::OpenAiChat, &url);
    // Without a shutdown, the stalled read would last this long.
    cfg.idle_timeout_ms = Some(120_000);
    let p = Arc::new(providers(vec![cfg]));
    let turn = {
        let p = p.clone();
        tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let abort = Abort::new();
            let request = hello();
            let drain = async { while rx.recv().await.is_some() {} };
            let (r, ()) = tokio::join!(p.run_turn("s/m", &[], &request, tx, &abort), drain);
            r
        })
    };
    let streaming = tokio::task::spawn_blocking(move || {
        let first = events.recv_timeout(Duration::from_secs(20));
        (first, events)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(streaming.0.ok(), Some("streaming"));
    // Drop the turn's future (not its Abort): the attempt must hang up.
    turn.abort();
    let closed =
        tokio::task::spawn_blocking(move || streaming.1.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        closed.ok(),
        Some("closed"),
        "the dropped turn kept its provider connection open"
    );
}

#[tokio::test]
async fn a_dropped_trial_request_does_not_hold_the_circuit_half_open() {
    let fa = FakeProvider::start();
    let fbk = FakeProvider::start();
    let clock = ManualClock::new();
    let mut policy = fast_policy();
    policy.max_retries = 0;
    let p = Arc::new(
        Providers::with_policy(
            vec![openai("a", &fa), openai("b", &fbk)],
            policy,
            clock.clone(),
        )
        .unwrap(),
    );
    fbk.set_default(Reply::fixture("openai_text.sse"));
    fa.push(Reply::http_error(500, "{}", None));
    let chain = fb(&["b/m"]);
    collect(&p, "a/m", &chain, &hello()).await.1.unwrap();
    clock.advance(Duration::from_secs(61));
    // The trial stalls; its turn is dropped (the run was cancelled above).
    fa.push(Reply::fixture("openai_text.sse").delay_headers(Duration::from_secs(30)));
    let trial = {
        let (p, chain) = (p.clone(), chain.clone());
        tokio::spawn(async move { collect(&p, "a/m", &chain, &hello()).await })
    };
    fa.arrived(2, Duration::from_secs(5)).await;
    trial.abort();
    let _ = trial.await;
    // The next turn gets its own trial of a instead of "trial in flight".
    fa.push(Reply::fixture("openai_text.sse"));
    let (_, r) = collect(&p, "a/m", &chain, &hello()).await;
    assert_eq!(
        r.unwrap().model,
        "a/m",
        "the circuit stayed held by a dropped trial"
    );
}
