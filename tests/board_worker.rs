//! The board's own threads: named lanes with bounded queues, panics turned
//! into errors, threads that end with their owner.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use pinclaw::board::BoardError;
use pinclaw::board::worker::{BoardWorker, IO_THREAD, Lane, SENSOR_THREAD};

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

/// Polls `fut` once: a board call enqueues its job on the first poll.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
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
        assert!(poll_once(q).await.is_pending(), "queued behind the held job");
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
