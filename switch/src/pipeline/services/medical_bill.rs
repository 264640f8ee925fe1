//! Hospital bill payment (0200, field 3 `19xxxx`, 60.1 `01`): the bill of field 62 is split
//! between the medical-insurance pooled fund, the cardholder's personal account and the card's
//! bank, and paid all or nothing.
//!
//! Parse: the bill. Check: the whole cardholder (card, ARQC, PIN, limits), with the bill's
//! hospital and the card's insurance policy as the service's own rules, so a bill the card may
//! not pay is declined before its cryptogram is used. Decide: the split over the card's
//! balances (`pipeline::split`), then the bank leg for the bank's share, with stand-in. Commit:
//! the three legs, the two account debits, the stand-in advice and the ATC in one decision.
//! Respond: the shares in field 63, the ARPC (and a PIN UNBLOCK script) in 55.

use crate::pipeline::bank_leg::{BankLeg, IfBankDown, LegApproval};
use crate::pipeline::cardholder::{Cardholder, Checks, PinRule};
use crate::pipeline::cards::CardEntry;
use crate::pipeline::decision::{fen, local_auth_code, party, Movement, PlannedLeg};
use crate::pipeline::request::{Bill, Request};
use crate::pipeline::response::{Outcome, SplitFields};
use crate::pipeline::split::{split_bill, MedicalCategory, Policy, Split, SplitInput};
use crate::pipeline::Pipeline;
use crate::store::{AccountId, BalanceOp, Decision, Store, TransactionKind};
use hsm_sim::keys::Tpk;
use schemas::domain::{ProcessingCode, ResponseCode};
use schemas::events::{EventType, LedgerAccount, LegKind};

/// Everything about the cardholder: the bill's money comes from the card's own accounts and
/// bank, under its limits.
fn checks(tpk: &Tpk) -> Checks<'_> {
    Checks {
        block_lost_chip: true,
        lock: true,
        arqc: true,
        pin: PinRule::Verify(tpk),
        limits: true,
    }
}

/// The bill's split and what the personal account had before it.
struct Shares {
    split: Split,
    personal_available_fen: i64,
}

impl<S: Store> Pipeline<S> {
    /// Hospital bill payment: fund, personal account, bank — all or nothing.
    pub(crate) async fn medical_bill(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::MedicalBillSplit;
        let Some(bill) = req.bill.as_ref() else {
            return Outcome::answer(ResponseCode::FormatError);
        };
        let rules = |entry: &CardEntry| self.bill_policy(req, bill, entry);
        let checked = self.check_cardholder_with(req, kind, checks(tpk), rules);
        let (mut card, policy) = match checked.await {
            Ok(checked) => checked,
            Err(out) => return out,
        };
        let shares = match self.shares(&card, policy).await {
            Ok(shares) => shares,
            Err(code) => return card.decline(code).await,
        };
        let bank_fen = fen(shares.split.bank_fen);
        let approval = match shares.split.bank_fen > 0 {
            true => {
                let leg = BankLeg {
                    processing_code: ProcessingCode::PURCHASE,
                    amount: bank_fen,
                    pin: card.pin_for_bank(),
                    if_bank_down: IfBankDown::StandIn,
                };
                match card.money_leg(leg).await {
                    Ok(approval) => approval,
                    Err(out) => return out,
                }
            }
            false => LegApproval::default(),
        };
        let decision = bill_decision(&card, &shares.split, &approval);
        let sent = decision.clone();
        match self.commit_detailed(decision).await {
            Ok(_) => {
                self.count_advice(&approval);
                card.keep_reservation();
                self.bill_paid(&card, &shares, approval).await
            }
            // The bank booked its share: its 0420, and the compensation (fund and personal
            // account debits credited back too) in case the approval committed after all.
            Err(r) if shares.split.bank_fen > 0 && approval.bank_saw_it() => {
                card.undo_failed_approval(&sent, Some(bank_fen), r.code)
                    .await
            }
            // Stand-in, or no bank share: the fund's and the personal account's money (and the
            // stand-in advice) come back if the approval committed.
            Err(r) if r.outcome_unknown => card.undo_failed_approval(&sent, None, r.code).await,
            Err(r) => Outcome::answer(r.code),
        }
    }

    /// The service's rules on the card: the bill comes from the designated hospital that sends
    /// it (03), and the card's insurance covers its category at that hospital's level (57). A
    /// card without insurance pays the whole bill from its bank.
    fn bill_policy(
        &self,
        req: &Request,
        bill: &Bill,
        entry: &CardEntry,
    ) -> Result<Option<&Policy>, ResponseCode> {
        let hospital = self
            .cfg
            .hospitals
            .get(&bill.hospital_code)
            .ok_or(ResponseCode::InvalidMerchant)?;
        if hospital.institution != req.acquirer {
            return Err(ResponseCode::InvalidMerchant);
        }
        let Some(insurance) = entry.card.issuance.insurance_category else {
            return Ok(None);
        };
        let category = MedicalCategory(bill.category);
        match self.cfg.policy.lookup(insurance, category, hospital.level) {
            Some(policy) => Ok(Some(policy)),
            None => Err(ResponseCode::NotPermittedToCardholder),
        }
    }

    /// The split of the bill over what is left of the card's entitlement and personal account.
    async fn shares(
        &self,
        card: &Cardholder<'_, S>,
        policy: Option<&Policy>,
    ) -> Result<Shares, ResponseCode> {
        let balance = |a: Option<AccountId>| async move {
            match a {
                Some(a) => self
                    .cards
                    .available(&*self.store, a)
                    .await
                    .map(|v| v.max(0)),
                None => Ok(0),
            }
        };
        let (Ok(entitlement), Ok(personal)) = (
            balance(card.entry.entitlement).await,
            balance(card.entry.personal).await,
        ) else {
            return Err(ResponseCode::SystemMalfunction);
        };
        let bill_fen = card.req.amount_fen.get();
        let split = match policy {
            Some(p) => split_bill(
                p,
                SplitInput {
                    bill_fen,
                    entitlement_remaining_fen: entitlement,
                    personal_available_fen: personal,
                },
            ),
            None => Split {
                bank_fen: bill_fen,
                ..Default::default()
            },
        };
        Ok(Shares {
            split,
            personal_available_fen: personal,
        })
    }

    /// After the commit: the mirrored balances follow, and the answer carries the shares.
    async fn bill_paid(
        &self,
        card: &Cardholder<'_, S>,
        shares: &Shares,
        approval: LegApproval,
    ) -> Outcome {
        let split = &shares.split;
        if let Some(a) = card.entry.entitlement {
            self.cards.adjust(a, -split.pooled_fen);
        }
        if let Some(a) = card.entry.personal {
            self.cards.adjust(a, -split.personal_fen);
        }
        let bank = (split.bank_fen > 0).then(|| card.entry.card.issuer.clone());
        Outcome {
            code: Some(ResponseCode::Approved),
            auth_code: approval
                .auth_code
                .or_else(|| Some(local_auth_code(card.req))),
            field55: card.approved_field55().await,
            field63: Some(SplitFields {
                pooled_fen: split.pooled_fen,
                personal_fen: split.personal_fen,
                bank_fen: split.bank_fen,
                bank,
                personal_balance_after_fen: shares.personal_available_fen - split.personal_fen,
            }),
            ..Outcome::default()
        }
    }
}

/// The bill's decision: pooled fund, personal account and bank legs to the hospital, the two
/// account debits, the stand-in advice and the ATC.
fn bill_decision<S: Store>(
    card: &Cardholder<'_, S>,
    split: &Split,
    approval: &LegApproval,
) -> Decision {
    let (req, entry) = (card.req, &card.entry);
    let fund = &card.pipeline().cfg.insurance_fund;
    let bank = &entry.card.issuer;
    let merchant = party(&req.acquirer, LedgerAccount::Merchant);
    let legs = [
        PlannedLeg {
            kind: LegKind::PooledFund,
            debit: party(fund, LedgerAccount::PooledFund),
            credit: merchant.clone(),
            account: entry.entitlement,
            amount_fen: split.pooled_fen,
        },
        PlannedLeg {
            kind: LegKind::PersonalAccount,
            debit: party(fund, LedgerAccount::PersonalAccounts),
            credit: merchant.clone(),
            account: entry.personal,
            amount_fen: split.personal_fen,
        },
        PlannedLeg {
            kind: LegKind::Bank,
            debit: party(bank, LedgerAccount::BankSettlement),
            credit: merchant,
            account: None,
            amount_fen: split.bank_fen,
        },
    ];
    let mut balance_ops = Vec::new();
    for (account, amount) in [
        (entry.entitlement, split.pooled_fen),
        (entry.personal, split.personal_fen),
    ] {
        if let (Some(account_id), true) = (account, amount > 0) {
            balance_ops.push(BalanceOp::Debit {
                account_id,
                amount_fen: fen(amount),
            });
        }
    }
    let issuer = (split.bank_fen > 0).then(|| bank.clone());
    let movement = Movement {
        balance_ops,
        issuer: issuer.clone(),
        ..Movement::new(EventType::MedicalBillSplit, &legs)
    };
    let mut decision = movement.decision(card.approval_record(issuer));
    decision.advice = approval.advice.clone();
    decision.atc = card.atc();
    decision.risk = card.risk_with(approval);
    decision
}
