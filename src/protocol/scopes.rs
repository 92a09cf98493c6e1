//! Operator scopes and their implication rules (OpenClaw `operatorScopeSatisfied`).

/// Full access; satisfies every scope.
pub const ADMIN: &str = "operator.admin";
/// Read state.
pub const READ: &str = "operator.read";
/// Change state, run the agent; implies read, talk and the session scopes.
pub const WRITE: &str = "operator.write";
/// Resolve approvals.
pub const APPROVALS: &str = "operator.approvals";
/// Answer questions.
pub const QUESTIONS: &str = "operator.questions";
/// Pair devices and nodes.
pub const PAIRING: &str = "operator.pairing";
/// Talk mode.
pub const TALK: &str = "operator.talk";
/// Talk secrets.
pub const TALK_SECRETS: &str = "operator.talk.secrets";
/// Internal session read scope.
pub const SESSIONS_READ: &str = "operator.sessions.read";
/// Internal session write scope.
pub const SESSIONS_WRITE: &str = "operator.sessions.write";

/// Every operator scope a client may request.
pub const ALL: [&str; 10] = [
    ADMIN,
    READ,
    WRITE,
    APPROVALS,
    QUESTIONS,
    PAIRING,
    TALK,
    TALK_SECRETS,
    SESSIONS_READ,
    SESSIONS_WRITE,
];

/// Whether a single granted scope satisfies `required`.
fn implies(granted: &str, required: &str) -> bool {
    if granted == required || granted == ADMIN {
        return true;
    }
    match granted {
        WRITE => matches!(required, READ | TALK | SESSIONS_READ | SESSIONS_WRITE),
        READ => required == SESSIONS_READ,
        _ => false,
    }
}

/// Whether any granted scope satisfies `required`.
pub fn satisfied<S: AsRef<str>>(granted: &[S], required: &str) -> bool {
    granted.iter().any(|g| implies(g.as_ref(), required))
}

/// Whether `requested` is covered by `approved` (each requested scope implied
/// by some approved one).
pub fn covered<A: AsRef<str>, B: AsRef<str>>(approved: &[A], requested: &[B]) -> bool {
    requested.iter().all(|r| satisfied(approved, r.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implication_rules_match_openclaw() {
        assert!(satisfied(&[ADMIN], PAIRING));
        assert!(satisfied(&[WRITE], READ));
        assert!(satisfied(&[WRITE], TALK));
        assert!(satisfied(&[READ], SESSIONS_READ));
        assert!(!satisfied(&[READ], WRITE));
        assert!(!satisfied(&[WRITE], PAIRING));
        assert!(!satisfied(&[PAIRING], READ));
        assert!(!satisfied::<&str>(&[], READ));
        assert!(covered(&[WRITE], &[READ, WRITE]));
        assert!(!covered(&[READ], &[READ, PAIRING]));
    }
}
