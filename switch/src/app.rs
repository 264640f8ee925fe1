//! What runs beside the pipeline in every switch process (demo or production): the warm-up of
//! the card directory at start, the hot-list refresh, the release of expired authorization
//! holds, the purge of old duplicate keys, and the store-and-forward forwarder of reversals and
//! stand-in advices.

use crate::gateway::BankGateway;
use crate::link::forwarder::{Forwarder, ForwarderConfig, ForwarderError};
use crate::metrics::Metrics;
use crate::pipeline::cards::CARDS_CACHED_MAX;
use crate::pipeline::Pipeline;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the hot list is re-read from the store.
pub const HOT_LIST_REFRESH: Duration = Duration::from_secs(5);
/// How often expired holds are looked for.
pub const HOLD_RELEASE_INTERVAL: Duration = Duration::from_secs(1);
/// Duplicate keys are kept this long (the retransmission window).
pub const DUPLICATE_KEY_RETENTION: Duration = Duration::from_secs(48 * 3_600);

/// Spawns the housekeeping tasks; they stop when `shutdown` turns true.
pub fn spawn_housekeeping<S: Store>(pipeline: Arc<Pipeline<S>>, shutdown: watch::Receiver<bool>) {
    let p = Arc::clone(&pipeline);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match p.cards().warm(&**p.store(), CARDS_CACHED_MAX).await {
            Ok(n) => tracing::info!(
                cards = n,
                ms = started.elapsed().as_millis() as u64,
                "card directory warmed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "card directory warm-up failed; cards load on first use")
            }
        }
    });
    let (p, mut s) = (Arc::clone(&pipeline), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOT_LIST_REFRESH);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = s.changed() => break }
            if let Err(e) = p.cards().refresh_hot_list(&**p.store()).await {
                tracing::warn!(error = %e, "hot list refresh failed");
            }
        }
    });
    let (p, mut s) = (Arc::clone(&pipeline), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOLD_RELEASE_INTERVAL);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = s.changed() => break }
            if let Err(e) = p.release_expired_holds(256).await {
                tracing::warn!(error = %e, "hold release failed");
            }
        }
    });
    let (p, mut s) = (pipeline, shutdown);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3_600));
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = s.changed() => break }
            let cutoff = crate::store::now_us()
                - i64::try_from(DUPLICATE_KEY_RETENTION.as_micros()).unwrap_or(i64::MAX);
            if let Err(e) = p.store().purge_duplicate_keys(cutoff).await {
                tracing::warn!(error = %e, "duplicate key purge failed");
            }
        }
    });
}

/// Starts the store-and-forward forwarder of reversals and stand-in advices over `banks`.
pub fn spawn_forwarder<S: Store, G: BankGateway>(
    store: Arc<S>,
    banks: Arc<G>,
    switch_institution: schemas::domain::InstitutionId,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<Forwarder<S, G>>, ForwarderError> {
    let forwarder = Arc::new(
        Forwarder::new(store, banks, ForwarderConfig::new(switch_institution))?
            .with_metrics(metrics),
    );
    let f = Arc::clone(&forwarder);
    tokio::spawn(async move { f.run(shutdown).await });
    Ok(forwarder)
}
