//! A scripted OpenAI-compatible model on 127.0.0.1, to try `pinclaw chat`
//! without an API key: it reads the room's sensor when asked how warm it
//! is, switches a named output when asked to turn it on or off, and answers
//! from what the tool returned, streamed word by word as `/chat/completions`
//! SSE. Not a model: a fixed script speaking the real wire format.
//!
//! ```sh
//! cargo run --release --example demo_model -- 18080 &
//! # in the config: a provider with base_url = "http://127.0.0.1:18080/v1",
//! # a model "demo", and [agent] model = "demo/demo" (README, "Try it")
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "18080".into());
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    eprintln!("demo model on http://127.0.0.1:{port}/v1");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("demo model: {e}");
            }
        });
    }
    Ok(())
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(4 * 1024 * 1024)];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut out = stream;
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
    )?;
    match next_step(&request) {
        Step::Call(command, params) => {
            let call = json!({"index": 0, "id": "call_demo", "type": "function", "function": {
                "name": "nodes",
                "arguments": json!({"action": "invoke", "node": "local",
                    "invokeCommand": command, "invokeParamsJson": params.to_string()}).to_string()}});
            chunk(
                &mut out,
                json!({"role": "assistant", "tool_calls": [call]}),
                None,
            )?;
            chunk(&mut out, json!({}), Some("tool_calls"))?;
        }
        Step::Say(text) => {
            for (i, word) in text.split(' ').enumerate() {
                let piece = if i == 0 {
                    word.to_owned()
                } else {
                    format!(" {word}")
                };
                chunk(&mut out, json!({"content": piece}), None)?;
                std::thread::sleep(Duration::from_millis(40));
            }
            chunk(&mut out, json!({}), Some("stop"))?;
        }
    }
    out.write_all(b"data: [DONE]\n\n")
}

enum Step {
    Call(&'static str, Value),
    Say(String),
}

/// What the script does next: answer from a tool result, or pick a tool
/// from the user's words.
fn next_step(request: &Value) -> Step {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    if last["role"] == "tool" {
        let result: Value =
            serde_json::from_str(last["content"].as_str().unwrap_or("")).unwrap_or(Value::Null);
        let readings = &result["readings"];
        if let Some(t) = readings["temperature"]["value"].as_f64() {
            let humidity = readings["humidity"]["value"]
                .as_f64()
                .map(|h| format!(" at {h:.0} % humidity"))
                .unwrap_or_default();
            return Step::Say(format!("The room is {t:.1} °C{humidity}."));
        }
        if let (Some(name), Some(on)) = (result["name"].as_str(), result["value"].as_bool()) {
            return Step::Say(format!(
                "Done: {name} is {}.",
                if on { "on" } else { "off" }
            ));
        }
        let text = last["content"].as_str().unwrap_or("");
        return Step::Say(format!("That did not work: {text}"));
    }
    let said = last["content"].as_str().unwrap_or("").to_lowercase();
    if ["warm", "temperature", "hot", "cold"]
        .iter()
        .any(|w| said.contains(w))
    {
        return Step::Call("sensors.read", json!({"name": "room"}));
    }
    let on = said.contains(" on");
    if (on || said.contains(" off"))
        && let Some(name) = said
            .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
            .find(|w| w.starts_with("relay") || *w == "heater" || *w == "fan")
    {
        return Step::Call("gpio.write", json!({"name": name, "value": on}));
    }
    Step::Say(
        "I am the demo model: ask me how warm the room is, or to switch relay1 on or off.".into(),
    )
}

fn chunk(out: &mut TcpStream, delta: Value, finish: Option<&str>) -> std::io::Result<()> {
    let v = json!({"id": "demo", "object": "chat.completion.chunk", "model": "demo",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    out.write_all(format!("data: {v}\n\n").as_bytes())?;
    out.flush()
}
