//! Which node commands may run: declared by the node at connect, approved by
//! an operator (`node.pair.approve`), and permitted by the gateway's
//! allow/deny configuration, where deny always wins.

use serde::{Deserialize, Serialize};

/// Commands that need an explicit `allow_commands` entry even when declared
/// and approved: they capture the surroundings or reach other people.
pub const DANGEROUS: &[&str] = &[
    "camera.snap",
    "camera.clip",
    "camera.ptz.control",
    "screen.record",
    "contacts.add",
    "calendar.add",
    "reminders.add",
    "health.summary",
    "sms.send",
    "sms.search",
];

/// Commands `node.invoke` refuses outright (they have dedicated methods).
pub const NEVER_INVOKABLE: &[&str] = &["system.execApprovals.get", "system.execApprovals.set"];

/// Commands that need `operator.admin` to invoke or approve (shell, files,
/// browser proxying).
pub const ADMIN_COMMANDS: &[&str] = &[
    "system.run",
    "system.run.prepare",
    "system.which",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "terminal.upload",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

/// Commands whose invocation (not approval) needs `operator.admin`.
pub fn invoke_needs_admin(command: &str) -> bool {
    command.starts_with("browser.proxy")
        || matches!(command, "fs.listDir" | "terminal.upload" | "sim.set")
}

/// `[nodes]` allow/deny lists from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPolicy {
    /// Commands permitted beyond the defaults (needed for [`DANGEROUS`] ones).
    pub allow: Vec<String>,
    /// Commands never permitted, whatever else says.
    pub deny: Vec<String>,
}

/// Why a command may not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The node did not declare it.
    NotDeclared,
    /// The node's command surface is not approved for it.
    NotApproved,
    /// Denied by `deny_commands` or needs an `allow_commands` opt-in.
    NotAllowed(String),
}

impl Refusal {
    /// The error message for the caller.
    pub fn message(&self, command: &str) -> String {
        match self {
            Refusal::NotDeclared => format!("node command not declared by the node: {command:?}"),
            Refusal::NotApproved => format!(
                "node command not approved: {command:?} (approve the node's commands with `pinclaw nodes approve <requestId>`)"
            ),
            Refusal::NotAllowed(why) => format!("node command not allowed: {command:?} {why}"),
        }
    }
}

fn matches(pattern: &str, command: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => command.starts_with(prefix),
        None => pattern == command,
    }
}

impl CommandPolicy {
    /// Gate 3: the gateway's own allow/deny rule.
    pub fn permits(&self, command: &str) -> Result<(), Refusal> {
        if self.deny.iter().any(|p| matches(p, command)) {
            return Err(Refusal::NotAllowed(
                "is denied by nodes.deny_commands".into(),
            ));
        }
        if NEVER_INVOKABLE.contains(&command) {
            return Err(Refusal::NotAllowed(
                "cannot be invoked through node.invoke".into(),
            ));
        }
        if DANGEROUS.contains(&command) && !self.allow.iter().any(|p| matches(p, command)) {
            return Err(Refusal::NotAllowed(
                "requires explicit nodes.allow_commands opt-in".into(),
            ));
        }
        Ok(())
    }

    /// All three gates.
    pub fn check(
        &self,
        command: &str,
        declared: &[String],
        approved: &[String],
    ) -> Result<(), Refusal> {
        if !declared.iter().any(|c| c == command) {
            return Err(Refusal::NotDeclared);
        }
        if !approved.iter().any(|c| c == command) {
            return Err(Refusal::NotApproved);
        }
        self.permits(command)
    }
}

/// Scopes an operator needs to approve a surface with these commands.
pub fn approve_scopes(commands: &[String]) -> Vec<&'static str> {
    use crate::protocol::scopes;
    if commands.is_empty() {
        vec![scopes::PAIRING]
    } else if commands
        .iter()
        .any(|c| ADMIN_COMMANDS.contains(&c.as_str()))
    {
        vec![scopes::PAIRING, scopes::ADMIN]
    } else {
        vec![scopes::PAIRING, scopes::WRITE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn three_gates_and_deny_wins() {
        let policy = CommandPolicy {
            allow: v(&["camera.snap", "gpio.*"]),
            deny: v(&["gpio.write"]),
        };
        let declared = v(&["gpio.read", "gpio.write", "camera.snap", "sensors.read"]);
        let approved = v(&["gpio.read", "gpio.write", "camera.snap"]);
        assert_eq!(policy.check("gpio.read", &declared, &approved), Ok(()));
        assert_eq!(policy.check("camera.snap", &declared, &approved), Ok(()));
        assert_eq!(
            policy.check("sensors.read", &declared, &approved),
            Err(Refusal::NotApproved)
        );
        assert_eq!(
            policy.check("system.run", &declared, &approved),
            Err(Refusal::NotDeclared)
        );
        assert!(matches!(
            policy.check("gpio.write", &declared, &approved),
            Err(Refusal::NotAllowed(_))
        ));
        let strict = CommandPolicy::default();
        assert!(matches!(
            strict.check("camera.snap", &declared, &approved),
            Err(Refusal::NotAllowed(_))
        ));
    }

    #[test]
    fn approval_scopes_follow_the_commands() {
        assert_eq!(approve_scopes(&[]), vec!["operator.pairing"]);
        assert_eq!(
            approve_scopes(&v(&["sensors.read"])),
            vec!["operator.pairing", "operator.write"]
        );
        assert_eq!(
            approve_scopes(&v(&["system.which"])),
            vec!["operator.pairing", "operator.admin"]
        );
    }
}
