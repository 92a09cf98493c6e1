//! What a channel account reports, in OpenClaw's `channels.status` shape,
//! and the health state derived from it. A channel is never reported
//! connected while its receiver is stuck, conflicted or blocked: the
//! health state says which.

use serde::Serialize;

/// The lifecycle of an account's receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Not started yet.
    #[default]
    Stopped,
    /// Starting (probe, setup), before the first successful receive.
    Starting,
    /// Receiving.
    Running,
    /// Failed and waiting to try again (backoff after an error, a stall or
    /// a conflict).
    Recovering,
    /// Stopped for good until an operator acts (the token was revoked).
    Blocked,
}

/// One account's state (`channelAccounts.<channel>[]` of `channels.status`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Account id.
    pub account_id: String,
    /// The bot's name, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Enabled in the config.
    pub enabled: bool,
    /// Has credentials.
    pub configured: bool,
    /// Its receiver runs (not stopped, not blocked).
    pub running: bool,
    /// The last receive succeeded and nothing since says otherwise.
    pub connected: bool,
    /// `polling` (Telegram).
    pub mode: &'static str,
    /// Where the receiver stands.
    pub lifecycle: Lifecycle,
    /// `healthy`, or why not (see [`AccountStatus::health_state`]).
    pub health_state: &'static str,
    /// The last error, in one line (never a secret).
    pub last_error: Option<String>,
    /// Started (ms).
    pub last_start_at: Option<i64>,
    /// Stopped (ms).
    pub last_stop_at: Option<i64>,
    /// The receiver first succeeded after its last start (ms).
    pub last_connected_at: Option<i64>,
    /// The last completed receive (ms): a completed empty long poll counts.
    pub last_transport_activity_at: Option<i64>,
    /// Same as `lastTransportActivityAt` (OpenClaw's name for it too).
    pub last_event_at: Option<i64>,
    /// The last message received (ms).
    pub last_inbound_at: Option<i64>,
    /// The last message delivered (ms).
    pub last_outbound_at: Option<i64>,
    /// Times the watchdog or an error restarted the receiver.
    pub restart_count: u64,
    /// Consecutive failed attempts since the last success.
    pub reconnect_attempts: u64,
    /// The receiver is stuck (no completed receive within its deadline).
    pub stalled: bool,
    /// Another receiver uses the same credentials (Telegram 409).
    pub conflict: bool,
    /// Undelivered messages waiting in the outbound ledger.
    pub outbox_pending: u64,
    /// DM policy.
    pub dm_policy: &'static str,
    /// Configured senders.
    pub allow_from: Vec<String>,
    /// Where the credentials come from: `env`, `file` or `none`.
    pub token_source: &'static str,
    /// The last probe (`getMe`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<serde_json::Value>,
}

/// Grace after a start before a disconnected account counts as unhealthy.
pub const STARTUP_GRACE_MS: i64 = 120_000;

impl AccountStatus {
    /// The health state, in the order OpenClaw evaluates it (reduced to the
    /// states a long-polling account can be in), plus pinclaw's explicit
    /// `stalled` and `conflict`.
    pub fn health_state(&self, now_ms: i64) -> &'static str {
        let since_start = self.last_start_at.map_or(i64::MAX, |t| now_ms - t);
        // An enabled account that cannot start (no token) is blocked, not
        // unmanaged: the owner asked for it and it does not work.
        if !self.enabled {
            "unmanaged"
        } else if self.lifecycle == Lifecycle::Blocked {
            "blocked"
        } else if !self.configured {
            "unmanaged"
        } else if !self.running {
            "not-running"
        } else if self.conflict {
            "conflict"
        } else if self.stalled {
            "stalled"
        } else if self.connected {
            "healthy"
        } else if since_start < STARTUP_GRACE_MS && self.last_connected_at.is_none() {
            "startup-connect-grace"
        } else {
            "disconnected"
        }
    }

    /// Whether the account needs attention (everything but healthy,
    /// unmanaged and the startup grace).
    pub fn degraded(&self) -> bool {
        !matches!(
            self.health_state,
            "healthy" | "unmanaged" | "startup-connect-grace"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_healthy_while_stalled_conflicted_or_blocked() {
        let now = 10_000_000;
        let mut s = AccountStatus {
            enabled: true,
            configured: true,
            running: true,
            connected: true,
            lifecycle: Lifecycle::Running,
            last_start_at: Some(now - 1000),
            last_connected_at: Some(now - 900),
            ..AccountStatus::default()
        };
        assert_eq!(s.health_state(now), "healthy");
        s.stalled = true;
        assert_eq!(s.health_state(now), "stalled");
        s.stalled = false;
        s.conflict = true;
        assert_eq!(s.health_state(now), "conflict");
        s.conflict = false;
        s.lifecycle = Lifecycle::Blocked;
        assert_eq!(s.health_state(now), "blocked");
        s.lifecycle = Lifecycle::Starting;
        s.connected = false;
        s.last_connected_at = None;
        assert_eq!(s.health_state(now), "startup-connect-grace");
        assert_eq!(s.health_state(now + STARTUP_GRACE_MS), "disconnected");
        s.running = false;
        assert_eq!(s.health_state(now), "not-running");
        s.enabled = false;
        assert_eq!(s.health_state(now), "unmanaged");
        // Enabled without a usable token: blocked, and degraded.
        s.enabled = true;
        s.configured = false;
        s.lifecycle = Lifecycle::Blocked;
        assert_eq!(s.health_state(now), "blocked");
        s.health_state = s.health_state(now);
        assert!(s.degraded());
    }
}
