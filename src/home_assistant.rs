//! Home Assistant for the agent: the `home_assistant` tool reaches the rest
//! of the house through Home Assistant's REST API with a long-lived access
//! token (from a file or the environment; never logged, never in an error).
//! `list_states` (by domain), `get_state`, and `call_service`, which only
//! calls services listed in `[home_assistant] allow_services`. Errors come
//! back to the model as one readable line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::tools::{BoxFuture, Tool, ToolContext};
use crate::config::{Problem, Secret};
use crate::provider::ToolSpec;

/// `[home_assistant]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    /// `http://homeassistant.local:8123` (unset: no tool).
    pub url: Option<String>,
    /// A file holding the long-lived access token.
    pub token_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub token_env: Option<String>,
    /// Services the agent may call: `light.*`, `switch.turn_on`, …
    pub allow_services: Vec<String>,
    /// Each request's deadline, seconds.
    pub timeout_s: u64,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            url: None,
            token_file: None,
            token_env: None,
            allow_services: Vec::new(),
            timeout_s: 10,
        }
    }
}

/// What [`HomeAssistantConfig::check`] resolved: where, and the token.
pub struct Connection {
    base: String,
    token: Secret,
    allow: Vec<String>,
    timeout: Duration,
}

impl HomeAssistantConfig {
    /// The connection the config describes (`None` when there is no url),
    /// or every problem with it. Reads the token file.
    pub fn check(&self) -> Result<Option<Connection>, Vec<Problem>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 10 {
            problems.push(Problem::new(
                "home_assistant.url",
                "expected http://host:8123 or https://…",
            ));
        }
        let token = match (&self.token_file, &self.token_env) {
            (Some(file), None) => std::fs::read_to_string(file)
                .map(|t| t.trim().to_owned())
                .map_err(|e| {
                    Problem::new(
                        "home_assistant.token_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                }),
            (None, Some(var)) => std::env::var(var)
                .map(|t| t.trim().to_owned())
                .map_err(|_| {
                    Problem::new(
                        "home_assistant.token_env",
                        format!("the environment variable {var} is not set"),
                    )
                }),
            (Some(_), Some(_)) => Err(Problem::new(
                "home_assistant.token_file",
                "give token_file or token_env, not both",
            )),
            (None, None) => Err(Problem::new(
                "home_assistant",
                "needs a long-lived access token: token_file or token_env",
            )),
        };
        let token = match token {
            Ok(t) if t.is_empty() => {
                problems.push(Problem::new(
                    "home_assistant.token_file",
                    "the token is empty",
                ));
                None
            }
            Ok(t) => Some(t),
            Err(p) => {
                problems.push(p);
                None
            }
        };
        for (i, s) in self.allow_services.iter().enumerate() {
            let ok = s.split_once('.').is_some_and(|(domain, service)| {
                !domain.is_empty()
                    && domain
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && (service == "*"
                        || (!service.is_empty()
                            && service.bytes().all(|b| {
                                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
                            })))
            });
            if !ok {
                problems.push(Problem::new(
                    format!("home_assistant.allow_services[{i}]"),
                    format!("{s:?} is not domain.service or domain.*"),
                ));
            }
        }
        if !(1..=120).contains(&self.timeout_s) {
            problems.push(Problem::new(
                "home_assistant.timeout_s",
                "must be between 1 and 120",
            ));
        }
        match token {
            Some(token) if problems.is_empty() => Ok(Some(Connection {
                base,
                token: Secret::new(token),
                allow: self.allow_services.clone(),
                timeout: Duration::from_secs(self.timeout_s),
            })),
            _ => Err(problems),
        }
    }
}

impl Connection {
    /// Whether `service` (`light.turn_on`) is allowed.
    pub fn allows(&self, service: &str) -> bool {
        let Some((domain, _)) = service.split_once('.') else {
            return false;
        };
        self.allow
            .iter()
            .any(|a| a == service || a.strip_suffix(".*") == Some(domain))
    }

    /// Whether Home Assistant answers `GET /api/` and takes the token
    /// (blocking, within `timeout` or the configured deadline, whichever
    /// is shorter): its message (`API running.`) or why not.
    pub fn ping(&self, timeout: Duration) -> Result<String, String> {
        let answer = self.request_within(timeout.min(self.timeout), "GET", "/api/", None)?;
        Ok(answer["message"].as_str().unwrap_or("answered").to_owned())
    }

    /// Where it is (`http://homeassistant.local:8123`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One request, blocking (run it on the blocking pool). The token goes
    /// in a header only; errors never carry it.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        self.request_within(self.timeout, method, path, body)
    }

    /// [`Connection::request`] with its own deadline.
    fn request_within(
        &self,
        timeout: Duration,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .proxy(None)
            .build()
            .into();
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token.expose());
        let response = match body {
            Some(body) => agent
                .post(&url)
                .header("authorization", &auth)
                .content_type("application/json")
                .send(body.to_string()),
            None if method == "GET" => agent.get(&url).header("authorization", &auth).call(),
            None => return Err(format!("unsupported method {method}")),
        };
        let mut response = response.map_err(|e| {
            format!(
                "Home Assistant at {} did not answer: {}",
                self.base,
                e.to_string().replace(self.token.expose(), "<redacted>")
            )
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(crate::limits::HOME_ASSISTANT_MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| format!("reading Home Assistant's answer: {e}"))?;
        match status {
            200 | 201 => serde_json::from_str(&text)
                .map_err(|e| format!("Home Assistant's answer is not JSON: {e}")),
            401 | 403 => Err("Home Assistant refused the access token (401): create a long-lived token in your profile and put it in [home_assistant] token_file".into()),
            404 => Err(format!("Home Assistant has no {path}")),
            400 => Err(format!("Home Assistant refused the request (400): {}", first_line(&text))),
            other => Err(format!("Home Assistant answered HTTP {other}: {}", first_line(&text))),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// The `home_assistant` tool.
pub struct HomeAssistantTool {
    connection: Arc<Connection>,
}

impl HomeAssistantTool {
    /// The tool over a checked connection.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection: Arc::new(connection),
        }
    }
}

/// One entity as listed: id, state, name and unit.
fn summary(state: &Value) -> Value {
    let attrs = &state["attributes"];
    json!({
        "entity_id": state["entity_id"],
        "state": state["state"],
        "name": attrs["friendly_name"],
        "unit": attrs["unit_of_measurement"],
    })
}

impl Tool for HomeAssistantTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "home_assistant".into(),
            description: format!(
                "The rest of the house, through Home Assistant. action=list_states lists entities \
                 (optionally one domain, e.g. \"light\"); action=get_state reads one entity with its attributes; \
                 action=call_service calls a service such as \"light.turn_on\" with serviceDataJson \
                 (e.g. \"{{\\\"entity_id\\\":\\\"light.kitchen\\\"}}\"). Allowed services: {}.",
                if self.connection.allow.is_empty() {
                    "none".to_owned()
                } else {
                    self.connection.allow.join(", ")
                }
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["list_states", "get_state", "call_service"]},
                    "domain": {"type": "string", "description": "list_states: only this domain"},
                    "entityId": {"type": "string", "description": "get_state: e.g. sensor.outside_temperature"},
                    "service": {"type": "string", "description": "call_service: domain.service"},
                    "serviceDataJson": {"type": "string", "description": "call_service: the data as a JSON object string"}
                },
                "required": ["action"],
                "additionalProperties": false
            }),
        }
    }

    fn call(&self, _ctx: &ToolContext, args: Value) -> BoxFuture<Result<Value, String>> {
        let connection = self.connection.clone();
        Box::pin(async move {
            let (method, path, body, list_domain) = match args["action"].as_str() {
                Some("list_states") => {
                    let domain = args["domain"].as_str().map(str::to_owned);
                    ("GET", "/api/states".to_owned(), None, Some(domain))
                }
                Some("get_state") => {
                    let id = args["entityId"]
                        .as_str()
                        .ok_or("get_state needs \"entityId\"")?;
                    if !valid_entity_id(id) {
                        return Err(format!("{id:?} is not an entity id like sensor.kitchen"));
                    }
                    ("GET", format!("/api/states/{id}"), None, None)
                }
                Some("call_service") => {
                    let service = args["service"]
                        .as_str()
                        .ok_or("call_service needs \"service\"")?;
                    if !connection.allows(service) {
                        return Err(format!(
                            "the service {service} is not allowed (allowed: {}); an operator can add it to [home_assistant] allow_services",
                            if connection.allow.is_empty() {
                                "none".to_owned()
                            } else {
                                connection.allow.join(", ")
                            }
                        ));
                    }
                    let data = match args["serviceDataJson"].as_str() {
                        None | Some("") => json!({}),
                        Some(text) => serde_json::from_str::<Value>(text)
                            .ok()
                            .filter(Value::is_object)
                            .ok_or("serviceDataJson must be a JSON object")?,
                    };
                    let (domain, name) = service.split_once('.').unwrap_or((service, ""));
                    (
                        "POST",
                        format!("/api/services/{domain}/{name}"),
                        Some(data),
                        None,
                    )
                }
                other => {
                    return Err(format!(
                        "unknown action {other:?} (list_states, get_state or call_service)"
                    ));
                }
            };
            let answer = tokio::task::spawn_blocking(move || {
                connection.request(method, &path, body.as_ref())
            })
            .await
            .map_err(|e| format!("the request failed: {e}"))??;
            Ok(match list_domain {
                Some(domain) => {
                    let prefix = domain.map(|d| format!("{d}."));
                    let states: Vec<Value> = answer
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter(|s| {
                            prefix.as_ref().is_none_or(|p| {
                                s["entity_id"].as_str().is_some_and(|id| id.starts_with(p))
                            })
                        })
                        .take(crate::limits::HOME_ASSISTANT_MAX_LISTED)
                        .map(summary)
                        .collect();
                    json!({"count": states.len(), "states": states})
                }
                None => answer,
            })
        })
    }
}

/// `domain.object_id`, both `[a-z0-9_]`.
fn valid_entity_id(id: &str) -> bool {
    id.split_once('.').is_some_and(|(d, o)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        ok(d) && ok(o)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_globs_and_ids() {
        let c = Connection {
            base: "http://ha:8123".into(),
            token: Secret::new("t"),
            allow: vec!["light.*".into(), "switch.turn_on".into()],
            timeout: Duration::from_secs(1),
        };
        assert!(c.allows("light.turn_on") && c.allows("light.toggle"));
        assert!(c.allows("switch.turn_on"));
        assert!(!c.allows("switch.turn_off") && !c.allows("lock.unlock") && !c.allows("light"));
        assert!(valid_entity_id("sensor.outside_temp_2"));
        assert!(
            !valid_entity_id("sensor") && !valid_entity_id("../api") && !valid_entity_id("a.b/c")
        );
    }
}
