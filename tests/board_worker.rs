//! The board's own threads: named lanes with bounded queues, panics turned
//! into errors, threads that end with their owner.

mod board_support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use board_support::{poll_once, settle, sim_config, sim_spec};
use pinclaw::board::hal::{Board, EdgeSink, I2cGuard, Level, PinMode, SysRoot};
use pinclaw::board::sim::SimBoard;
use pinclaw::board::worker::{BoardWorker, IO_THREAD, Lane, SENSOR_THREAD};
use pinclaw::board::{BoardError, DeviceTable, ReadingValue, WriteOutcome, WriteRequest};
use pinclaw::limits;

fn thread_name() -> Result<String, BoardError> {
    Ok(std::thread::current().name().unwrap_or("").to_string())
}

#[tokio::test]
async fn each_lane_runs_on_its_own_named_thread() {
    let worker = BoardWorker::start().unwrap();
    assert_eq!(worker.io().run(thread_name).await.unwrap(), IO_THREAD);
    assert_eq!(
        worker.sensors().run(thread_name).await.unwrap(),
        SENSOR_THREAD
    );
    assert_eq!(IO_THREAD, "pinclaw-board-io");
    assert_eq!(SENSOR_THREAD, "pinclaw-board-sensors");
}

#[tokio::test]
async fn a_panicking_job_is_an_error_and_the_lane_keeps_working() {
    let lane = Lane::start("pinclaw-test-panic", "test", 4, 10).unwrap();
    let e = lane
        .run(|| -> Result<(), BoardError> { panic!("relay driver exploded") })
        .await
        .unwrap_err();
    assert_eq!(e.code(), "HARDWARE");
    assert!(e.to_string().contains("relay driver exploded"), "{e}");
    assert_eq!(
        lane.run(thread_name).await.unwrap(),
        "pinclaw-test-panic",
        "the same thread carries on"
    );
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_runs_nothing() {
    let lane = Lane::start("pinclaw-test-full", "test", 2, 25).unwrap();
    // Hold the thread inside one job, then fill the queue behind it.
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let mut holding = Box::pin(lane.run(move || {
        entered_tx.send(()).unwrap();
        let _ = released.recv_timeout(Duration::from_secs(60));
        Ok(())
    }));
    assert!(poll_once(&mut holding).await.is_pending());
    entered.recv_timeout(Duration::from_secs(60)).unwrap();
    let (ran_tx, ran) = mpsc::channel();
    let job = |i: i32| {
        let ran_tx = ran_tx.clone();
        move || {
            ran_tx.send(i).unwrap();
            Ok(i)
        }
    };
    let mut queued = vec![Box::pin(lane.run(job(0))), Box::pin(lane.run(job(1)))];
    for q in &mut queued {
        assert!(
            poll_once(q).await.is_pending(),
            "queued behind the held job"
        );
    }

    let refused = lane.run(job(99)).await.unwrap_err();
    assert_eq!(refused.code(), "BOARD_BUSY");
    assert!(refused.to_string().contains("retry in 25 ms"), "{refused}");
    let BoardError::Busy {
        capacity,
        retry_after_ms,
        ..
    } = refused
    else {
        unreachable!()
    };
    assert_eq!((capacity, retry_after_ms), (2, 25));
    assert_eq!(refused_retry(&lane, job(98)).await, Some(25));
    // Work that must happen waits for room instead of being refused.
    let mut must = Box::pin(lane.run_when_free(job(2)));
    assert!(poll_once(&mut must).await.is_pending());

    drop(release);
    holding.await.unwrap();
    for q in queued {
        q.await.unwrap();
    }
    assert_eq!(must.await.unwrap(), 2);
    drop(ran_tx);
    let ran: Vec<i32> = ran.iter().collect();
    assert_eq!(ran, vec![0, 1, 2], "the refused jobs never ran");
}

/// The retry hint of a refused call.
async fn refused_retry(
    lane: &Lane,
    job: impl FnOnce() -> Result<i32, BoardError> + Send + 'static,
) -> Option<u64> {
    lane.run(job).await.err().and_then(|e| e.retry_after_ms())
}

thread_local! {
    /// Dropped when the thread that set it ends.
    static ON_EXIT: RefCell<Option<mpsc::Sender<()>>> = const { RefCell::new(None) };
}

/// A receiver that disconnects when the lane's thread ends.
async fn watch_thread_end(lane: &Lane) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    lane.run(move || {
        ON_EXIT.with(|slot| *slot.borrow_mut() = Some(tx));
        Ok(())
    })
    .await
    .unwrap();
    rx
}

#[tokio::test]
async fn the_threads_end_when_the_worker_is_dropped() {
    let worker = BoardWorker::start().unwrap();
    let io = watch_thread_end(worker.io()).await;
    let sensors = watch_thread_end(worker.sensors()).await;
    assert_eq!(io.try_recv(), Err(mpsc::TryRecvError::Empty), "io alive");
    drop(worker);
    for (name, ended) in [("io", io), ("sensors", sensors)] {
        // Only a hang guard: the thread ends as soon as its queue closes.
        assert_eq!(
            ended.recv_timeout(Duration::from_secs(60)),
            Err(mpsc::RecvTimeoutError::Disconnected),
            "the {name} thread ended"
        );
    }
}

// ---- The board on its threads ---------------------------------------------

const RELAY1: u8 = 17;

/// Which board calls wait at the gate.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    PinReads,
    FileReads,
}

/// A closed gate that board calls wait at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        // Only a hang guard for a broken test; the test opens the gate.
        let _ = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(60), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }
}

/// The simulator, with one kind of call held at a gate (a slow sensor, a
/// hung pin), and a channel that disconnects once every board thread that
/// called it has ended.
struct GatedBoard {
    sim: Arc<SimBoard>,
    held: Held,
    gate: Gate,
    thread_ends: Mutex<mpsc::Sender<()>>,
}

impl GatedBoard {
    fn new(held: Held) -> (Arc<GatedBoard>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let board = GatedBoard {
            sim: Arc::new(SimBoard::for_spec(&sim_spec(vec![]))),
            held,
            gate: Gate::default(),
            thread_ends: Mutex::new(tx),
        };
        (Arc::new(board), rx)
    }

    /// Called on every board call: marks board threads so their end shows.
    fn enter(&self, call: Held) {
        let on_board_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("pinclaw-board-"));
        if on_board_thread {
            ON_EXIT.with(|slot| {
                slot.borrow_mut()
                    .get_or_insert_with(|| self.thread_ends.lock().unwrap().clone());
            });
        }
        if call == self.held {
            self.gate.pass();
        }
    }
}

impl Board for GatedBoard {
    fn backend(&self) -> &'static str {
        self.sim.backend()
    }
    fn model(&self) -> String {
        self.sim.model()
    }
    fn gpio_setup(&self, pin: u8, mode: PinMode) -> Result<(), BoardError> {
        self.sim.gpio_setup(pin, mode)
    }
    fn gpio_read(&self, pin: u8) -> Result<Level, BoardError> {
        self.enter(Held::PinReads);
        self.sim.gpio_read(pin)
    }
    fn gpio_write(&self, pin: u8, level: Level) -> Result<(), BoardError> {
        self.sim.gpio_write(pin, level)
    }
    fn gpio_watch(&self, pin: u8, sink: EdgeSink) -> Result<(), BoardError> {
        self.sim.gpio_watch(pin, sink)
    }
    fn pwm_set(&self, pin: u8, duty: f64, hz: f64) -> Result<(), BoardError> {
        self.sim.pwm_set(pin, duty, hz)
    }
    fn i2c(&self, bus: u8) -> Result<I2cGuard<'_>, BoardError> {
        self.sim.i2c(bus)
    }
    fn read_file(&self, rel: &str) -> Result<String, BoardError> {
        self.enter(Held::FileReads);
        self.sim.read_file(rel)
    }
    fn sysroot(&self) -> &SysRoot {
        self.sim.sysroot()
    }
}

fn gated_table(held: Held) -> (DeviceTable, Arc<GatedBoard>, mpsc::Receiver<()>) {
    let (board, thread_ends) = GatedBoard::new(held);
    let table = DeviceTable::new(board.clone(), sim_spec(vec![])).unwrap();
    (table, board, thread_ends)
}

fn set(name: &str, on: bool) -> WriteRequest {
    WriteRequest::Set {
        name: name.into(),
        on,
    }
}

async fn write(table: &DeviceTable, request: WriteRequest) -> Result<WriteOutcome, BoardError> {
    table.execute(table.plan(&request)?).await
}

#[test]
fn pin_io_and_pulse_edges_do_not_wait_behind_a_saturated_blocking_pool() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let table = DeviceTable::from_config(&sim_config(vec![])).unwrap();
        let sim = Arc::clone(table.sim().unwrap());

        // Two "provider streams" take the whole blocking pool. Each sleeps
        // until released, or for a minute if the board never gets its turn.
        let finished = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = mpsc::channel();
        let mut releases = Vec::new();
        let mut sleepers = Vec::new();
        for _ in 0..2 {
            let (release, released) = mpsc::channel::<()>();
            releases.push(release);
            let (started_tx, finished) = (started_tx.clone(), Arc::clone(&finished));
            sleepers.push(tokio::task::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                let _ = released.recv_timeout(Duration::from_secs(60));
                finished.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for _ in 0..2 {
            started.recv_timeout(Duration::from_secs(60)).unwrap();
        }
        // Proof that the pool is full: one more blocking task has to wait.
        let probe = {
            let finished = Arc::clone(&finished);
            tokio::task::spawn_blocking(move || finished.load(Ordering::SeqCst))
        };

        write(&table, set("relay1", true)).await.unwrap();
        assert_eq!(sim.level(RELAY1), Some(Level::Low));
        assert_eq!(finished.load(Ordering::SeqCst), 0, "write before sleepers");

        assert!(table.read_pin("relay1").await.unwrap().value);
        assert_eq!(finished.load(Ordering::SeqCst), 0, "read before sleepers");

        let writes = sim.writes(RELAY1);
        let pulse = WriteRequest::Pulse {
            name: "relay1".into(),
            ms: 5,
        };
        let p = write(&table, pulse).await.unwrap();
        assert!(
            matches!(
                p,
                WriteOutcome::Pulsed {
                    superseded: false,
                    ..
                }
            ),
            "the off-edge ran: {p:?}"
        );
        assert_eq!(sim.writes(RELAY1), writes + 2, "on, then off");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "pulse off-edge before sleepers"
        );
        assert!(!probe.is_finished(), "the blocking pool was saturated");

        drop(releases);
        for s in sleepers {
            s.await.unwrap();
        }
        assert!(probe.await.unwrap() >= 1, "the probe waited for a sleeper");
    });
}

#[tokio::test]
async fn a_slow_sensor_read_does_not_delay_a_pin_write() {
    let (table, board, _) = gated_table(Held::FileReads);
    let table = Arc::new(table);
    let reading = {
        let table = Arc::clone(&table);
        tokio::spawn(async move { table.read_sensor("cpu_temp").await })
    };
    settle("the sensor thread is inside the read", || {
        board.gate.entered() == 1
    })
    .await;

    write(&table, set("relay1", true)).await.unwrap();
    assert_eq!(board.sim.level(RELAY1), Some(Level::Low));
    assert!(
        !reading.is_finished(),
        "the write did not wait for the read"
    );

    board.gate.open();
    let r = reading.await.unwrap().unwrap();
    assert_eq!(r.value, Some(ReadingValue::Measured(48.312)));
}

#[tokio::test]
async fn a_full_pin_queue_is_busy_and_spends_no_write() {
    let (table, board, _) = gated_table(Held::PinReads);
    let read = || table.read_pin("relay1");
    let mut held = Box::pin(read());
    assert!(poll_once(&mut held).await.is_pending());
    settle("the io thread is inside the read", || {
        board.gate.entered() == 1
    })
    .await;
    let mut queued: Vec<_> = (0..limits::BOARD_IO_QUEUE)
        .map(|_| Box::pin(read()))
        .collect();
    for q in &mut queued {
        assert!(poll_once(q).await.is_pending());
    }

    let e = read().await.unwrap_err();
    assert_eq!(e.code(), "BOARD_BUSY");
    assert_eq!(e.retry_after_ms(), Some(limits::BOARD_IO_RETRY_MS));
    let writes = board.sim.writes(RELAY1);
    let e = write(&table, set("relay1", true)).await.unwrap_err();
    assert_eq!(e.code(), "BOARD_BUSY", "{e}");
    assert_eq!(board.sim.writes(RELAY1), writes, "nothing was written");

    board.gate.open();
    held.await.unwrap();
    for q in queued {
        q.await.unwrap();
    }
    // The refused writes spent no budget: relay1 allows 30 a minute.
    for i in 0..30 {
        write(&table, set("relay1", i % 2 == 0))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
}

#[tokio::test]
async fn dropping_the_board_ends_its_threads() {
    let (table, board, thread_ends) = gated_table(Held::FileReads);
    board.gate.open();
    table.read_pin("relay1").await.unwrap();
    table.read_sensor("cpu_temp").await.unwrap();
    assert_eq!(thread_ends.try_recv(), Err(mpsc::TryRecvError::Empty));
    drop(table);
    drop(board);
    assert_eq!(
        thread_ends.recv_timeout(Duration::from_secs(60)),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "both board threads ended"
    );
}
