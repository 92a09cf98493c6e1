//! A real Mosquitto for tests: one broker per test on a free 127.0.0.1
//! port with a password file (as root it needs `user root`), stopped by PID
//! on drop; `mosquitto_pub`/`mosquitto_sub` to publish and read. `start`
//! returns `None` after printing `SKIPPED …` where Mosquitto is missing,
//! and fails then when `CI` is set (`.ci/run` installs it).
#![allow(dead_code)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pinclaw::config::Secret;
use pinclaw::mqtt::Options;

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
pub const USER: &str = "pinclaw";
pub const PASSWORD: &str = "broker-pw-7f3a";

/// Skip with a printed reason, or fail under CI (as `support/process.rs`).
pub fn skip(reason: &str) {
    eprintln!("SKIPPED mosquitto tests: {reason}");
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so the Mosquitto tests must run: {reason}"
    );
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A Mosquitto child process, stopped by PID on drop.
pub struct Broker {
    /// Its directory (config, password file, log).
    pub dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    /// More lines for the config (another listener).
    pub extra_conf: String,
}

impl Broker {
    /// A broker on a free port, or `None` (skipped) without Mosquitto.
    pub fn start() -> Option<Broker> {
        if !Path::new(MOSQUITTO).exists() {
            skip(&format!("no mosquitto ({MOSQUITTO} not found)"));
            return None;
        }
        for t in ["mosquitto_passwd", "mosquitto_pub", "mosquitto_sub"] {
            if !tool(t) {
                skip(&format!("no mosquitto ({t} not found)"));
                return None;
            }
        }
        let mut dir = tempfile::tempdir().expect("temp dir");
        let pw = dir.path().join("pw.txt");
        let made = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&pw)
            .args([USER, PASSWORD])
            .status()
            .expect("mosquitto_passwd");
        assert!(made.success());
        for _ in 0..5 {
            let port = free_port();
            let mut broker = Broker {
                dir,
                port,
                child: None,
                extra_conf: String::new(),
            };
            if broker.run() {
                return Some(broker);
            }
            dir = broker.take_dir();
        }
        panic!("mosquitto did not start on any of 5 ports");
    }

    pub fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Start the process on `self.port`; `false` if it exits (port taken).
    pub fn run(&mut self) -> bool {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\npersistence false\nallow_anonymous false\npassword_file {}\nlistener {} 127.0.0.1\nlog_dest stderr\nlog_type all\n{}",
                self.dir.path().join("pw.txt").display(),
                self.port,
                self.extra_conf
            ),
        )
        .expect("conf");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("log");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("mosquitto did not listen within 10 s:\n{}", self.log());
    }

    /// Kill the process (SIGKILL by PID) and reap it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port.
    pub fn restart(&mut self) {
        for _ in 0..50 {
            if self.run() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "mosquitto did not start again on {}:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn options(&self, client_id: &str) -> Options {
        let mut o = Options::new("127.0.0.1", self.port, false, client_id);
        o.username = Some(USER.into());
        o.password = Some(Secret::new(PASSWORD));
        o.keep_alive = Duration::from_secs(5);
        o
    }

    /// `-h -p -u -P` for Mosquitto's command-line clients.
    pub fn cli_args(&self) -> Vec<String> {
        cli_args(self.port)
    }

    /// `mosquitto_pub` one message.
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(self.cli_args())
            .args(["-q", "1", "-t", topic, "-m", payload]);
        if retain {
            cmd.arg("-r");
        }
        let status = cmd.status().expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// `mosquitto_sub` for one message: `"<retain> <qos> <topic> <payload>"`.
    pub fn read_one(&self, topic: &str) -> String {
        Self::peek(self.port, topic)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Broker {
    /// Every message on `filter` for `secs` seconds (retained ones first),
    /// as `"<retain> <topic> <payload>"` lines.
    pub fn read_for(&self, filter: &str, secs: u32) -> Vec<String> {
        let out = Command::new("mosquitto_sub")
            .args(self.cli_args())
            .args([
                "-q",
                "1",
                "-t",
                filter,
                "-W",
                &secs.to_string(),
                "-F",
                "%r %t %p",
            ])
            .output()
            .expect("mosquitto_sub");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The `[mqtt]` section for a gateway on this broker (node `hub`).
    pub fn config_toml(&self) -> String {
        let pw = self.dir.path().join("client.password");
        std::fs::write(&pw, PASSWORD).expect("password file");
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\nnode_id = \"hub\"\nkeep_alive_s = 5\n",
            self.port,
            pw.display()
        )
    }
}

impl Broker {
    /// `read_one` without a `Broker` (for a blocking thread): the message
    /// on `topic` of the broker at `port`, as `"<retain> <qos> <topic> <payload>"`.
    pub fn peek(port: u16, topic: &str) -> String {
        subscribe(port, topic, &["-C", "1", "-W", "10", "-F", "%r %q %t %p"])
            .trim()
            .to_owned()
    }

    /// `publish` without a `Broker`: one live message, QoS 1, to `port`.
    pub fn send(port: u16, topic: &str, payload: &str) {
        let status = Command::new("mosquitto_pub")
            .args(cli_args(port))
            .args(["-q", "1", "-t", topic, "-m", payload])
            .status()
            .expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed");
    }
}

/// `-h -p -u -P` for Mosquitto's command-line clients on `port`.
pub fn cli_args(port: u16) -> Vec<String> {
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        USER,
        "-P",
        PASSWORD,
    ]
    .map(String::from)
    .to_vec()
}

/// `mosquitto_sub -q 1 -t topic` with `extra` options (`-C`, `-W`, `-F`)
/// on the broker at `port`: what it printed.
pub fn subscribe(port: u16, topic: &str, extra: &[&str]) -> String {
    let out = Command::new("mosquitto_sub")
        .args(cli_args(port))
        .args(["-q", "1", "-t", topic])
        .args(extra)
        .output()
        .expect("mosquitto_sub");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
