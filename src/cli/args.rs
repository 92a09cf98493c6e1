//! A small, table-driven command-line parser: a tree of [`Cmd`]s, each with
//! its options and positionals, parsed into [`Matches`]; `--help` at any
//! level prints that command's generated usage. It replaces clap, which cost
//! about 140 KB of the aarch64 binary for the same job.
//!
//! Rules: `--name value` and `--name=value`; `-m value` for the few short
//! names; options may come before or after the subcommand words (globals
//! anywhere); a value may start with `-` (a Telegram group id); `--` ends
//! the options. Environment fallbacks are read by the caller, not here, so a
//! secret from the environment never passes through this module.

use std::fmt::Write as _;

/// One command or subcommand.
pub struct Cmd {
    /// The word that selects it (empty for the root).
    pub name: &'static str,
    /// One line for the command list and the help heading.
    pub about: &'static str,
    /// Its options and positionals.
    pub args: &'static [Arg],
    /// Its subcommands (empty for a leaf).
    pub subs: &'static [Cmd],
}

/// One option or positional argument.
pub struct Arg {
    /// The long name (`json` for `--json`) or the positional's name.
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
    /// One line of help.
    pub help: &'static str,
}

/// The kinds of arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--name` with no value.
    Flag,
    /// `--name VALUE` (and `-c VALUE` when it has a short name).
    Value(Option<char>),
    /// A required positional.
    Required,
    /// An optional positional (only last).
    Optional,
}

/// A usage error or a request for help/version, with what to print and the
/// exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--help` or `--version`: print to stdout, exit 0.
    Print(String),
    /// A usage error: print to stderr, exit 2.
    Usage(String),
}

/// What was parsed.
#[derive(Debug, Default)]
pub struct Matches {
    /// The subcommand words, e.g. `["devices", "approve"]`.
    pub path: Vec<&'static str>,
    values: Vec<(&'static str, String)>,
    positionals: Vec<String>,
}

impl Matches {
    /// The value of `--name`, if given (the last one wins).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| *n == name)
    }

    /// The `i`-th positional.
    pub fn pos(&self, i: usize) -> Option<&str> {
        self.positionals.get(i).map(String::as_str)
    }
}

/// Parse `args` (without the program name) against `root`; `globals` are
/// accepted at every level.
pub fn parse(
    root: &'static Cmd,
    globals: &'static [Arg],
    version: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Matches, Stop> {
    let mut m = Matches::default();
    let mut cmd = root;
    let mut args = args.into_iter();
    let mut only_positionals = false;
    while let Some(arg) = args.next() {
        if only_positionals || arg == "-" || !arg.starts_with('-') {
            if m.positionals.is_empty() && !cmd.subs.is_empty() {
                match cmd.subs.iter().find(|s| s.name == arg) {
                    Some(sub) => {
                        m.path.push(sub.name);
                        cmd = sub;
                        continue;
                    }
                    None if positionals(cmd).next().is_none() => {
                        return Err(usage(
                            root,
                            &m.path,
                            cmd,
                            format!("unrecognized subcommand '{arg}'"),
                        ));
                    }
                    None => {}
                }
            }
            if m.positionals.len() >= positionals(cmd).count() {
                return Err(usage(
                    root,
                    &m.path,
                    cmd,
                    format!("unexpected argument '{arg}'"),
                ));
            }
            m.positionals.push(arg);
            continue;
        }
        match arg.as_str() {
            "--" => {
                only_positionals = true;
                continue;
            }
            "-h" | "--help" => return Err(Stop::Print(help(root, &m.path, cmd, globals))),
            "-V" | "--version" => return Err(Stop::Print(format!("pinclaw {version}\n"))),
            _ => {}
        }
        let (name, inline) = match arg.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            },
            None => (arg[1..].to_owned(), None),
        };
        let short = !arg.starts_with("--");
        let found = cmd.args.iter().chain(globals).find(|a| match a.kind {
            Kind::Flag => !short && a.name == name,
            Kind::Value(s) => {
                if short {
                    s.is_some_and(|c| name.len() == c.len_utf8() && name.starts_with(c))
                } else {
                    a.name == name
                }
            }
            Kind::Required | Kind::Optional => false,
        });
        let Some(found) = found else {
            return Err(usage(
                root,
                &m.path,
                cmd,
                format!("unexpected argument '{arg}'"),
            ));
        };
        let value = match (found.kind, inline) {
            (Kind::Flag, None) => String::new(),
            (Kind::Flag, Some(_)) => {
                return Err(usage(
                    root,
                    &m.path,
                    cmd,
                    format!("--{} takes no value", found.name),
                ));
            }
            (_, Some(v)) => v,
            (_, None) => match args.next() {
                Some(v) => v,
                None => {
                    return Err(usage(
                        root,
                        &m.path,
                        cmd,
                        format!("a value is required for '--{} <VALUE>'", found.name),
                    ));
                }
            },
        };
        m.values.push((found.name, value));
    }
    if !cmd.subs.is_empty() && !std::ptr::eq(cmd, root) && positionals(cmd).next().is_none() {
        return Err(Stop::Usage(format!(
            "error: a subcommand is required\n\n{}",
            help(root, &m.path, cmd, globals)
        )));
    }
    if let Some(missing) = positionals(cmd)
        .filter(|a| a.kind == Kind::Required)
        .nth(m.positionals.len())
    {
        return Err(usage(
            root,
            &m.path,
            cmd,
            format!(
                "the required argument <{}> was not provided",
                missing.name.to_uppercase()
            ),
        ));
    }
    Ok(m)
}

fn positionals(cmd: &Cmd) -> impl Iterator<Item = &Arg> {
    cmd.args
        .iter()
        .filter(|a| matches!(a.kind, Kind::Required | Kind::Optional))
}

fn usage_line(root: &Cmd, path: &[&str], cmd: &Cmd) -> String {
    let mut line = format!("Usage: {}", root.name);
    for word in path {
        line.push(' ');
        line.push_str(word);
    }
    if cmd
        .args
        .iter()
        .any(|a| matches!(a.kind, Kind::Flag | Kind::Value(_)))
    {
        line.push_str(" [OPTIONS]");
    }
    if !cmd.subs.is_empty() {
        line.push_str(if std::ptr::eq(cmd, root) {
            " [COMMAND]"
        } else {
            " <COMMAND>"
        });
    }
    for a in positionals(cmd) {
        let name = a.name.to_uppercase();
        match a.kind {
            Kind::Required => write!(line, " <{name}>"),
            _ => write!(line, " [{name}]"),
        }
        .ok();
    }
    line
}

fn usage(root: &Cmd, path: &[&str], cmd: &Cmd, error: String) -> Stop {
    Stop::Usage(format!(
        "error: {error}\n\n{}\n\nFor more information, try '--help'.\n",
        usage_line(root, path, cmd)
    ))
}

/// The generated help of `cmd`.
fn help(root: &Cmd, path: &[&str], cmd: &Cmd, globals: &[Arg]) -> String {
    let mut out = format!("{}\n\n{}\n", cmd.about, usage_line(root, path, cmd));
    let rows = |out: &mut String, title: &str, rows: Vec<(String, &str)>| {
        if rows.is_empty() {
            return;
        }
        let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let _ = write!(out, "\n{title}:\n");
        for (left, help) in rows {
            let _ = writeln!(out, "  {left:width$}  {help}");
        }
    };
    rows(
        &mut out,
        "Commands",
        cmd.subs
            .iter()
            .map(|s| (s.name.to_owned(), s.about))
            .collect(),
    );
    rows(
        &mut out,
        "Arguments",
        positionals(cmd)
            .map(|a| (format!("<{}>", a.name.to_uppercase()), a.help))
            .collect(),
    );
    let options = cmd
        .args
        .iter()
        .chain(globals)
        .filter_map(|a| match a.kind {
            Kind::Flag => Some((format!("    --{}", a.name), a.help)),
            Kind::Value(Some(c)) => Some((format!("-{c}, --{} <VALUE>", a.name), a.help)),
            Kind::Value(None) => Some((format!("    --{} <VALUE>", a.name), a.help)),
            _ => None,
        })
        .chain([
            ("-h, --help".to_owned(), "Print help"),
            ("-V, --version".to_owned(), "Print version"),
        ])
        .collect();
    rows(&mut out, "Options", options);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static LEAF_ARGS: &[Arg] = &[
        Arg {
            name: "json",
            kind: Kind::Flag,
            help: "Print raw JSON.",
        },
        Arg {
            name: "message",
            kind: Kind::Value(Some('m')),
            help: "One message.",
        },
        Arg {
            name: "id",
            kind: Kind::Required,
            help: "The id.",
        },
        Arg {
            name: "extra",
            kind: Kind::Optional,
            help: "More.",
        },
    ];
    static SUBS: &[Cmd] = &[Cmd {
        name: "approve",
        about: "Approve it.",
        args: LEAF_ARGS,
        subs: &[],
    }];
    static TOP: &[Cmd] = &[Cmd {
        name: "devices",
        about: "Devices.",
        args: &[],
        subs: SUBS,
    }];
    static ROOT: Cmd = Cmd {
        name: "pinclaw",
        about: "The gateway.",
        args: &[],
        subs: TOP,
    };
    static GLOBALS: &[Arg] = &[Arg {
        name: "config",
        kind: Kind::Value(None),
        help: "Config file.",
    }];

    fn run(args: &[&str]) -> Result<Matches, Stop> {
        parse(&ROOT, GLOBALS, "1.0", args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn subcommands_options_and_positionals() {
        let m = run(&[
            "--config", "a.toml", "devices", "approve", "r1", "--json", "-m", "-100",
        ])
        .unwrap();
        assert_eq!(m.path, ["devices", "approve"]);
        assert_eq!(m.value("config"), Some("a.toml"));
        assert!(m.flag("json"));
        assert_eq!(m.value("message"), Some("-100"));
        assert_eq!(m.pos(0), Some("r1"));
        assert_eq!(m.pos(1), None);
        let m = run(&["devices", "approve", "--config=b.toml", "r1", "x"]).unwrap();
        assert_eq!(m.value("config"), Some("b.toml"));
        assert_eq!(m.pos(1), Some("x"));
        // The root alone is the gateway.
        assert!(run(&[]).unwrap().path.is_empty());
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        let err = |args: &[&str]| match run(args) {
            Err(Stop::Usage(text)) => text,
            other => panic!("expected a usage error, got {other:?}"),
        };
        assert!(err(&["devices"]).contains("a subcommand is required"));
        assert!(err(&["devices", "aprove"]).contains("unrecognized subcommand 'aprove'"));
        assert!(err(&["devices", "approve"]).contains("<ID> was not provided"));
        assert!(err(&["devices", "approve", "a", "b", "c"]).contains("unexpected argument 'c'"));
        assert!(err(&["devices", "approve", "a", "--nope"]).contains("'--nope'"));
        assert!(err(&["devices", "approve", "a", "--json=1"]).contains("takes no value"));
        assert!(err(&["devices", "approve", "a", "--message"]).contains("a value is required"));
        assert!(err(&["devices", "approve"]).contains("Usage: pinclaw devices approve"));
    }

    #[test]
    fn help_and_version() {
        let Err(Stop::Print(help)) = run(&["devices", "approve", "--help"]) else {
            panic!("no help")
        };
        assert!(help.starts_with("Approve it."), "{help}");
        assert!(
            help.contains("-m, --message <VALUE>  One message."),
            "{help}"
        );
        assert!(help.contains("--config <VALUE>"), "{help}");
        assert!(help.contains("<ID>"), "{help}");
        let Err(Stop::Print(top)) = run(&["-h"]) else {
            panic!("no help")
        };
        assert!(top.contains("devices  Devices."), "{top}");
        assert_eq!(
            run(&["-V"]).unwrap_err(),
            Stop::Print("pinclaw 1.0\n".into())
        );
    }
}
