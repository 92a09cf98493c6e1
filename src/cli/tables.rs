//! What the client subcommands print: an aligned table per list (the
//! `--json` flag prints the raw payload instead), and the few words a
//! list needs around it.

use serde_json::Value;

/// Print `items` as a table with `header` and one `row` per item, or
/// `none` when there are none. Returns whether there were any.
fn list(items: &Value, none: &str, header: &[&str], row: impl Fn(&Value) -> Vec<String>) -> bool {
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        println!("{none}");
        return false;
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    print_table(header, &rows);
    true
}

/// `90s`, `30m`, `1h`, `7d` as a duration.
pub fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
}

/// `audit.list`: when, who, what, how it went.
pub fn print_audit(v: &Value) {
    list(
        &v["entries"],
        "nothing in the audit log for that time",
        &["WHEN (UTC)", "WHO", "ACTION", "WHAT", "OUTCOME"],
        |e| {
            vec![
                utc_time(e["ts"].as_i64().unwrap_or(0)),
                s(&e["who"]),
                s(&e["action"]),
                s(&e["what"]),
                s(&e["outcome"]),
            ]
        },
    );
}

/// `2026-12-01 21:15:29` (UTC) for a time in ms.
pub fn utc_time(ms: i64) -> String {
    crate::agent::tools::iso8601(ms)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

/// `exec.approval.list`: what waits, and how long it still waits.
pub fn print_approvals(v: &Value) {
    let now = crate::ids::now_ms();
    let any = list(
        v,
        "nothing waits for approval",
        &["ID", "WAITING FOR", "EXPIRES IN"],
        |a| {
            let left = (a["expiresAtMs"].as_i64().unwrap_or(now) - now).max(0) / 1000;
            vec![s(&a["id"]), s(&a["summary"]), format!("{left} s")]
        },
    );
    if any {
        println!("\napprove with: pinclaw approvals approve <ID>   (or deny <ID>)");
    }
}

/// An aligned table: a header row, then one row per item.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `device.pair.list`: pending requests, then paired devices.
pub fn print_devices(v: &Value) {
    let pending = v["pending"].as_array().map_or(0, Vec::len);
    if pending > 0 {
        println!("Pending ({pending})");
        list(
            &v["pending"],
            "",
            &["REQUEST", "DEVICE", "ROLE", "CLIENT", "FROM"],
            |p| {
                vec![
                    s(&p["requestId"]),
                    short(p["deviceId"].as_str()),
                    s(&p["role"]),
                    format!("{}/{}", s(&p["clientId"]), s(&p["clientMode"])),
                    s(&p["remoteIp"]),
                ]
            },
        );
        println!();
    }
    println!("Paired ({})", v["paired"].as_array().map_or(0, Vec::len));
    list(
        &v["paired"],
        "",
        &["DEVICE", "ROLES", "APPROVED VIA", "STATE"],
        |d| {
            vec![
                s(&d["deviceId"]),
                joined(&d["roles"]),
                s(&d["approvedVia"]),
                connected(d),
            ]
        },
    );
    if pending > 0 {
        println!("\napprove with: pinclaw devices approve <REQUEST>");
    }
}

/// `node.list`: every known node, the board itself marked.
pub fn print_nodes(v: &Value) {
    list(
        &v["nodes"],
        "no nodes",
        &["NAME", "NODE", "PLATFORM", "STATE", "COMMANDS", ""],
        |n| {
            vec![
                s(&n["displayName"]),
                short(n["nodeId"].as_str()),
                s(&n["platform"]),
                connected(n),
                n["commands"].as_array().map_or(0, Vec::len).to_string(),
                if n["gatewayLocal"] == true {
                    "this board"
                } else {
                    ""
                }
                .to_owned(),
            ]
        },
    );
}

fn connected(v: &Value) -> String {
    if v["connected"] == true {
        "connected"
    } else {
        "offline"
    }
    .to_owned()
}

fn joined(list: &Value) -> String {
    let words: Vec<&str> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    words.join(",")
}

/// `node.pair.list`: nodes whose commands wait for approval.
pub fn print_node_requests(v: &Value) {
    let any = list(
        &v["pending"],
        "no node waits for approval",
        &["REQUEST", "NAME", "NODE", "COMMANDS"],
        |p| {
            vec![
                s(&p["requestId"]),
                s(&p["displayName"]),
                short(p["nodeId"].as_str()),
                joined(&p["commands"]),
            ]
        },
    );
    if any {
        println!("\napprove with: pinclaw nodes approve <REQUEST>");
    }
}

/// A string field, `-` when absent.
fn s(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

/// `channels.status`: one line per account, with its last error.
pub fn print_channels(v: &Value) {
    let empty = serde_json::Map::new();
    let accounts = v["channelAccounts"].as_object().unwrap_or(&empty);
    if accounts.is_empty() {
        println!("no chat channels configured (see [channels.telegram] in the config)");
    }
    for (id, list) in accounts {
        let label = v["channelLabels"][id].as_str().unwrap_or(id);
        for a in list.as_array().into_iter().flatten() {
            let flag = |key: &str, yes: &'static str, no: &'static str| {
                if a[key] == true { yes } else { no }
            };
            println!(
                "{label} {}{}: {}, {}, health {}, restarts {}, outbox {}",
                a["accountId"].as_str().unwrap_or("?"),
                a["name"]
                    .as_str()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                flag("running", "running", "stopped"),
                flag("connected", "connected", "disconnected"),
                a["healthState"].as_str().unwrap_or("?"),
                a["restartCount"],
                a["outboxPending"],
            );
            if let Some(error) = a["lastError"].as_str() {
                println!("  last error: {error}");
            }
        }
    }
}

/// `channels.pairing.list`: who asked to talk to the bot.
pub fn print_pairing(v: &Value) {
    let any = list(
        &v["requests"],
        "nobody waits for DM pairing",
        &["REQUEST", "CHANNEL", "SENDER", "SINCE", "EXPIRES"],
        |r| {
            vec![
                s(&r["requestId"]),
                s(&r["channel"]),
                format!("{} ({})", s(&r["senderId"]), s(&r["senderLabel"])),
                s(&r["createdAt"]),
                s(&r["expiresAt"]),
            ]
        },
    );
    if any {
        println!("\napprove with: pinclaw pairing approve <channel> <CODE the sender was given>");
    }
}

/// The first 12 characters of an id.
fn short(id: Option<&str>) -> String {
    id.map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "?".into())
}

/// `cron.list`: every automation and cron job, with how its last run went.
pub fn print_automations(v: &Value) {
    let now = crate::ids::now_ms();
    let ago = |ms: Option<i64>| match ms {
        Some(ms) => relative(ms - now),
        None => "-".into(),
    };
    list(
        &v["jobs"],
        "no automations (add [[automations]] to the config, or `openclaw cron add`)",
        &[
            "NAME", "WHEN", "DO", "ON", "LAST RUN", "STATUS", "NEXT", "ERROR",
        ],
        |j| {
            let p = &j["pinclaw"];
            let name = match p["source"].as_str() {
                Some("runtime") => format!("{} ({})", s(&j["name"]), s(&j["id"])),
                _ => s(&j["name"]),
            };
            vec![
                name,
                s(&p["when"]),
                s(&p["do"]),
                if j["enabled"] == true { "yes" } else { "no" }.into(),
                ago(j["lastRunAtMs"].as_i64()),
                s(&j["lastRunStatus"]),
                ago(j["nextRunAtMs"].as_i64()),
                s(&j["lastRunError"]),
            ]
        },
    );
}

/// `cron.runs`: the run history, newest first.
pub fn print_automation_runs(v: &Value) {
    list(
        &v["entries"],
        "no runs yet",
        &["WHEN (UTC)", "NAME", "STATUS", "TOOK", "ERROR"],
        |r| {
            vec![
                utc_time(r["runAtMs"].as_i64().unwrap_or(0)),
                s(&r["jobName"]),
                s(&r["status"]),
                format!("{} ms", r["durationMs"].as_u64().unwrap_or(0)),
                s(&r["error"]),
            ]
        },
    );
}

/// `in 5m` / `3h ago` for a signed span in ms.
pub fn relative(delta_ms: i64) -> String {
    let secs = delta_ms.unsigned_abs() / 1000;
    let span = match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if delta_ms >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}
