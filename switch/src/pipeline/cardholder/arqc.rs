//! Check 4, the cryptogram: a chip card brings an ARQC (field 55) over the amount of field 4,
//! under an ATC above every ATC the card has used; the verified cryptogram is kept to answer
//! with its ARPC (approvals and declines alike).
//!
//! Why the ATC before the HSM: a replayed field 55 would verify (it is genuine, just old), so
//! only the ATC tells it from a new one, and reading the in-memory mirror first spares the HSM
//! a call on every replay.

use crate::pipeline::cards::CardEntry;
use crate::pipeline::request::Request;
use crate::pipeline::security::{self, VerifiedArqc};
use crate::pipeline::Pipeline;
use crate::store::{AuditEntry, CardAtc, CardId, Store};
use schemas::domain::ResponseCode;

/// Why the cryptogram check declines, with the verified cryptogram when the card is genuine
/// and present (the decline then carries its ARPC and consumes its ATC).
#[derive(Debug)]
pub(crate) struct ArqcDecline {
    pub code: ResponseCode,
    pub arqc: Option<VerifiedArqc>,
}

impl From<ResponseCode> for ArqcDecline {
    fn from(code: ResponseCode) -> Self {
        Self { code, arqc: None }
    }
}

/// The ATC a decision consumes: that of its verified cryptogram.
pub(crate) fn card_atc(entry: &CardEntry, arqc: Option<&VerifiedArqc>) -> Option<CardAtc> {
    arqc.map(|a| CardAtc {
        card_id: entry.card.card_id,
        atc: a.atc(),
    })
}

impl<S: Store> Pipeline<S> {
    /// A chip card must bring a valid ARQC for field 4, under an ATC above every ATC
    /// the card has used. Call with the card's lock held.
    ///
    /// EMV Book 3 Annex A (9F36): the card increments its ATC for every transaction and the
    /// cryptogram covers it, so a genuine ARQC never repeats an ATC. An ATC not above the
    /// highest seen is field 55 recorded and replayed (the cryptogram itself would verify):
    /// declined 59 "suspected fraud" (ISO 8583:1987 Annex A; 59 有作弊嫌疑 in the CUP/PBOC
    /// table) rather than 05, so the fraud desk can tell a replay from a failed cryptogram, and
    /// rather than 34 because a pick-up order would keep the genuine card of a cardholder whose
    /// terminal merely resent an old message. The replay check reads the in-memory mirror
    /// before any HSM call; the store re-checks at commit. A verified ATC more than
    /// [`PipelineConfig::atc_gap_max`] above the last is declined 59 too (with its ARPC, and
    /// recorded so the next transaction passes) and flagged in the audit log.
    ///
    /// [`PipelineConfig::atc_gap_max`]: crate::pipeline::PipelineConfig::atc_gap_max
    pub(super) async fn arqc_step(
        &self,
        req: &Request,
        entry: &CardEntry,
    ) -> Result<Option<VerifiedArqc>, ArqcDecline> {
        let Some(alg) = entry.card.issuance.icc_algorithm else {
            return Ok(None);
        };
        let icc = req.icc.as_deref().ok_or(ResponseCode::DoNotHonour)?;
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        let atc = security::field55_atc(icc).ok_or(ResponseCode::FormatError)?;
        let atc_max = self.cards.atc_max(entry);
        if atc_max.is_some_and(|m| atc <= m) {
            tracing::warn!(
                card = entry.card.card_id.0,
                atc,
                "ATC not above the card's last: replayed cryptogram declined"
            );
            return Err(ResponseCode::SuspectedFraud.into());
        }
        let verified = security::verify_arqc(
            &*self.hsm,
            &self.keys.issuer,
            pan,
            &entry.card.issuance.pan_sequence_number,
            alg,
            icc,
            req.amount_fen.get(),
        )
        .await?;
        match (atc_max, self.cfg.atc_gap_max) {
            (Some(max), Some(gap_max)) if atc - max > gap_max => {
                self.audit_atc_gap(entry.card.card_id, atc, max).await;
                Err(ArqcDecline {
                    code: ResponseCode::SuspectedFraud,
                    arqc: Some(verified),
                })
            }
            _ => Ok(Some(verified)),
        }
    }

    async fn audit_atc_gap(&self, card: CardId, atc: u16, atc_max: u16) {
        tracing::warn!(
            card = card.0,
            atc,
            atc_max,
            "ATC jumped beyond the allowed gap"
        );
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "card.atc_gap".into(),
            subject: format!("card:{}", card.0),
            detail: serde_json::json!({ "atc": atc, "atc_max": atc_max }).to_string(),
            at_us: crate::store::now_us(),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}
