//! The command line's client side: parsing (`args`, with the words of
//! every subcommand in `spec`), what `pinclaw`'s subcommands show
//! (`tables`, `doctor`) and the `pinclaw chat` terminal client (`chat`). Dispatch
//! and exit codes live in `src/main.rs`.

pub mod args;
pub mod chat;
pub mod dashboard;
pub mod doctor;
pub mod spec;
pub mod tables;
