//! What the SD card sees (issue 13, "A disk that lasts"). Not a test: it
//! prints figures and never fails on timing.
//!
//! ```text
//! cargo build --release
//! cargo build --release --example bench_disk
//! target/release/examples/bench_disk target/release/pinclaw
//! ```
//!
//! Against an instant fake model (OpenAI streaming format, the tests'
//! `tests/support/fake_provider.rs`), each pass measures:
//! - bytes written per agent turn: `BENCH_TURNS` (200) `chat.send`s one
//!   after another across `BENCH_SESSIONS` (4) sessions (after one warm-up
//!   turn each), each waited to its final `chat` event; the gateway's
//!   `write_bytes` of `/proc/PID/io` (page-cache pages it dirtied, i.e.
//!   what writeback sends to the disk, the filesystem's journal aside) over
//!   the turns divided by their number, `wchar` (every `write`, sockets
//!   included) likewise, and the store's commits from `status`;
//! - idle writes: the same gateway then left alone for at least
//!   `BENCH_IDLE_S` (60) seconds (the window overlaps the store drive,
//!   which works another process), its `write_bytes` delta scaled to bytes
//!   per hour. The hourly sensor-history snapshot and the 4-hourly
//!   retention pass fall outside so short a window;
//! - the store with retention on: `BENCH_TOTAL_TURNS` (10,000) turns across
//!   the sessions with `session.max_turns_per_session` =
//!   `BENCH_MAX_TURNS` (500). Retention prunes at start and then every 4
//!   hours, so the turns go to one gateway run per `BENCH_RESTART_EVERY`
//!   (2,500) turns on the same state dir; after each run the gateway is
//!   stopped (SIGTERM) and the store measured, then started again until its
//!   pruning pass logged its result and the writes settled, stopped, and
//!   measured again. Measured: the file's size, the bytes in pages redb has
//!   allocated and the bytes of keys and values (`redb` stats of a copy),
//!   and the largest tables; also `write_bytes` per turn over the drive.
//!
//! Once, after the passes (`BENCH_OFF`, default 1; 0 skips it): the same
//! drive with retention off (`max_turns_per_session = 0`,
//! `retention_days = 0`) for comparison.
//!
//! Medians over `BENCH_PASSES` (3) passes with the spread. `BENCH_LOG`
//! shows the gateways' logs.

mod common;
#[path = "../tests/support/fake_provider.rs"]
mod fake_provider;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, Result, admin, env_num, figure, gateway};
use fake_provider::{FakeProvider, Reply};
use pinclaw::client::Client;
use serde_json::{Value, json};

/// A fresh fake model answering every request instantly. One per gateway
/// start: the fake keeps every request it got, and 10,000 requests
/// carrying a context of up to 400 rows would add up.
fn model() -> FakeProvider {
    let model = FakeProvider::start();
    model.set_default(Reply::openai_text(&["It is 21 degrees."]));
    model
}

/// Start the gateway in `dir` on `model`; `session` is the `[session]`
/// table's body (empty: the defaults).
fn start(dir: &Path, model: &FakeProvider, session: &str) -> Result<(Proc, String)> {
    gateway(
        dir,
        &format!(
            "[[providers]]\nid = \"fake\"\napi = \"openai-chat\"\nbase_url = \"{}/v1\"\n[[providers.models]]\nid = \"m\"\ncontext_window = 1000000\n\
             [agent]\nmodel = \"fake/m\"\ndebounce_ms = 0\n[session]\n{session}",
            model.base_url()
        ),
    )
}

/// `write_bytes` and `wchar` of `/proc/PID/io`.
#[derive(Clone, Copy)]
struct Io {
    /// Bytes of page cache dirtied for files (what writeback writes).
    write_bytes: u64,
    /// Bytes passed to `write` and friends, any file or socket.
    wchar: u64,
}

/// The I/O counters of process `pid`.
fn io(pid: u32) -> Result<Io> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |key: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no {key} in /proc/{pid}/io").into())
    };
    Ok(Io {
        write_bytes: field("write_bytes:")?,
        wchar: field("wchar:")?,
    })
}

/// Waits until the gateway's `write_bytes` stayed the same for a second
/// (at most 30 s): the last commit of a turn may land after its final
/// event.
async fn settle(pid: u32) -> Result<Io> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = io(pid)?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = io(pid)?;
        if now.write_bytes != last.write_bytes {
            since = Instant::now();
        }
        last = now;
    }
    Ok(last)
}

/// The store thread's (writes, commits, durable commits) from `status`.
async fn commits(client: &mut Client) -> Result<[u64; 3]> {
    let status = client.call("status", json!({})).await?;
    let n = |k: &str| {
        status["store"][k]
            .as_u64()
            .ok_or(format!("no store.{k} in status"))
    };
    Ok([n("writes")?, n("commits")?, n("durableCommits")?])
}

/// One turn: send, then wait for this run's terminal `chat` event.
async fn turn(client: &mut Client, session: &str, key: &str) -> Result<()> {
    client
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": "how warm is it?", "idempotencyKey": key}),
        )
        .await?;
    loop {
        let e = client.wait_event("chat", Duration::from_secs(30)).await?;
        if e["payload"]["runId"] == key && e["payload"]["state"] != "delta" {
            if e["payload"]["state"] != "final" {
                return Err(format!("turn failed: {e}").into());
            }
            return Ok(());
        }
    }
}

/// `count` turns numbered from `first`, round-robin over `sessions`
/// sessions.
async fn turns(client: &mut Client, first: u64, count: u64, sessions: u64) -> Result<()> {
    for i in first..first + count {
        turn(client, &format!("disk{}", i % sessions), &format!("t{i}")).await?;
    }
    Ok(())
}

/// Stop the gateway with SIGTERM and wait for it to exit.
fn stop(mut gw: Proc) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &gw.0.id().to_string()])
        .status()?;
    gw.0.wait()?;
    Ok(())
}

/// Size in bytes of the store file.
fn store_size(dir: &Path) -> Result<u64> {
    Ok(std::fs::metadata(dir.join("state").join("state.redb"))?.len())
}

/// Copy `from` to `to`, reading with `O_DIRECT` so that the copy leaves
/// the page cache as it was: a cached read fills it through readahead in
/// large folios (ext4 on recent kernels), and the next gateway's 4 KiB
/// writes would then dirty, and be charged for, whole folios. Where
/// `O_DIRECT` is refused (tmpfs, which has no disk to measure anyway) it
/// copies through the cache.
fn copy_uncached(from: &Path, to: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const ALIGN: usize = 4096;
    const CHUNK: usize = 1 << 20;
    let Ok(src) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(from)
    else {
        std::fs::copy(from, to)?;
        return Ok(());
    };
    let mut buf = vec![0u8; CHUNK + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN);
    let chunk = buf
        .get_mut(start..start + CHUNK)
        .ok_or("no aligned buffer")?;
    let mut out = std::fs::File::create(to)?;
    let mut at = 0;
    loop {
        let n = src.read_at(chunk, at)?;
        if n == 0 {
            break;
        }
        out.write_all(&chunk[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Bytes of the store in pages redb has allocated and the bytes of keys
/// and values stored in them, read from a copy of the file, and the
/// tables holding most pages (`name rows/pages KiB`). The file itself
/// grows in steps and keeps free pages for reuse, so its size alone hides
/// whether pruning freed anything.
fn in_use(dir: &Path) -> Result<(u64, u64, String)> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let copy = tempfile::tempdir()?;
    let path = copy.path().join("state.redb");
    copy_uncached(&dir.join("state").join("state.redb"), &path)?;
    let db = redb::Database::open(&path)?;
    let txn = db.begin_write()?;
    let stats = txn.stats()?;
    txn.abort()?;
    let page = stats.page_size() as u64;
    let read = db.begin_read()?;
    let mut tables = Vec::new();
    for handle in read.list_tables()? {
        let table = read.open_untyped_table(handle)?;
        let t = table.stats()?;
        let pages = (t.leaf_pages() + t.branch_pages()) * page;
        tables.push((pages, table.name().to_owned(), table.len()?));
    }
    tables.sort_by(|a, b| b.cmp(a));
    let top: Vec<String> = tables
        .iter()
        .take(4)
        .map(|(pages, name, rows)| format!("{name} {rows} rows/{} KiB", pages / 1024))
        .collect();
    Ok((
        stats.allocated_pages() * page,
        stats.stored_bytes(),
        top.join(", "),
    ))
}

/// Waits (at most 60 s) until the gateway's log says the retention pass
/// deleted something, then until its writes settle.
async fn pruned(client: &mut Client, pid: u32) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = client.call("logs.tail", json!({"limit": 1000})).await?;
        let line = page["lines"].as_array().and_then(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .find(|l| l.contains("retention: deleted"))
        });
        if let Some(line) = line {
            let what = line
                .split_once("retention: ")
                .map_or(line, |(_, rest)| rest)
                .to_owned();
            settle(pid).await?;
            return Ok(what);
        }
        if Instant::now() > deadline {
            return Err("no retention pass within 60 s of the start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The knobs of the store drive.
struct Drive {
    /// Turns in all.
    total: u64,
    /// Turns per gateway run.
    every: u64,
    /// Sessions the turns go round.
    sessions: u64,
}

/// What one drive of the store found.
struct StoreRun {
    /// The store at the end (the last pruning pass included).
    last: Sizes,
    /// Largest file size measured.
    peak: u64,
    /// `write_bytes` per turn over all segments' turns.
    written_per_turn: f64,
}

/// What a stopped gateway's store takes.
#[derive(Clone, Copy, Default)]
struct Sizes {
    /// The file.
    file: u64,
    /// Pages redb has allocated.
    used: u64,
    /// Keys and values in them.
    stored: u64,
}

/// The sizes of the store in `dir` and its largest tables; its gateway
/// must be stopped.
fn sizes(dir: &Path) -> Result<(Sizes, String)> {
    let (used, stored, tables) = in_use(dir)?;
    Ok((
        Sizes {
            file: store_size(dir)?,
            used,
            stored,
        },
        tables,
    ))
}

/// Drive `d.total` turns into a fresh state dir with the `[session]`
/// table `session`, `d.every` turns per gateway run. After each run the
/// gateway is stopped and the store measured, then, when a session holds
/// more turns than `cap` (the turn cap the table sets), started again: its
/// retention pass prunes at start (and says so in its log); once that
/// settled it is stopped and the store measured again. Prints both.
async fn drive(label: &str, d: &Drive, session: &str, cap: Option<u64>) -> Result<StoreRun> {
    let dir = tempfile::tempdir()?;
    let (mut done, mut written, mut peak) = (0, 0, 0);
    let mut last = Sizes::default();
    let t0 = Instant::now();
    while done < d.total {
        let n = d.every.min(d.total - done);
        let fake = model();
        let (gw, url) = start(dir.path(), &fake, session)?;
        let pid = gw.0.id();
        let mut client = admin(&url).await?;
        let (before, c0) = (io(pid)?, commits(&mut client).await?);
        turns(&mut client, done, n, d.sessions).await?;
        done += n;
        let after = settle(pid).await?;
        let c1 = commits(&mut client).await?;
        written += after.write_bytes - before.write_bytes;
        println!(
            "{label}: turns {}–{done}: {:.0} B written per turn ({:.0} B wchar), {:.2} commits per turn ({:.2} with an fsync)",
            done - n + 1,
            (after.write_bytes - before.write_bytes) as f64 / n as f64,
            (after.wchar - before.wchar) as f64 / n as f64,
            (c1[1] - c0[1]) as f64 / n as f64,
            (c1[2] - c0[2]) as f64 / n as f64,
        );
        client.close().await;
        stop(gw)?;
        let (at_stop, mut tables) = sizes(dir.path())?;
        let what = if cap.is_some_and(|cap| done.div_ceil(d.sessions) > cap) {
            let fake = model();
            let (gw, url) = start(dir.path(), &fake, session)?;
            let mut client = admin(&url).await?;
            let what = pruned(&mut client, gw.0.id()).await?;
            client.close().await;
            stop(gw)?;
            (last, tables) = sizes(dir.path())?;
            what
        } else {
            last = at_stop;
            "nothing to prune".into()
        };
        peak = peak.max(at_stop.file).max(last.file);
        println!(
            "{label}: {done} turns ({:.0} s): file {} B, pages in use {} B, stored {} B; after the next start's pruning pass: file {} B, in use {} B, stored {} B ({what})",
            t0.elapsed().as_secs_f64(),
            at_stop.file,
            at_stop.used,
            at_stop.stored,
            last.file,
            last.used,
            last.stored,
        );
        println!("{label}: {done} turns: largest tables {tables}");
    }
    Ok(StoreRun {
        last,
        peak,
        written_per_turn: written as f64 / d.total.max(1) as f64,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let passes = env_num("BENCH_PASSES", 3);
    let n = env_num("BENCH_TURNS", 200).max(1);
    let sessions = env_num("BENCH_SESSIONS", 4).max(1);
    let idle_s = env_num("BENCH_IDLE_S", 60);
    let max_turns = env_num("BENCH_MAX_TURNS", 500);
    let d = Drive {
        total: env_num("BENCH_TOTAL_TURNS", 10_000),
        every: env_num("BENCH_RESTART_EVERY", 2_500).max(1),
        sessions,
    };
    let capped = format!("max_turns_per_session = {max_turns}\n");

    let (mut per_turn, mut wchar_per_turn, mut idle_per_h) = (Vec::new(), Vec::new(), Vec::new());
    let (mut durable_per_turn, mut per_durable_commit) = (Vec::new(), Vec::new());
    let mut stores = Vec::new();
    for pass in 0..passes {
        // Bytes per turn, on a store with the defaults. One warm-up turn per
        // session first: creating a session is not a turn's steady cost.
        let dir = tempfile::tempdir()?;
        let fake = model();
        let (gw, url) = start(dir.path(), &fake, "")?;
        let pid = gw.0.id();
        let mut client = admin(&url).await?;
        for s in 0..sessions {
            turn(&mut client, &format!("disk{s}"), &format!("warm{s}")).await?;
        }
        let before = settle(pid).await?;
        let c0 = commits(&mut client).await?;
        turns(&mut client, 0, n, sessions).await?;
        let after = settle(pid).await?;
        let c1 = commits(&mut client).await?;
        let written = (after.write_bytes - before.write_bytes) as f64 / n as f64;
        let wchar = (after.wchar - before.wchar) as f64 / n as f64;
        let [writes, commits, durable] = [0, 1, 2].map(|i| (c1[i] - c0[i]) as f64 / n as f64);
        println!(
            "pass {pass}: {n} turns over {sessions} sessions: {written:.0} B written per turn, {wchar:.0} B wchar per turn; per turn {writes:.2} store writes, {commits:.2} commits, {durable:.2} with an fsync"
        );
        per_turn.push(written);
        wchar_per_turn.push(wchar);
        durable_per_turn.push(durable);
        per_durable_commit.push(written / durable.max(f64::MIN_POSITIVE));
        client.close().await;

        // Idle: the window runs while the store drive works another gateway.
        let (idle0, idle_t0) = (io(pid)?, Instant::now());
        let store = drive(
            &format!("pass {pass} retention on"),
            &d,
            &capped,
            Some(max_turns),
        )
        .await?;
        let left = Duration::from_secs(idle_s).saturating_sub(idle_t0.elapsed());
        tokio::time::sleep(left).await;
        let (idle1, secs) = (io(pid)?, idle_t0.elapsed().as_secs_f64());
        let idle = (idle1.write_bytes - idle0.write_bytes) as f64 / secs * 3600.0;
        println!(
            "pass {pass}: idle {secs:.0} s: {} B written ({idle:.0} B/h)",
            idle1.write_bytes - idle0.write_bytes,
        );
        idle_per_h.push(idle);
        stores.push(store);
        stop(gw)?;
    }
    figure("written_per_turn", "B", per_turn);
    figure("wchar_per_turn", "B", wchar_per_turn);
    figure("durable_commits_per_turn", "", durable_per_turn);
    figure("written_per_durable_commit", "B", per_durable_commit);
    figure("idle_written_per_hour", "B/h", idle_per_h);
    store_figures(d.total, "retention_on", &stores);
    if env_num("BENCH_OFF", 1) != 0 {
        let off = drive(
            "retention off",
            &d,
            "max_turns_per_session = 0\nretention_days = 0\n",
            None,
        )
        .await?;
        store_figures(d.total, "retention_off", &[off]);
    }
    Ok(())
}

/// The figures of store drives of `total` turns (one per pass); `tag`
/// says whether retention was on.
fn store_figures(total: u64, tag: &str, runs: &[StoreRun]) {
    let of = |f: fn(&StoreRun) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let after = format!("after_{total}_turns_{tag}");
    figure(
        &format!("store_file_{after}"),
        "B",
        of(|r| r.last.file as f64),
    );
    figure(
        &format!("store_in_use_{after}"),
        "B",
        of(|r| r.last.used as f64),
    );
    figure(
        &format!("store_stored_{after}"),
        "B",
        of(|r| r.last.stored as f64),
    );
    figure(
        &format!("store_file_peak_{tag}"),
        "B",
        of(|r| r.peak as f64),
    );
    figure(
        &format!("written_per_turn_{total}_turn_drive_{tag}"),
        "B",
        of(|r| r.written_per_turn),
    );
}
