//! Routing: the leg of a request that the card's bank pays, sent on the bank's link as a 0200
//! and waited for (ssc87, "Bank legs and processing codes").
//!
//! Why one place: every way a leg can end is decided here, once, for every service. The bank
//! approves (its field 38, and 54 for a balance); declines (its code); does not answer in time
//! (91, and a 0420 reversal queued in the same commit as the decline, since the bank may have
//! acted); or its link is down, when the switch either stands in within the bank's limits
//! (approves, and queues a 0220 advice with the approval) or declines 91. And when a decision
//! fails to commit after the bank approved, the bank's money is reversed: through the store's
//! reversal queue, or, while the store is away, through the node's local reversal spool
//! (`store::spool`), durable before the answer leaves. A commit whose outcome is unknown (the
//! database connection died during COMMIT and did not come back in time) may have committed
//! the approval: the decline then carries the approval's compensation
//! ([`crate::store::spool::Compensation`]), committed instead of it when the store finds the
//! request's key held by the approval; so does a stand-in approval (its 0220 advice then
//! followed by a 0420) and one with no bank leg.

use super::cardholder::Cardholder;
use super::response::Outcome;
use super::{velocity, Pipeline};
use crate::issuer::answer::{leg_answer, LegAnswer};
use crate::issuer::gateway::GatewayError;
use crate::store::spool::{Compensation, Replayed, SpooledReversal};
use crate::store::{
    AdviceClass, AdviceId, AdviceRequest, CardAtc, Decision, ReversalId, ReversalReason,
    ReversalRequest, StandInSpend, Store,
};
use chrono::Utc;
use hsm_sim::keys::Tpk;
use schemas::domain::{AmountFen, Pan, ProcessingCode, ResponseCode, Stan, TransmissionDateTime};
use schemas::iso8583::{self, Mti, OwnedMessage, Spec};
use std::sync::atomic::Ordering;

/// A leg for the card's bank: what the 0200 asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BankLeg<'a> {
    /// Field 3.
    pub processing_code: ProcessingCode,
    /// Field 4.
    pub amount: AmountFen,
    /// The PIN block under the acquirer's TPK, translated to the bank's ZPK for field 52.
    pub pin: Option<AcquirerPin<'a>>,
    /// What to do when the bank's link is down.
    pub if_bank_down: IfBankDown,
}

/// A PIN block as the acquirer sent it (field 52), with the key it is under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcquirerPin<'a> {
    /// The acquirer's terminal PIN key.
    pub tpk: &'a Tpk,
    /// ISO 9564-1 format 0, under `tpk`.
    pub block: [u8; 8],
}

/// What a leg does when its bank's link is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfBankDown {
    /// Approve in stand-in within the bank's limits, telling the bank with an advice (0220).
    StandIn,
    /// Decline 91.
    Decline,
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
    /// tells the bank and the leg's count against the card's daily stand-in limit.
    StandIn(AdviceRequest, StandInSpend),
    /// Declined by the bank.
    Declined(ResponseCode),
    /// Sent but unanswered: decline 91 and reverse. Holds the leg's STAN and field 7.
    Unanswered {
        stan: Stan,
        transmission_at: TransmissionDateTime,
    },
}

/// A bank leg approved by the bank or, in stand-in, by the switch.
#[derive(Debug, Default)]
pub(crate) struct LegApproval {
    /// Field 38 for the acquirer.
    pub auth_code: Option<String>,
    /// The stand-in advice to commit with the decision (`None`: the bank approved).
    pub advice: Option<AdviceRequest>,
    /// A stand-in leg's count against the card's daily stand-in limit, checked again in the
    /// commit ([`crate::store::CardRisk::stand_in`]).
    pub stand_in: Option<StandInSpend>,
}

impl BankLeg<'_> {
    /// A credit to the card's bank account (a refund, a benefit): no PIN, and no stand-in, since
    /// only the bank may agree to credit its account.
    pub(crate) fn credit(processing_code: ProcessingCode, amount: AmountFen) -> Self {
        Self {
            processing_code,
            amount,
            pin: None,
            if_bank_down: IfBankDown::Decline,
        }
    }
}

impl LegApproval {
    /// After the decision failed to commit: only a leg the bank approved must be reversed (a
    /// stand-in leg never reached the bank, and its advice failed with the decision; unless
    /// the commit's outcome is unknown, when the approval is compensated, advice included:
    /// [`Cardholder::undo_failed_approval`]).
    pub(crate) fn bank_saw_it(&self) -> bool {
        self.advice.is_none()
    }
}

/// Whether a leg's intent is journaled before it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// A money leg: the bank may book it, so a restart must be able to reverse it.
    Intent,
    /// A leg that moves no money.
    Nothing,
}

/// What a leg's 0200 carries besides the leg itself.
struct LegFields<'a> {
    /// Field 2.
    pan: &'a Pan,
    /// Field 11, the bank link's next STAN.
    stan: Stan,
    /// Fields 7, 12 and 13.
    times: [&'a str; 3],
    /// Field 52.
    pin_under_zpk: Option<[u8; 8]>,
}

/// Field 7 (MMDDhhmmss, UTC) and 12/13 (local: China Standard Time).
pub(crate) fn cst_now() -> (String, String, String) {
    let now = Utc::now() + chrono::Duration::hours(8);
    (
        crate::wire::network::transmission_now(),
        now.format("%H%M%S").to_string(),
        now.format("%m%d").to_string(),
    )
}

/// The authorization code of a stand-in approval: `S` and five digits.
fn stand_in_code(stan: Stan) -> String {
    format!("S{:05}", stan.value() % 100_000)
}

impl<S: Store> Pipeline<S> {
    /// Counts the advice of a committed stand-in approval.
    pub(crate) fn count_advice(&self, approval: &LegApproval) {
        if approval.advice.is_some() {
            self.metrics.advices_queued.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S: Store> Cardholder<'_, S> {
    /// Sends a money-moving leg and turns every way it can fail into the answer to give: a
    /// recorded decline (with the ARPC for it when there was an ARQC), or, when the bank did not
    /// answer, a 91 with its 0420 queued in the same commit. `Ok` carries the approval: the
    /// bank's authorization code, or the stand-in code and the advice the caller must commit
    /// with its decision.
    pub(crate) async fn money_leg(&self, leg: BankLeg<'_>) -> Result<LegApproval, Outcome> {
        match self.ask_bank_with(&leg, Journal::Intent).await {
            Ok(BankAnswer::Approved { auth_code, .. }) => Ok(LegApproval {
                auth_code,
                advice: None,
                stand_in: None,
            }),
            Ok(BankAnswer::StandIn(advice, spend)) => Ok(LegApproval {
                auth_code: Some(advice.auth_code.clone()),
                advice: Some(advice),
                stand_in: Some(spend),
            }),
            Ok(BankAnswer::Declined(code)) | Err(code) => Err(self.decline(code).await),
            Ok(BankAnswer::Unanswered {
                stan,
                transmission_at,
            }) => {
                let sent = (stan, transmission_at);
                let code = ResponseCode::IssuerUnavailable;
                let mut out = self
                    .decline_and_reverse(leg.amount, sent, self.atc(), code)
                    .await;
                let arqc = self.arqc.as_ref();
                out.field55 = self.pipeline().arpc(arqc, code).await;
                Err(out)
            }
        }
    }

    /// Sends `leg`, which moves no money (a balance inquiry), to the card's bank, or stands in
    /// for it (see [`IfBankDown`]).
    pub(crate) async fn ask_bank(&self, leg: &BankLeg<'_>) -> Result<BankAnswer, ResponseCode> {
        self.ask_bank_with(leg, Journal::Nothing).await
    }

    /// Sends `leg` to the card's bank (journaling its intent first when it moves money), or
    /// stands in for it (see [`IfBankDown`]).
    async fn ask_bank_with(
        &self,
        leg: &BankLeg<'_>,
        journal: Journal,
    ) -> Result<BankAnswer, ResponseCode> {
        let p = self.pipeline();
        let bank = &self.entry.card.issuer;
        let pan = self.req.pan.as_ref().ok_or(ResponseCode::FormatError)?;
        if !p.banks.is_up(bank) {
            return match leg.if_bank_down {
                IfBankDown::StandIn => self
                    .stand_in(leg)
                    .await
                    .map(|(advice, spend)| BankAnswer::StandIn(advice, spend)),
                IfBankDown::Decline => Err(ResponseCode::IssuerUnavailable),
            };
        }
        let pin_under_zpk = match leg.pin {
            Some(AcquirerPin { tpk, block }) => {
                let zpk = p.banks.zpk(bank).ok_or(ResponseCode::IssuerUnavailable)?;
                let translated = super::security::translate_pin(&*p.hsm, tpk, &zpk, pan, &block);
                Some(translated.await?)
            }
            None => None,
        };
        let spec = iso8583::spec("ssc87").map_err(|_| ResponseCode::SystemMalfunction)?;
        let stan = p.banks.next_stan(bank);
        let (f7, f12, f13) = cst_now();
        let transmission_at =
            TransmissionDateTime::parse(&f7).map_err(|_| ResponseCode::SystemMalfunction)?;
        let fields = LegFields {
            pan,
            stan,
            times: [&f7, &f12, &f13],
            pin_under_zpk,
        };
        let message = self
            .leg_message(spec, leg, fields)
            .map_err(|_| ResponseCode::SystemMalfunction)?;
        *self
            .leg_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((stan, transmission_at.clone()));
        if journal == Journal::Intent {
            self.journal_intent(leg.amount, (stan, transmission_at.clone()))
                .await?;
        }
        let sent = std::time::Instant::now();
        let answer = p.banks.send(bank, message, p.cfg.bank_timeout).await;
        p.metrics
            .bank_leg
            .observe_us(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        match answer {
            Ok(answer) => Ok(match leg_answer(&answer) {
                LegAnswer::Approved { auth_code, field54 } => {
                    BankAnswer::Approved { auth_code, field54 }
                }
                LegAnswer::Declined(code) => BankAnswer::Declined(code),
            }),
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

    /// Journals the intent of a money leg about to leave as `sent` (its STAN and field 7):
    /// the decline `96` with the leg's 0420 that a restart stores if this request's decision
    /// never is (`store::spool::journal`). Fsynced before this returns; retired when the
    /// request is done. Without a data directory (library tests) there is no journal.
    async fn journal_intent(
        &self,
        amount: AmountFen,
        sent: (Stan, TransmissionDateTime),
    ) -> Result<(), ResponseCode> {
        let p = self.pipeline();
        let Some(legs) = &p.legs else {
            return Ok(());
        };
        let bank = self.entry.card.issuer.clone();
        let intent = SpooledReversal {
            transaction: p.record(
                self.req,
                self.kind,
                Some(&self.entry),
                Some(bank.clone()),
                ResponseCode::SystemMalfunction,
            ),
            atc: self.atc(),
            // From the switch's side the leg's answer never came (it died waiting).
            reversal: Some(self.leg_reversal(amount, sent, ReversalReason::IssuerTimeout)),
            compensation: None,
        };
        match legs.open(&intent).await {
            Ok(open) => {
                self.leg_intents
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(open);
                Ok(())
            }
            Err(e) => {
                tracing::error!(bank = %bank, error = %e, "bank leg not sent: its intent is not durable");
                Err(ResponseCode::SystemMalfunction)
            }
        }
    }

    /// The 0200 of `leg` (ssc87): the card, the amount, the acquirer's references and the
    /// switch as forwarding institution.
    fn leg_message(
        &self,
        spec: &'static Spec,
        leg: &BankLeg<'_>,
        fields: LegFields<'_>,
    ) -> Result<OwnedMessage<'static>, iso8583::Error> {
        let (req, card) = (self.req, &self.entry.card);
        let [f7, f12, f13] = fields.times;
        let mut m = OwnedMessage::new(spec, Mti::new("0200")?);
        m.set_str(2, fields.pan.expose_digits())?
            .set_str(3, leg.processing_code.as_str())?
            .set_u64(4, leg.amount.get().unsigned_abs())?
            .set_str(7, f7)?
            .set_u64(11, u64::from(fields.stan.value()))?
            .set_str(12, f12)?
            .set_str(13, f13)?
            .set_str(14, &card.expiry_yymm)?
            .set_str(22, if req.icc.is_some() { "051" } else { "021" })?
            .set_str(23, &format!("0{}", card.issuance.pan_sequence_number))?
            .set_str(25, "00")?
            .set_str(32, req.acquirer.as_str())?
            .set_str(33, self.pipeline().cfg.switch_id.as_str())?
            .set_str(37, req.rrn.as_str())?
            .set_str(41, req.terminal_id.as_str())?
            .set_str(49, "156")?
            .set_str(100, card.issuer.as_str())?;
        if let Some(block) = fields.pin_under_zpk {
            m.set_bytes(52, &block)?.set_str(26, "12")?;
        }
        Ok(m)
    }

    /// Stand-in for a bank whose link is down: within the bank's per-transaction and per-card
    /// daily limits, the advice (0220) that will tell the bank, with the bank link's next STAN
    /// and field 7, and the leg's count against the card's daily stand-in limit; 91 otherwise.
    /// The check here sees what every node has committed; two stand-ins of one card on two
    /// nodes at once are settled by the commit, which counts them in the same row
    /// ([`StandInSpend`]).
    async fn stand_in(
        &self,
        leg: &BankLeg<'_>,
    ) -> Result<(AdviceRequest, StandInSpend), ResponseCode> {
        let p = self.pipeline();
        let bank = &self.entry.card.issuer;
        let rule = p
            .cfg
            .stand_in
            .get(bank)
            .ok_or(ResponseCode::IssuerUnavailable)?;
        let amount_fen = leg.amount.get();
        if amount_fen <= 0 || amount_fen > rule.per_transaction_fen_max {
            return Err(ResponseCode::IssuerUnavailable);
        }
        let now = crate::store::now_us();
        // The stand-in limit's day, like the card limits', by the pipeline's clock.
        let today = velocity::cst_day_start_us(p.cfg.clock.now_us());
        let used = p
            .store
            .stand_in_total_fen(self.entry.card.card_id, bank, today)
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
            processing_code: leg.processing_code.as_str().to_owned(),
            amount_fen: leg.amount,
            stan: p.banks.next_stan(bank),
            transmission_at: TransmissionDateTime::parse(&f7)
                .map_err(|_| ResponseCode::SystemMalfunction)?,
            reason: ResponseCode::IssuerUnavailable,
            auth_code: stand_in_code(self.req.stan),
            first_attempt_at_us: now,
        };
        p.metrics.stand_in_approvals.fetch_add(1, Ordering::Relaxed);
        let spend = StandInSpend {
            day_start_us: today,
            amount_fen,
            daily_fen_max: rule.per_card_daily_fen_max,
        };
        Ok((advice, spend))
    }

    /// A decline `code` (91 for an unanswered bank leg), with the 0420 of the leg (its STAN and
    /// field 7, which the bank keys it by) queued in the same commit. When the store cannot
    /// take the commit, the decline and its reversal go to the node's reversal spool
    /// ([`crate::store::spool::ReversalSpool`]), fsynced before this answers, and are replayed
    /// into the store until it takes them.
    async fn decline_and_reverse(
        &self,
        amount: AmountFen,
        sent: (Stan, TransmissionDateTime),
        atc: Option<CardAtc>,
        code: ResponseCode,
    ) -> Outcome {
        let reversal = self.leg_reversal(amount, sent, ReversalReason::IssuerTimeout);
        self.record_decline(Some(reversal), atc, None, code).await
    }

    /// The 0420 of a leg of `amount` the bank knows by `sent` (its STAN and field 7).
    fn leg_reversal(
        &self,
        amount: AmountFen,
        (stan, transmission_at): (Stan, TransmissionDateTime),
        reason: ReversalReason,
    ) -> ReversalRequest {
        ReversalRequest {
            reversal_id: ReversalId(uuid::Uuid::now_v7()),
            destination: self.entry.card.issuer.clone(),
            reason,
            amount_fen: amount,
            stan,
            transmission_at,
            first_attempt_at_us: crate::store::now_us(),
        }
    }

    /// Records the decline `code` with `reversal` (its 0420, if the bank saw a leg) and the
    /// `compensation` of the approval it follows, through the store or, while the store cannot
    /// take it, the node's reversal spool. Answers `code`.
    async fn record_decline(
        &self,
        reversal: Option<ReversalRequest>,
        atc: Option<CardAtc>,
        compensation: Option<Compensation>,
        code: ResponseCode,
    ) -> Outcome {
        let p = self.pipeline();
        let issuer = Some(self.entry.card.issuer.clone());
        let record = p.record(self.req, self.kind, Some(&self.entry), issuer, code);
        if reversal.is_some() {
            p.metrics.reversals_queued.fetch_add(1, Ordering::Relaxed);
        }
        let spooled = SpooledReversal {
            transaction: record,
            atc,
            reversal,
            compensation,
        };
        // Stored (or its key is taken: its original, or this very decline from an attempt that
        // failed in answer only, whose outcome stands; or the approval it follows, which did
        // commit, and is reversed instead); otherwise kept in the spool until the store takes
        // it.
        match p.spool.store_or_keep(spooled, &p.writer).await {
            (Replayed::Stored, _) => {
                if let Some(a) = atc {
                    p.cards.note_atc(a.card_id, a.atc);
                }
            }
            (refused, durable) => {
                tracing::error!(
                    refused = ?refused,
                    durable,
                    "decline and its reversal not stored: spooled until the store takes them"
                );
            }
        }
        Outcome::answer(code)
    }

    /// The decision `approval` failed to commit with `code` after the bank approved its leg of
    /// `bank_leg` (a 0200 the bank booked), or after the switch approved it in stand-in (its
    /// advice, a 0220, is in `approval`), or with no bank leg at all. Records the decline `code`
    /// with the leg's 0420, and the approval's compensation: the connection may have died
    /// during COMMIT with the approval committed after all (`DecisionError::OutcomeUnknown`),
    /// and then the store finds the decline's key taken by the approval and commits the
    /// compensation instead (its reversal, with the 0420 of the leg or of the advice).
    /// Answers `code`.
    pub(crate) async fn undo_failed_approval(
        &self,
        approval: &Decision,
        bank_leg: Option<AmountFen>,
        code: ResponseCode,
    ) -> Outcome {
        if code == ResponseCode::DuplicateTransmission {
            // The request's key is another decision's: that original stands.
            if bank_leg.is_some() {
                tracing::error!(
                    "bank leg approved for a duplicate; the duplicate's original stands"
                );
            }
            return Outcome::answer(code);
        }
        // The leg as the bank knows it (its STAN and field 7): a reversal under another STAN
        // would match nothing at the bank and leave the money there.
        let sent = self
            .leg_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let leg = match (bank_leg, sent) {
            (None, _) => None,
            (Some(amount), Some(sent)) => Some((amount, sent)),
            (Some(amount), None) => {
                let (f7, _, _) = cst_now();
                let stan = self.pipeline().banks.next_stan(&self.entry.card.issuer);
                match TransmissionDateTime::parse(&f7) {
                    Ok(t) => Some((amount, (stan, t))),
                    Err(_) => {
                        tracing::error!("bank leg approved; no field 7 for its reversal");
                        return Outcome::answer(code);
                    }
                }
            }
        };
        let reversal = leg
            .clone()
            .map(|(amount, sent)| self.leg_reversal(amount, sent, ReversalReason::IssuerTimeout));
        // What reaches the bank if the approval did commit: the leg's 0420 (the decline's is
        // then not stored), or the 0420 of the stand-in advice committed with the approval.
        let bank = match (&approval.advice, leg) {
            (Some(advice), _) => Some(ReversalRequest {
                reversal_id: ReversalId(uuid::Uuid::now_v7()),
                destination: advice.destination.clone(),
                reason: ReversalReason::LateApproval,
                amount_fen: advice.amount_fen,
                stan: advice.stan,
                transmission_at: advice.transmission_at.clone(),
                first_attempt_at_us: crate::store::now_us(),
            }),
            (None, Some((amount, sent))) => {
                Some(self.leg_reversal(amount, sent, ReversalReason::LateApproval))
            }
            (None, None) => None,
        };
        let compensation = match Compensation::of(approval, bank, crate::store::now_us()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "an approval that may have committed cannot be compensated");
                None
            }
        };
        if reversal.is_none() && compensation.is_none() {
            return Outcome::answer(code);
        }
        self.record_decline(reversal, None, compensation, code)
            .await
    }
}
