//! The command line's client side: what `pinclaw`'s subcommands show
//! (`tables`) and the `pinclaw chat` terminal client (`chat`). Argument
//! parsing and exit codes live in `src/main.rs`.

pub mod chat;
pub mod tables;
