//! A fake Home Assistant REST API on 127.0.0.1 for tests (std only).
//!
//! It speaks the real wire format of the endpoints pinclaw uses, with a
//! long-lived token checked the way Home Assistant checks it
//! (`authorization: Bearer <token>`, otherwise `401` with the body
//! `401: Unauthorized`): `GET /api/` (`{"message": "API running."}`),
//! `GET /api/states` (every state object), `GET /api/states/<entity_id>`
//! (`404 {"message": "Entity not found."}` when unknown) and
//! `POST /api/services/<domain>/<service>` with a JSON body (the states it
//! changed; `turn_on`/`turn_off`/`toggle` change `state`; an unknown
//! service is `400 {"message": "Service <domain>.<service> not found."}`).
//! Every request is recorded.
//!
//! Faults: stall one entity's `GET /api/states/<id>` past any deadline.
//!
//! Include it with `#[path = "support/fake_home_assistant.rs"] mod fake_home_assistant;`.
#![allow(dead_code)]

#[allow(clippy::duplicate_mod)]
#[path = "http_request.rs"]
mod http_request;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, e.g. `/api/services/light/turn_on`.
    pub path: String,
    /// The `authorization` header as sent.
    pub authorization: Option<String>,
    /// The JSON body (`Null` when none).
    pub body: Value,
}

#[derive(Default)]
struct State {
    entities: Vec<Value>,
    requests: Vec<Request>,
    stall: Option<String>,
}

/// The server; stops and joins its threads when dropped.
pub struct FakeHomeAssistant {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// A state object as Home Assistant returns it.
pub fn entity(id: &str, state: &str, name: &str, unit: Option<&str>) -> Value {
    let mut attributes = json!({"friendly_name": name});
    if let Some(unit) = unit {
        attributes["unit_of_measurement"] = json!(unit);
    }
    json!({
        "entity_id": id,
        "state": state,
        "attributes": attributes,
        "last_changed": "2026-12-07T10:00:00.000000+00:00",
        "last_updated": "2026-12-07T10:00:00.000000+00:00",
        "context": {"id": "01J0000000000000000000000", "parent_id": null, "user_id": null}
    })
}

impl FakeHomeAssistant {
    /// Start on 127.0.0.1:0 accepting `token`, with these entities.
    pub fn start(token: &str, entities: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let state = Arc::new(Mutex::new(State {
            entities,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!("Bearer {token}");
        let accept = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (state, stop, expected) =
                                (state.clone(), stop.clone(), expected.clone());
                            workers.push(std::thread::spawn(move || {
                                serve(conn, &state, &stop, &expected)
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Self {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// One entity's current state string.
    pub fn state_of(&self, id: &str) -> Option<String> {
        self.lock()
            .entities
            .iter()
            .find(|e| e["entity_id"] == id)
            .and_then(|e| e["state"].as_str().map(str::to_owned))
    }

    /// Never answer `GET /api/states/<id>` (until the server stops).
    pub fn stall(&self, id: &str) {
        self.lock().stall = Some(id.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeHomeAssistant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serve one keep-alive connection.
fn serve(mut conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool, expected: &str) {
    let _ = conn.set_nonblocking(false);
    while let Some((method, path, headers, body)) =
        http_request::read_request(&mut conn, || stop.load(Ordering::Relaxed))
    {
        let authorization = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            body: body.clone(),
        });
        if authorization.as_deref() != Some(expected) {
            drop(st);
            respond(&mut conn, 401, "text/plain", "401: Unauthorized");
            continue;
        }
        if method == "GET"
            && let Some(id) = path.strip_prefix("/api/states/")
            && st.stall.as_deref() == Some(id)
        {
            drop(st);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        let (status, answer) = route(&mut st, &method, &path, &body);
        drop(st);
        respond(&mut conn, status, "application/json", &answer.to_string());
    }
}

/// Home Assistant's answer to one authorised request.
fn route(st: &mut State, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let not_found = || (404, json!({"message": "Entity not found."}));
    match (method, path) {
        ("GET", "/api/") => (200, json!({"message": "API running."})),
        ("GET", "/api/states") => (200, Value::Array(st.entities.clone())),
        ("GET", p) if p.starts_with("/api/states/") => {
            let id = &p["/api/states/".len()..];
            match st.entities.iter().find(|e| e["entity_id"] == id) {
                Some(e) => (200, e.clone()),
                None => not_found(),
            }
        }
        ("POST", p) if p.starts_with("/api/services/") => {
            let Some((domain, service)) = p["/api/services/".len()..].split_once('/') else {
                return (404, json!({"message": "Not found"}));
            };
            let new_state = match service {
                "turn_on" => Some("on"),
                "turn_off" => Some("off"),
                "toggle" => None,
                _ => {
                    return (
                        400,
                        json!({"message": format!("Service {domain}.{service} not found.")}),
                    );
                }
            };
            let targets: Vec<String> = match &body["entity_id"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            let mut changed = Vec::new();
            for e in st.entities.iter_mut() {
                let id = e["entity_id"].as_str().unwrap_or("").to_owned();
                if targets.contains(&id) && id.starts_with(&format!("{domain}.")) {
                    let next = new_state.unwrap_or(if e["state"] == "on" { "off" } else { "on" });
                    e["state"] = json!(next);
                    changed.push(e.clone());
                }
            }
            (200, Value::Array(changed))
        }
        _ => (404, json!({"message": "Not found"})),
    }
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
    let _ = conn.flush();
}
