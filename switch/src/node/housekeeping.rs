//! What runs beside the pipeline in every switch node (demo or production): the warm-up of
//! the card directory at start, the hot-list refresh, the release of expired authorization
//! holds, the purge of old duplicate keys and the purge of past days' per-card spend
//! (`card_day_usage`, kept [`crate::pipeline::PipelineConfig::card_days_kept`] days: the daily
//! limits read only today's row, and without the purge the table grows by a row per active
//! card per day, forever).

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
/// Most expired holds released per look.
pub const HOLDS_RELEASED_PER_TICK_MAX: u32 = 256;
/// Duplicate keys are kept this long: far longer than the transmission window
/// (`PipelineConfig::transmission_window`, five minutes by default, at most half of this, as
/// the configuration checks), so a replay young enough to pass the freshness check of field 7
/// always finds its key, and one older than the keys is declined `63` before it gets here.
pub const DUPLICATE_KEY_RETENTION: Duration = Duration::from_secs(48 * 3_600);
/// How often duplicate keys older than [`DUPLICATE_KEY_RETENTION`] are purged.
pub const DUPLICATE_KEY_PURGE_INTERVAL: Duration = Duration::from_secs(3_600);

/// The start of the oldest China Standard Time day whose per-card spend is kept at `now_us`:
/// today's, and `days_kept` days before it.
pub fn card_days_cutoff_us(now_us: i64, days_kept: u32) -> i64 {
    const DAY_US: i64 = 86_400 * 1_000_000;
    crate::pipeline::velocity::cst_day_start_us(now_us)
        .saturating_sub(i64::from(days_kept).saturating_mul(DAY_US))
}

/// Spawns the housekeeping tasks; they stop when `shutdown` turns true.
pub fn spawn<S: Store>(pipeline: Arc<Pipeline<S>>, shutdown: watch::Receiver<bool>) {
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
            if let Err(e) = p.release_expired_holds(HOLDS_RELEASED_PER_TICK_MAX).await {
                tracing::warn!(error = %e, "hold release failed");
            }
        }
    });
    let (p, mut s) = (pipeline, shutdown);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DUPLICATE_KEY_PURGE_INTERVAL);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = s.changed() => break }
            purge_old_duplicate_keys(&p).await;
            let days = card_days_cutoff_us(crate::store::now_us(), p.cfg.card_days_kept);
            match p.store().purge_card_day_usage(days).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "past days' card spend purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "card day purge failed"),
            }
        }
    });
}

/// Purges the duplicate keys older than [`DUPLICATE_KEY_RETENTION`] by the pipeline's clock
/// (what housekeeping does every [`DUPLICATE_KEY_PURGE_INTERVAL`]). After a jump of the clock
/// forward past the retention this purges keys of requests still fresh by the true time; field
/// 7 declines them `63` while the clock is ahead, and once it is back a replay of such a request
/// meets the card's ATC (a cryptogram's ATC never repeats: `59`), which the purge leaves alone.
pub async fn purge_old_duplicate_keys<S: Store>(p: &Pipeline<S>) {
    let cutoff = p.cfg.clock.now_us()
        - i64::try_from(DUPLICATE_KEY_RETENTION.as_micros()).unwrap_or(i64::MAX);
    if let Err(e) = p.store().purge_duplicate_keys(cutoff).await {
        tracing::warn!(error = %e, "duplicate key purge failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: i64 = 86_400 * 1_000_000;
    // 2025-11-23 04:00 UTC = 12:00 CST; that day started at 2025-11-22 16:00 UTC.
    const NOON_CST: i64 = 1_763_870_400_000_000;
    const MIDNIGHT_CST: i64 = NOON_CST - 12 * 3_600 * 1_000_000;

    #[test]
    fn the_card_day_cutoff_keeps_today_and_the_days_asked_for() {
        assert_eq!(card_days_cutoff_us(NOON_CST, 0), MIDNIGHT_CST);
        assert_eq!(card_days_cutoff_us(NOON_CST, 7), MIDNIGHT_CST - 7 * DAY_US);
        // One µs before midnight CST it is still the day before.
        assert_eq!(
            card_days_cutoff_us(MIDNIGHT_CST - 1, 0),
            MIDNIGHT_CST - DAY_US
        );
        assert!(card_days_cutoff_us(NOON_CST, u32::MAX) < 0);
    }
}
