//! Check 5, the PIN, when the switch itself verifies it: the PIN block under the acquirer's
//! TPK against the card's IBM 3624 offset, through the HSM (55 wrong, 75 after
//! [`PipelineConfig::pin_tries_max`] wrong PINs in a row, which also blocks the card and puts it
//! on the hot list).
//!
//! The wrong PINs in a row are counted in the store (`card.pin_tries_failed`), one atomic
//! update per wrong PIN, so a restart or another node cannot give a thief more tries; a PIN
//! verified here sets the count back to 0 in the commit of its approval, which the store
//! refuses (75) when the card reached the maximum meanwhile. When the count cannot be
//! stored the answer is 96, not 55: a PIN that is not counted is not confirmed wrong either.
//!
//! Why it matters beyond the answer: only a PIN verified here may unblock a chip's offline PIN
//! (a PIN UNBLOCK script, `scripts.rs`), so the check says how the PIN was checked
//! ([`PinCheck`]). A card without an offset here has its PIN verified by its bank on the leg.
//!
//! [`PipelineConfig::pin_tries_max`]: crate::pipeline::PipelineConfig::pin_tries_max

use crate::pipeline::cards::CardEntry;
use crate::pipeline::request::Request;
use crate::pipeline::security;
use crate::pipeline::Pipeline;
use crate::store::{AuditEntry, CardId, CardStatus, Store};
use hsm_sim::keys::Tpk;
use schemas::domain::ResponseCode;

/// What the PIN check established: only a PIN this switch verified against the card's
/// issuance data may unblock the chip's offline PIN (a PIN UNBLOCK script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinCheck {
    /// Verified here, through the HSM, against the card's PIN offset.
    Verified,
    /// The card has no PIN offset here: the bank verifies the PIN on its leg.
    LeftToTheBank,
}

impl<S: Store> Pipeline<S> {
    /// The PIN against the card's offset. Too many wrong PINs
    /// block the card (hot list) and answer 75.
    pub(super) async fn pin_step(
        &self,
        req: &Request,
        entry: &CardEntry,
        tpk: &Tpk,
    ) -> Result<PinCheck, ResponseCode> {
        let block = req.pin_block.ok_or(ResponseCode::IncorrectPin)?;
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let Some(offset) = &entry.card.issuance.pin_offset else {
            // Nothing to verify against here: the bank leg carries the PIN to the bank.
            return Ok(PinCheck::LeftToTheBank);
        };
        let card = entry.card.card_id;
        match security::verify_pin(&*self.hsm, &self.keys.issuer, tpk, pan, &block, offset).await {
            Ok(()) => Ok(PinCheck::Verified),
            Err(ResponseCode::IncorrectPin) => {
                let failures = match self.store.count_wrong_pin(card).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, card = card.0, "wrong PIN not counted");
                        return Err(ResponseCode::SystemMalfunction);
                    }
                };
                if failures >= self.cfg.pin_tries_max {
                    self.block_card(card, "PIN tries exceeded").await;
                    return Err(ResponseCode::PinTriesExceeded);
                }
                Err(ResponseCode::IncorrectPin)
            }
            Err(code) => Err(code),
        }
    }

    async fn block_card(&self, card: CardId, reason: &str) {
        let now = crate::store::now_us();
        self.cards.set_status(card, CardStatus::Blocked);
        if let Err(e) = self
            .store
            .set_card_status(card, CardStatus::Blocked, Some(reason), now)
            .await
        {
            tracing::error!(error = %e, "card block not stored");
        }
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "card.status".into(),
            subject: format!("card:{}", card.0),
            detail: serde_json::json!({ "status": "blocked", "reason": reason }).to_string(),
            at_us: now,
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}
