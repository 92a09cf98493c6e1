//! The board as the command handler of node-host mode (`pinclaw node`).
//!
//! Writes to `confirm = true` outputs are refused here with
//! `CONFIRMATION_REQUIRED`: a remote gateway cannot hold this board's
//! approval, so such outputs are only switchable from the gateway that owns
//! the board.

use std::sync::Arc;

use serde_json::Value;

use super::board_commands::BoardCommands;
use super::host::{CommandHandler, HandlerError, HandlerFuture};

/// Serves the board's commands to a remote gateway.
pub struct BoardHandler(pub Arc<BoardCommands>);

impl CommandHandler for BoardHandler {
    fn commands(&self) -> Vec<String> {
        self.0.commands().iter().map(|c| c.to_string()).collect()
    }

    fn caps(&self) -> Vec<String> {
        vec!["board".into()]
    }

    fn handle(&self, command: String, params: Value) -> HandlerFuture {
        let board = self.0.clone();
        Box::pin(async move {
            board
                .invoke(&command, params)
                .await
                .map_err(|e| HandlerError {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                })
        })
    }
}
