//! Check 1, the card: known (14), allowed to transact by its status and the hot list (41 lost,
//! 43 stolen, 62 blocked or not yet activated, 14 closed), not expired and, when the acquirer
//! sent field 14, with the expiry on record (54).
//!
//! Why first: nothing else is worth asking (the HSM, the bank) about a card the switch would
//! refuse anyway; the directory answers from memory (`pipeline::cards`).

use crate::pipeline::cards::CardEntry;
use crate::pipeline::request::Request;
use crate::pipeline::Pipeline;
use crate::store::Store;
use schemas::domain::ResponseCode;
use std::sync::Arc;

impl<S: Store> Pipeline<S> {
    /// The card exists, may transact and has not expired.
    pub(super) async fn card_step(&self, req: &Request) -> Result<Arc<CardEntry>, ResponseCode> {
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let entry = match self.cards.lookup(&*self.store, pan).await {
            Ok(Some(e)) => e,
            Ok(None) => return Err(ResponseCode::InvalidCardNumber),
            Err(e) => {
                tracing::error!(error = %e, "card lookup failed");
                return Err(ResponseCode::SystemMalfunction);
            }
        };
        if let Some(code) = self.cards.status(&entry).decline_code() {
            return Err(code);
        }
        if expired(&entry.card.expiry_yymm, crate::store::now_us()) {
            return Err(ResponseCode::ExpiredCard);
        }
        if let Some(given) = &req.expiry_yymm {
            if given != &entry.card.expiry_yymm {
                return Err(ResponseCode::ExpiredCard);
            }
        }
        Ok(entry)
    }
}

/// True when a `YYMM` expiry is before the current month (China Standard Time).
pub(crate) fn expired(yymm: &str, now_us: i64) -> bool {
    let Ok(v) = yymm.parse::<u32>() else {
        return true;
    };
    let (yy, mm) = (v / 100, v % 100);
    let now = chrono::DateTime::from_timestamp_micros(now_us + 8 * 3_600 * 1_000_000)
        .unwrap_or_default()
        .naive_utc();
    use chrono::Datelike;
    let current = (now.year() as u32 % 100) * 12 + now.month();
    !(1..=12).contains(&mm) || yy * 12 + mm < current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_checked_by_month_in_china_time() {
        // 2026-11-23 12:00 CST.
        let now = 1_795_406_400_000_000;
        assert!(!expired("2611", now));
        assert!(expired("2610", now));
        assert!(!expired("3012", now));
        assert!(expired("2613", now));
        assert!(expired("ab12", now));
    }
}
