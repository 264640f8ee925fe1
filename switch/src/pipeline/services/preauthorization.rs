//! Pre-authorization (0100) and its advice (0120): a hold on the personal medical-insurance
//! account, captured by a completion (0220) or released when it expires (`pipeline::holds`).
//!
//! Parse: 0100 or 0120. Check: the card under its lock; for a 0100 also its ARQC and PIN. A
//! lost or stolen card is declined without an APPLICATION BLOCK script here. Decide: the
//! personal account must cover the hold (51). Commit: the hold, its expiry and the ATC.
//! Respond: the switch's authorization code and the ARPC. An advice (0120) is acknowledged with
//! 00 once the switch has decided it, whatever it decided (ISO 8583 advices cannot be declined;
//! the recorded decision says what happened), and is not acknowledged (96) when the switch could
//! not record it: the acquirer keeps it and sends it again (store-and-forward, ISO 8583:1987
//! message class 1, function 2), and the resend is decided afresh (`Pipeline::authorize`
//! forgets its duplicate key).

use crate::pipeline::cardholder::{Checks, PinRule};
use crate::pipeline::decision::{fen, local_auth_code, party, Movement, PlannedLeg};
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::Pipeline;
use crate::store::{BalanceOp, HoldId, Store, TransactionKind};
use hsm_sim::keys::Tpk;
use schemas::domain::ResponseCode;
use schemas::events::{EventType, LedgerAccount, LegKind};

/// The card under its lock (the hold depends on its balance); a 0100's cryptogram and PIN.
fn checks(tpk: &Tpk, advice: bool) -> Checks<'_> {
    Checks {
        block_lost_chip: false,
        lock: true,
        arqc: !advice,
        pin: if advice {
            PinRule::NotAsked
        } else {
            PinRule::Verify(tpk)
        },
        limits: false,
    }
}

/// What an advice is answered: 00, unless nothing could be recorded (96, so it comes again);
/// a request gets `out`.
fn advice_or(advice: bool, out: Outcome) -> Outcome {
    if advice && out.code != Some(ResponseCode::SystemMalfunction) {
        Outcome::answer(ResponseCode::Approved)
    } else {
        out
    }
}

impl<S: Store> Pipeline<S> {
    /// Pre-authorization (0100) or its advice (0120): a hold on the personal account.
    pub(crate) async fn preauthorization(&self, req: &Request, tpk: &Tpk, advice: bool) -> Outcome {
        let kind = TransactionKind::Preauthorization;
        let card = match self.check_cardholder(req, kind, checks(tpk, advice)).await {
            Ok(card) => card,
            Err(out) => return advice_or(advice, out),
        };
        let Some(account) = card.entry.personal else {
            let code = ResponseCode::NotPermittedToCardholder;
            return advice_or(advice, card.decline_without_arpc(code).await);
        };
        let amount = req.amount_fen.get();
        match self.cards.available(&*self.store, account).await {
            Ok(v) if v >= amount => {}
            Ok(_) => {
                let out = card.decline(ResponseCode::InsufficientFunds).await;
                return advice_or(advice, out);
            }
            Err(_) => {
                return card
                    .decline_without_arpc(ResponseCode::SystemMalfunction)
                    .await
            }
        }
        let record = card.approval_record(None);
        let hold_id = HoldId(record.transaction_id.0);
        // By the pipeline's clock, which `release_expired_holds` compares it with.
        let expires_at_us = self.cfg.clock.now_us()
            + i64::try_from(self.cfg.hold_ttl.as_micros()).unwrap_or(i64::MAX / 2);
        let legs = [PlannedLeg {
            kind: LegKind::PersonalAccount,
            debit: party(&self.cfg.insurance_fund, LedgerAccount::PersonalAccounts),
            credit: party(&req.acquirer, LedgerAccount::Merchant),
            account: Some(account),
            amount_fen: amount,
        }];
        let movement = Movement {
            balance_ops: vec![BalanceOp::PlaceHold {
                hold_id,
                account_id: account,
                amount_fen: fen(amount),
                expires_at_us,
            }],
            hold_id: Some(hold_id.0),
            ..Movement::new(EventType::AuthorizationHold, &legs)
        };
        let mut decision = movement.decision(record);
        decision.atc = card.atc();
        decision.risk = card.risk();
        match self.commit(decision).await {
            Ok(_) => {
                self.cards.adjust(account, -amount);
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code: Some(local_auth_code(req)),
                    field55: card.approved_field55().await,
                    ..Outcome::default()
                }
            }
            Err(ResponseCode::DuplicateTransmission) if advice => {
                Outcome::answer(ResponseCode::Approved)
            }
            Err(code) => advice_or(advice, Outcome::answer(code)),
        }
    }
}
