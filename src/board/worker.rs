//! The board's own threads: hardware calls run here, never on tokio's
//! blocking pool, which the board would share with model-provider streams
//! that hold a blocking thread for minutes.
//!
//! A [`BoardWorker`] owns two [`Lane`]s, each one named OS thread draining a
//! bounded job queue in order:
//! - `pinclaw-board-io` ([`BoardWorker::io`]): GPIO reads and writes, PWM
//!   settings and pulse edges. Latency-critical; each job takes microseconds.
//! - `pinclaw-board-sensors` ([`BoardWorker::sensors`]): sensor reads. Slow
//!   (DS18B20 conversion ~750 ms, DHT22 retries, I2C conversion waits), so
//!   they get their own thread and never delay a pin write.
//!
//! Results come back through a `tokio::sync::oneshot`. A full queue is
//! refused at once with [`BoardError::Busy`] instead of waiting (see
//! [`crate::limits::BOARD_IO_QUEUE`] and
//! [`crate::limits::BOARD_SENSOR_QUEUE`]). A job that panics becomes a
//! [`BoardError::Hardware`] for its caller and the thread carries on (in
//! builds with `panic = "abort"`, as the release profile is, a panic ends the
//! process instead, as it would anywhere else). A job runs even if its caller
//! stops waiting, like a write already on the wire.
//!
//! A lane's thread ends once every handle on the lane is dropped and the
//! jobs already queued have run: when the board is dropped, or, if a pulse
//! is running then, right after that pulse's off-edge.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::error::BoardError;
use crate::limits;

/// Name of the pin I/O thread.
pub const IO_THREAD: &str = "pinclaw-board-io";

/// Name of the sensor-read thread.
pub const SENSOR_THREAD: &str = "pinclaw-board-sensors";

/// One unit of work, result delivery included.
type Job = Box<dyn FnOnce() + Send>;

/// One named thread and its bounded job queue. Clones share the thread.
#[derive(Debug, Clone)]
pub struct Lane {
    /// What the queue holds, for errors (`pin I/O`, `sensor read`).
    work: &'static str,
    capacity: usize,
    retry_after_ms: u64,
    tx: mpsc::Sender<Job>,
}

impl Lane {
    /// Starts thread `thread_name` with a queue of `capacity` jobs (at least
    /// one). `work` names the jobs in errors; `retry_after_ms` is the hint a
    /// refused caller gets.
    pub fn start(
        thread_name: &'static str,
        work: &'static str,
        capacity: usize,
        retry_after_ms: u64,
    ) -> Result<Lane, BoardError> {
        let capacity = capacity.max(1);
        let (tx, mut rx) = mpsc::channel::<Job>(capacity);
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job();
                }
            })
            .map_err(|e| {
                BoardError::Hardware(format!("cannot start the {thread_name} thread: {e}"))
            })?;
        Ok(Lane {
            work,
            capacity,
            retry_after_ms,
            tx,
        })
    }

    /// Runs `job` on this lane's thread and returns its result. When the
    /// queue is full it refuses at once with [`BoardError::Busy`] and `job`
    /// never runs.
    pub async fn run<T, F>(&self, job: F) -> Result<T, BoardError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, BoardError> + Send + 'static,
    {
        let (job, done) = self.wrap(job);
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => BoardError::Busy {
                queue: self.work,
                capacity: self.capacity,
                retry_after_ms: self.retry_after_ms,
            },
            TrySendError::Closed(_) => self.stopped(),
        })?;
        self.wait(done).await
    }

    /// Like [`Lane::run`], but waits for room in a full queue instead of
    /// refusing: for work that must happen, such as a pulse's off-edge.
    pub async fn run_when_free<T, F>(&self, job: F) -> Result<T, BoardError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, BoardError> + Send + 'static,
    {
        let (job, done) = self.wrap(job);
        self.tx.send(job).await.map_err(|_| self.stopped())?;
        self.wait(done).await
    }

    /// Wraps `job` so that its result, or its panic as an error, goes to the
    /// returned receiver.
    fn wrap<T, F>(&self, job: F) -> (Job, oneshot::Receiver<Result<T, BoardError>>)
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, BoardError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work = self.work;
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
                Err(BoardError::Hardware(format!(
                    "a {work} job panicked: {}",
                    panic_message(panic.as_ref())
                )))
            });
            // The caller may have stopped waiting; the work is done anyway.
            let _ = tx.send(result);
        });
        (job, rx)
    }

    async fn wait<T>(
        &self,
        done: oneshot::Receiver<Result<T, BoardError>>,
    ) -> Result<T, BoardError> {
        done.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> BoardError {
        BoardError::Hardware(format!("the board's {} thread has stopped", self.work))
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The board's executor: one lane for pin I/O, one for sensor reads.
#[derive(Debug)]
pub struct BoardWorker {
    io: Lane,
    sensors: Lane,
}

impl BoardWorker {
    /// Starts both threads with the queue sizes of [`crate::limits`].
    pub fn start() -> Result<BoardWorker, BoardError> {
        Ok(BoardWorker {
            io: Lane::start(
                IO_THREAD,
                "pin I/O",
                limits::BOARD_IO_QUEUE,
                limits::BOARD_IO_RETRY_MS,
            )?,
            sensors: Lane::start(
                SENSOR_THREAD,
                "sensor read",
                limits::BOARD_SENSOR_QUEUE,
                limits::BOARD_SENSOR_RETRY_MS,
            )?,
        })
    }

    /// The pin I/O lane (GPIO, PWM, pulse edges).
    pub fn io(&self) -> &Lane {
        &self.io
    }

    /// The sensor-read lane.
    pub fn sensors(&self) -> &Lane {
        &self.sensors
    }
}
