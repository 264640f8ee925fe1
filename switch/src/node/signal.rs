//! When a node stops: Ctrl-C (SIGINT) or SIGTERM, the signal a service manager or an
//! orchestrator sends. Both lead to the same orderly stop (drain the listeners, sign the bank
//! links off, close), so `switch serve` and `switch demo` wait on [`stop_requested`].

/// Waits for Ctrl-C or, on Unix, SIGTERM. If a handler cannot be installed, waits on the
/// other one only (and logs why).
pub async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
