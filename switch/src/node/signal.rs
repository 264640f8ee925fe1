//! When a node stops: Ctrl-C (SIGINT) or SIGTERM, the signal a service manager or an
//! orchestrator sends. Both lead to the same orderly stop (drain the listeners, sign the bank
//! links off, close), so `switch serve` and `switch demo` wait on a [`StopSignal`].
//!
//! The handlers are installed when the [`StopSignal`] is made, before the node starts and says
//! where it listens: a supervisor that sends SIGTERM as soon as it sees the node up must get the
//! orderly stop, not the default action of the signal (which kills the process). Installed only
//! when first awaited, as they were, a SIGTERM in that gap ended the demo by the signal
//! (`tests/signals.rs`, once its test read the listening address from the status line).

/// Ctrl-C and SIGTERM, caught from the moment this is made.
pub struct StopSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    /// Installs the handlers now (inside a tokio runtime). If they cannot be installed, the
    /// wait falls back to [`tokio::signal::ctrl_c`] (and logs why).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "no SIGINT/SIGTERM handler; Ctrl-C only");
                    None
                }
            };
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for Ctrl-C or SIGTERM.
    pub async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.signals {
            tokio::select! {
                _ = int.recv() => tracing::info!("Ctrl-C: stopping"),
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for Ctrl-C or SIGTERM, the handlers installed at the call.
pub async fn stop_requested() {
    StopSignal::install().wait().await;
}
