//! A fake Telegram Bot API server on 127.0.0.1 for tests (std only).
//!
//! It speaks the real wire format (`POST /bot<token>/<method>` with a JSON
//! body, `{"ok": true, "result": …}` or `{"ok": false, "error_code",
//! "description", "parameters": {"retry_after"}}`), over HTTP/1.1
//! keep-alive, and implements what pinclaw uses: `getMe`, `getUpdates`
//! (long polling with `offset` confirmation, and Telegram's 409 when a
//! second poll arrives while one is waiting), `sendMessage` (HTML checked
//! the way Telegram checks it: a bad tag or entity is "can't parse
//! entities"), `editMessageText`, `deleteMessage`, `sendChatAction`,
//! `setMyCommands`, `deleteWebhook`. Every call is recorded.
//!
//! Faults: hang `getUpdates` (held without an answer until cleared), any
//! status with a description (409, 429 with `retry_after`, 5xx) once or
//! until cleared, a connection reset mid-response, a slow response, a
//! revoked token (401 for everything), HTML refused.
//!
//! Include it with `#[path = "support/fake_telegram.rs"] mod fake_telegram;`.
#![allow(dead_code)]

// Each fake includes it so either can be used alone; a test that uses
// both compiles it twice, which is harmless.
#[allow(clippy::duplicate_mod)]
#[path = "http_request.rs"]
mod http_request;

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The bot the fake pretends to be.
pub const BOT_ID: i64 = 777_000_111;
/// Its username.
pub const BOT_USERNAME: &str = "pinclaw_test_bot";

/// A fault for the next call(s) of a method.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and description (and `retry_after` for 429).
    Status {
        /// HTTP status and `error_code`.
        code: u16,
        /// Telegram's description.
        description: String,
        /// `parameters.retry_after`.
        retry_after: Option<u64>,
    },
    /// Hold the request without an answer until [`FakeTelegram::clear`].
    Hang,
    /// Send the head and part of the body, then close the connection.
    Reset,
    /// Answer normally after this pause.
    Slow(Duration),
}

/// How long a fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// For the next call only.
    Once,
    /// For every call until cleared.
    UntilCleared,
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// Bot API method.
    pub method: String,
    /// Its JSON body.
    pub body: Value,
    /// The token in its path.
    pub token: String,
}

/// A message the bot "sent".
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub message_id: i64,
    /// `chat_id` as given.
    pub chat_id: String,
    /// `message_thread_id`, if given.
    pub thread: Option<i64>,
    /// The text as given.
    pub text: String,
    /// `parse_mode`, if given.
    pub parse_mode: Option<String>,
    /// `disable_notification` (progress messages set it).
    pub silent: bool,
}

#[derive(Default)]
struct State {
    token: String,
    updates: VecDeque<Value>,
    next_update_id: i64,
    /// Updates below this were confirmed by an `offset`.
    confirmed: i64,
    calls: Vec<Call>,
    sent: Vec<Sent>,
    next_message_id: i64,
    faults: Vec<(String, Fault, Times)>,
    revoked: bool,
    refuse_html: bool,
    /// The ticket of the `getUpdates` waiting now (a newer one ends it with 409).
    polling: u64,
    tickets: u64,
    /// `update_id`s in answers written so far.
    served: Vec<(i64, Instant)>,
    /// A process to SIGKILL, and how long after the next `getUpdates`
    /// answer that carries updates is written.
    kill_after_serving: Option<(u32, Duration)>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

/// The fake server. Dropping it stops it.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    join: Option<JoinHandle<()>>,
}

impl FakeTelegram {
    /// Serve on 127.0.0.1:0 for a bot with `token`.
    pub fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                token: token.to_owned(),
                next_update_id: 100,
                next_message_id: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let join = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh2 = sh.clone();
                workers.push(std::thread::spawn(move || serve(conn, &sh2)));
                workers.retain(|w| !w.is_finished());
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FakeTelegram {
            addr,
            shared,
            join: Some(join),
        }
    }

    /// The `api_root` to configure.
    pub fn api_root(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue an update carrying `message`; returns its `update_id`.
    pub fn push_message(&self, message: Value) -> i64 {
        let mut st = self.lock();
        let id = st.next_update_id;
        st.next_update_id += 1;
        st.updates
            .push_back(json!({"update_id": id, "message": message}));
        self.shared.changed.notify_all();
        id
    }

    /// A direct message from user `from`.
    pub fn dm(&self, from: i64, text: &str) -> i64 {
        self.push_message(json!({
            "message_id": 1, "date": 0, "text": text,
            "from": {"id": from, "is_bot": false, "first_name": format!("User{from}")},
            "chat": {"id": from, "type": "private"},
        }))
    }

    /// A message from user `from` in group `chat`, with extra fields
    /// (`reply_to_message`, `message_thread_id`, …) merged in.
    pub fn group(&self, chat: i64, from: i64, text: &str, extra: Value) -> i64 {
        let mut message = json!({
            "message_id": 1, "date": 0, "text": text,
            "from": {"id": from, "is_bot": false, "first_name": format!("User{from}")},
            "chat": {"id": chat, "type": "supergroup", "title": "Home"},
        });
        if let (Some(m), Some(e)) = (message.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if k == "chat" {
                    if let Some(c) = m.get_mut("chat").and_then(Value::as_object_mut)
                        && let Some(extra_chat) = v.as_object()
                    {
                        for (ck, cv) in extra_chat {
                            c.insert(ck.clone(), cv.clone());
                        }
                    }
                } else {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        self.push_message(message)
    }

    /// Add a fault for `method`.
    pub fn fault(&self, method: &str, fault: Fault, times: Times) {
        self.lock().faults.push((method.to_owned(), fault, times));
    }

    /// Remove every fault (held calls are answered).
    pub fn clear(&self) {
        let mut st = self.lock();
        st.faults.clear();
        st.revoked = false;
        st.refuse_html = false;
        self.shared.changed.notify_all();
    }

    /// Answer everything with 401 (the token was revoked in BotFather).
    pub fn revoke(&self) {
        self.lock().revoked = true;
        self.shared.changed.notify_all();
    }

    /// Refuse every HTML message with "can't parse entities".
    pub fn refuse_html(&self) {
        self.lock().refuse_html = true;
    }

    /// SIGKILL `pid` `delay` after the next answer to `getUpdates` that
    /// carries updates is written (zero: right after).
    pub fn kill_after_serving(&self, pid: u32, delay: Duration) {
        self.lock().kill_after_serving = Some((pid, delay));
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Messages sent (replies, notices and progress messages).
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Messages sent that are not progress messages.
    pub fn replies(&self) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| !s.silent).collect()
    }

    /// `update_id`s of every update served so far (again when re-served).
    pub fn served(&self) -> Vec<i64> {
        self.lock().served.iter().map(|(id, _)| *id).collect()
    }

    /// When each update was first served (its answer written).
    pub fn first_served_at(&self, update_id: i64) -> Option<Instant> {
        let st = self.lock();
        st.served
            .iter()
            .find(|(id, _)| *id == update_id)
            .map(|(_, at)| *at)
    }

    /// The highest offset a poller confirmed.
    pub fn confirmed(&self) -> i64 {
        self.lock().confirmed
    }

    /// Wait until `check` holds; panics with `what` after `timeout`.
    pub async fn until(&self, what: &str, timeout: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "fake Telegram: {what} did not happen within {timeout:?}; calls: {:?}",
                self.calls()
                    .iter()
                    .map(|c| format!("{} {}", c.method, c.body))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait until at least `n` replies (non-progress messages) were sent.
    pub async fn wait_replies(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        self.until(&format!("{n} replies"), timeout, |f| f.replies().len() >= n)
            .await;
        self.replies()
    }

    /// Wait until a poller confirmed update `id` (asked for an offset past it).
    pub async fn wait_confirmed(&self, id: i64, timeout: Duration) {
        self.until(&format!("update {id} confirmed"), timeout, |f| {
            f.confirmed() > id
        })
        .await;
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn stopped(sh: &Shared) -> bool {
    sh.stop.load(Ordering::SeqCst)
}

fn write_json(conn: &mut TcpStream, status: u16, body: &Value) -> bool {
    let text = body.to_string();
    // One write, as a real server's buffered response: head and body in two
    // small writes would wait on the client's delayed ACK (Nagle).
    let answer = format!(
        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
        text.len()
    );
    conn.write_all(answer.as_bytes()).is_ok()
}

fn error(code: u16, description: &str, retry_after: Option<u64>) -> (u16, Value) {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({"retry_after": s});
    }
    (code, body)
}

fn ok(result: Value) -> (u16, Value) {
    (200, json!({"ok": true, "result": result}))
}

fn serve(mut conn: TcpStream, sh: &Shared) {
    while let Some((_, path, _, body)) = http_request::read_request(&mut conn, || stopped(sh)) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (token, method) = path
            .strip_prefix("/bot")
            .and_then(|p| p.split_once('/'))
            .map(|(t, m)| (t.to_owned(), m.to_owned()))
            .unwrap_or_default();
        let fault = {
            let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
            st.calls.push(Call {
                at: Instant::now(),
                method: method.clone(),
                body: body.clone(),
                token: token.clone(),
            });
            sh.changed.notify_all();
            let at = st.faults.iter().position(|(m, _, _)| *m == method);
            at.map(|i| {
                let fault = st.faults[i].1.clone();
                if st.faults[i].2 == Times::Once {
                    st.faults.remove(i);
                }
                fault
            })
        };
        let answer = match fault {
            Some(Fault::Status {
                code,
                description,
                retry_after,
            }) => error(code, &description, retry_after),
            Some(Fault::Hang) => {
                hang(sh, &method);
                if stopped(sh) {
                    return;
                }
                handle(sh, &token, &method, &body)
            }
            Some(Fault::Reset) => {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"ok\":true,\"res",
                );
                let _ = conn.flush();
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(Fault::Slow(pause)) => {
                nap(sh, pause);
                handle(sh, &token, &method, &body)
            }
            None => handle(sh, &token, &method, &body),
        };
        let (status, value) = answer;
        if !write_json(&mut conn, status, &value) {
            return;
        }
        let kill = {
            let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
            let carries =
                method == "getUpdates" && value["result"].as_array().is_some_and(|a| !a.is_empty());
            if carries {
                for u in value["result"].as_array().into_iter().flatten() {
                    if let Some(id) = u["update_id"].as_i64() {
                        st.served.push((id, Instant::now()));
                    }
                }
                st.kill_after_serving.take()
            } else {
                None
            }
        };
        if let Some((pid, delay)) = kill {
            std::thread::sleep(delay);
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Hold while a hang fault for `method` is in place.
fn hang(sh: &Shared, method: &str) {
    let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
    while !stopped(sh)
        && st
            .faults
            .iter()
            .any(|(m, f, t)| m == method && matches!(f, Fault::Hang) && *t == Times::UntilCleared)
    {
        st = sh
            .changed
            .wait_timeout(st, Duration::from_millis(50))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

fn nap(sh: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !stopped(sh) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn handle(sh: &Shared, token: &str, method: &str, body: &Value) -> (u16, Value) {
    let mut st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
    if st.revoked {
        return error(401, "Unauthorized", None);
    }
    if token != st.token {
        return error(404, "Not Found", None);
    }
    match method {
        "getMe" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "Pinclaw Test",
            "username": BOT_USERNAME, "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
        })),
        "deleteWebhook" | "setMyCommands" | "sendChatAction" | "deleteMessage" => ok(json!(true)),
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let timeout = body["timeout"].as_u64().unwrap_or(0).min(50);
            let limit = body["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
            if offset > st.confirmed {
                st.confirmed = offset;
            }
            let confirmed = st.confirmed;
            st.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= confirmed);
            st.tickets += 1;
            let ticket = st.tickets;
            st.polling = ticket;
            sh.changed.notify_all();
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                if st.polling != ticket {
                    return error(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                        None,
                    );
                }
                let ready: Vec<Value> = st
                    .updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .take(limit)
                    .cloned()
                    .collect();
                if !ready.is_empty() || Instant::now() >= deadline || stopped(sh) {
                    st.polling = 0;
                    return ok(json!(ready));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                st = sh
                    .changed
                    .wait_timeout(st, left.min(Duration::from_millis(50)))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        "sendMessage" => {
            let text = body["text"].as_str().unwrap_or("").to_owned();
            let parse_mode = body["parse_mode"].as_str().map(str::to_owned);
            if text.trim().is_empty() {
                return error(400, "Bad Request: message text is empty", None);
            }
            // Telegram counts the text after entity parsing: tags and
            // escapes do not count towards the 4,096.
            let visible = match parse_mode.as_deref() {
                Some("HTML") => check_html(&text).unwrap_or_else(|_| text.clone()),
                _ => text.clone(),
            };
            if visible.encode_utf16().count() > 4096 {
                return error(400, "Bad Request: message is too long", None);
            }
            if parse_mode.as_deref() == Some("HTML") {
                if st.refuse_html {
                    return error(
                        400,
                        "Bad Request: can't parse entities: unsupported start tag \"x\" at byte offset 0",
                        None,
                    );
                }
                if let Err(why) = check_html(&text) {
                    return error(
                        400,
                        &format!("Bad Request: can't parse entities: {why}"),
                        None,
                    );
                }
            }
            let thread = body["message_thread_id"].as_i64();
            if thread == Some(1) {
                return error(400, "Bad Request: message thread not found", None);
            }
            let message_id = st.next_message_id;
            st.next_message_id += 1;
            let chat_id = match &body["chat_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            st.sent.push(Sent {
                message_id,
                chat_id: chat_id.clone(),
                thread,
                text: text.clone(),
                parse_mode,
                silent: body["disable_notification"] == true,
            });
            sh.changed.notify_all();
            ok(json!({"message_id": message_id, "date": 0, "chat": {"id": chat_id}, "text": text}))
        }
        "editMessageText" => {
            let id = body["message_id"].as_i64().unwrap_or(0);
            let text = body["text"].as_str().unwrap_or("").to_owned();
            match st.sent.iter_mut().find(|s| s.message_id == id) {
                Some(s) if s.text == text => error(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same",
                    None,
                ),
                Some(s) => {
                    s.text = text.clone();
                    ok(json!({"message_id": id, "text": text}))
                }
                None => error(400, "Bad Request: message to edit not found", None),
            }
        }
        _ => error(404, "Not Found: method not found", None),
    }
}

/// Telegram's HTML rules: only its tags, balanced; `&` only in `&amp;`,
/// `&lt;`, `&gt;`, `&quot;` or numeric entities; `<` only in a tag.
pub fn check_html(text: &str) -> Result<String, String> {
    const TAGS: [&str; 14] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "blockquote",
        "tg-spoiler",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut visible = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&', '>']) {
        let c = rest.as_bytes()[i];
        visible.push_str(&rest[..i]);
        let after = &rest[i..];
        match c {
            b'&' => {
                let end = after.find(';').ok_or("unclosed entity")?;
                let name = &after[1..end];
                let known = matches!(name, "amp" | "lt" | "gt" | "quot")
                    || name
                        .strip_prefix('#')
                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                if !known {
                    return Err(format!("unsupported entity &{name};"));
                }
                visible.push(match name {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    n => n
                        .get(1..)
                        .and_then(|d| d.parse().ok())
                        .and_then(char::from_u32)
                        .unwrap_or('?'),
                });
                rest = &after[end + 1..];
            }
            b'>' => {
                visible.push('>');
                rest = &after[1..];
            }
            _ => {
                let end = after.find('>').ok_or("unclosed start tag")?;
                let tag = &after[1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    match stack.pop() {
                        Some(open) if open == name => {}
                        _ => return Err(format!("unexpected end tag \"{name}\"")),
                    }
                } else {
                    let name = tag.split_whitespace().next().unwrap_or("");
                    if !TAGS.contains(&name) {
                        return Err(format!("unsupported start tag \"{name}\""));
                    }
                    stack.push(name.to_owned());
                }
                rest = &after[end + 1..];
            }
        }
    }
    visible.push_str(rest);
    match stack.pop() {
        Some(open) => Err(format!(
            "can't find end tag corresponding to start tag \"{open}\""
        )),
        None => Ok(visible),
    }
}
