//! What `pinclaw doctor` prints: one line per check (`✓`/`✗`, its name,
//! what was found), a `fix:` line under each failure, and a count; or,
//! with `--json`, `{"ok", "checks": [{"name", "ok", "detail", "hint"?}]}`.

use crate::doctor::Report;

/// The report for a terminal.
pub fn human(report: &Report, header: &str) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let indent = " ".repeat(width + 4);
    let mut out = format!("{header}\n");
    for c in &report.checks {
        let mark = if c.ok { '✓' } else { '✗' };
        let mut lines = c.detail.lines();
        out.push_str(&format!(
            "{mark} {:<width$}  {}\n",
            c.name,
            lines.next().unwrap_or("")
        ));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(hint) = c.hint.as_ref().filter(|_| !c.ok) {
            out.push_str(&format!("{indent}fix: {hint}\n"));
        }
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    out.push_str(&match failed {
        0 => format!("all {} checks passed\n", report.checks.len()),
        n => format!("{n} of {} checks failed\n", report.checks.len()),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Check;

    #[test]
    fn failures_get_their_fix_under_them() {
        let report = Report {
            checks: vec![
                Check::pass("config", "ok"),
                Check::fail("i2c-1", "/dev/i2c-1 is missing", Some("add it".into())),
            ],
        };
        let text = human(&report, "pinclaw doctor");
        assert_eq!(
            text,
            "pinclaw doctor\n✓ config  ok\n✗ i2c-1   /dev/i2c-1 is missing\n          fix: add it\n1 of 2 checks failed\n"
        );
    }
}
