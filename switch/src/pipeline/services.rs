//! The services of the pipeline (step 8 onwards): the hospital bill split, bank purchases,
//! balance inquiries, refunds, benefit credits, pre-authorizations and completions. Each turns
//! a checked request into one [`Decision`] (transaction row, legs, balance operations, the
//! settlement event, a queued reversal or stand-in advice) committed atomically, and the fields
//! of its response.
//!
//! Event ids are the transaction ids (both UUID v7, one event per transaction), and a hold's id
//! is its pre-authorization's transaction id, so completions, releases and reversals name their
//! original without another lookup.

use super::cards::CardEntry;
use super::request::Request;
use super::security::{self, VerifiedArqc};
use super::split::{split_bill, MedicalCategory, SplitInput};
use super::{Outcome, Pipeline, SplitFields};
use crate::issuer::gateway::GatewayError;
use crate::store::{
    AccountId, AdviceClass, AdviceId, AdviceRequest, BalanceOp, CardAtc, Decision, HoldId,
    ReversalId, ReversalReason, ReversalRequest, Store, StoredTransaction, TransactionKind,
    TransactionRecord, TxnLeg,
};
use chrono::Utc;
use hsm_sim::keys::Tpk;
use schemas::domain::{
    AmountFen, Currency, InstitutionId, ResponseCode, Stan, TransmissionDateTime,
};
use schemas::events::{
    EventType, Institutions, LedgerAccount, Leg, LegKind, Party, References, SettlementEvent,
    SCHEMA_VERSION,
};
use schemas::iso8583::{self, Mti, OwnedMessage};

/// One funding leg before it becomes a store leg and an event leg.
#[derive(Debug, Clone)]
pub(crate) struct PlannedLeg {
    pub kind: LegKind,
    pub debit: Party,
    pub credit: Party,
    pub account: Option<AccountId>,
    pub amount_fen: i64,
}

pub(crate) fn party(institution: &InstitutionId, account: LedgerAccount) -> Party {
    Party {
        institution: institution.clone(),
        account,
    }
}

fn fen(v: i64) -> AmountFen {
    AmountFen::new(v).unwrap_or(AmountFen::ZERO)
}

/// What the bank said about a leg.
#[derive(Debug)]
pub(crate) enum BankAnswer {
    /// Approved, with its authorization code and optional field 54.
    Approved {
        auth_code: Option<String>,
        field54: Option<String>,
    },
    /// Approved by the switch in stand-in (the bank was unreachable), with the advice that
    /// tells the bank.
    StandIn(AdviceRequest),
    /// Declined by the bank.
    Declined(ResponseCode),
    /// Sent but unanswered: decline 91 and reverse. Holds the leg's STAN and field 7.
    Unanswered {
        stan: Stan,
        transmission_at: TransmissionDateTime,
    },
}

/// A bank leg approved by the bank or, in stand-in, by the switch.
#[derive(Debug)]
pub(crate) struct LegApproval {
    /// Field 38 for the acquirer.
    pub auth_code: Option<String>,
    /// The stand-in advice to commit with the decision (`None`: the bank approved).
    pub advice: Option<AdviceRequest>,
}

impl LegApproval {
    /// After the decision failed to commit: only a leg the bank approved must be reversed (a
    /// stand-in leg never reached the bank, and its advice failed with the decision).
    fn bank_saw_it(&self) -> bool {
        self.advice.is_none()
    }
}

/// Field 7 (MMDDhhmmss) and 12/13 in China Standard Time.
pub(crate) fn cst_now() -> (String, String, String) {
    let now = Utc::now() + chrono::Duration::hours(8);
    (
        now.format("%m%d%H%M%S").to_string(),
        now.format("%H%M%S").to_string(),
        now.format("%m%d").to_string(),
    )
}

impl<S: Store> Pipeline<S> {
    /// Builds the decision rows common to every approved money movement.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn money_decision(
        &self,
        record: TransactionRecord,
        event_type: EventType,
        legs: &[PlannedLeg],
        balance_ops: Vec<BalanceOp>,
        issuer: Option<InstitutionId>,
        original_event_id: Option<uuid::Uuid>,
        hold_id: Option<uuid::Uuid>,
    ) -> Decision {
        let legs: Vec<&PlannedLeg> = legs.iter().filter(|l| l.amount_fen > 0).collect();
        let store_legs = legs
            .iter()
            .enumerate()
            .map(|(i, l)| TxnLeg {
                leg_no: (i + 1) as u8,
                kind: l.kind,
                institution: l.debit.institution.clone(),
                account_id: l.account,
                amount_fen: fen(l.amount_fen),
            })
            .collect();
        let event_legs: Vec<Leg> = legs
            .iter()
            .enumerate()
            .map(|(i, l)| Leg {
                leg_no: (i + 1) as u8,
                kind: l.kind,
                debit: l.debit.clone(),
                credit: l.credit.clone(),
                amount_fen: fen(l.amount_fen),
            })
            .collect();
        let total: i64 = legs.iter().map(|l| l.amount_fen).sum();
        let event = (!event_legs.is_empty()).then(|| SettlementEvent {
            event_id: record.transaction_id.0,
            schema_version: SCHEMA_VERSION,
            event_type,
            occurred_at: Utc::now(),
            transaction_id: record.transaction_id.0,
            institutions: Institutions {
                acquirer: record.acquirer.clone(),
                issuer,
            },
            currency: Currency::Cny,
            amount_fen: fen(total),
            legs: event_legs,
            references: References {
                rrn: record.rrn.clone(),
                stan: record.stan,
                terminal_id: record.terminal_id.clone(),
                transmission_at: record.transmission_at.clone(),
                original_event_id,
                hold_id,
            },
        });
        Decision {
            transaction: record,
            legs: store_legs,
            balance_ops,
            event,
            reversal: None,
            advice: None,
            atc: None,
        }
    }

    /// Sends a leg to the card's bank (routing, step 9). `pin` is the PIN block under the
    /// acquirer's TPK, translated here to the bank's current ZPK.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn bank_leg(
        &self,
        req: &Request,
        entry: &CardEntry,
        processing_code: &str,
        amount_fen: i64,
        pin: Option<(&Tpk, [u8; 8])>,
        allow_stand_in: bool,
    ) -> Result<BankAnswer, ResponseCode> {
        let bank = &entry.card.issuer;
        let pan = req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        if !self.banks.is_up(bank) {
            return match allow_stand_in {
                true => self
                    .stand_in(req, entry, processing_code, amount_fen)
                    .await
                    .map(BankAnswer::StandIn),
                false => Err(ResponseCode::IssuerUnavailable),
            };
        }
        let pin_under_zpk = match pin {
            Some((tpk, block)) => {
                let zpk = self
                    .banks
                    .zpk(bank)
                    .ok_or(ResponseCode::IssuerUnavailable)?;
                Some(security::translate_pin(&*self.hsm, tpk, &zpk, pan, &block).await?)
            }
            None => None,
        };
        let spec = iso8583::spec("ssc87").map_err(|_| ResponseCode::SystemMalfunction)?;
        let stan = self.banks.next_stan(bank);
        let (f7, f12, f13) = cst_now();
        let transmission_at =
            TransmissionDateTime::parse(&f7).map_err(|_| ResponseCode::SystemMalfunction)?;
        let mut m = OwnedMessage::new(
            spec,
            Mti::new("0200").map_err(|_| ResponseCode::SystemMalfunction)?,
        );
        let built = (|| -> Result<(), iso8583::Error> {
            m.set_str(2, pan.expose_digits())?
                .set_str(3, processing_code)?
                .set_u64(4, amount_fen.unsigned_abs())?
                .set_str(7, &f7)?
                .set_u64(11, u64::from(stan.value()))?
                .set_str(12, &f12)?
                .set_str(13, &f13)?
                .set_str(14, &entry.card.expiry_yymm)?
                .set_str(22, if req.icc.is_some() { "051" } else { "021" })?
                .set_str(23, &format!("0{}", entry.card.issuance.pan_sequence_number))?
                .set_str(25, "00")?
                .set_str(32, req.acquirer.as_str())?
                .set_str(33, self.cfg.switch_id.as_str())?
                .set_str(37, req.rrn.as_str())?
                .set_str(41, req.terminal_id.as_str())?
                .set_str(49, "156")?
                .set_str(100, bank.as_str())?;
            if let Some(block) = pin_under_zpk {
                m.set_bytes(52, &block)?.set_str(26, "12")?;
            }
            Ok(())
        })();
        if built.is_err() {
            return Err(ResponseCode::SystemMalfunction);
        }
        let sent = std::time::Instant::now();
        let answer = self.banks.send(bank, m, self.cfg.bank_timeout).await;
        self.metrics
            .bank_leg
            .observe_us(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        match answer {
            Ok(answer) => {
                let code = answer
                    .get_str(39)
                    .ok()
                    .and_then(|c| ResponseCode::parse(&c).ok())
                    .unwrap_or(ResponseCode::SystemMalfunction);
                if code.is_approved() {
                    Ok(BankAnswer::Approved {
                        auth_code: answer.get_str(38).ok().map(|s| s.into_owned()),
                        field54: answer.get_str(54).ok().map(|s| s.into_owned()),
                    })
                } else {
                    Ok(BankAnswer::Declined(code))
                }
            }
            Err(e) if e.needs_reversal() => {
                tracing::warn!(bank = %bank, error = %e, "bank leg unanswered, reversing");
                Ok(BankAnswer::Unanswered {
                    stan,
                    transmission_at,
                })
            }
            Err(GatewayError::Unavailable) => Err(ResponseCode::IssuerUnavailable),
            Err(e) => {
                tracing::warn!(bank = %bank, error = %e, "bank leg not sent");
                Err(ResponseCode::IssuerUnavailable)
            }
        }
    }

    /// Stand-in for a bank whose link is down: within the bank's per-transaction and per-card
    /// daily limits, the advice (0220) that will tell the bank, with the bank link's next STAN
    /// and field 7; 91 otherwise. The caller holds the card's lock until the approval is
    /// committed, so two stand-ins of one card cannot both fit under the daily limit.
    async fn stand_in(
        &self,
        req: &Request,
        entry: &CardEntry,
        processing_code: &str,
        amount_fen: i64,
    ) -> Result<AdviceRequest, ResponseCode> {
        let bank = &entry.card.issuer;
        let rule = self
            .cfg
            .stand_in
            .get(bank)
            .ok_or(ResponseCode::IssuerUnavailable)?;
        let amount = AmountFen::new(amount_fen).map_err(|_| ResponseCode::InvalidAmount)?;
        if amount_fen <= 0 || amount_fen > rule.per_transaction_fen_max {
            return Err(ResponseCode::IssuerUnavailable);
        }
        let now = crate::store::now_us();
        let today = super::velocity::cst_day_start_us(now);
        let used = self
            .store
            .stand_in_total_fen(entry.card.card_id, bank, today)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "stand-in total unavailable");
                ResponseCode::IssuerUnavailable
            })?;
        if used.saturating_add(amount_fen) > rule.per_card_daily_fen_max {
            tracing::info!(bank = %bank, "stand-in declined: card's daily stand-in limit");
            return Err(ResponseCode::IssuerUnavailable);
        }
        let (f7, _, _) = cst_now();
        let advice = AdviceRequest {
            advice_id: AdviceId(uuid::Uuid::now_v7()),
            destination: bank.clone(),
            class: AdviceClass::Financial,
            processing_code: processing_code.to_owned(),
            amount_fen: amount,
            stan: self.banks.next_stan(bank),
            transmission_at: TransmissionDateTime::parse(&f7)
                .map_err(|_| ResponseCode::SystemMalfunction)?,
            reason: ResponseCode::IssuerUnavailable,
            auth_code: stand_in_code(req),
            first_attempt_at_us: now,
        };
        self.metrics
            .stand_in_approvals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(advice)
    }

    /// Sends a money-moving bank leg and turns every way it can fail into the answer to give:
    /// a recorded decline (with the card's ARPC for that decline when there was an ARQC), or,
    /// when the bank did not answer, a 91 with its 0420 queued in the same commit. `Ok` carries
    /// the approval: the bank's authorization code, or the stand-in code and the advice the
    /// caller must commit with its decision.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn money_leg(
        &self,
        req: &Request,
        kind: TransactionKind,
        entry: &CardEntry,
        processing_code: &str,
        amount_fen: i64,
        pin: Option<(&Tpk, [u8; 8])>,
        allow_stand_in: bool,
        arqc: Option<&VerifiedArqc>,
    ) -> Result<LegApproval, Outcome> {
        match self
            .bank_leg(req, entry, processing_code, amount_fen, pin, allow_stand_in)
            .await
        {
            Ok(BankAnswer::Approved { auth_code, .. }) => Ok(LegApproval {
                auth_code,
                advice: None,
            }),
            Ok(BankAnswer::StandIn(advice)) => Ok(LegApproval {
                auth_code: Some(advice.auth_code.clone()),
                advice: Some(advice),
            }),
            Ok(BankAnswer::Declined(code)) | Err(code) => {
                Err(self.decline_with_arpc(req, kind, entry, code, arqc).await)
            }
            Ok(BankAnswer::Unanswered {
                stan,
                transmission_at,
            }) => {
                let mut out = self
                    .decline_and_reverse(
                        req,
                        kind,
                        entry,
                        amount_fen,
                        (stan, transmission_at),
                        super::card_atc(entry, arqc),
                    )
                    .await;
                out.field55 = self.arpc(arqc, ResponseCode::IssuerUnavailable).await;
                Err(out)
            }
        }
    }

    /// A decline 91 for an unanswered bank leg, with its 0420 (the STAN and field 7 of the
    /// unanswered leg) queued in the same commit.
    pub(crate) async fn decline_and_reverse(
        &self,
        req: &Request,
        kind: TransactionKind,
        entry: &CardEntry,
        amount_fen: i64,
        (stan, transmission_at): (Stan, TransmissionDateTime),
        atc: Option<CardAtc>,
    ) -> Outcome {
        let code = ResponseCode::IssuerUnavailable;
        let record = self.record(
            req,
            kind,
            Some(entry),
            Some(entry.card.issuer.clone()),
            code,
        );
        let decision = Decision {
            transaction: record,
            legs: Vec::new(),
            balance_ops: Vec::new(),
            event: None,
            reversal: Some(ReversalRequest {
                reversal_id: ReversalId(uuid::Uuid::now_v7()),
                destination: entry.card.issuer.clone(),
                reason: ReversalReason::IssuerTimeout,
                amount_fen: fen(amount_fen),
                stan,
                transmission_at,
                first_attempt_at_us: crate::store::now_us(),
            }),
            advice: None,
            atc,
        };
        self.metrics
            .reversals_queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.commit(decision).await {
            Ok(_) => Outcome::answer(code),
            Err(e) => {
                tracing::error!(code = %e, "timeout decline and its reversal not stored");
                Outcome::answer(code)
            }
        }
    }

    /// Counts the advice of a committed stand-in approval.
    fn count_advice(&self, approval: &LegApproval) {
        if approval.advice.is_some() {
            self.metrics
                .advices_queued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A decision failed after its bank leg was approved: the bank's money must come back.
    async fn reverse_orphan_bank_leg(
        &self,
        req: &Request,
        kind: TransactionKind,
        entry: &CardEntry,
        amount_fen: i64,
        code: ResponseCode,
    ) -> Outcome {
        let stan = self.banks.next_stan(&entry.card.issuer);
        let (f7, _, _) = cst_now();
        match TransmissionDateTime::parse(&f7) {
            Ok(t) if code != ResponseCode::DuplicateTransmission => {
                let mut out = self
                    .decline_and_reverse(req, kind, entry, amount_fen, (stan, t), None)
                    .await;
                out.code = Some(code);
                out
            }
            _ => {
                tracing::error!(
                    "bank leg approved for a duplicate; the duplicate's original stands"
                );
                Outcome::answer(code)
            }
        }
    }

    /// Hospital bill payment: fund, personal account, bank — all or nothing.
    pub(crate) async fn medical_bill(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::MedicalBillSplit;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        let Some(bill) = req.bill.as_ref() else {
            return Outcome::answer(ResponseCode::FormatError);
        };
        let Some(hospital) = self.cfg.hospitals.get(&bill.hospital_code) else {
            return self
                .decline(req, kind, Some(&entry), ResponseCode::InvalidMerchant)
                .await;
        };
        if hospital.institution != req.acquirer {
            return self
                .decline(req, kind, Some(&entry), ResponseCode::InvalidMerchant)
                .await;
        }
        let policy =
            match entry.card.issuance.insurance_category {
                Some(ins) => match self.cfg.policy.lookup(
                    ins,
                    MedicalCategory(bill.category),
                    hospital.level,
                ) {
                    Some(p) => Some(p.clone()),
                    None => {
                        return self
                            .decline(
                                req,
                                kind,
                                Some(&entry),
                                ResponseCode::NotPermittedToCardholder,
                            )
                            .await
                    }
                },
                None => None,
            };
        let _card_lock = self.cards.lock(entry.card.card_id).lock().await;
        let arqc = match self.arqc_step(req, &entry).await {
            Ok(a) => a,
            Err(d) => {
                return self
                    .decline_with_arpc(req, kind, &entry, d.code, d.arqc.as_ref())
                    .await
            }
        };
        let pin = match self.pin_step(req, &entry, tpk).await {
            Ok(p) => p,
            Err(code) => {
                return self
                    .decline_with_arpc(req, kind, &entry, code, arqc.as_ref())
                    .await
            }
        };
        let now = crate::store::now_us();
        let reservation = match self
            .velocity
            .reserve(entry.card.card_id, req.amount_fen.get(), now)
        {
            Ok(r) => r,
            Err(code) => {
                return self
                    .decline_with_arpc(req, kind, &entry, code, arqc.as_ref())
                    .await
            }
        };
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
            balance(entry.entitlement).await,
            balance(entry.personal).await,
        ) else {
            return self
                .decline_with_arpc(
                    req,
                    kind,
                    &entry,
                    ResponseCode::SystemMalfunction,
                    arqc.as_ref(),
                )
                .await;
        };
        let split = match &policy {
            Some(p) => split_bill(
                p,
                SplitInput {
                    bill_fen: req.amount_fen.get(),
                    entitlement_remaining_fen: entitlement,
                    personal_available_fen: personal,
                },
            ),
            None => super::split::Split {
                bank_fen: req.amount_fen.get(),
                ..Default::default()
            },
        };
        let bank = entry.card.issuer.clone();
        let mut approval = LegApproval {
            auth_code: None,
            advice: None,
        };
        if split.bank_fen > 0 {
            let pin = req.pin_block.map(|b| (tpk, b));
            let leg = self
                .money_leg(
                    req,
                    kind,
                    &entry,
                    "000000",
                    split.bank_fen,
                    pin,
                    true,
                    arqc.as_ref(),
                )
                .await;
            match leg {
                Ok(a) => approval = a,
                Err(out) => return out,
            }
        }
        let fund = &self.cfg.insurance_fund;
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
                debit: party(&bank, LedgerAccount::BankSettlement),
                credit: merchant,
                account: None,
                amount_fen: split.bank_fen,
            },
        ];
        let mut ops = Vec::new();
        for (account, amount) in [
            (entry.entitlement, split.pooled_fen),
            (entry.personal, split.personal_fen),
        ] {
            if let (Some(account_id), true) = (account, amount > 0) {
                ops.push(BalanceOp::Debit {
                    account_id,
                    amount_fen: fen(amount),
                });
            }
        }
        let issuer = (split.bank_fen > 0).then(|| bank.clone());
        let record = self.record(
            req,
            kind,
            Some(&entry),
            issuer.clone(),
            ResponseCode::Approved,
        );
        let mut decision = self.money_decision(
            record,
            EventType::MedicalBillSplit,
            &legs,
            ops,
            issuer,
            None,
            None,
        );
        decision.advice = approval.advice.clone();
        decision.atc = super::card_atc(&entry, arqc.as_ref());
        match self.commit(decision).await {
            Ok(_) => {
                self.count_advice(&approval);
                reservation.keep();
                if let Some(a) = entry.entitlement {
                    self.cards.adjust(a, -split.pooled_fen);
                }
                if let Some(a) = entry.personal {
                    self.cards.adjust(a, -split.personal_fen);
                }
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code: approval.auth_code.or_else(|| Some(local_auth_code(req))),
                    field54: None,
                    field55: self
                        .approved_field55(req, &entry, arqc.as_ref(), Some(pin))
                        .await,
                    field63: Some(SplitFields {
                        pooled_fen: split.pooled_fen,
                        personal_fen: split.personal_fen,
                        bank_fen: split.bank_fen,
                        bank: (split.bank_fen > 0).then_some(bank),
                        personal_balance_after_fen: personal - split.personal_fen,
                    }),
                    mac_key: None,
                    reconciled: None,
                }
            }
            Err(code) if split.bank_fen > 0 && approval.bank_saw_it() => {
                self.reverse_orphan_bank_leg(req, kind, &entry, split.bank_fen, code)
                    .await
            }
            Err(code) => Outcome::answer(code),
        }
    }

    /// Records a decline and answers the card with an ARPC for the decline's ARC.
    pub(crate) async fn decline_with_arpc(
        &self,
        req: &Request,
        kind: TransactionKind,
        entry: &CardEntry,
        code: ResponseCode,
        arqc: Option<&VerifiedArqc>,
    ) -> Outcome {
        let atc = super::card_atc(entry, arqc);
        let mut out = self
            .decline_consuming(req, kind, Some(entry), code, atc)
            .await;
        if out.code == Some(code) {
            out.field55 = self.arpc(arqc, code).await;
        }
        out
    }

    pub(crate) async fn arpc(
        &self,
        arqc: Option<&VerifiedArqc>,
        code: ResponseCode,
    ) -> Option<Vec<u8>> {
        match arqc {
            Some(a) => a.response_field55(&*self.hsm, code).await,
            None => None,
        }
    }

    /// A purchase paid entirely by the card's bank.
    pub(crate) async fn bank_purchase(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::Purchase;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        let _card_lock = self.cards.lock(entry.card.card_id).lock().await;
        let arqc = match self.arqc_step(req, &entry).await {
            Ok(a) => a,
            Err(d) => {
                return self
                    .decline_with_arpc(req, kind, &entry, d.code, d.arqc.as_ref())
                    .await
            }
        };
        if req.pin_block.is_none() {
            return self
                .decline_with_arpc(req, kind, &entry, ResponseCode::IncorrectPin, arqc.as_ref())
                .await;
        }
        let reservation = match self.velocity.reserve(
            entry.card.card_id,
            req.amount_fen.get(),
            crate::store::now_us(),
        ) {
            Ok(r) => r,
            Err(code) => {
                return self
                    .decline_with_arpc(req, kind, &entry, code, arqc.as_ref())
                    .await
            }
        };
        let amount = req.amount_fen.get();
        let pin = req.pin_block.map(|b| (tpk, b));
        let approval = match self
            .money_leg(
                req,
                kind,
                &entry,
                "000000",
                amount,
                pin,
                true,
                arqc.as_ref(),
            )
            .await
        {
            Ok(a) => a,
            Err(out) => return out,
        };
        let bank = entry.card.issuer.clone();
        let legs = [PlannedLeg {
            kind: LegKind::Bank,
            debit: party(&bank, LedgerAccount::BankSettlement),
            credit: party(&req.acquirer, LedgerAccount::Merchant),
            account: None,
            amount_fen: amount,
        }];
        let record = self.record(
            req,
            kind,
            Some(&entry),
            Some(bank.clone()),
            ResponseCode::Approved,
        );
        let mut decision = self.money_decision(
            record,
            EventType::Purchase,
            &legs,
            Vec::new(),
            Some(bank),
            None,
            None,
        );
        decision.advice = approval.advice.clone();
        decision.atc = super::card_atc(&entry, arqc.as_ref());
        match self.commit(decision).await {
            Ok(_) => {
                self.count_advice(&approval);
                reservation.keep();
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code: approval.auth_code,
                    field55: self.arpc(arqc.as_ref(), ResponseCode::Approved).await,
                    ..Outcome::default()
                }
            }
            Err(code) if approval.bank_saw_it() => {
                self.reverse_orphan_bank_leg(req, kind, &entry, amount, code)
                    .await
            }
            Err(code) => Outcome::answer(code),
        }
    }

    /// Balance of the personal medical-insurance account (field 54).
    pub(crate) async fn personal_balance(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::BalanceInquiry;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        if let Err(code) = self.pin_step(req, &entry, tpk).await {
            return self.decline(req, kind, Some(&entry), code).await;
        }
        let Some(account) = entry.personal else {
            return self
                .decline(
                    req,
                    kind,
                    Some(&entry),
                    ResponseCode::NotPermittedToCardholder,
                )
                .await;
        };
        let (ledger, available) = match self.store.account(account).await {
            Ok(Some(a)) => (a.balance_fen, a.balance_fen - a.held_fen),
            _ => {
                return self
                    .decline(req, kind, Some(&entry), ResponseCode::SystemMalfunction)
                    .await
            }
        };
        let record = self.record(req, kind, Some(&entry), None, ResponseCode::Approved);
        let decision = Decision {
            transaction: record,
            legs: Vec::new(),
            balance_ops: Vec::new(),
            event: None,
            reversal: None,
            advice: None,
            atc: None,
        };
        match self.commit(decision).await {
            Ok(_) => Outcome {
                code: Some(ResponseCode::Approved),
                field54: Some(format!(
                    "{}{}",
                    additional_amount("96", "01", ledger),
                    additional_amount("96", "02", available)
                )),
                ..Outcome::default()
            },
            Err(code) => Outcome::answer(code),
        }
    }

    /// Balance of the bank account, asked of the bank.
    pub(crate) async fn bank_balance(&self, req: &Request, tpk: &Tpk) -> Outcome {
        let kind = TransactionKind::BalanceInquiry;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        let Some(block) = req.pin_block else {
            return self
                .decline(req, kind, Some(&entry), ResponseCode::IncorrectPin)
                .await;
        };
        match self
            .bank_leg(req, &entry, "310000", 0, Some((tpk, block)), false)
            .await
        {
            Ok(BankAnswer::Approved { field54, .. }) => {
                let record = self.record(
                    req,
                    kind,
                    Some(&entry),
                    Some(entry.card.issuer.clone()),
                    ResponseCode::Approved,
                );
                let decision = Decision {
                    transaction: record,
                    legs: Vec::new(),
                    balance_ops: Vec::new(),
                    event: None,
                    reversal: None,
                    advice: None,
                    atc: None,
                };
                match self.commit(decision).await {
                    Ok(_) => Outcome {
                        code: Some(ResponseCode::Approved),
                        field54,
                        ..Outcome::default()
                    },
                    Err(code) => Outcome::answer(code),
                }
            }
            Ok(BankAnswer::Declined(code)) | Err(code) => {
                self.decline(req, kind, Some(&entry), code).await
            }
            Ok(BankAnswer::StandIn(_) | BankAnswer::Unanswered { .. }) => {
                self.decline(req, kind, Some(&entry), ResponseCode::IssuerUnavailable)
                    .await
            }
        }
    }

    /// The approved original of a refund, completion or reversal: same RRN, an approved
    /// decision of `kinds`, optionally the given original STAN.
    pub(crate) async fn original(
        &self,
        req: &Request,
        kinds: &[TransactionKind],
        stan: Option<Stan>,
    ) -> Result<Option<StoredTransaction>, ResponseCode> {
        let found = self
            .store
            .transactions_by_rrn(&req.rrn)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "original lookup failed");
                ResponseCode::SystemMalfunction
            })?;
        Ok(found.into_iter().find(|t| {
            let r = &t.record;
            r.is_approved()
                && kinds.contains(&r.kind)
                && r.terminal_id == req.terminal_id
                && stan.is_none_or(|s| r.stan == s)
        }))
    }

    /// Refund of a bank purchase (field 37 = the purchase's RRN), credited by the bank.
    pub(crate) async fn refund(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::Refund;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        let original = match self.original(req, &[TransactionKind::Purchase], None).await {
            Ok(Some(o)) => o,
            Ok(None) => {
                return self
                    .decline(req, kind, Some(&entry), ResponseCode::UnableToLocateRecord)
                    .await
            }
            Err(code) => return Outcome::answer(code),
        };
        if original.record.card_id != Some(entry.card.card_id)
            || req.amount_fen > original.record.amount_fen
        {
            return self
                .decline(req, kind, Some(&entry), ResponseCode::InvalidAmount)
                .await;
        }
        let amount = req.amount_fen.get();
        let auth_code = match self
            .money_leg(req, kind, &entry, "200000", amount, None, false, None)
            .await
        {
            Ok(a) => a.auth_code,
            Err(out) => return out,
        };
        let bank = entry.card.issuer.clone();
        let legs = [PlannedLeg {
            kind: LegKind::Bank,
            debit: party(&req.acquirer, LedgerAccount::Merchant),
            credit: party(&bank, LedgerAccount::BankSettlement),
            account: None,
            amount_fen: amount,
        }];
        let mut record = self.record(
            req,
            kind,
            Some(&entry),
            Some(bank.clone()),
            ResponseCode::Approved,
        );
        record.original_transaction_id = Some(original.record.transaction_id);
        let decision = self.money_decision(
            record,
            EventType::Refund,
            &legs,
            Vec::new(),
            Some(bank),
            original.event_id,
            None,
        );
        match self.commit(decision).await {
            Ok(_) => Outcome {
                code: Some(ResponseCode::Approved),
                auth_code,
                ..Outcome::default()
            },
            Err(code) => {
                self.reverse_orphan_bank_leg(req, kind, &entry, amount, code)
                    .await
            }
        }
    }

    /// Benefit credit from the social-security fund to the card's bank account.
    pub(crate) async fn benefit_credit(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::BenefitCredit;
        let entry = match self.card_or_decline(req, kind).await {
            Ok(e) => e,
            Err(out) => return out,
        };
        if req.acquirer != self.cfg.social_security_fund
            && self.institution_kind(&req.acquirer)
                != Some(crate::store::InstitutionKind::JobCentre)
        {
            return self
                .decline(
                    req,
                    kind,
                    Some(&entry),
                    ResponseCode::NotPermittedToTerminal,
                )
                .await;
        }
        let Some(fund_account) = self.cfg.social_security_fund_account else {
            return self
                .decline(req, kind, Some(&entry), ResponseCode::InvalidTransaction)
                .await;
        };
        let amount = req.amount_fen.get();
        match self.cards.available(&*self.store, fund_account).await {
            Ok(v) if v >= amount => {}
            Ok(_) => {
                return self
                    .decline(req, kind, Some(&entry), ResponseCode::InsufficientFunds)
                    .await
            }
            Err(_) => {
                return self
                    .decline(req, kind, Some(&entry), ResponseCode::SystemMalfunction)
                    .await
            }
        }
        let auth_code = match self
            .money_leg(req, kind, &entry, "210000", amount, None, false, None)
            .await
        {
            Ok(a) => a.auth_code,
            Err(out) => return out,
        };
        let bank = entry.card.issuer.clone();
        let legs = [PlannedLeg {
            kind: LegKind::SocialSecurityFund,
            debit: party(
                &self.cfg.social_security_fund,
                LedgerAccount::SocialSecurityFund,
            ),
            credit: party(&bank, LedgerAccount::BankSettlement),
            account: Some(fund_account),
            amount_fen: amount,
        }];
        let ops = vec![BalanceOp::Debit {
            account_id: fund_account,
            amount_fen: fen(amount),
        }];
        let record = self.record(
            req,
            kind,
            Some(&entry),
            Some(bank.clone()),
            ResponseCode::Approved,
        );
        let decision = self.money_decision(
            record,
            EventType::BenefitCredit,
            &legs,
            ops,
            Some(bank),
            None,
            None,
        );
        match self.commit(decision).await {
            Ok(_) => {
                self.cards.adjust(fund_account, -amount);
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code,
                    ..Outcome::default()
                }
            }
            Err(code) => {
                self.reverse_orphan_bank_leg(req, kind, &entry, amount, code)
                    .await
            }
        }
    }

    /// Pre-authorization (0100) or its advice (0120): a hold on the personal account.
    pub(crate) async fn preauthorization(&self, req: &Request, tpk: &Tpk, advice: bool) -> Outcome {
        let kind = TransactionKind::Preauthorization;
        let entry = match self.card_step(req).await {
            Ok(e) => e,
            Err(code) if advice => {
                let _ = self.decline(req, kind, None, code).await;
                return Outcome::answer(ResponseCode::Approved);
            }
            Err(code) => return self.decline(req, kind, None, code).await,
        };
        let _card_lock = self.cards.lock(entry.card.card_id).lock().await;
        let (mut arqc, mut pin) = (None, None);
        if !advice {
            arqc = match self.arqc_step(req, &entry).await {
                Ok(a) => a,
                Err(d) => {
                    return self
                        .decline_with_arpc(req, kind, &entry, d.code, d.arqc.as_ref())
                        .await
                }
            };
            pin = match self.pin_step(req, &entry, tpk).await {
                Ok(p) => Some(p),
                Err(code) => {
                    return self
                        .decline_with_arpc(req, kind, &entry, code, arqc.as_ref())
                        .await
                }
            };
        }
        let amount = req.amount_fen.get();
        let Some(account) = entry.personal else {
            return self.advice_or(
                advice,
                self.decline(
                    req,
                    kind,
                    Some(&entry),
                    ResponseCode::NotPermittedToCardholder,
                )
                .await,
            );
        };
        match self.cards.available(&*self.store, account).await {
            Ok(v) if v >= amount => {}
            Ok(_) => {
                let out = self
                    .decline_with_arpc(
                        req,
                        kind,
                        &entry,
                        ResponseCode::InsufficientFunds,
                        arqc.as_ref(),
                    )
                    .await;
                return self.advice_or(advice, out);
            }
            Err(_) => {
                return self
                    .decline(req, kind, Some(&entry), ResponseCode::SystemMalfunction)
                    .await
            }
        }
        let record = self.record(req, kind, Some(&entry), None, ResponseCode::Approved);
        let hold_id = HoldId(record.transaction_id.0);
        let expires = crate::store::now_us()
            + i64::try_from(self.cfg.hold_ttl.as_micros()).unwrap_or(i64::MAX / 2);
        let legs = [PlannedLeg {
            kind: LegKind::PersonalAccount,
            debit: party(&self.cfg.insurance_fund, LedgerAccount::PersonalAccounts),
            credit: party(&req.acquirer, LedgerAccount::Merchant),
            account: Some(account),
            amount_fen: amount,
        }];
        let ops = vec![BalanceOp::PlaceHold {
            hold_id,
            account_id: account,
            amount_fen: fen(amount),
            expires_at_us: expires,
        }];
        let mut decision = self.money_decision(
            record,
            EventType::AuthorizationHold,
            &legs,
            ops,
            None,
            None,
            Some(hold_id.0),
        );
        decision.atc = super::card_atc(&entry, arqc.as_ref());
        match self.commit(decision).await {
            Ok(_) => {
                self.cards.adjust(account, -amount);
                Outcome {
                    code: Some(ResponseCode::Approved),
                    auth_code: Some(local_auth_code(req)),
                    field55: self.approved_field55(req, &entry, arqc.as_ref(), pin).await,
                    ..Outcome::default()
                }
            }
            Err(ResponseCode::DuplicateTransmission) if advice => {
                Outcome::answer(ResponseCode::Approved)
            }
            Err(code) => self.advice_or(advice, Outcome::answer(code)),
        }
    }

    /// An advice is acknowledged with 00 whatever became of it (ISO 8583 advices cannot be
    /// declined); the decision recorded says what happened.
    fn advice_or(&self, advice: bool, out: Outcome) -> Outcome {
        if advice {
            Outcome::answer(ResponseCode::Approved)
        } else {
            out
        }
    }

    /// Completion (0220) of a pre-authorization (field 37 = its RRN): captures the hold.
    pub(crate) async fn completion(&self, req: &Request) -> Outcome {
        let kind = TransactionKind::Completion;
        let original = match self
            .original(req, &[TransactionKind::Preauthorization], None)
            .await
        {
            Ok(Some(o)) => o,
            Ok(None) => {
                // An advice is acknowledged; the missing original is recorded as a decline.
                let _ = self
                    .decline(req, kind, None, ResponseCode::UnableToLocateRecord)
                    .await;
                return Outcome::answer(ResponseCode::Approved);
            }
            Err(code) => return Outcome::answer(code),
        };
        let hold_id = HoldId(original.record.transaction_id.0);
        let hold = match self.store.hold(hold_id).await {
            Ok(Some(h)) => h,
            _ => {
                let _ = self
                    .decline(req, kind, None, ResponseCode::UnableToLocateRecord)
                    .await;
                return Outcome::answer(ResponseCode::Approved);
            }
        };
        let amount = req.amount_fen.get().min(hold.amount_fen);
        let mut record = self.record(req, kind, None, None, ResponseCode::Approved);
        record.card_id = original.record.card_id;
        record.pan_masked = original.record.pan_masked.clone();
        record.original_transaction_id = Some(original.record.transaction_id);
        record.amount_fen = fen(amount);
        let legs = [PlannedLeg {
            kind: LegKind::PersonalAccount,
            debit: party(&self.cfg.insurance_fund, LedgerAccount::PersonalAccounts),
            credit: party(&original.record.acquirer, LedgerAccount::Merchant),
            account: Some(hold.account_id),
            amount_fen: amount,
        }];
        let ops = vec![BalanceOp::CaptureHold {
            hold_id,
            amount_fen: fen(amount),
        }];
        let decision = self.money_decision(
            record,
            EventType::Completion,
            &legs,
            ops,
            None,
            original.event_id,
            Some(hold_id.0),
        );
        match self.commit(decision).await {
            Ok(_) => {
                self.cards.adjust(hold.account_id, hold.amount_fen - amount);
                Outcome::answer(ResponseCode::Approved)
            }
            Err(ResponseCode::DuplicateTransmission) => Outcome::answer(ResponseCode::Approved),
            Err(code) => {
                tracing::warn!(code = %code, "completion not applied");
                Outcome::answer(ResponseCode::Approved)
            }
        }
    }
}

/// An authorization code for a decision the switch made itself (field 38, 6 characters).
pub(crate) fn local_auth_code(req: &Request) -> String {
    format!("{:06}", req.stan.value())
}

/// The authorization code of a stand-in approval: `S` and five digits.
fn stand_in_code(req: &Request) -> String {
    format!("S{:05}", req.stan.value() % 100_000)
}

/// One ISO 8583 field 54 entry: account type, amount type (01 ledger, 02 available), currency,
/// sign, 12 digits.
fn additional_amount(account_type: &str, amount_type: &str, fen: i64) -> String {
    let sign = if fen < 0 { 'D' } else { 'C' };
    format!(
        "{account_type}{amount_type}156{sign}{:012}",
        fen.unsigned_abs()
    )
}
