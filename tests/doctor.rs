//! `pinclaw doctor`, the real binary: the simulated board passes with the
//! embedded defaults (the JSON's shape checked); a broken config, a
//! provider refusing its key, a revoked Telegram token, a dead provider
//! and a Pi whose I2C is off fail with the problem named and its fix, and
//! no key or token is ever printed. Providers and Telegram are the tests'
//! fakes on 127.0.0.1; the Pi is a fake `/proc`, `/dev` and `/sys` tree.

#[path = "support/fake_provider.rs"]
mod fake_provider;
#[path = "support/fake_telegram.rs"]
mod fake_telegram;
#[path = "support/mosquitto.rs"]
mod mosquitto;
#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake_provider::{FakeProvider, Reply};
use fake_telegram::FakeTelegram;
use serde_json::Value;

/// `pinclaw doctor ARGS…` with a clean environment; its output.
fn doctor(args: &[&str]) -> Output {
    Command::new(process::BIN)
        .arg("doctor")
        .args(args)
        .env_remove("PINCLAW_CONFIG")
        .env_remove("PINCLAW_STATE_DIR")
        .env_remove("PINCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", process::BIN))
}

/// `pinclaw doctor --json --config CONFIG`: exit code and the report.
fn doctor_json(config: &Path) -> (Option<i32>, Value, String) {
    let out = doctor(&["--json", "--config", &config.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), report, all)
}

/// The check named `name`.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A config in `dir` with its state in `dir/state` and `extra` appended.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("pinclaw.toml");
    write(
        &path,
        &format!("state_dir = \"{}\"\n{extra}\n", dir.join("state").display()),
    );
    path
}

#[test]
fn the_simulated_board_passes_with_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let state = state.display().to_string();
    // The doctor checks the packaged service's config when there is one:
    // on a machine with pinclaw installed, give it an empty file instead
    // (the same defaults).
    let mut args = vec!["--json", "--state-dir", &state];
    let empty = dir.path().join("empty.toml");
    let empty_arg = empty.display().to_string();
    if Path::new("/etc/pinclaw/pinclaw.toml").exists() {
        write(&empty, "");
        args.extend(["--config", &empty_arg]);
    }
    let started = Instant::now();
    let out = doctor(&args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    for c in &checks {
        assert!(
            c["name"].is_string() && c["ok"] == true && c["detail"].is_string(),
            "{c}"
        );
    }
    for name in [
        "config",
        "board",
        "devices",
        "sensor room",
        "sensor water",
        "sensor throttled",
        "power",
        "clock",
        "disk",
    ] {
        check(&report, name);
    }
    assert!(
        check(&report, "board")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("profile sim")),
        "{report:#}"
    );
    assert!(
        check(&report, "sensor room")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("°C") && d.contains("hPa")),
        "{report:#}"
    );
    assert!(!Path::new(&state).exists(), "the doctor creates no state");
    eprintln!("doctor on the simulator: {took:?}");

    // The same for a person: one line per check, a count, exit 0.
    let human: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
    let out = doctor(&human);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("✓ sensor room"), "{text}");
    assert!(
        text.contains(&format!("all {} checks passed", checks.len())),
        "{text}"
    );
}

#[test]
fn a_broken_config_fails_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = config(dir.path(), "[nodes]\nmax_nodes = 0\n");
    let (code, report, _) = doctor_json(&path);
    assert_eq!(code, Some(1));
    assert_eq!(report["ok"], false);
    let c = check(&report, "config");
    assert_eq!(c["ok"], false);
    let detail = c["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("{}:3:", path.display()))
            && detail.contains("nodes.max_nodes: must be between 1 and 1024"),
        "{detail}"
    );
    assert!(c["hint"].is_string(), "{c}");
    // The rest is still checked.
    assert_eq!(check(&report, "sensor room")["ok"], true);

    // A file that does not even parse: the error at its line, exit 1.
    let path = config(dir.path(), "[board]\nprofile = \"sim\"\nwires = 3\n");
    let (code, report, _) = doctor_json(&path);
    assert_eq!(code, Some(1));
    let detail = check(&report, "config")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("wires"), "{detail}");

    // And for a person: the cross, the problem, the fix under it.
    let out = doctor(&["--config", &path.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("✗ config") && text.contains("fix: "),
        "{text}"
    );
}

const KEY: &str = "sk-doctor-SECRET-key-0123456789";

#[test]
fn a_provider_that_refuses_its_key_fails_readably_without_the_key() {
    let fake = FakeProvider::start();
    // The provider echoes the key back, as some do.
    fake.push(
        Reply::http_error(
            401,
            &format!(
                r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
            ),
            None,
        )
        .for_path("/v1/models"),
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key_file = dir.path().join("openai.key");
    write(&key_file, &format!("{KEY}\n"));
    let path = config(
        dir.path(),
        &format!(
            "[[providers]]\nid = \"openai\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\napi_key_file = \"{}\"\n[agent]\nmodel = \"openai/gpt-4o-mini\"\n",
            fake.base_url(),
            key_file.display()
        ),
    );
    let (code, report, all) = doctor_json(&path);
    assert_eq!(code, Some(1), "{report:#}");
    let c = check(&report, "provider openai");
    assert_eq!(c["ok"], false);
    let detail = c["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("authentication failed (HTTP 401)") && detail.contains("Incorrect API key"),
        "{detail}"
    );
    assert!(c["hint"].as_str().is_some_and(|h| h.contains("key")), "{c}");
    assert!(
        !all.contains(KEY) && !all.contains("SECRET"),
        "the key leaked: {all}"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // The config itself is fine.
    assert_eq!(check(&report, "config")["ok"], true);
}

#[test]
fn a_provider_that_answers_lists_its_models() {
    let fake = FakeProvider::start();
    fake.push(
        Reply::http_error(
            200,
            r#"{"object":"list","data":[{"id":"gpt-4o-mini"},{"id":"o3"}]}"#,
            None,
        )
        .for_path("/v1/models"),
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = config(
        dir.path(),
        &format!(
            "[[providers]]\nid = \"openai\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\n[agent]\nmodel = \"openai/gpt-4o-mini\"\n",
            fake.base_url()
        ),
    );
    let (code, report, _) = doctor_json(&path);
    let c = check(&report, "provider openai");
    assert_eq!(c["ok"], true, "{c}");
    assert!(
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 models listed, gpt-4o-mini among them")),
        "{c}"
    );
    assert_eq!(code, Some(0), "{report:#}");
}

#[test]
fn a_dead_provider_does_not_hold_the_doctor_up() {
    let fake = FakeProvider::start();
    fake.set_default(Reply::status(200).delay_headers(Duration::from_secs(60)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = config(
        dir.path(),
        &format!(
            "[[providers]]\nid = \"slow\"\napi = \"ollama\"\nbase_url = \"{}\"\n[agent]\nmodel = \"slow/qwen3:0.6b\"\n",
            fake.base_url()
        ),
    );
    let started = Instant::now();
    let (code, report, _) = doctor_json(&path);
    let took = started.elapsed();
    assert_eq!(code, Some(1));
    let c = check(&report, "provider slow");
    assert_eq!(c["ok"], false);
    assert!(
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("timed out") || d.contains("no answer")),
        "{c}"
    );
    assert!(took < Duration::from_secs(15), "the doctor took {took:?}");
}

const BOT_TOKEN: &str = "123456:doctor-BOT-token-abcdef";

fn telegram_config(dir: &Path, api_root: &str) -> std::path::PathBuf {
    let token_file = dir.join("telegram.token");
    write(&token_file, BOT_TOKEN);
    config(
        dir,
        &format!(
            "[channels.telegram]\nenabled = true\nbot_token_file = \"{}\"\napi_root = \"{api_root}\"\n",
            token_file.display()
        ),
    )
}

#[test]
fn a_refused_telegram_token_fails_the_channel_check() {
    let fake = FakeTelegram::start(BOT_TOKEN);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = telegram_config(dir.path(), &fake.api_root());
    let (code, report, _) = doctor_json(&path);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        check(&report, "telegram")["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("@{}", fake_telegram::BOT_USERNAME))),
        "{report:#}"
    );

    // Revoked in BotFather: every call answers {"ok":false,"error_code":401,…}.
    fake.revoke();
    let (code, report, all) = doctor_json(&path);
    assert_eq!(code, Some(1));
    let c = check(&report, "telegram");
    assert_eq!(c["ok"], false);
    assert!(
        c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Telegram refused the bot token")),
        "{c}"
    );
    assert!(
        c["hint"].as_str().is_some_and(|h| h.contains("@BotFather")),
        "{c}"
    );
    assert!(!all.contains("doctor-BOT-token"), "the token leaked: {all}");
    assert_eq!(fake.calls_of("getMe").len(), 2);
}

/// A Raspberry Pi 4 as the doctor sees it: the device-tree model, GPIO
/// chips, 1-Wire with the probe, PWM, the SoC's files; I2C only when
/// `with_i2c`. The profile runs on the simulated backend over this tree.
fn fake_pi(root: &Path, with_i2c: bool, with_w1_and_pwm: bool) -> String {
    write(
        &root.join("proc/device-tree/model"),
        "Raspberry Pi 4 Model B Rev 1.4\0",
    );
    write(&root.join("dev/gpiochip0"), "");
    write(&root.join("dev/gpiomem"), "");
    if with_i2c {
        write(&root.join("dev/i2c-1"), "");
    }
    if with_w1_and_pwm {
        write(
            &root.join("sys/bus/w1/devices/28-0000075c293f/w1_slave"),
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n",
        );
        write(&root.join("sys/class/pwm/pwmchip0/export"), "");
    }
    write(
        &root.join("sys/class/thermal/thermal_zone0/temp"),
        "47000\n",
    );
    write(
        &root.join("sys/devices/platform/soc/soc:firmware/get_throttled"),
        "0\n",
    );
    format!(
        "[board]\nprofile = \"auto\"\nsimulate = true\nsysfs_root = \"{}\"\nenable = [\"relay1\", \"room\", \"water\", \"fan\"]\n",
        root.display()
    )
}

#[test]
fn device_access_on_a_pi_without_i2c_names_the_config_txt_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().join("pi");
    let path = config(dir.path(), &fake_pi(&root, false, true));
    let (code, report, _) = doctor_json(&path);
    assert_eq!(code, Some(1), "{report:#}");
    assert!(
        check(&report, "board")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Raspberry Pi 4 Model B Rev 1.4: profile pi-4b")),
        "{report:#}"
    );
    let i2c = check(&report, "i2c-1");
    assert_eq!(i2c["ok"], false);
    assert!(
        i2c["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/dev/i2c-1 is missing (room)")),
        "{i2c}"
    );
    assert!(
        i2c["hint"].as_str().is_some_and(
            |h| h.contains("dtparam=i2c_arm=on") && h.contains("/boot/firmware/config.txt")
        ),
        "{i2c}"
    );
    for ok in ["gpio", "1-wire", "pwm", "sensor water", "config"] {
        assert_eq!(check(&report, ok)["ok"], true, "{ok}: {report:#}");
    }
    // The human output carries the same line.
    let out = doctor(&["--config", &path.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("✗ i2c-1")
            && text.contains("fix: add `dtparam=i2c_arm=on` to /boot/firmware/config.txt"),
        "{text}"
    );

    // With I2C on, but without 1-Wire and PWM: their overlays.
    let root = dir.path().join("pi2");
    let path = config(dir.path(), &fake_pi(&root, true, false));
    let (_, report, _) = doctor_json(&path);
    assert_eq!(check(&report, "i2c-1")["ok"], true, "{report:#}");
    let hint = |name: &str| {
        check(&report, name)["hint"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        hint("1-wire").contains("dtoverlay=w1-gpio,gpiopin=4"),
        "{report:#}"
    );
    assert!(
        hint("pwm").contains("dtoverlay=pwm,pin=18,func=2"),
        "{report:#}"
    );

    // A device file this user may not open: the group to join (root may
    // open anything, so this part needs an ordinary user).
    let i2c_dev = root.join("dev/i2c-1");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&i2c_dev, std::fs::Permissions::from_mode(0o000))
        .unwrap_or_else(|e| panic!("{e}"));
    if std::fs::File::open(&i2c_dev).is_ok() {
        eprintln!("running as root: the permission case is not observable here");
        return;
    }
    let (_, report, _) = doctor_json(&path);
    let i2c = check(&report, "i2c-1");
    assert_eq!(i2c["ok"], false);
    assert!(
        i2c["hint"]
            .as_str()
            .is_some_and(|h| h.contains("sudo usermod -aG i2c")),
        "{i2c}"
    );
}

#[test]
fn the_mqtt_broker_is_checked_when_configured() {
    let Some(broker) = mosquitto::Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = config(dir.path(), &broker.config_toml());
    let (code, report, all) = doctor_json(&path);
    let c = check(&report, "mqtt");
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        !all.contains(mosquitto::PASSWORD),
        "the password leaked: {all}"
    );
}
