//! The Telegram channel against a fake Bot API server and the fake model,
//! over real sockets: replies, pairing, groups and topics, commands,
//! progress, formatting and chunking, and the poller's failure handling as
//! `channels.status` shows it (a hung poll, 409, 429, 5xx, 401, a reset
//! mid-response), and `send`.

mod agent_support;
#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
mod support;

use std::time::{Duration, Instant};

use agent_support::*;
use fake_provider::FakeProvider;
use fake_telegram::{BOT_USERNAME, FakeTelegram, Fault, Times};
use pinclaw::channel::telegram::TelegramConfig;
use pinclaw::client::Client;
use serde_json::{Value, json};
use support::*;

const BOT_TOKEN: &str = "123456:TEST-secret-bot-token";
const WAIT: Duration = Duration::from_secs(20);

struct Hub {
    tg: FakeTelegram,
    model: FakeProvider,
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

/// A gateway with Telegram on the fake (allowing user 42, long polls of
/// 1 s), adjusted by `customize`, and the fake model answering `reply`.
async fn start_hub(reply: &str, customize: impl FnOnce(&mut TelegramConfig)) -> Hub {
    start_hub_with(reply, |s| customize(&mut s.config.channels.telegram)).await
}

/// The same, with the gateway's whole settings (Telegram already in them)
/// to adjust.
async fn start_hub_with(
    reply: &str,
    customize: impl FnOnce(&mut pinclaw::gateway::GatewaySettings),
) -> Hub {
    let tg = FakeTelegram::start(BOT_TOKEN);
    let model = FakeProvider::start();
    model.set_default(text_reply(reply, Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token_file = dir.path().join("telegram.token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    let mut settings = agent_settings(&dir.path().join("state"), &model, 16_384);
    let telegram = TelegramConfig {
        enabled: true,
        bot_token_file: Some(token_file),
        api_root: tg.api_root(),
        allow_from: vec![pinclaw::channel::access::AllowEntry::Id(42)],
        poll_timeout_s: 1,
        ..TelegramConfig::default()
    };
    settings.config.channels.telegram = telegram;
    customize(&mut settings);
    let gw = TestGateway::start_with(settings).await;
    tg.until("the first getUpdates", WAIT, |f| {
        !f.calls_of("getUpdates").is_empty()
    })
    .await;
    Hub {
        tg,
        model,
        gw,
        _dir: dir,
    }
}

async fn account(op: &mut Client) -> Value {
    let status = op
        .call("channels.status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("channels.status: {e}"));
    status["channelAccounts"]["telegram"][0].clone()
}

/// Wait until the account's `healthState` is `state`; returns the account.
async fn wait_health(op: &mut Client, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let a = account(op).await;
        if a["healthState"] == state {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "healthState is not {state} within {timeout:?}: {a}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run the `pinclaw` CLI against the test gateway, off the test's own
/// (single-threaded) runtime so the in-process gateway keeps answering.
async fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pinclaw"));
    command.args(args).args(["--url", url, "--token", TOKEN]);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("pinclaw: {e}"))
}

#[tokio::test]
async fn a_dm_from_an_allowed_user_gets_one_reply_with_typing() {
    let hub = start_hub("The room is **21 °C**.", |_| {}).await;
    let id = hub.tg.dm(42, "how warm is it?");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].chat_id, "42");
    assert_eq!(replies[0].text, "The room is <b>21 °C</b>.");
    assert_eq!(replies[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        last_user(&hub.model.requests()[0].json.clone().unwrap_or_default()),
        "how warm is it?"
    );
    let typing = hub.tg.calls_of("sendChatAction");
    assert!(!typing.is_empty(), "typing was shown");
    assert_eq!(typing[0].body["chat_id"], "42");
    assert_eq!(typing[0].body["action"], "typing");
    hub.tg.wait_confirmed(id, WAIT).await;
    // Setup as documented: webhook cleared, commands registered.
    assert_eq!(hub.tg.calls_of("deleteWebhook").len(), 1);
    let commands = hub.tg.calls_of("setMyCommands");
    let names: Vec<&str> = commands[0].body["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["command"].as_str())
        .collect();
    assert_eq!(names, ["start", "new", "reset", "stop", "status", "help"]);
    // The first poll is a short one, then long polls.
    let polls = hub.tg.calls_of("getUpdates");
    assert_eq!(polls[0].body["timeout"], 0);
    assert_eq!(
        polls.last().map(|p| p.body["timeout"].clone()),
        Some(json!(1))
    );
    assert_eq!(polls[0].body["allowed_updates"], json!(["message"]));
    // One reply, no matter how long we look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.tg.replies().len(), 1);
    assert_eq!(hub.model.requests().len(), 1);
    let mut op = hub.gw.client(&["operator.read"]).await;
    let a = account(&mut op).await;
    assert_eq!(a["healthState"], "healthy", "{a}");
    assert_eq!(a["connected"], true);
    assert_eq!(a["mode"], "polling");
    assert_eq!(a["name"], format!("@{BOT_USERNAME}"));
    assert!(
        a["lastInboundAt"].is_i64() && a["lastOutboundAt"].is_i64(),
        "{a}"
    );
    hub.gw.stop().await;
}

#[tokio::test]
async fn an_unknown_user_gets_a_pairing_code_and_is_answered_once_approved() {
    let hub = start_hub("Hello, new friend.", |_| {}).await;
    hub.tg.dm(7, "hello?");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    let text = &replies[0].text;
    assert_eq!(replies[0].chat_id, "7");
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("Pairing code: "))
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned();
    assert_eq!(code.len(), 8);
    assert!(text.contains(&format!("pinclaw pairing approve telegram {code}")));
    // A second message gets nothing (the bot only answers a new request).
    let again = hub.tg.dm(7, "hello???");
    hub.tg.wait_confirmed(again, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hub.tg.replies().len(), 1);
    assert!(hub.model.requests().is_empty(), "the model never saw it");

    let mut op = hub.gw.client(&["operator.pairing"]).await;
    let list = op
        .call("channels.pairing.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["requests"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["requests"][0]["senderId"], "7");
    assert!(
        list["requests"][0].get("code").is_none(),
        "the code stays private"
    );
    assert_eq!(list["limits"]["pendingPerAccount"], 3);
    // The CLI, as the pairing message says.
    let out = cli(
        &hub.gw.url,
        &["pairing", "approve", "telegram", &code.to_lowercase()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved sender 7"));
    hub.tg.dm(7, "and now?");
    let replies = hub.tg.wait_replies(2, WAIT).await;
    assert_eq!(replies[1].chat_id, "7");
    assert_eq!(replies[1].text, "Hello, new friend.");
    let list = op
        .call("channels.pairing.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["requests"], json!([]));
    hub.gw.stop().await;
}

#[tokio::test]
async fn pairing_caps_pending_requests_and_a_dismissed_code_is_gone() {
    let hub = start_hub("hi", |_| {}).await;
    for user in [1, 2, 3, 4] {
        hub.tg.dm(user, "hi");
    }
    let last = hub.tg.dm(5, "hi");
    hub.tg.wait_confirmed(last, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let coded: Vec<String> = hub.tg.replies().iter().map(|r| r.chat_id.clone()).collect();
    assert_eq!(coded, ["1", "2", "3"], "at most 3 pending per account");
    let mut op = hub.gw.client(&["operator.pairing"]).await;
    let list = op
        .call("channels.pairing.list", json!({"channel": "telegram"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = list["requests"][0]["requestId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let dismissed = op
        .call(
            "channels.pairing.dismiss",
            json!({"channel": "telegram", "accountId": "default", "requestId": first}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dismissed["senderId"], "1");
    let again = op
        .call(
            "channels.pairing.approve",
            json!({"channel": "telegram", "requestId": first}),
        )
        .await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no pending pairing request")),
        "{again:?}"
    );
    hub.gw.stop().await;
}

#[tokio::test]
async fn groups_answer_only_when_mentioned_or_replied_to() {
    let hub = start_hub("Lights are on.", |t| {
        t.groups.insert("-100".into(), Default::default());
    })
    .await;
    hub.tg.group(-100, 42, "anyone home?", json!({}));
    hub.tg.group(
        -555,
        42,
        &format!("@{BOT_USERNAME} unlisted group"),
        json!({}),
    );
    hub.tg
        .group(-100, 42, &format!("@{BOT_USERNAME} lights?"), json!({}));
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].chat_id, "-100");
    let seen = hub.model.requests();
    assert_eq!(seen.len(), 1, "only the mention reached the model");
    assert!(last_user(&seen[0].json.clone().unwrap_or_default()).ends_with("lights?"));
    // A reply to one of the bot's messages counts as a mention.
    hub.tg.group(
        -100,
        43,
        "and the heating?",
        json!({"reply_to_message": {"message_id": 9, "from": {"id": fake_telegram::BOT_ID, "is_bot": true}}}),
    );
    let replies = hub.tg.wait_replies(2, WAIT).await;
    assert_eq!(replies[1].chat_id, "-100");
    assert_eq!(hub.tg.replies().len(), 2);
    hub.gw.stop().await;
}

#[tokio::test]
async fn forum_topics_get_their_own_session_and_replies_stay_in_the_topic() {
    let hub = start_hub("Done.", |t| {
        t.groups.insert(
            "-100".into(),
            pinclaw::channel::access::GroupRule {
                require_mention: false,
            },
        );
    })
    .await;
    let forum = json!({"chat": {"is_forum": true}});
    let mut topic = forum.clone();
    topic["is_topic_message"] = json!(true);
    topic["message_thread_id"] = json!(7);
    hub.tg.group(-100, 42, "in topic seven", topic);
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].thread, Some(7));
    hub.tg.group(-100, 42, "in general", forum);
    let replies = hub.tg.wait_replies(2, WAIT).await;
    assert_eq!(
        replies[1].thread, None,
        "General (id 1) is omitted on sends"
    );
    let general_typing = hub
        .tg
        .calls_of("sendChatAction")
        .into_iter()
        .any(|c| c.body["message_thread_id"] == 1);
    assert!(general_typing, "typing in General carries thread id 1");
    let mut op = hub.gw.client(&["operator.read"]).await;
    let sessions = op
        .call("sessions.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = sessions["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"agent:main:telegram:group:-100:topic:7"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"agent:main:telegram:group:-100:topic:1"),
        "{keys:?}"
    );
    hub.gw.stop().await;
}

#[tokio::test]
async fn dm_scope_per_channel_peer_gives_each_sender_a_session() {
    let hub = start_hub_with("ok", |s| {
        s.config
            .channels
            .telegram
            .allow_from
            .push(pinclaw::channel::access::AllowEntry::Id(43));
        s.config.session.dm_scope = pinclaw::session::keys::DmScope::PerChannelPeer;
    })
    .await;
    let (tg, gw) = (&hub.tg, &hub.gw);
    tg.dm(42, "from 42");
    tg.dm(43, "from 43");
    let replies = tg.wait_replies(2, WAIT).await;
    let mut chats: Vec<&str> = replies.iter().map(|r| r.chat_id.as_str()).collect();
    chats.sort_unstable();
    assert_eq!(chats, ["42", "43"], "each reply went to its own chat");
    let mut op = gw.client(&["operator.read"]).await;
    let sessions = op
        .call("sessions.list", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = sessions.to_string();
    assert!(text.contains("agent:main:telegram:direct:42"), "{text}");
    assert!(text.contains("agent:main:telegram:direct:43"), "{text}");
    hub.gw.stop().await;
}

#[tokio::test]
async fn commands_status_new_stop_help_and_media() {
    let hub = start_hub("ok", |_| {}).await;
    hub.tg.dm(42, "/help");
    let r = hub.tg.wait_replies(1, WAIT).await;
    assert!(r[0].text.contains("/new"), "{}", r[0].text);
    hub.tg.dm(42, &format!("/status@{BOT_USERNAME}"));
    let r = hub.tg.wait_replies(2, WAIT).await;
    assert!(r[1].text.contains("Model: fake/m"), "{}", r[1].text);
    assert!(
        r[1].text.contains("Session: agent:main:main"),
        "{}",
        r[1].text
    );
    assert!(
        r[1].text.contains("Telegram default: healthy"),
        "{}",
        r[1].text
    );
    hub.tg.dm(42, "remember: blue");
    hub.tg.wait_replies(3, WAIT).await;
    hub.tg.dm(42, "/new");
    let r = hub.tg.wait_replies(4, WAIT).await;
    assert_eq!(r[3].text, "Started a fresh session.");
    hub.tg.dm(42, "/stop");
    let r = hub.tg.wait_replies(5, WAIT).await;
    assert_eq!(r[4].text, "Nothing is running.");
    hub.tg.push_message(json!({
        "message_id": 3, "date": 0, "photo": [{"file_id": "x"}],
        "from": {"id": 42, "first_name": "Ann"}, "chat": {"id": 42, "type": "private"},
    }));
    let r = hub.tg.wait_replies(6, WAIT).await;
    assert!(
        r[5].text.contains("only read text for now"),
        "{}",
        r[5].text
    );
    let mut op = hub.gw.client(&["operator.read"]).await;
    let history = op
        .call("chat.history", json!({"sessionKey": "main"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history["messages"], json!([]), "/new cleared the session");
    assert_eq!(
        hub.model.requests().len(),
        1,
        "commands never reach the model"
    );
    hub.gw.stop().await;
}

#[tokio::test]
async fn tool_calls_show_progress_in_one_edited_message_removed_at_the_end() {
    let hub = start_hub("unused", |_| {}).await;
    hub.model
        .push(tool_reply("c1", "nodes", json!({"action": "status"})));
    hub.model.push(tool_reply(
        "c2",
        "nodes",
        json!({"action": "invoke", "node": "local", "invokeCommand": "sensors.read", "invokeParamsJson": "{\"name\":\"room\"}"}),
    ));
    hub.model
        .push(text_reply("It is 21 °C.", Duration::from_millis(1200)));
    hub.tg.dm(42, "how warm?");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].text, "It is 21 °C.");
    let progress: Vec<_> = hub.tg.sent().into_iter().filter(|s| s.silent).collect();
    assert_eq!(progress.len(), 1, "one status message: {progress:?}");
    let edits = hub.tg.calls_of("editMessageText");
    let shown: Vec<String> = std::iter::once("⚙️ looking at the devices…".to_owned())
        .chain(
            edits
                .iter()
                .filter_map(|e| e.body["text"].as_str().map(str::to_owned)),
        )
        .collect();
    assert!(
        hub.tg.calls_of("sendMessage")[0].body["text"] == "⚙️ looking at the devices…",
        "{:?}",
        hub.tg.calls_of("sendMessage")
    );
    assert!(shown.contains(&"⚙️ reading room…".to_owned()), "{shown:?}");
    hub.tg
        .until("the status message is removed", WAIT, |f| {
            f.calls_of("deleteMessage")
                .iter()
                .any(|c| c.body["message_id"] == progress[0].message_id)
        })
        .await;
    hub.gw.stop().await;
}

#[tokio::test]
async fn long_replies_are_split_and_refused_html_falls_back_to_plain_text() {
    let long: String = (0..300)
        .map(|i| format!("Line {i:03} of a long answer with a <tag> & more.\n"))
        .collect();
    let hub = start_hub(&long, |_| {}).await;
    hub.tg.dm(42, "tell me everything");
    let replies = hub.tg.wait_replies(4, WAIT).await;
    assert!(replies.len() >= 4, "{} chunks", replies.len());
    for r in &replies {
        assert_eq!(r.parse_mode.as_deref(), Some("HTML"));
        let visible = fake_telegram::check_html(&r.text).unwrap_or_else(|e| panic!("{e}"));
        let units = visible.encode_utf16().count();
        assert!(units <= 4000, "a chunk of {units} UTF-16 units");
    }
    let joined: String = replies
        .iter()
        .map(|r| {
            r.text
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(joined.contains("Line 000 of a long answer with a <tag> & more."));
    assert!(joined.contains("Line 299"));
    let first_of = |n: usize| {
        replies
            .iter()
            .position(|r| r.text.contains(&format!("Line {n:03}")))
    };
    assert!(
        first_of(0) < first_of(150) && first_of(150) < first_of(299),
        "in order"
    );

    hub.tg.refuse_html();
    hub.model
        .push(text_reply("**bold** answer", Duration::ZERO));
    let before = hub.tg.replies().len();
    hub.tg.dm(42, "again");
    let replies = hub.tg.wait_replies(before + 1, WAIT).await;
    let last = &replies[before];
    assert_eq!(last.parse_mode, None, "sent as plain text");
    assert_eq!(last.text, "**bold** answer");
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_failed_run_tells_the_user_why_in_one_line() {
    let hub = start_hub("unused", |_| {}).await;
    hub.model.set_default(fake_provider::Reply::http_error(
        400,
        r#"{"error":{"message":"model m does not exist","type":"invalid_request_error"}}"#,
        None,
    ));
    hub.tg.dm(42, "hello");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert!(
        replies[0].text.starts_with("⚠️ Sorry, I could not answer:"),
        "{}",
        replies[0].text
    );
    assert!(!replies[0].text.contains('\n'), "{}", replies[0].text);
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_hung_poll_is_reported_stalled_and_the_poller_restarts() {
    let hub = start_hub("back again", |_| {}).await;
    let mut op = hub.gw.client(&["operator.read"]).await;
    wait_health(&mut op, "healthy", WAIT).await;
    let hung_at = Instant::now();
    hub.tg.fault("getUpdates", Fault::Hang, Times::UntilCleared);
    let a = wait_health(&mut op, "stalled", WAIT).await;
    let took = hung_at.elapsed();
    println!("hung poll → stalled in {took:?} (poll_timeout_s = 1: 2 periods + 5 s grace)");
    assert_eq!(a["connected"], false, "{a}");
    assert!(
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("stalled")),
        "{a}"
    );
    assert!(a["restartCount"].as_u64().unwrap_or(0) >= 1, "{a}");
    let mut readyz = raw_http(&hub.gw.addr, "/readyz").await;
    assert!(readyz.starts_with("HTTP/1.1 200"), "{readyz}");
    assert!(readyz.contains("telegram:default (stalled)"), "{readyz}");
    hub.tg.clear();
    wait_health(&mut op, "healthy", WAIT).await;
    hub.tg.dm(42, "still there?");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].text, "back again");
    readyz = raw_http(&hub.gw.addr, "/readyz").await;
    assert!(readyz.contains("\"degraded\":[]"), "{readyz}");
    hub.gw.stop().await;
}

#[tokio::test]
async fn conflicts_rate_limits_server_errors_and_resets_show_their_reason() {
    let hub = start_hub("fine", |_| {}).await;
    let mut op = hub.gw.client(&["operator.read"]).await;
    wait_health(&mut op, "healthy", WAIT).await;

    hub.tg.fault(
        "getUpdates",
        Fault::Status {
            code: 502,
            description: "Bad Gateway".into(),
            retry_after: None,
        },
        Times::UntilCleared,
    );
    let a = wait_health(&mut op, "disconnected", WAIT).await;
    assert!(
        a["lastError"].as_str().is_some_and(|e| e.contains("502")),
        "{a}"
    );
    hub.tg.clear();
    wait_health(&mut op, "healthy", WAIT).await;

    let before = hub.tg.calls_of("getUpdates").len();
    hub.tg.fault(
        "getUpdates",
        Fault::Status {
            code: 429,
            description: "Too Many Requests: retry after 2".into(),
            retry_after: Some(2),
        },
        Times::Once,
    );
    let deadline = Instant::now() + WAIT;
    let a = loop {
        let a = account(&mut op).await;
        if a["lastError"].as_str().is_some_and(|e| e.contains("429")) {
            break a;
        }
        assert!(Instant::now() < deadline, "no 429 shown: {a}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(a["connected"], false, "{a}");
    assert!(
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("retrying in 2 s")),
        "{a}"
    );
    wait_health(&mut op, "healthy", WAIT).await;
    let polls = hub.tg.calls_of("getUpdates");
    let limited = &polls[before];
    let next = &polls[before + 1];
    assert!(
        next.at.duration_since(limited.at) >= Duration::from_secs(2),
        "retry_after honoured: {:?}",
        next.at.duration_since(limited.at)
    );

    hub.tg.fault(
        "getUpdates",
        Fault::Status {
            code: 409,
            description: "Conflict: terminated by other getUpdates request".into(),
            retry_after: None,
        },
        Times::Once,
    );
    let a = wait_health(&mut op, "conflict", WAIT).await;
    assert_eq!(
        a["connected"], false,
        "never connected while conflicted: {a}"
    );
    assert!(
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("another poller")),
        "{a}"
    );
    let status = op
        .call("channels.status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status["statusIssues"][0]["kind"], "runtime", "{status}");
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_reset_mid_response_loses_nothing_and_answers_once() {
    let hub = start_hub("got it", |_| {}).await;
    hub.tg.fault("getUpdates", Fault::Reset, Times::Once);
    hub.tg.fault(
        "sendMessage",
        Fault::Slow(Duration::from_millis(800)),
        Times::Once,
    );
    hub.tg.dm(42, "are you there?");
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].text, "got it");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.tg.replies().len(), 1);
    assert_eq!(hub.model.requests().len(), 1);
    hub.gw.stop().await;
}

#[tokio::test]
async fn a_revoked_token_blocks_the_account_and_says_so() {
    let hub = start_hub("x", |_| {}).await;
    let mut op = hub.gw.client(&["operator.read"]).await;
    wait_health(&mut op, "healthy", WAIT).await;
    hub.tg.revoke();
    let a = wait_health(&mut op, "blocked", WAIT).await;
    assert_eq!(a["running"], false, "{a}");
    assert_eq!(a["connected"], false, "{a}");
    assert!(
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("revoked")),
        "{a}"
    );
    let text = op
        .call("channels.status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    assert!(
        !text.contains("TEST-secret"),
        "no token in the status: {text}"
    );
    let readyz = raw_http(&hub.gw.addr, "/readyz").await;
    assert!(readyz.starts_with("HTTP/1.1 200"), "{readyz}");
    assert!(readyz.contains("telegram:default (blocked)"), "{readyz}");
    let health = op
        .call("health", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        health["channels"]["telegram"]["healthState"], "blocked",
        "{health}"
    );
    assert_eq!(health["channelOrder"], json!(["telegram"]));
    hub.gw.stop().await;
}

#[tokio::test]
async fn an_enabled_bot_without_its_token_is_blocked_and_says_why() {
    let model = FakeProvider::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut settings = agent_settings(&dir.path().join("state"), &model, 16_384);
    settings.config.channels.telegram = TelegramConfig {
        enabled: true,
        bot_token_env: Some("PINCLAW_TEST_TOKEN_THAT_IS_NOT_SET".into()),
        ..TelegramConfig::default()
    };
    let gw = TestGateway::start_with(settings).await;
    let mut op = gw.client(&["operator.read", "operator.write"]).await;
    let a = wait_health(&mut op, "blocked", WAIT).await;
    assert_eq!(a["configured"], false, "{a}");
    assert!(
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("PINCLAW_TEST_TOKEN_THAT_IS_NOT_SET is not set")),
        "{a}"
    );
    let readyz = raw_http(&gw.addr, "/readyz").await;
    assert!(readyz.starts_with("HTTP/1.1 200"), "{readyz}");
    assert!(readyz.contains("telegram:default (blocked)"), "{readyz}");
    // `send` is kept for later, and says why it cannot go now (without the
    // reason it would have waited for a delivery attempt).
    let queued = op
        .call(
            "send",
            json!({"to": "42", "message": "x", "idempotencyKey": "b1"}),
        )
        .await;
    let err = queued.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("queued") && err.contains("is not set"),
        "{err}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn send_delivers_through_the_ledger_and_the_cli() {
    let hub = start_hub("x", |_| {}).await;
    let mut op = hub.gw.client(&["operator.write"]).await;
    let sent = op
        .call(
            "send",
            json!({"to": "42", "message": "Motion in the _hall_", "channel": "telegram", "idempotencyKey": "n1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    assert_eq!(sent["runId"], "n1");
    assert_eq!(sent["channel"], "telegram");
    assert_eq!(sent["chatId"], "42");
    let replies = hub.tg.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(sent["messageId"], replies[0].message_id.to_string());
    assert_eq!(replies[0].text, "Motion in the <i>hall</i>");
    // A retry with the same key answers the same result, without a resend.
    let again = op
        .call(
            "send",
            json!({"to": "42", "message": "Motion in the _hall_", "channel": "telegram", "idempotencyKey": "n1"}),
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    assert_eq!(again, sent);
    assert_eq!(hub.tg.replies().len(), 1);
    let bad = op
        .call(
            "send",
            json!({"to": "bob", "message": "x", "idempotencyKey": "n2"}),
        )
        .await;
    assert!(
        bad.as_ref()
            .is_err_and(|e| e.to_string().contains("not a Telegram chat")),
        "{bad:?}"
    );
    let webchat = op
        .call(
            "send",
            json!({"to": "1", "message": "x", "channel": "webchat", "idempotencyKey": "n3"}),
        )
        .await;
    assert!(webchat.is_err());

    let out = cli(
        &hub.gw.url,
        &[
            "send",
            "--channel",
            "telegram",
            "--to",
            "-100:topic:5",
            "from the CLI",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sent to -100 (message "));
    let last = hub
        .tg
        .replies()
        .pop()
        .unwrap_or_else(|| panic!("nothing sent"));
    assert_eq!(
        (last.chat_id.as_str(), last.thread, last.text.as_str()),
        ("-100", Some(5), "from the CLI")
    );
    hub.gw.stop().await;
}

#[tokio::test]
async fn send_while_telegram_is_down_is_queued_and_delivered_later() {
    let hub = start_hub("x", |_| {}).await;
    hub.tg.fault(
        "sendMessage",
        Fault::Status {
            code: 502,
            description: "Bad Gateway".into(),
            retry_after: None,
        },
        Times::UntilCleared,
    );
    let mut op = hub.gw.client(&["operator.write", "operator.read"]).await;
    let queued = tokio::spawn(async move {
        op.call(
            "send",
            json!({"to": "42", "message": "door open", "idempotencyKey": "q1"}),
        )
        .await
    });
    hub.tg
        .until("two failed attempts", WAIT, |f| {
            f.calls_of("sendMessage").len() >= 2
        })
        .await;
    let mut op2 = hub.gw.client(&["operator.read"]).await;
    let a = account(&mut op2).await;
    assert_eq!(a["outboxPending"], 1, "{a}");
    hub.tg.clear();
    let replies = hub.tg.wait_replies(1, WAIT).await;
    assert_eq!(replies[0].text, "door open");
    let answer = queued.await.unwrap_or_else(|e| panic!("{e}"));
    // Delivered within the wait (a message id) or reported queued; either
    // way it arrived exactly once.
    match answer {
        Ok(v) => assert_eq!(v["messageId"], replies[0].message_id.to_string()),
        Err(e) => assert!(e.to_string().contains("queued"), "{e}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.tg.replies().len(), 1);
    hub.gw.stop().await;
}

/// `GET path` on the gateway's port; the whole response.
async fn raw_http(addr: &std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
