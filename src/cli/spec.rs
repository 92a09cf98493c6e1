//! The words of the command line: every subcommand, option and positional
//! `pinclaw` accepts, with its help line. `src/main.rs` dispatches on the
//! parsed path; [`super::args`] does the parsing and generates `--help`.

use super::args::{Arg, Cmd, Kind};

const fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Flag,
        help,
    }
}

const fn value(name: &'static str, help: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Value(None),
        help,
    }
}

const fn required(name: &'static str, help: &'static str) -> Arg {
    Arg {
        name,
        kind: Kind::Required,
        help,
    }
}

const fn leaf(name: &'static str, about: &'static str, args: &'static [Arg]) -> Cmd {
    Cmd {
        name,
        about,
        args,
        subs: &[],
    }
}

const fn group(name: &'static str, about: &'static str, subs: &'static [Cmd]) -> Cmd {
    Cmd {
        name,
        about,
        args: &[],
        subs,
    }
}

const JSON: Arg = flag("json", "Print raw JSON.");

/// Options every command accepts, anywhere on the line. Their environment
/// fallbacks are applied in `main.rs`.
pub static GLOBALS: &[Arg] = &[
    value("config", "Config file [env: PINCLAW_CONFIG]"),
    value("port", "Gateway port [env: PINCLAW_GATEWAY_PORT]"),
    value("state-dir", "State directory [env: PINCLAW_STATE_DIR]"),
    value(
        "url",
        "Gateway URL (default: ws://127.0.0.1:<configured port>) [env: PINCLAW_GATEWAY_URL]",
    ),
    value(
        "token",
        "Shared token (default: the config, or the state dir's token file) [env: PINCLAW_GATEWAY_TOKEN]",
    ),
    value(
        "password",
        "Shared password [env: PINCLAW_GATEWAY_PASSWORD]",
    ),
];

/// Options of the gateway itself (at the root and on `pinclaw gateway`).
static GATEWAY_ARGS: &[Arg] = &[
    value("bind", "`loopback`, `lan` or an IP address"),
    value("auth", "`token`, `password` or `none`"),
];

static COMMANDS: &[Cmd] = &[
    Cmd {
        name: "gateway",
        about: "Run the gateway (the default).",
        args: GATEWAY_ARGS,
        subs: &[],
    },
    group(
        "config",
        "Configuration tools.",
        &[leaf(
            "check",
            "Validate a config file (default: --config / PINCLAW_CONFIG).",
            &[Arg {
                name: "file",
                kind: Kind::Optional,
                help: "The file to check.",
            }],
        )],
    ),
    group(
        "devices",
        "Manage paired devices on a running gateway.",
        &[
            leaf("list", "List pending requests and paired devices.", &[JSON]),
            leaf(
                "approve",
                "Approve a pending pairing request.",
                &[required(
                    "request_id",
                    "The request id (from `devices list`).",
                )],
            ),
            leaf(
                "reject",
                "Reject a pending pairing request.",
                &[required("request_id", "The request id.")],
            ),
            leaf(
                "remove",
                "Remove a paired device (its connections are closed).",
                &[required("device_id", "The device id.")],
            ),
        ],
    ),
    leaf(
        "node",
        "Join a gateway (pinclaw or OpenClaw) as a node serving this board.",
        &[value(
            "name",
            "Display name (default: the hostname). The gateway is --url [env: PINCLAW_NODE_URL], \
             its secret --token [env: PINCLAW_NODE_TOKEN] or --password [env: PINCLAW_NODE_PASSWORD].",
        )],
    ),
    group(
        "nodes",
        "Manage nodes (other boards, OpenClaw node hosts) on a running gateway.",
        &[
            leaf("list", "List known nodes (connected or not).", &[JSON]),
            leaf("pending", "Command surfaces waiting for approval.", &[JSON]),
            leaf(
                "approve",
                "Approve a node's declared commands.",
                &[required(
                    "request_id",
                    "The request id (from `nodes pending`).",
                )],
            ),
            leaf(
                "reject",
                "Reject a node's pending commands.",
                &[required("request_id", "The request id.")],
            ),
        ],
    ),
    group(
        "channels",
        "Chat channels (Telegram) of a running gateway: their state.",
        &[leaf(
            "status",
            "One line per account: running, connected, health, last error.",
            &[JSON],
        )],
    ),
    group(
        "pairing",
        "DM pairing: who asked to talk to the bot, approve or reject them.",
        &[
            leaf("list", "Pending DM pairing requests.", &[JSON]),
            leaf(
                "approve",
                "Let a sender talk to the bot: the code they were given (or the request id from `pairing list`).",
                &[
                    required("channel", "Channel id (`telegram`)."),
                    required("code", "The pairing code."),
                    flag("notify", "Tell the sender they were approved."),
                ],
            ),
            leaf(
                "reject",
                "Dismiss a pairing request.",
                &[
                    required("channel", "Channel id (`telegram`)."),
                    required("code", "The pairing code (or request id)."),
                ],
            ),
        ],
    ),
    leaf(
        "send",
        "Send a message to a chat through a channel (durable: delivered once the channel works).",
        &[
            value(
                "channel",
                "Channel id (default: the only configured channel).",
            ),
            value(
                "to",
                "Chat id (a user's id for a DM; groups are negative), @channelname, or <chatId>:topic:<topicId>.",
            ),
            value("thread", "Forum topic id."),
            required("message", "The text (Markdown)."),
        ],
    ),
    leaf(
        "dashboard",
        "Print the links that open the dashboard in a browser (the token in the link's #fragment).",
        &[],
    ),
    leaf(
        "chat",
        "Chat with the assistant in this terminal (or `-m` for one message).",
        &[
            value("session", "Session key (default: main)."),
            Arg {
                name: "message",
                kind: Kind::Value(Some('m')),
                help: "Send this one message, print the final answer and exit (non-zero when the run fails).",
            },
        ],
    ),
    leaf(
        "audit",
        "Who did what: actuator writes, node invokes, approvals, pairing decisions, oldest first.",
        &[
            value(
                "since",
                "How far back: `90s`, `30m`, `1h`, `7d` (default: everything kept).",
            ),
            value(
                "limit",
                "At most this many entries, the newest (default: 100).",
            ),
            JSON,
        ],
    ),
    group(
        "approvals",
        "Approvals: writes to `confirm = true` outputs wait here for a yes.",
        &[
            leaf("list", "What waits for an operator's decision.", &[JSON]),
            leaf(
                "approve",
                "Let it happen (the id from `approvals list`; a unique prefix will do).",
                &[required("id", "The approval id.")],
            ),
            leaf("deny", "Refuse it.", &[required("id", "The approval id.")]),
        ],
    ),
    group(
        "automations",
        "What the board does on its own: config automations and cron jobs.",
        &[
            leaf(
                "list",
                "Every automation: its trigger, actions, last and next run.",
                &[JSON],
            ),
            leaf(
                "run",
                "Run one now (even if disabled).",
                &[required("name", "The automation's name (or a job's id).")],
            ),
            leaf(
                "enable",
                "Enable one (also after the actions-per-minute cap stopped it).",
                &[required("name", "The automation's name (or a job's id).")],
            ),
            leaf(
                "disable",
                "Disable one until enabled again (kept across restarts).",
                &[required("name", "The automation's name (or a job's id).")],
            ),
            leaf(
                "runs",
                "The run history, newest first, with each run's outcome and error.",
                &[
                    Arg {
                        name: "name",
                        kind: Kind::Optional,
                        help: "Only this automation's runs.",
                    },
                    value("limit", "At most this many runs (default: 20)."),
                    JSON,
                ],
            ),
        ],
    ),
    leaf(
        "doctor",
        "Check this board end to end (config, board and profile, device access, sensors, power, clock, disk, providers, channels, MQTT) and say how to fix what fails; exit 1 if anything does. Config: --config, else /etc/pinclaw/pinclaw.toml when installed, else the defaults.",
        &[JSON],
    ),
    group(
        "mqtt",
        "The MQTT bridge's broker.",
        &[leaf(
            "check",
            "Connect with [mqtt]'s settings, subscribe, publish and receive one message, disconnect: each step timed.",
            &[],
        )],
    ),
    leaf(
        "call",
        "Call any gateway method and print the JSON result.",
        &[
            required("method", "Method name, e.g. `health` or `status`."),
            value("params", "Parameters as a JSON object (default: {})."),
        ],
    ),
];

/// The whole command line.
pub static ROOT: Cmd = Cmd {
    name: "pinclaw",
    about: "An OpenClaw-compatible gateway for Raspberry Pi boards",
    args: GATEWAY_ARGS,
    subs: COMMANDS,
};
