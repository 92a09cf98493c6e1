//! A cancellation signal shared by the layers that run long work: a session
//! lane aborts its run, the agent loop passes the signal to the provider
//! turn and to tool calls, and the provider shuts its HTTP attempt down.
//! It lives on its own so that none of those layers imports another for it.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation signal. Cloning shares it; aborting is idempotent and
/// wakes every waiter.
#[derive(Debug, Clone)]
pub struct Abort {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Abort {
    fn default() -> Self {
        Self::new()
    }
}

impl Abort {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Abort {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Fire the signal (idempotent).
    pub fn abort(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal fired.
    pub fn is_aborted(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the signal fired.
    pub async fn aborted(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|v| *v).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_the_signal() {
        let a = Abort::new();
        let b = a.clone();
        assert!(!b.is_aborted());
        let waiter = tokio::spawn(async move { b.aborted().await });
        a.abort();
        a.abort();
        assert!(waiter.await.is_ok());
        assert!(a.is_aborted());
    }
}
