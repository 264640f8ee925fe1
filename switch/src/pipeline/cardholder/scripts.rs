//! Issuer scripts in authorization responses: the switch's only way to change a card in the
//! cardholder's hands.
//!
//! Why this exists: a card reported lost or stolen is on the hot list, so the switch declines
//! it (41/43); but a thief can keep trying it at other terminals, and offline-capable
//! terminals would never ask. When such a card comes online with a genuine ARQC, the decline
//! also carries an APPLICATION BLOCK command (EMV Book 3 §6.5.1, `84 1E 00 00`) in an Issuer
//! Script Template 2 (tag 72, run by the card after the second GENERATE AC, Book 3 §10.10),
//! secured by a MAC under the card's script-integrity session key (EMV Book 2 §9.2; JR/T
//! 0025.5 for PBOC, same commands and MAC) that only the HSM can compute. The card then
//! invalidates its debit application: SELECT answers 6283 and GENERATE AC gives only AACs, so
//! no terminal can use it again. Every script sent is recorded in the audit log.
//!
//! A cryptogram that does not verify gets the plain decline: a script is MACed over the
//! card's own ATC and ARQC, so without a genuine cryptogram there is nothing to send.
//!
//! The other script is for the cardholder: a chip whose offline PIN try counter (9F17) ran out
//! at some offline terminal says so in its CVR (9F10, "PIN Try Limit exceeded"). When such a
//! card pays online here and this switch itself verifies the cardholder's PIN against the
//! card's issuance data, the approval carries a PIN UNBLOCK (`84 24 00 00`, EMV Book 3
//! §6.5.10) in tag 72, and the card resets its counter: no trip to a service counter. A PIN
//! left to the bank to verify never unblocks the chip from here.

use super::arqc::ArqcDecline;
use super::pin::PinCheck;
use crate::pipeline::cards::CardEntry;
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::security::{ScriptCommand, VerifiedArqc};
use crate::pipeline::Pipeline;
use crate::store::{AuditEntry, Store, TransactionKind};
use schemas::domain::ResponseCode;

impl<S: Store> Pipeline<S> {
    /// Declines a lost or stolen card with `code`, its ARPC and an APPLICATION BLOCK script.
    pub(super) async fn block_application(
        &self,
        req: &Request,
        kind: TransactionKind,
        code: ResponseCode,
    ) -> Outcome {
        let entry = match req.pan.as_ref() {
            Some(pan) => self.cards.lookup(&*self.store, pan).await.ok().flatten(),
            None => None,
        };
        let Some(entry) = entry else {
            return self.decline(req, kind, None, code).await;
        };
        let _card_lock = self.cards.lock(entry.card.card_id).lock().await;
        let arqc = match self.arqc_step(req, &entry).await {
            Ok(Some(a)) | Err(ArqcDecline { arqc: Some(a), .. }) => a,
            Ok(None) | Err(_) => return self.decline(req, kind, Some(&entry), code).await,
        };
        let mut out = self
            .decline_with_arpc(req, kind, &entry, code, Some(&arqc))
            .await;
        if out.code != Some(code) {
            return out; // a retransmission (94): its original got the script
        }
        let command = ScriptCommand::ApplicationBlock;
        match self.script_template(req, &arqc, command).await {
            Some(template) => {
                out.field55
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&template);
                self.audit_script(&entry, &arqc, command, code).await;
            }
            None => tracing::warn!(
                card = entry.card.card_id.0,
                "no issuer script key for the card's algorithm: declined without APPLICATION BLOCK"
            ),
        }
        out
    }

    /// Field 55 of an approval: the ARPC, then a PIN UNBLOCK script when the card reports its
    /// offline PIN try limit exceeded and `pin` says this switch verified the PIN online.
    pub(crate) async fn approved_field55(
        &self,
        req: &Request,
        entry: &CardEntry,
        arqc: Option<&VerifiedArqc>,
        pin: Option<PinCheck>,
    ) -> Option<Vec<u8>> {
        let mut field55 = self.arpc(arqc, ResponseCode::Approved).await?;
        let Some(arqc) = arqc.filter(|a| a.pin_try_limit_exceeded) else {
            return Some(field55);
        };
        if pin != Some(PinCheck::Verified) {
            return Some(field55);
        }
        let command = ScriptCommand::PinUnblock;
        match self.script_template(req, arqc, command).await {
            Some(template) => {
                field55.extend_from_slice(&template);
                self.audit_script(entry, arqc, command, ResponseCode::Approved)
                    .await;
            }
            None => tracing::warn!(
                card = entry.card.card_id.0,
                "no issuer script key for the card's algorithm: approved without PIN UNBLOCK"
            ),
        }
        Some(field55)
    }

    /// Tag 72 with `command`, identified (9F18) by the request's STAN.
    async fn script_template(
        &self,
        req: &Request,
        arqc: &VerifiedArqc,
        command: ScriptCommand,
    ) -> Option<Vec<u8>> {
        let script_id = req.stan.value().to_be_bytes();
        arqc.script_template(&*self.hsm, &self.keys.issuer, script_id, &[command])
            .await
    }

    async fn audit_script(
        &self,
        entry: &CardEntry,
        arqc: &VerifiedArqc,
        command: ScriptCommand,
        code: ResponseCode,
    ) {
        let audit = AuditEntry {
            actor: "switch".into(),
            action: "card.issuer_script".into(),
            subject: format!("card:{}", entry.card.card_id.0),
            detail: serde_json::json!({
                "command": command.as_str(),
                "template": "72",
                "atc": arqc.atc(),
                "response_code": code.as_str(),
            })
            .to_string(),
            at_us: crate::store::now_us(),
        };
        if let Err(e) = self.store.append_audit(&audit).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}
