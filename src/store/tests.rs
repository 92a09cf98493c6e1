//! The store against real redb files: group commit, one transaction per
//! logical operation, run-id deduplication, eviction into the transcript,
//! close and reopen.

use std::sync::atomic::Ordering;

use super::*;
use crate::limits;

fn temp_store() -> (Store, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("state.redb");
    let store = Store::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
    (store, dir, path)
}

fn pending(id: &str, device: &str, ts: i64) -> PendingPairing {
    PendingPairing {
        request_id: id.into(),
        device_id: device.into(),
        public_key: "pk".into(),
        role: "operator".into(),
        scopes: vec![],
        client_id: "cli".into(),
        client_mode: "cli".into(),
        display_name: None,
        platform: None,
        device_family: None,
        remote_ip: None,
        reason: "not-paired".into(),
        ts,
    }
}

fn item(slot: u64, run_id: &str, message: &str) -> InboxItem {
    InboxItem {
        slot,
        run_id: run_id.into(),
        message: message.into(),
        mode: "followup".into(),
        ts: 1,
        scopes: vec!["operator.write".into()],
    }
}

fn texts(rows: &[TranscriptEntry]) -> Vec<String> {
    rows.iter().map(|r| r.content.clone()).collect()
}

#[tokio::test]
async fn writes_that_arrive_together_share_one_commit() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    // Hold the writer thread inside a write until every other write is queued.
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (entered, inside) = std::sync::mpsc::channel::<()>();
    let holder = store.clone();
    let held = tokio::spawn(async move {
        holder
            .write(false, move |_| {
                let _ = entered.send(());
                let _ = hold.recv();
                Ok(())
            })
            .await
    });
    while inside.try_recv().is_err() {
        tokio::task::yield_now().await;
    }
    // Counts the held write's commit already (counted when it starts).
    let before = store.counters().commits.load(Ordering::Relaxed);
    let writes: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let entry = TranscriptEntry::message("user", format!("m{i}"), None);
                store.append("agent:main:k", vec![entry], true).await
            })
        })
        .collect();
    // Let every write reach the queue, then let the thread go.
    while store.queue.capacity() > limits::STORE_QUEUE_DEPTH - 100 {
        tokio::task::yield_now().await;
    }
    let _ = release.send(());
    for w in writes {
        w.await.map_err(|e| StoreError::Batch(e.to_string()))??;
    }
    let _ = held.await;
    let commits = store.counters().commits.load(Ordering::Relaxed) - before;
    assert!(
        commits <= 100_usize.div_ceil(limits::STORE_MAX_BATCH) as u64,
        "100 queued writes took {commits} commits"
    );
    let rows = store.transcript_page("agent:main:k", 1000, 0).await?;
    assert_eq!(rows.len(), 100);
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_write_leaves_the_rest_of_its_commit_alone() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let refused = store.write(true, |_| Err::<(), _>(StoreError::Full("cap")));
    let fine = store.append(
        "agent:main:k",
        vec![TranscriptEntry::message("user", "kept", None)],
        true,
    );
    let (refused, fine) = tokio::join!(refused, fine);
    assert!(matches!(refused, Err(StoreError::Full(_))));
    assert_eq!(texts(&fine?.1), vec!["kept"]);
    Ok(())
}

#[tokio::test]
async fn a_run_id_is_accepted_once_even_across_a_reopen() -> Result<(), StoreError> {
    let (store, _dir, path) = temp_store();
    let key = "agent:main:k";
    let run = RunIndexEntry::accepted("r1", key, "hello");
    let first = store
        .queue_accept(
            key,
            TranscriptEntry::message("user", "hello", Some("r1")),
            run.clone(),
        )?
        .await?;
    assert!(matches!(first, Stored::New(ref rows) if rows.len() == 1));
    store.close().await;
    let store = Store::open(&path)?;
    let again = store
        .queue_accept(
            key,
            TranscriptEntry::message("user", "hello", Some("r1")),
            run.clone(),
        )?
        .await?;
    let Stored::Known(known) = again else {
        panic!("a repeated run id was stored twice");
    };
    assert_eq!(known.fingerprint, crate::ids::fingerprint("hello"));
    let parked = store
        .queue_park(key, item(9, "r1", "hello"), run, Vec::new())?
        .await?;
    assert!(matches!(parked, Stored::Known(_)));
    assert_eq!(store.transcript_page(key, 10, 0).await?.len(), 1);
    assert!(store.inbox_of(key).await?.is_empty());
    assert!(store.run_index("r1").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_full_queue_moves_its_victim_into_the_history_as_dropped() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let key = "agent:main:q";
    for (slot, id) in [(1, "a"), (2, "b")] {
        let run = RunIndexEntry::accepted(id, key, id);
        store
            .queue_park(key, item(slot, id, id), run, Vec::new())?
            .await?;
    }
    let run = RunIndexEntry::accepted("c", key, "c");
    let evict = vec![Eviction {
        slot: 1,
        why: "dropped: the session's queue was full".into(),
    }];
    let dropped = match store
        .queue_park(key, item(3, "c", "c"), run, evict)?
        .await?
    {
        Stored::New(rows) => rows,
        Stored::Known(_) => panic!("c is new"),
    };
    assert_eq!(texts(&dropped), vec!["a"]);
    assert!(dropped[0].dropped.is_some());
    let parked: Vec<String> = store
        .inbox_of(key)
        .await?
        .into_iter()
        .map(|i| i.run_id)
        .collect();
    assert_eq!(parked, vec!["b", "c"]);
    let index = store
        .run_index("a")
        .await?
        .unwrap_or_else(|| panic!("indexed"));
    assert_eq!(index.status.as_deref(), Some("dropped"));
    Ok(())
}

#[tokio::test]
async fn promotion_moves_parked_messages_in_one_step() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let key = "agent:main:p";
    for (slot, id) in [(5, "x"), (6, "y")] {
        let run = RunIndexEntry::accepted(id, key, id);
        store
            .queue_park(key, item(slot, id, id), run, Vec::new())?
            .await?;
    }
    let rows = store.promote(key, vec![5, 6, 77], "x").await?;
    assert_eq!(texts(&rows), vec!["x", "y"], "a missing slot is skipped");
    assert!(rows.iter().all(|r| r.run_id.as_deref() == Some("x")));
    assert!(store.inbox_of(key).await?.is_empty());
    assert!(
        store.promote(key, vec![5], "x").await?.is_empty(),
        "promoted once"
    );
    let all = store.inbox_all().await?;
    assert!(all.is_empty());
    Ok(())
}

#[tokio::test]
async fn pending_requests_expire_replace_are_capped_and_survive_reopen() -> Result<(), StoreError> {
    let (store, _dir, path) = temp_store();
    let now = 1_000_000_000;
    assert!(store.put_pending(pending("r1", "d1", now), now).await?.1);
    // The same device asking again while it waits keeps its request id.
    let (again, created) = store
        .put_pending(pending("rX", "d1", now + 1), now + 1)
        .await?;
    assert_eq!(
        (again.request_id.as_str(), again.ts, created),
        ("r1", now + 1, false)
    );
    // Asking for more replaces it.
    let mut wider = pending("r2", "d1", now + 1);
    wider.scopes = vec!["operator.admin".into()];
    assert!(store.put_pending(wider, now + 1).await?.1);
    store
        .put_pending(pending("r3", "d2", now - 400_000), now)
        .await?; // already expired
    let ids: Vec<_> = store
        .pending(now + 2)
        .await?
        .into_iter()
        .map(|p| p.request_id)
        .collect();
    assert_eq!(ids, vec!["r2".to_owned()]);
    let seed = store.gateway_identity_seed().await?;
    store.close().await;
    let store = Store::open(&path)?;
    assert_eq!(store.gateway_identity_seed().await?, seed);
    assert_eq!(store.pending(now + 2).await?.len(), 1);
    assert!(store.take_pending("r2", now + 2).await?.is_some());
    assert!(store.take_pending("r2", now + 2).await?.is_none());
    for i in 0..(limits::PAIRING_MAX_PENDING + 5) {
        let ts = now + i as i64;
        store
            .put_pending(pending(&format!("c{i}"), &format!("e{i}"), ts), ts)
            .await?;
    }
    let live = store.pending(now + 100).await?;
    assert_eq!(live.len(), limits::PAIRING_MAX_PENDING);
    assert_eq!(live[0].request_id, "c5", "the oldest were evicted");
    Ok(())
}

#[tokio::test]
async fn approving_takes_the_request_and_writes_the_device_together() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    store.put_pending(pending("r1", "d1", now), now).await?;
    let approved = store
        .approve_pending("r1", now, move |req, current| {
            assert!(current.is_none());
            PairedDevice {
                device_id: req.device_id.clone(),
                public_key: req.public_key.clone(),
                display_name: None,
                platform: None,
                client_id: req.client_id.clone(),
                client_mode: req.client_mode.clone(),
                roles: vec![req.role.clone()],
                scopes: vec![],
                approved_via: "manual".into(),
                created_at_ms: now,
                approved_at_ms: now,
                last_seen_at_ms: now,
                tokens: vec![],
            }
        })
        .await?;
    assert!(approved.is_some());
    assert!(store.pending(now).await?.is_empty());
    assert!(store.device("d1").await?.is_some());
    assert!(
        store
            .approve_pending("r1", now, |_, _| unreachable!())
            .await?
            .is_none(),
        "a request is approved once"
    );
    // A retry that left before the approval and lands after it asks for
    // nothing new: no stale request is left behind.
    let (_, created) = store.put_pending(pending("r9", "d1", now), now).await?;
    assert!(!created);
    assert!(store.pending(now).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn after_close_operations_say_closed() {
    let (store, _dir, _) = temp_store();
    store.close().await;
    assert!(matches!(store.session("k").await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn tables_counts_every_table_the_store_creates() -> Result<(), StoreError> {
    use redb::ReadableDatabase;
    let dir = tempfile::tempdir().map_err(|e| StoreError::Batch(e.to_string()))?;
    let path = dir.path().join("state.redb");
    Store::open(&path)?.close().await;
    let db = redb::Database::open(&path).map_err(db_err)?;
    let count = db
        .begin_read()
        .and_then(|txn| Ok(txn.list_tables()?.count()))
        .map_err(db_err)?;
    assert_eq!(
        count, TABLES,
        "update TABLES in store/mod.rs when adding a table"
    );
    drop(db);
    // A reopen with every table there writes nothing.
    let store = Store::open(&path)?;
    let _ = store.gateway_identity_seed().await?;
    let _ = store.gateway_identity_seed().await?;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        store.counters().durable_commits.load(Relaxed),
        1,
        "only the first seed"
    );
    Ok(())
}

#[tokio::test]
async fn the_audit_log_keeps_the_newest_entries_up_to_its_cap_across_a_reopen() {
    let (store, _dir, path) = temp_store();
    let total = limits::MAX_AUDIT_ENTRIES + 5;
    for i in 0..total {
        store.audit(AuditEntry::new(
            "operator cli",
            "invoke",
            &format!("write {i}"),
            "ok",
        ));
        if i % 500 == 0 {
            // Paced below the store's queue (a burst beyond it is dropped
            // with a warning): wait for a write queued after these.
            barrier(&store).await;
        }
    }
    barrier(&store).await;
    let newest = store
        .audit_since(0, 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let whats: Vec<&str> = newest.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            format!("write {}", total - 3),
            format!("write {}", total - 2),
            format!("write {}", total - 1)
        ]
    );
    store.close().await;
    let store = Store::open(&path).unwrap_or_else(|e| panic!("reopen: {e}"));
    let all = store
        .audit_since(0, limits::MAX_AUDIT_PAGE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), limits::MAX_AUDIT_PAGE, "a page is capped");
    let count = store
        .read(|txn| {
            use redb::ReadableTableMetadata;
            let t = txn
                .open_table(redb::TableDefinition::<(&str, u64), &[u8]>::new("audit"))
                .map_err(db_err)?;
            t.len().map_err(db_err)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        count as usize,
        limits::MAX_AUDIT_ENTRIES,
        "the oldest 5 went"
    );
    let since_now = store
        .audit_since(crate::ids::now_ms() + 1000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(since_now.is_empty());
}

/// Wait until every write queued so far has committed.
async fn barrier(store: &Store) {
    let done = store
        .write_queued(false, |_| Ok(()))
        .unwrap_or_else(|e| panic!("{e}"));
    done.await.unwrap_or_else(|e| panic!("{e}"));
}

/// The meta table as redb sees it, for writing a format version by hand.
const RAW_META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");

/// Set (or, with `None`, remove) the stored format version of a closed
/// store file, with redb itself.
fn set_raw_version(path: &std::path::Path, version: Option<&str>) {
    let db = redb::Database::create(path).unwrap_or_else(|e| panic!("raw open: {e}"));
    let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
    {
        let mut table = txn.open_table(RAW_META).unwrap_or_else(|e| panic!("{e}"));
        match version {
            Some(v) => table.insert("format_version", v.as_bytes()).map(drop),
            None => table.remove("format_version").map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}"));
    }
    txn.commit().unwrap_or_else(|e| panic!("{e}"));
}

/// The stored format version of a closed store file.
fn raw_version(path: &std::path::Path) -> Option<String> {
    use redb::ReadableDatabase;
    let db = redb::Database::create(path).unwrap_or_else(|e| panic!("raw open: {e}"));
    let txn = db.begin_read().unwrap_or_else(|e| panic!("{e}"));
    let table = txn.open_table(RAW_META).unwrap_or_else(|e| panic!("{e}"));
    table
        .get("format_version")
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|v| String::from_utf8_lossy(v.value()).into_owned())
}

#[tokio::test]
async fn a_new_store_is_stamped_with_the_current_format() {
    let (store, _dir, path) = temp_store();
    store.close().await;
    assert_eq!(raw_version(&path), Some(FORMAT_VERSION.to_string()));
}

#[tokio::test]
async fn a_store_from_before_format_versions_is_migrated_in_place() -> Result<(), StoreError> {
    let (store, _dir, path) = temp_store();
    let row = TranscriptEntry::message("user", "kept across the migration", None);
    store.append("agent:main:main", vec![row], true).await?;
    store.close().await;
    // What every store written before the version key looks like.
    set_raw_version(&path, None);
    assert_eq!(raw_version(&path), None);

    let store = Store::open(&path)?;
    let rows = store.transcript_page("agent:main:main", 10, 0).await?;
    assert_eq!(texts(&rows), ["kept across the migration"]);
    store.close().await;
    assert_eq!(
        raw_version(&path),
        Some(FORMAT_VERSION.to_string()),
        "stamped by the first open"
    );
    Ok(())
}

#[tokio::test]
async fn a_store_from_a_newer_pinclaw_is_refused_and_left_alone() {
    let (store, _dir, path) = temp_store();
    store.close().await;
    let newer = (FORMAT_VERSION + 1).to_string();
    set_raw_version(&path, Some(&newer));

    let refused = Store::open(&path).map(drop);
    let Err(e @ StoreError::TooNew { .. }) = refused else {
        panic!("a newer store must be refused, got {refused:?}");
    };
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "this store was written by a newer pinclaw (format {newer}); this binary reads up to {FORMAT_VERSION}; upgrade pinclaw or restore a backup"
        )),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!e.is_transient());
    assert_eq!(raw_version(&path), Some(newer), "nothing was written");

    // A value that is not a number is refused the same way.
    set_raw_version(&path, Some("two"));
    assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
}

const DAY_MS: i64 = 86_400_000;

/// A row written at `ts`.
fn row_at(role: &str, content: &str, ts: i64) -> TranscriptEntry {
    let mut row = TranscriptEntry::message(role, content, None);
    row.ts = ts;
    row
}

/// One turn written at `ts`: the user's message, an assistant row calling
/// a tool, the tool's result and the reply (`name` in each).
fn turn_at(name: &str, ts: i64) -> Vec<TranscriptEntry> {
    let mut call = row_at("assistant", "", ts);
    call.tool_calls =
        Some(serde_json::json!([{"id": format!("c-{name}"), "name": "time", "arguments": "{}"}]));
    let mut result = row_at("tool", &format!("result {name}"), ts + 1);
    result.tool_call_id = Some(format!("c-{name}"));
    vec![
        row_at("user", &format!("ask {name}"), ts),
        call,
        result,
        row_at("assistant", &format!("reply {name}"), ts + 2),
    ]
}

fn by_age(days: i64) -> Retention {
    Retention {
        max_age_ms: Some(days * DAY_MS),
        max_turns: None,
    }
}

#[tokio::test]
async fn retention_deletes_whole_turns_older_than_the_age_and_keeps_the_newest()
-> Result<(), StoreError> {
    let (store, _dir, path) = temp_store();
    let now = crate::ids::now_ms();
    let key = "agent:main:main";
    for (name, age_days) in [("old", 100), ("middle", 50), ("new", 1)] {
        store
            .append(key, turn_at(name, now - age_days * DAY_MS), true)
            .await?;
    }
    let pruned = store.prune_transcripts(by_age(90), now).await?;
    assert_eq!((pruned.rows, pruned.sessions), (4, 1), "{pruned:?}");

    let rows = store.transcript_page(key, 100, 0).await?;
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0].content, "ask middle", "what is left starts a turn");
    assert_eq!(rows[7].content, "reply new");
    let meta = store.session(key).await?;
    assert_eq!(meta.map(|m| (m.entries, m.last_seq)), Some((8, 12)));

    // Nothing more to delete: nothing is written at all.
    let commits = store.counters().commits.load(Ordering::Relaxed);
    let again = store.prune_transcripts(by_age(90), now).await?;
    assert_eq!(again, Pruned::default());
    assert_eq!(store.counters().commits.load(Ordering::Relaxed), commits);

    // Durable: the pass ended with a flush.
    store.close().await;
    let store = Store::open(&path)?;
    assert_eq!(store.transcript_page(key, 100, 0).await?.len(), 8);
    Ok(())
}

#[tokio::test]
async fn a_turn_goes_whole_even_when_its_last_rows_are_newer_than_the_cut() -> Result<(), StoreError>
{
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    let key = "agent:main:main";
    // The user asked just before the cut; the reply came after it.
    let mut straddling = turn_at("straddling", now - 7 * DAY_MS - 10);
    if let Some(reply) = straddling.last_mut() {
        reply.ts = now - 7 * DAY_MS + 10;
    }
    store.append(key, straddling, true).await?;
    store
        .append(key, turn_at("kept", now - DAY_MS), true)
        .await?;
    let pruned = store.prune_transcripts(by_age(7), now).await?;
    assert_eq!(pruned.rows, 4);
    let rows = store.transcript_page(key, 100, 0).await?;
    assert_eq!(
        texts(&rows),
        ["ask kept", "", "result kept", "reply kept"],
        "no reply (or tool result) is left without its question"
    );
    Ok(())
}

#[tokio::test]
async fn the_turn_cap_keeps_each_sessions_newest_turns() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    for i in 0..10 {
        store
            .append(
                "agent:main:busy",
                turn_at(&format!("b{i}"), now - 1000 + i),
                true,
            )
            .await?;
    }
    store
        .append("agent:main:quiet", turn_at("q0", now - 1000), true)
        .await?;
    let cap = Retention {
        max_age_ms: Some(90 * DAY_MS),
        max_turns: Some(3),
    };
    let pruned = store.prune_transcripts(cap, now).await?;
    assert_eq!((pruned.rows, pruned.sessions), (28, 1), "{pruned:?}");
    let busy = store.transcript_page("agent:main:busy", 100, 0).await?;
    let asks: Vec<&str> = busy
        .iter()
        .filter(|r| r.role.as_deref() == Some("user"))
        .map(|r| r.content.as_str())
        .collect();
    assert_eq!(asks, ["ask b7", "ask b8", "ask b9"]);
    assert_eq!(busy.len(), 12);
    assert_eq!(
        store
            .transcript_page("agent:main:quiet", 100, 0)
            .await?
            .len(),
        4,
        "a session under the cap is untouched"
    );
    Ok(())
}

#[tokio::test]
async fn a_large_backlog_is_pruned_in_bounded_batches() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    let key = "agent:main:main";
    // 200 turns of three rows: the batch boundaries fall inside turns.
    for i in 0..200 {
        let ts = now - 200 * DAY_MS + i;
        let rows = vec![
            row_at("user", &format!("ask {i}"), ts),
            row_at("assistant", "thinking", ts),
            row_at("assistant", &format!("reply {i}"), ts),
        ];
        store.append(key, rows, false).await?;
    }
    store.append(key, turn_at("recent", now), true).await?;
    let pruned = store.prune_transcripts(by_age(30), now).await?;
    assert_eq!(pruned.rows, 600);
    let batches = 600_u64.div_ceil(limits::TRANSCRIPT_PRUNE_BATCH as u64);
    assert_eq!(pruned.batches, batches, "{pruned:?}");
    let rows = store.transcript_page(key, 100, 0).await?;
    assert_eq!(rows.first().map(|r| r.content.as_str()), Some("ask recent"));
    assert_eq!(rows.len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_session_whose_turns_are_all_gone_stays_listed_and_goes_on() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    let key = "agent:main:old";
    store
        .append(key, turn_at("ancient", now - 400 * DAY_MS), true)
        .await?;
    store
        .update_session(key, |m| m.label = Some("kitchen".into()))
        .await?;
    let before = store.session(key).await?;
    let pruned = store.prune_transcripts(by_age(90), now).await?;
    assert_eq!(pruned.rows, 4);

    let listed = store.sessions().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entries, 0);
    assert_eq!(listed[0].label.as_deref(), Some("kitchen"));
    assert_eq!(
        listed[0].session_id,
        before.map(|m| m.session_id).unwrap_or_default(),
        "the same session"
    );
    assert!(store.transcript_page(key, 100, 0).await?.is_empty());
    let window = store.session_window(key, 400).await?;
    assert!(window.meta.is_some() && window.rows.is_empty() && window.marker.is_none());

    // A new message continues the session after the deleted rows.
    let (meta, rows) = store
        .append(
            key,
            vec![TranscriptEntry::message("user", "hello again", None)],
            true,
        )
        .await?;
    assert_eq!((meta.entries, rows[0].seq), (1, 5));
    Ok(())
}

#[tokio::test]
async fn retention_off_keeps_everything_and_writes_nothing() -> Result<(), StoreError> {
    let (store, _dir, _) = temp_store();
    let now = crate::ids::now_ms();
    store
        .append(
            "agent:main:main",
            turn_at("ancient", now - 4000 * DAY_MS),
            true,
        )
        .await?;
    let commits = store.counters().commits.load(Ordering::Relaxed);
    let pruned = store.prune_transcripts(Retention::default(), now).await?;
    assert_eq!(pruned, Pruned::default());
    assert_eq!(store.counters().commits.load(Ordering::Relaxed), commits);
    assert_eq!(
        store.transcript_page("agent:main:main", 10, 0).await?.len(),
        4
    );
    Ok(())
}
