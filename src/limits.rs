//! Every cap in one place.
//!
//! Each constant names what it bounds and what happens when the bound is hit.
//! Anything that grows with traffic must be bounded by one of these.

use std::time::Duration;

/// Total WebSocket + HTTP connections the gateway holds at once. Beyond it a new
/// connection gets `HTTP 503` before any upgrade.
pub const MAX_CONNECTIONS: usize = 256;

/// Sockets per client address (IPv6: per /64) that have not finished the
/// handshake, counted from `accept`, before their request head is read.
/// Beyond it a new socket gets `HTTP 429` at once and is closed.
pub const MAX_PREAUTH_CONNECTIONS_PER_IP: usize = 32;

/// Sockets that have not finished the handshake, from all addresses. Beyond
/// it a new socket gets `HTTP 503` at once and is closed.
pub const MAX_PREAUTH_CONNECTIONS: usize = 128;

/// Largest frame accepted before `hello-ok`; a bigger one closes with 1009.
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;

/// Largest frame accepted after the handshake (advertised as `policy.maxPayload`).
/// A bigger one closes the socket with 1009. Smaller than OpenClaw's 25 MiB on
/// purpose: a Pi Zero has 512 MB shared with everything else.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Bytes queued for one connection before it counts as a slow consumer
/// (advertised as `policy.maxBufferedBytes`). Droppable events are dropped past
/// it; anything else closes the socket with 1008 "slow consumer".
pub const MAX_BUFFERED_BYTES: usize = 1024 * 1024;

/// Frames queued for one connection (same behaviour as [`MAX_BUFFERED_BYTES`]).
pub const MAX_QUEUED_FRAMES: usize = 256;

/// Kernel send buffer of each accepted socket (`SO_SNDBUF`; Linux doubles
/// it). Without it, autotuning lets one stalled client pin up to 4 MB of
/// kernel memory before our own queue even notices.
pub const SOCKET_SEND_BUFFER_BYTES: u32 = 128 * 1024;

/// Pending connections the kernel queues before `accept`.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Initial size of tungstenite's read buffer per connection (it grows for a
/// larger frame). The default (128 KiB) would cost ~130 KB per idle socket;
/// requests are a few hundred bytes, so 1 KiB is enough.
pub const WS_READ_BUFFER_BYTES: usize = 1024;

/// Bytes tungstenite batches before writing to the socket.
pub const WS_WRITE_BUFFER_BYTES: usize = 0;

/// Largest HTTP request head (request line + headers) the listener reads.
/// Beyond it the request gets `HTTP 431`.
pub const MAX_HTTP_HEAD_BYTES: usize = 8 * 1024;

/// Most headers parsed from one HTTP request.
pub const MAX_HTTP_HEADERS: usize = 32;

/// Time a client has to send its HTTP request head; then the socket is
/// closed (with its pre-auth slot).
pub const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a kept-alive HTTP connection (the dashboard's page and assets)
/// may sit idle before the next request head; then it is closed.
pub const HTTP_KEEPALIVE_IDLE: Duration = Duration::from_secs(5);

/// Requests served on one kept-alive HTTP connection; after that it is
/// closed (the browser opens another).
pub const HTTP_KEEPALIVE_REQUESTS: usize = 100;

/// Time from socket open to a successful `connect`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Interval of the application `tick` event.
pub const TICK_INTERVAL: Duration = Duration::from_secs(30);

/// Interval of WebSocket pings; a connection that has not answered the previous
/// ping by the next one is closed.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);

/// Time a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Allowed clock skew of a device signature's `signedAt`.
pub const DEVICE_SIGNATURE_SKEW_MS: i64 = 120_000;

/// Failed auth attempts per IP inside [`AUTH_FAIL_WINDOW`] before lockout.
pub const AUTH_FAIL_MAX: u32 = 10;
/// Window over which failed auth attempts are counted.
pub const AUTH_FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Lockout after too many failed auth attempts.
pub const AUTH_LOCKOUT: Duration = Duration::from_secs(300);
/// IPs tracked by the auth rate limiter; when full the stalest entry is evicted.
pub const AUTH_LIMITER_MAX_IPS: usize = 1024;

/// Idempotency cache: entries kept at most this long.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(300);
/// Idempotency cache: most entries; when full the oldest finished entry is
/// evicted (work still in flight is never evicted: a new key is refused).
pub const IDEMPOTENCY_MAX_ENTRIES: usize = 1000;
/// Idempotency cache: bytes of results kept (JSON text, one copy each);
/// beyond it the oldest finished entries are evicted.
pub const IDEMPOTENCY_MAX_BYTES: usize = 1024 * 1024;
/// Idempotency cache: the largest single result kept for replay. A larger
/// result is remembered only as "ran and succeeded" (what a retry needs).
pub const IDEMPOTENCY_MAX_RESULT_BYTES: usize = 64 * 1024;

/// Pending device pairing requests expire after this long.
pub const PAIRING_PENDING_TTL: Duration = Duration::from_secs(300);
/// Most pending device pairing requests; when full the oldest is evicted.
pub const PAIRING_MAX_PENDING: usize = 64;
/// Most paired devices; pairing more is refused.
pub const PAIRING_MAX_DEVICES: usize = 1024;

/// A paired device's `lastSeenAtMs` is written at most this often (each
/// write is bookkeeping without an fsync; a client reconnecting in a loop
/// must not turn into a write per connect on the SD card).
pub const LAST_SEEN_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// Lines kept in the in-memory log ring served by `logs.tail`; oldest dropped.
pub const LOG_RING_LINES: usize = 1000;
/// Longest single log line kept in the ring (longer lines are cut).
pub const LOG_LINE_MAX_BYTES: usize = 1024;
/// Most lines one `logs.tail` call returns.
pub const LOGS_TAIL_MAX_LINES: usize = 1000;

/// Jobs waiting for the store thread (reads and writes). Beyond it a
/// write queued under a lock is refused with a retryable `UNAVAILABLE`
/// ("the state database is busy") before anything is acknowledged; other
/// callers wait for room.
pub const STORE_QUEUE_DEPTH: usize = 1024;

/// Most jobs the store thread takes into one commit (group commit): writes
/// that arrive while a flush runs share the next one.
pub const STORE_MAX_BATCH: usize = 256;

/// Default turns kept per session (config `session.max_turns_per_session`;
/// 0 there = no cap). A turn is a user message and every row after it up
/// to the next one (tool calls, tool results, the reply). The retention
/// task deletes a session's oldest turns beyond it; at a few KB a turn,
/// about 2–5 MB of the store per busy session.
pub const SESSION_MAX_TURNS: u64 = 1000;

/// Default days a transcript turn is kept (config `session.retention_days`;
/// 0 there = forever). Turns whose user message is older are deleted by
/// the retention task.
pub const SESSION_RETENTION_DAYS: u64 = 90;

/// Transcript rows the retention task deletes in one write transaction.
/// The store's writer runs one batch at a time (a few milliseconds), and
/// other writes queue between batches, so pruning a large backlog never
/// holds an acknowledgement up for long.
pub const TRANSCRIPT_PRUNE_BATCH: usize = 256;

/// How often the retention task prunes transcripts (also once at start).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Runs remembered on disk by id (`chat.send`/`agent` idempotency keys), so
/// a retry after a restart finds its run. The oldest are pruned beyond it
/// (about 200 bytes each on disk, none in RAM).
pub const MAX_PERSISTED_RUNS: usize = 10_000;

/// Entries kept in the durable audit log (actuator writes, node invokes,
/// approvals, pairing decisions); the oldest is deleted when a new one
/// would pass it. At ~300 bytes each, about 3 MB of the store.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Longest text of one audit entry's `what` and `outcome` fields; longer
/// text is cut.
pub const MAX_AUDIT_TEXT_CHARS: usize = 300;

/// Most audit entries one `audit.list` answer carries.
pub const MAX_AUDIT_PAGE: usize = 1_000;

/// redb page cache. redb's default is 1 GiB; 1 MiB keeps the hot pages
/// (recent transcript rows, pairing) and leaves RAM to the rest of the board.
pub const STORE_CACHE_BYTES: usize = 1024 * 1024;

/// Requests one connection may have running at once (long methods such as
/// `node.invoke` run beside the connection loop). Beyond it: `UNAVAILABLE`.
pub const MAX_INFLIGHT_REQUESTS_PER_CONN: usize = 16;

/// Connected nodes (remote boards, OpenClaw node hosts). Beyond it a node's
/// connect is refused with `UNAVAILABLE`.
pub const MAX_NODES: usize = 32;

/// Paired node records kept in the store; pairing more is refused.
pub const MAX_NODE_RECORDS: usize = 256;

/// Invokes in flight per node. Beyond it: `UNAVAILABLE` (busy).
pub const MAX_INVOKES_PER_NODE: usize = 8;

/// Default `node.invoke` deadline.
pub const NODE_INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `node.invoke` deadline a caller may ask for.
pub const NODE_INVOKE_MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Largest `payloadJSON` a node may return (bigger results are refused).
pub const NODE_RESULT_MAX_BYTES: usize = 1024 * 1024;

/// Largest `node.host.stats` payload kept per node (larger reports are
/// relayed as events but not kept).
pub const NODE_HOST_STATS_MAX_BYTES: usize = 4 * 1024;

/// Operator approvals (e.g. `confirm = true` outputs) waiting at once.
/// Beyond it new requests are refused with `UNAVAILABLE`.
pub const MAX_PENDING_APPROVALS: usize = 32;

/// Sessions with queued or running work held in memory at once (idle
/// sessions live only on disk). Beyond it new work is refused with
/// `UNAVAILABLE`.
pub const MAX_RESIDENT_SESSIONS: usize = 64;

/// Default messages queued per busy session (config `agent.queue_cap`).
pub const SESSION_QUEUE_CAP: usize = 20;

/// Messages steered into one active run before the rest wait as followups.
pub const MAX_STEER_PER_RUN: usize = 20;

/// Run records kept for `agent.wait` / idempotent retries; the oldest
/// finished record is evicted beyond it.
pub const MAX_RUN_RECORDS: usize = 1000;

/// Bytes of reply and error text kept across all run records. Beyond it
/// the oldest finished records are evicted (their replies stay in the
/// transcript, their status in the store's run index).
pub const RUN_RECORDS_MAX_BYTES: usize = 1024 * 1024;

/// Transcript rows read to build a model context (the token budget trims
/// further).
pub const MAX_CONTEXT_ROWS: usize = 400;

/// Events buffered between a provider stream and the agent loop.
pub const AGENT_STREAM_BUFFER: usize = 64;

/// Shortest time between two streamed text deltas of a run (`chat` delta
/// and `agent` assistant events); deltas arriving faster are coalesced.
pub const CHAT_DELTA_INTERVAL: Duration = Duration::from_millis(150);

/// Longest reply text kept in a run record (for `agent` results).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Longest message accepted by `chat.send` / `agent`.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Summary lines of dropped messages kept per session (drop = summarize).
pub const MAX_DROPPED_SUMMARY_LINES: usize = 5;

/// Pin I/O jobs (GPIO reads and writes, PWM settings, pulse edges) queued for
/// the board's `pinclaw-board-io` thread. Each takes microseconds, so the
/// queue only fills when the hardware hangs or callers flood it. When full, a
/// new request is refused at once with `BOARD_BUSY` (retry after
/// [`BOARD_IO_RETRY_MS`]); a running pulse's off-edge waits for a slot
/// instead, so a pulse always ends.
pub const BOARD_IO_QUEUE: usize = 32;

/// Retry hint sent with `BOARD_BUSY` when the pin I/O queue is full.
pub const BOARD_IO_RETRY_MS: u64 = 50;

/// Sensor reads queued for the board's `pinclaw-board-sensors` thread. A read
/// may take about a second (DS18B20 conversion ~750 ms, DHT22 retries, I2C
/// conversion waits), so eight queued reads stay well inside the default
/// `node.invoke` deadline. When full, a new read is refused at once with
/// `BOARD_BUSY` (retry after [`BOARD_SENSOR_RETRY_MS`]).
pub const BOARD_SENSOR_QUEUE: usize = 8;

/// Retry hint sent with `BOARD_BUSY` when the sensor queue is full.
pub const BOARD_SENSOR_RETRY_MS: u64 = 1000;

/// Debounced edge events (buttons, motion) queued between the board and
/// whoever publishes them as node events. When the consumer falls behind,
/// new events are dropped and counted (`edgeDrops` in `board.info`), never
/// blocking the backend's edge thread.
pub const BOARD_EDGE_QUEUE: usize = 64;

/// Board changes (writes, sensor reads, input edges) buffered for each
/// watcher (dashboard connections, automations, MQTT, the sensor history).
/// A watcher more than this many changes behind loses the oldest ones and
/// is told how many (it re-reads the state it needs); publishing never
/// waits for a watcher.
pub const BOARD_CHANGES_QUEUE: usize = 256;

/// Sensor fields with a history ring (`sensors.history`, the dashboard's
/// sparklines). Each ring costs 4 bytes per slot (5.6 KiB for 24 h at one
/// minute). A field beyond the cap is not recorded (its live value still
/// is shown).
pub const MAX_HISTORY_SERIES: usize = 32;

/// Most slots per history ring (`[history]` `hours × 3600 / step_s`); a
/// config asking for more is refused by `config check`.
pub const MAX_HISTORY_SLOTS: usize = 10_080;

/// Longest pulse an output may be switched on for (`gpio.pulse`). It fits
/// inside the default [`NODE_INVOKE_TIMEOUT`], so the caller sees the pulse
/// end. A longer pulse is refused with `OUT_OF_RANGE`.
pub const MAX_PULSE_MS: u64 = 20_000;

/// Run ids one `chat.history {inputRunIds}` asks about (OpenClaw's Control
/// UI reconciling what it sent); the rest get no receipt.
pub const MAX_INPUT_RECEIPTS: usize = 64;

// ---- Automations ----

/// Runs kept in the automation run history (`cron.runs`, `pinclaw
/// automations list`); the oldest goes.
pub const MAX_AUTOMATION_RUNS: usize = 1000;

/// Runtime cron jobs (`cron.add`); one more is refused with a clear error
/// (config automations do not count).
pub const MAX_CRON_JOBS: usize = 100;

/// Automations in the config file; more are refused by `config check`.
pub const MAX_AUTOMATIONS: usize = 200;

/// How long an automation's write to a `confirm = true` output waits for
/// an operator before it gives up (the run ends with an error).
pub const AUTOMATION_APPROVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest an MQTT payload or other outside text is quoted into a
/// notification or agent message; the rest is cut.
pub const AUTOMATION_MAX_TRIGGER_TEXT: usize = 512;

// ---- pinclaw doctor ----

/// The longest one doctor check may take (a provider's models list, a
/// Bot API call, the MQTT round trip, a sensor read). The checks run side
/// by side, so the whole doctor takes about this long at worst; a check
/// still running then fails with "no answer within …".
pub const DOCTOR_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Free space on the state directory's filesystem below which the doctor's
/// disk check fails: the store grows by pages and needs room to commit.
pub const DOCTOR_MIN_FREE_DISK_BYTES: u64 = 64 * 1024 * 1024;

/// The largest models list read from a provider by the doctor (OpenRouter's
/// is over 1 MB). A longer answer still proves the key works; its models
/// are then not counted.
pub const PROVIDER_MODELS_LIST_MAX_BYTES: u64 = 4 * 1024 * 1024;

// ---- Home Assistant ----

/// The largest answer read from Home Assistant's REST API (a big
/// installation's `/api/states`); a larger one is an error for the tool.
pub const HOME_ASSISTANT_MAX_RESPONSE_BYTES: u64 = 2 * 1024 * 1024;

/// Entities `list_states` gives the model at most (the rest are counted
/// out; filter by domain).
pub const HOME_ASSISTANT_MAX_LISTED: usize = 200;

// ---- Channels (Telegram and the ones after it) ----

/// How long a DM pairing code stays valid (OpenClaw: 1 h).
pub const CHANNEL_PAIRING_TTL: Duration = Duration::from_secs(3600);

/// Pending DM pairing requests per channel account (OpenClaw: 3). A further
/// unknown sender gets no code and nothing else until one is approved,
/// dismissed or expires.
pub const CHANNEL_PAIRING_MAX_PENDING: usize = 3;

/// Senders approved by pairing, over all channel accounts. Beyond it an
/// approval is refused with a clear error (remove some first).
pub const CHANNEL_MAX_ALLOWED_SENDERS: usize = 1024;

/// Messages accepted for delivery but not yet delivered, over all channels.
/// Beyond it `send` is refused with `UNAVAILABLE` (the channel is not
/// delivering); run replies beyond it are logged and dropped.
pub const CHANNEL_OUTBOX_MAX: usize = 1000;

/// Inbound event ids remembered per channel account so that an update
/// delivered twice (a crash before the offset was saved) is answered once.
/// The oldest are forgotten first; run ids (the run index) cover messages
/// that went to a session.
pub const CHANNEL_SEEN_EVENTS: usize = 1024;

/// Runs of channel messages tracked for typing and progress at once. Beyond
/// it a new run still runs and is answered, without typing or progress.
pub const CHANNEL_MAX_TRACKED_RUNS: usize = 64;

/// How often the typing indicator is re-sent while a run works (Telegram
/// shows it for 5 s).
pub const CHANNEL_TYPING_INTERVAL: Duration = Duration::from_secs(4);

/// Least time between two edits of a progress message.
pub const CHANNEL_PROGRESS_EDIT_INTERVAL: Duration = Duration::from_secs(1);

/// First wait after a failed delivery; it doubles per failure up to
/// [`CHANNEL_DELIVERY_BACKOFF_MAX`] (a successful receive or delivery resets it).
pub const CHANNEL_DELIVERY_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between delivery retries.
pub const CHANNEL_DELIVERY_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Delivery attempts of one message before it is given up (logged, counted
/// in `channels.status`): a week of retries at the longest backoff would be
/// ~10,000, so this is about 3 h of the service being down.
pub const CHANNEL_DELIVERY_MAX_ATTEMPTS: u32 = 200;

/// Outbound messages (replies, typing, progress edits) queued for one
/// account's sender thread. Typing and progress are dropped when it is full;
/// a delivery waits for a slot.
pub const CHANNEL_SEND_QUEUE: usize = 32;

/// Stack of a channel's own threads (poller, sender): they run blocking
/// HTTP calls and JSON, nothing deep.
pub const CHANNEL_THREAD_STACK_BYTES: usize = 256 * 1024;

/// Connect timeout of a Bot API call.
pub const TELEGRAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra time a `getUpdates` call may take beyond its long-poll timeout
/// before the client gives up on it (a dead NAT mapping never answers).
pub const TELEGRAM_POLL_ABORT_GRACE: Duration = Duration::from_secs(5);

/// Timeout of every other Bot API call (send, edit, chat action, setup).
pub const TELEGRAM_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest Bot API answer read (OpenClaw: 4 MiB for `getUpdates`); a bigger
/// one fails as a network error and is retried.
pub const TELEGRAM_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Read buffer of a Bot API connection (ureq's default is 128 KiB; answers
/// are read in pieces of this size).
pub const TELEGRAM_HTTP_INPUT_BUFFER_BYTES: usize = 16 * 1024;

/// Write buffer of a Bot API connection.
pub const TELEGRAM_HTTP_OUTPUT_BUFFER_BYTES: usize = 8 * 1024;

/// Updates asked for per `getUpdates` (Telegram's maximum is 100).
pub const TELEGRAM_UPDATES_PER_POLL: usize = 100;

/// Longest `retry_after` honoured from a 429; a bigger one is clamped.
pub const TELEGRAM_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// First backoff after a 5xx or a network error; doubles up to
/// [`TELEGRAM_BACKOFF_MAX`], with jitter.
pub const TELEGRAM_BACKOFF: Duration = Duration::from_secs(1);

/// Longest backoff after 5xx and network errors.
pub const TELEGRAM_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// First backoff after a 409 conflict (another poller or a webhook); doubles
/// up to [`TELEGRAM_CONFLICT_BACKOFF_MAX`].
pub const TELEGRAM_CONFLICT_BACKOFF: Duration = Duration::from_secs(30);

/// Longest backoff after repeated 409 conflicts.
pub const TELEGRAM_CONFLICT_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Time beyond two poll periods without a completed `getUpdates` before the
/// watchdog calls the poller stalled and restarts it.
pub const TELEGRAM_STALL_GRACE: Duration = Duration::from_secs(5);

/// Longest text of one Telegram message we send (Telegram allows 4096; a
/// longer reply is split at paragraph and line boundaries).
pub const TELEGRAM_CHUNK_CHARS: usize = 4000;

// ---- Automations (schedules) ----

/// Largest zoneinfo (TZif) file read or parsed (`TimeZone::named`, `local`,
/// `from_tzif`). Real files are under 4 KB; every count in a file is checked
/// against the bytes present, so this also bounds what parsing allocates. A
/// bigger file is refused with `TzError::TooLarge`: the zone does not load,
/// so an automation naming it is refused (`pinclaw config check`,
/// `cron.add`), and `TimeZone::local` falls back to UTC.
pub const MAX_TZIF_BYTES: usize = 64 * 1024;

/// Longest `every` interval (`parse_duration`). A longer one is refused with
/// an error when the schedule is parsed.
pub const SCHEDULE_MAX_EVERY: Duration = Duration::from_secs(366 * 86_400);

/// Missed cron runs `Schedule::missed_between` counts (one `next_after`
/// each) after the gateway was down. Beyond it counting stops and
/// `Missed::capped` is set; the job still fires once either way.
pub const SCHEDULE_MAX_MISSED_COUNT: u64 = 1000;

// ---- MQTT (src/mqtt/) ----

/// Largest MQTT packet (fixed header included) the client reads or
/// writes, unless `mqtt::Options::max_packet` says otherwise. A bigger
/// packet from the broker is refused from its fixed header, before
/// anything is allocated for it, and the connection is dropped (and made
/// again with backoff); a bigger message given to `publish` is refused at
/// once. 256 KiB holds a large Home Assistant device-discovery message
/// (~20 KB) many times over.
pub const MQTT_MAX_PACKET_BYTES: usize = 256 * 1024;

/// Messages waiting to be written (`mqtt::Client::publish`), also while
/// the broker is away. When full, `publish` refuses at once with `Busy`
/// and counts it (`dropped_publishes`); it never blocks.
pub const MQTT_OUTBOX: usize = 256;

/// Bytes (topic + payload) of the messages waiting and in flight
/// together. Beyond it `publish` refuses with `Busy` (counted), except
/// into an empty queue, so one message up to the packet cap always fits.
pub const MQTT_OUTBOX_BYTES: usize = 1024 * 1024;

/// QoS 1 messages written and not yet acknowledged (PUBACK). When full,
/// the outbox waits, in order, until a PUBACK frees a slot. After a
/// reconnect every one of them is written again with DUP set.
pub const MQTT_MAX_INFLIGHT: usize = 32;

/// Topic filters one client subscribes to; more are refused by
/// `mqtt::Client::start`.
pub const MQTT_MAX_SUBSCRIPTIONS: usize = 64;

/// Capacity to give the event channel handed to `mqtt::Client::start`
/// (the caller makes it). When that channel is full, the socket thread
/// drops the event and counts it (`dropped_events`); it never waits for
/// the event loop.
pub const MQTT_EVENT_QUEUE: usize = 256;

/// Time for the TCP connect, the TLS handshake and the CONNACK, and again
/// for the SUBACKs after it. Beyond it the attempt fails and is retried
/// with backoff.
pub const MQTT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one write to the broker may block (a stalled broker with a
/// full TCP window). Beyond it the connection counts as dead and is made
/// again.
pub const MQTT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one read waits while a connection is being opened (up to its
/// CONNACK, at most [`MQTT_CONNECT_TIMEOUT`]) and in `pinclaw mqtt check`,
/// so a stop is noticed. A connected client sleeps in `epoll` instead.
pub const MQTT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// First wait after a failed or lost connection; it doubles per failure
/// up to [`MQTT_BACKOFF_MAX`], with ±20 % jitter.
pub const MQTT_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between connection attempts: a broker back after an
/// outage (a restart, an update of Home Assistant's Mosquitto add-on) is
/// found within this (Tasmota retries every 10 s), and an attempt on a
/// LAN costs next to nothing. With 15 s a restarted broker got the
/// board's states back 13 s after it was up.
pub const MQTT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A connection that lasted this long sets the backoff back to
/// [`MQTT_BACKOFF`] when it ends (a broker that accepts and then drops
/// us keeps backing off).
pub const MQTT_STABLE_CONNECTION: Duration = Duration::from_secs(60);

/// How long `mqtt::Client::stop` waits for the PUBACKs of its last words
/// and of anything else in flight before it sends DISCONNECT anyway.
pub const MQTT_STOP_ACK_WAIT: Duration = Duration::from_secs(1);

/// How long `mqtt::Client::stop` waits for the socket thread to end. A
/// thread still blocked in a DNS lookup or a TCP connect is left to end on
/// its own (it does nothing more once it returns).
pub const MQTT_STOP_JOIN: Duration = Duration::from_secs(2);

/// Stack of the `pinclaw-mqtt` thread (blocking socket I/O, a TLS
/// handshake, nothing deep).
pub const MQTT_THREAD_STACK_BYTES: usize = 256 * 1024;
