//! The cardholder checks, in one place: everything a service must know about the card and the
//! person holding it before it decides, as one call that returns either the checked
//! [`Cardholder`] or the answer to give.
//!
//! The checks run in this order, each only when the service's [`Checks`] ask for it:
//!
//! 1. **card** (`card.rs`): known (14), status and hot list (41, 43, 62), expiry (54); a lost or
//!    stolen chip card that comes online with a genuine ARQC is answered with the decline, its
//!    ARPC and an APPLICATION BLOCK issuer script (`scripts.rs`);
//! 2. the **service's own rules** on the card (the bill's hospital and policy): a decline there
//!    comes before the cryptogram is looked at, so it does not consume the card's ATC;
//! 3. the card's **lock**, held until the decision is committed, so two requests of one card
//!    cannot both spend the same balance, ATC or limit on this node;
//! 4. **ATC and ARQC** (`arqc.rs`): 59 for a replayed or jumping ATC, 05 for a cryptogram that
//!    does not verify;
//! 5. **PIN** (`pin.rs`): verified here (55, 75 after too many tries, which blocks the card), or
//!    only required, for the bank to verify on its leg;
//! 6. **limits**: the card's velocity (61 amount, 65 count), reserved in this node's memory
//!    (which starts each card's day from the spend the store has committed) until the commit,
//!    which counts the day's spend in the store again (every node's, across restarts) and
//!    refuses an approval over a limit with the same codes.
//!
//! Every decline is recorded; from step 3 on it consumes the ATC of a verified cryptogram and
//! answers with an ARPC for the decline. The [`Cardholder`] carries what the checks proved (the
//! verified ARQC, how the PIN was checked) and what they hold until the commit (the lock, the
//! velocity reservation), and declines and answers for the service with the right field 55.

mod arqc;
mod card;
mod pin;
mod scripts;

pub(crate) use card::expired;
pub(crate) use pin::PinCheck;

use super::bank_leg::{AcquirerPin, LegApproval};
use super::cards::CardEntry;
use super::request::Request;
use super::response::Outcome;
use super::security::VerifiedArqc;
use super::velocity::{self, Reservation};
use super::Pipeline;
use crate::store::spool::LegIntent;
use crate::store::{CardAtc, CardRisk, DailySpend, Store, TransactionKind, TransactionRecord};
use arqc::card_atc;
use hsm_sim::keys::Tpk;
use schemas::domain::{InstitutionId, ResponseCode, Stan, TransmissionDateTime};
use std::sync::Arc;
use tokio::sync::MutexGuard;

/// How a service wants the PIN checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinRule<'k> {
    /// Not asked for.
    NotAsked,
    /// A PIN block must be present (55 otherwise); the card's bank verifies it on the leg,
    /// translated from the acquirer's TPK to the bank's ZPK.
    ForTheBank(&'k Tpk),
    /// Verified here against the card's offset, or left to the bank when the card has none
    /// here ([`PinCheck`]); the bank leg carries it either way.
    Verify(&'k Tpk),
}

/// Which checks a service asks for; the card's status and expiry are always checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks<'k> {
    /// A lost or stolen chip card with a genuine cryptogram is declined with an APPLICATION
    /// BLOCK script.
    pub block_lost_chip: bool,
    /// Hold the card's lock until the decision is committed.
    pub lock: bool,
    /// Verify the ATC and ARQC of a chip card, and answer with its ARPC.
    pub arqc: bool,
    /// How the PIN is checked.
    pub pin: PinRule<'k>,
    /// Reserve field 4 against the card's velocity limits until the commit.
    pub limits: bool,
}

impl Checks<'_> {
    /// The card's status and expiry only: for money that comes to the card.
    pub(crate) const CARD_ONLY: Checks<'static> = Checks {
        block_lost_chip: true,
        lock: false,
        arqc: false,
        pin: PinRule::NotAsked,
        limits: false,
    };
}

/// A cardholder who passed the checks a service asked for.
pub(crate) struct Cardholder<'a, S: Store> {
    pipeline: &'a Pipeline<S>,
    /// The request being decided.
    pub req: &'a Request,
    /// What the decision is recorded as.
    pub kind: TransactionKind,
    /// The card and its accounts.
    pub entry: Arc<CardEntry>,
    /// The verified cryptogram of a chip card, when the service asked for it.
    pub arqc: Option<VerifiedArqc>,
    /// How the switch checked the PIN; `None`: it did not.
    pub pin: Option<PinCheck>,
    /// The acquirer's TPK, when the bank leg carries the PIN.
    tpk: Option<&'a Tpk>,
    /// Given back when dropped, unless kept at commit. Declared before the lock, so it is
    /// given back before the next request of the card may reserve.
    reservation: Option<Reservation>,
    /// The reserved spend, for the store to count against the day's limits at commit.
    spend: Option<DailySpend>,
    /// STAN and field 7 of the bank leg last sent for this request: what the bank keys the
    /// leg by, so a reversal of it after a failed commit names it (ISO 8583 field 90).
    pub(crate) leg_sent: std::sync::Mutex<Option<(Stan, TransmissionDateTime)>>,
    /// The journaled intents of the money legs sent for this request, retired when the
    /// request is done with them (its decision is in the store or the spool by then).
    pub(crate) leg_intents: std::sync::Mutex<Vec<LegIntent>>,
    _lock: Option<MutexGuard<'a, ()>>,
}

impl<S: Store> Pipeline<S> {
    /// The checks of `checks` on the cardholder of `req`: the [`Cardholder`], or the answer to
    /// give (the decline recorded, with its ARPC and issuer script when the card deserves them).
    pub(crate) async fn check_cardholder<'a>(
        &'a self,
        req: &'a Request,
        kind: TransactionKind,
        checks: Checks<'a>,
    ) -> Result<Cardholder<'a, S>, Outcome> {
        let checked = self.check_cardholder_with(req, kind, checks, |_| Ok(()));
        checked.await.map(|(card, ())| card)
    }

    /// [`Pipeline::check_cardholder`] with the service's own rules on the card (step 2),
    /// whose result comes back with the cardholder.
    pub(crate) async fn check_cardholder_with<'a, T>(
        &'a self,
        req: &'a Request,
        kind: TransactionKind,
        checks: Checks<'a>,
        service_rules: impl FnOnce(&CardEntry) -> Result<T, ResponseCode>,
    ) -> Result<(Cardholder<'a, S>, T), Outcome> {
        let entry = match self.card_step(req).await {
            Ok(entry) => entry,
            Err(code @ (ResponseCode::LostCard | ResponseCode::StolenCard))
                if checks.block_lost_chip && req.icc.is_some() =>
            {
                return Err(self.block_application(req, kind, code).await);
            }
            Err(code) => return Err(self.decline(req, kind, None, code).await),
        };
        let ruled = match service_rules(&entry) {
            Ok(ruled) => ruled,
            Err(code) => return Err(self.decline(req, kind, Some(&entry), code).await),
        };
        let lock = match checks.lock {
            true => Some(self.cards.lock(entry.card.card_id).lock().await),
            false => None,
        };
        let mut card = Cardholder {
            pipeline: self,
            req,
            kind,
            entry,
            arqc: None,
            pin: None,
            tpk: None,
            reservation: None,
            spend: None,
            leg_sent: std::sync::Mutex::new(None),
            leg_intents: std::sync::Mutex::new(Vec::new()),
            _lock: lock,
        };
        match self.verify_cardholder(&mut card, checks).await {
            Ok(()) => Ok((card, ruled)),
            Err(code) => Err(card.decline(code).await),
        }
    }

    /// Steps 4-6. On a decline `card.arqc` holds the cryptogram to answer, if it verified.
    async fn verify_cardholder<'a>(
        &self,
        card: &mut Cardholder<'a, S>,
        checks: Checks<'a>,
    ) -> Result<(), ResponseCode> {
        if checks.arqc {
            card.arqc = match self.arqc_step(card.req, &card.entry).await {
                Ok(arqc) => arqc,
                Err(decline) => {
                    card.arqc = decline.arqc;
                    return Err(decline.code);
                }
            };
        }
        match checks.pin {
            PinRule::NotAsked => {}
            PinRule::ForTheBank(tpk) => {
                if card.req.pin_block.is_none() {
                    return Err(ResponseCode::IncorrectPin);
                }
                card.tpk = Some(tpk);
            }
            PinRule::Verify(tpk) => {
                card.pin = Some(self.pin_step(card.req, &card.entry, tpk).await?);
                card.tpk = Some(tpk);
            }
        }
        if checks.limits {
            let (card_id, amount_fen) = (card.entry.card.card_id, card.req.amount_fen.get());
            // The limits' day by the pipeline's clock: a jump of it across midnight CST moves
            // the day (the store keeps each day's spend, so a jump back finds it).
            let now = self.cfg.clock.now_us();
            self.seed_velocity(card_id, now).await;
            let reserved = self.velocity.reserve(card_id, amount_fen, now)?;
            card.reservation = Some(reserved);
            let limits = self.velocity.limits();
            card.spend = Some(DailySpend {
                day_start_us: velocity::cst_day_start_us(now),
                amount_fen,
                daily_fen_max: limits.daily_fen_max,
                daily_count_max: limits.daily_count_max,
            });
        }
        Ok(())
    }

    /// The first time this node sees a card on a day, its pre-check starts from the spend
    /// the store has committed that day (a restart, another node). A failed read leaves the
    /// pre-check as it is: the commit checks the day's spend anyway.
    async fn seed_velocity(&self, card_id: crate::store::CardId, now_us: i64) {
        if !self.velocity.needs_seed(card_id, now_us) {
            return;
        }
        let day = velocity::cst_day_start_us(now_us);
        match self.store.card_day_usage(card_id, day).await {
            Ok(u) => self
                .velocity
                .seed(card_id, now_us, u.approved_count, u.amount_fen),
            Err(e) => tracing::warn!(error = %e, "card's day spend not read; the commit checks it"),
        }
    }

    /// Records a decline and answers the card with an ARPC for the decline's ARC; a verified
    /// cryptogram's ATC is consumed, so the same field 55 cannot be tried again.
    async fn decline_with_arpc(
        &self,
        req: &Request,
        kind: TransactionKind,
        entry: &CardEntry,
        code: ResponseCode,
        arqc: Option<&VerifiedArqc>,
    ) -> Outcome {
        let atc = card_atc(entry, arqc);
        let mut out = self
            .decline_consuming(req, kind, Some(entry), code, atc)
            .await;
        if out.code == Some(code) {
            out.field55 = self.arpc(arqc, code).await;
        }
        out
    }

    /// Field 55 with the ARPC answering `arqc` with `code`.
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
}

impl<'a, S: Store> Cardholder<'a, S> {
    /// The pipeline the cardholder was checked by.
    pub(crate) fn pipeline(&self) -> &'a Pipeline<S> {
        self.pipeline
    }

    /// The ATC a decision on this request consumes (that of its verified cryptogram).
    pub(crate) fn atc(&self) -> Option<CardAtc> {
        card_atc(&self.entry, self.arqc.as_ref())
    }

    /// What an approval on this request does to the card's risk state in the store: a PIN
    /// verified here resets its wrong-PIN count, a reserved spend counts against the day.
    pub(crate) fn risk(&self) -> Option<CardRisk> {
        let verified = self.pin == Some(PinCheck::Verified);
        let pin_verified_tries_max = verified.then_some(self.pipeline.cfg.pin_tries_max);
        (verified || self.spend.is_some()).then_some(CardRisk {
            card_id: self.entry.card.card_id,
            pin_verified_tries_max,
            spend: self.spend,
            stand_in: None,
        })
    }

    /// [`Cardholder::risk`] of an approval whose bank leg is `approval`: a leg approved in
    /// stand-in also counts against the card's daily stand-in limit.
    pub(crate) fn risk_with(&self, approval: &LegApproval) -> Option<CardRisk> {
        match (self.risk(), approval.stand_in) {
            (risk, None) => risk,
            (Some(risk), stand_in) => Some(CardRisk { stand_in, ..risk }),
            (None, stand_in) => Some(CardRisk {
                card_id: self.entry.card.card_id,
                pin_verified_tries_max: None,
                spend: None,
                stand_in,
            }),
        }
    }

    /// The PIN block under the acquirer's TPK, for the bank leg to carry.
    pub(crate) fn pin_for_bank(&self) -> Option<AcquirerPin<'a>> {
        let (tpk, block) = self.tpk.zip(self.req.pin_block)?;
        Some(AcquirerPin { tpk, block })
    }

    /// The transaction row of an approval on this card.
    pub(crate) fn approval_record(&self, issuer: Option<InstitutionId>) -> TransactionRecord {
        let approved = ResponseCode::Approved;
        (self.pipeline).record(self.req, self.kind, Some(&self.entry), issuer, approved)
    }

    /// The velocity reservation counts: called once the approval is committed.
    pub(crate) fn keep_reservation(&mut self) {
        if let Some(r) = self.reservation.take() {
            r.keep();
        }
    }

    /// Records a decline, answered with an ARPC for it when the cryptogram verified.
    pub(crate) async fn decline(&self, code: ResponseCode) -> Outcome {
        let arqc = self.arqc.as_ref();
        (self.pipeline)
            .decline_with_arpc(self.req, self.kind, &self.entry, code, arqc)
            .await
    }

    /// Records a decline that neither consumes the cryptogram's ATC nor answers with an ARPC:
    /// the same field 55 may come again.
    pub(crate) async fn decline_without_arpc(&self, code: ResponseCode) -> Outcome {
        (self.pipeline)
            .decline(self.req, self.kind, Some(&self.entry), code)
            .await
    }

    /// Field 55 of an approval: the ARPC, and a PIN UNBLOCK script when the chip asks for one
    /// and the switch verified the PIN (`scripts.rs`).
    pub(crate) async fn approved_field55(&self) -> Option<Vec<u8>> {
        let arqc = self.arqc.as_ref();
        (self.pipeline)
            .approved_field55(self.req, &self.entry, arqc, self.pin)
            .await
    }
}
