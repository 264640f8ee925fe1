//! Identity session (0100, field 3 `33xxxx`, 60.1 `03`): at a job-centre kiosk the cardholder
//! proves who they are with their social-security card before a session for job registration
//! or benefit claims opens. The card proves itself to the switch (SSSE INTERNAL AUTHENTICATE),
//! the switch proves itself to the card (EXTERNAL AUTHENTICATE), and the card and the person
//! are checked against the switch's records (`schemas/iso8583/ssc87.md`, "Identity session").
//!
//! Parse: 120 the card identification code, 61 the social security number, 48 the card's
//! answers (`SIA` to the session challenge, `SCC` its own challenge; 30 when unreadable).
//! Check: only a job centre or the social-security fund opens sessions (58); the card by 120
//! (14 unknown, or 2 present and not its PAN), its status and hot list (41, 43, 62, 14 closed)
//! and expiry (54), read from the store so an operator's hot-listing counts at once; 61 against
//! the cardholder on record (56); the card's INTERNAL AUTHENTICATE answer through the HSM (05),
//! the card key dispersed there from the province key, the city code and the card
//! identification code (the HSM's XG command), never in clear here. Decide: on all of it, the
//! HSM makes the EXTERNAL AUTHENTICATE cryptogram for the card's challenge (XI). Commit: the
//! session's outcome in the audit log (`identity.session`), approved or declined; an identity
//! session moves no money, so it is not a row of the transaction journal. Respond: 39 and, on
//! `00`, 48 `SEA` the cryptogram.
//!
//! The session challenge is derived from the request
//! ([`hsm_sim::card_crypto::ssse_identity_challenge`]), so a card answer recorded in one
//! request is worth nothing in another: a replay of the same request is a duplicate (`94`, this
//! node's memory of recent keys) or outside the transmission window (`63`).

use crate::pipeline::cardholder::expired;
use crate::pipeline::request::Request;
use crate::pipeline::response::Outcome;
use crate::pipeline::security::card_algorithm;
use crate::pipeline::Pipeline;
use crate::store::{AuditEntry, Card, InstitutionKind, Store};
use card_apdu::kiosk::identity::{external_auth_field48, CardEvidence};
use hsm_sim::card_crypto::{ssse_identity_challenge, CardAlgorithm, IdentitySessionRef};
use hsm_sim::hsm::SsseCardRef;
use schemas::domain::{CardIdentificationCode, ResponseCode};

/// A decline and why, for the audit log (never a value of the request).
type Declined = (ResponseCode, &'static str);

/// What the checks found: the card, and the card reference the HSM disperses its keys from.
struct CheckedCard {
    card: Card,
    hsm_ref: SsseCardRef,
}

impl<S: Store> Pipeline<S> {
    /// The identity session of a job-centre kiosk.
    pub(crate) async fn identity_session(&self, req: &Request) -> Outcome {
        let cic = req.card_identification_code.clone().unwrap_or_default();
        let (outcome, card, reason) = match self.identity_checks(req).await {
            Ok(checked) => match self.backend_cryptogram(&checked, req).await {
                Ok(cryptogram) => {
                    let outcome = Outcome {
                        code: Some(ResponseCode::Approved),
                        field48: Some(external_auth_field48(&cryptogram)),
                        ..Outcome::default()
                    };
                    (outcome, Some(checked.card), "card and cardholder proven")
                }
                Err((code, why)) => (Outcome::answer(code), Some(checked.card), why),
            },
            Err((code, why, card)) => (Outcome::answer(code), card, why),
        };
        self.audit_identity_session(req, &cic, card.as_ref(), &outcome, reason)
            .await;
        outcome
    }

    /// Everything before the back end authenticates itself: the acquirer, the card, the
    /// cardholder and the card's cryptogram.
    async fn identity_checks(
        &self,
        req: &Request,
    ) -> Result<CheckedCard, (ResponseCode, &'static str, Option<Card>)> {
        let no_card = |(code, why): Declined| (code, why, None);
        if req.acquirer != self.cfg.social_security_fund
            && self.institution_kind(&req.acquirer) != Some(InstitutionKind::JobCentre)
        {
            return Err(no_card((
                ResponseCode::NotPermittedToTerminal,
                "acquirer is not a job centre",
            )));
        }
        let evidence = parse_evidence(req).map_err(no_card)?;
        let card = self.card_of_session(req).await.map_err(no_card)?;
        let (card, holder) = card;
        let with_card = |(code, why): Declined| (code, why, Some(card.clone()));
        check_card_state(&card).map_err(with_card)?;
        check_cardholder(req, holder.as_deref()).map_err(with_card)?;
        let hsm_ref = card_reference(&card).map_err(with_card)?;
        self.check_card_cryptogram(req, &hsm_ref, &evidence)
            .await
            .map_err(with_card)?;
        Ok(CheckedCard { card, hsm_ref })
    }

    /// The card of field 120, with its cardholder's citizen ID; field 2, when sent, must be
    /// its PAN.
    async fn card_of_session(&self, req: &Request) -> Result<(Card, Option<String>), Declined> {
        let text = req.card_identification_code.as_deref().unwrap_or_default();
        let cic = CardIdentificationCode::parse(text)
            .map_err(|_| (ResponseCode::FormatError, "field 120 unreadable"))?;
        let found = self.store.card_by_identification_code(&cic).await;
        let (card, holder) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err((
                    ResponseCode::InvalidCardNumber,
                    "no card with this card identification code",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "identity session: card lookup failed");
                return Err((ResponseCode::SystemMalfunction, "store unavailable"));
            }
        };
        if let Some(pan) = &req.pan {
            match self.store.card_pan(card.card_id).await {
                Ok(on_record) if on_record == *pan => {}
                Ok(_) => {
                    return Err((
                        ResponseCode::InvalidCardNumber,
                        "card identification code of another card than field 2",
                    ))
                }
                Err(e) => {
                    tracing::error!(error = %e, "identity session: PAN not read");
                    return Err((ResponseCode::SystemMalfunction, "store unavailable"));
                }
            }
        }
        Ok((card, holder))
    }

    /// The card's INTERNAL AUTHENTICATE answer to the session challenge, checked by the HSM
    /// under the card key it disperses itself.
    async fn check_card_cryptogram(
        &self,
        req: &Request,
        card: &SsseCardRef,
        evidence: &CardEvidence,
    ) -> Result<(), Declined> {
        let key = match card.algorithm {
            CardAlgorithm::Tdes => self.keys.ssse.internal_auth_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.keys.ssse.internal_auth_sm4.as_ref(),
        }
        .ok_or((
            ResponseCode::InvalidTransaction,
            "no SSSE internal-authentication key for the card's algorithm",
        ))?;
        let challenge = session_challenge(req, &card.card_id);
        match (self.hsm)
            .verify_ssse_internal_auth(key, card, &challenge, &evidence.internal_auth_response)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err((
                ResponseCode::DoNotHonour,
                "card cryptogram (INTERNAL AUTHENTICATE) does not verify",
            )),
            Err(e) => {
                // A card answer of the wrong length for its algorithm is refused by the HSM:
                // the card is not what its record says, so it is declined like a bad answer.
                tracing::warn!(error = %e, "identity session: HSM refused the card's answer");
                Err((
                    ResponseCode::DoNotHonour,
                    "card cryptogram refused by the HSM",
                ))
            }
        }
    }

    /// The EXTERNAL AUTHENTICATE cryptogram for the card's challenge, made by the HSM.
    async fn backend_cryptogram(
        &self,
        checked: &CheckedCard,
        req: &Request,
    ) -> Result<Vec<u8>, Declined> {
        let card = &checked.hsm_ref;
        let key = match card.algorithm {
            CardAlgorithm::Tdes => self.keys.ssse.external_auth_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.keys.ssse.external_auth_sm4.as_ref(),
        }
        .ok_or((
            ResponseCode::InvalidTransaction,
            "no SSSE external-authentication key for the card's algorithm",
        ))?;
        let evidence = parse_evidence(req)?;
        match (self.hsm)
            .ssse_external_auth_cryptogram(key, card, &evidence.card_challenge)
            .await
        {
            Ok(c) => Ok(c),
            Err(e) => {
                tracing::error!(error = %e, "identity session: HSM made no cryptogram");
                Err((ResponseCode::SystemMalfunction, "HSM unavailable"))
            }
        }
    }

    /// Records the session's outcome: who asked, for which card, the answer and why.
    async fn audit_identity_session(
        &self,
        req: &Request,
        cic: &str,
        card: Option<&Card>,
        outcome: &Outcome,
        reason: &str,
    ) {
        let code = outcome.code.unwrap_or(ResponseCode::SystemMalfunction);
        let subject = match card {
            Some(c) => format!("card:{}", c.card_id.0),
            None => format!("card_identification_code:{}", printable(cic)),
        };
        let detail = serde_json::json!({
            "acquirer": req.acquirer.as_str(),
            "terminal": req.terminal_id.as_str(),
            "stan": req.stan.to_string(),
            "rrn": req.rrn.as_str(),
            "response_code": code.as_str(),
            "reason": reason,
        });
        if !code.is_approved() {
            tracing::info!(response_code = %code, reason, "identity session declined");
        }
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "identity.session".into(),
            subject,
            detail: detail.to_string(),
            at_us: crate::store::now_us(),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}

/// Field 48 of the request: the card's answers (30 when unreadable).
fn parse_evidence(req: &Request) -> Result<CardEvidence, Declined> {
    let f48 = req.additional_data.as_deref().unwrap_or_default();
    CardEvidence::from_field48(f48).map_err(|_| (ResponseCode::FormatError, "field 48 unreadable"))
}

/// The card may be used: its status (hot list included) and expiry.
fn check_card_state(card: &Card) -> Result<(), Declined> {
    if let Some(code) = card.status.decline_code() {
        return Err((code, "card status"));
    }
    if expired(&card.expiry_yymm, crate::store::now_us()) {
        return Err((ResponseCode::ExpiredCard, "card expired"));
    }
    Ok(())
}

/// Field 61 must be the citizen ID of the card's cardholder on record (a check character `x`
/// read as `X`, as GB 11643-1999 writes it and the card management system stores it).
fn check_cardholder(req: &Request, on_record: Option<&str>) -> Result<(), Declined> {
    match (req.social_security_number.as_deref(), on_record) {
        (_, None) => Err((ResponseCode::NoCardRecord, "no cardholder on record")),
        (Some(given), Some(recorded)) if given.eq_ignore_ascii_case(recorded) => Ok(()),
        _ => Err((
            ResponseCode::NoCardRecord,
            "field 61 is not the card's cardholder",
        )),
    }
}

/// What the HSM disperses the card's SSSE keys from: its algorithm (that of its chip, as
/// personalised), the issuing city (the first six characters of the card identification
/// code) and the card identification code.
fn card_reference(card: &Card) -> Result<SsseCardRef, Declined> {
    let cic = card.card_identification_code.as_ref().ok_or((
        ResponseCode::InvalidCardNumber,
        "card has no identification code",
    ))?;
    let algorithm = card.issuance.icc_algorithm.map(card_algorithm).ok_or((
        ResponseCode::InvalidTransaction,
        "card without a chip algorithm",
    ))?;
    let city_code: String = cic.as_str().chars().take(6).collect();
    if !city_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err((
            ResponseCode::FormatError,
            "card identification code has no city",
        ));
    }
    Ok(SsseCardRef {
        algorithm,
        city_code,
        card_id: cic.as_str().to_owned(),
    })
}

/// The session challenge of `req`, as the kiosk gave it to the card.
fn session_challenge(req: &Request, card_id: &str) -> [u8; 8] {
    let stan = req.stan.to_string();
    ssse_identity_challenge(&IdentitySessionRef {
        acquirer: req.acquirer.as_str(),
        terminal: req.terminal_id.as_str(),
        stan: &stan,
        rrn: req.rrn.as_str(),
        transmission_at: req.transmission_at.as_str(),
        card_id,
    })
}

/// A field value fit for the audit log: alphanumeric, at most 32 characters.
fn printable(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}
