//! The back end drives a card at a job-centre kiosk (issue 29): an SSSE PIN unblock, or an
//! update of an EF06 (cardholder) record, sent by the switch itself to the card in the kiosk's
//! reader over card relay v2 ([`card_apdu::channel::secure_relay`]).
//!
//! Why in the switch: the card's keys for these commands (PIN unblock, line protection) are
//! dispersed from the province keys the switch's HSM holds (province → city → card, the HSM's
//! XU and XR commands), so only the back end can MAC them; and an operator decides when a
//! card is unblocked or corrected, with a reason, in the audit log.
//!
//! Flow ([`CardRelay::run`]): the card must be on record with its card identification code and
//! chip algorithm, and usable (a card reported lost, stolen, blocked or closed is refused
//! before any kiosk is dialled); the kiosk is one configured by its terminal id (`[[cms.kiosk]]`:
//! its relay address and institution), never an address from the request; the relay is
//! authenticated with the kiosk institution's TAK, which stays in the HSM (every relay MAC is
//! an M6 of the HSM, [`crate::wire::mac::mac_of`]); the card in the reader must be the card
//! asked for (its card identification code, read from EF05); then the command, its MAC made by
//! the HSM, and a read-back (VERIFY without data for the PIN try counter, READ RECORD for the
//! record). Bounded by [`card_apdu::channel::secure_relay::RelayLimits`] and an overall time
//! limit ([`CardRelay::action_time_max`]). The outcome, done or refused, is audited
//! (`card.relay.pin_unblock`, `card.relay.ef06_update`); a PIN, a key or a record's value is
//! never in the audit log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use card_apdu::channel::secure_relay::{RelayKey, RelayLimits, SecureRelayChannel, MAC_LEN};
use card_apdu::channel::ChannelError;
use card_apdu::kiosk::ssse::{SsseBackend, SsseCard};
use card_apdu::kiosk::KioskError;
use hsm_sim::card_crypto::{CardAlgorithm, ClearPin};
use hsm_sim::hsm::SsseCardRef;
use hsm_sim::keys::Tak;
use hsm_sim::Hsm;
use schemas::domain::InstitutionId;
use tokio::runtime::Handle;

use super::model::Actor;
use crate::pipeline::{PipelineKeys, SsseKeys};
use crate::store::{Card, CardId, CardStatus, Store};

/// A kiosk the switch may drive a card at (`[[cms.kiosk]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayKiosk {
    /// Its terminal id (ISO 8583 field 41, 8 characters), as in the relay's HELLO.
    pub terminal: String,
    /// Its institution: the relay is keyed with that institution's TAK.
    pub institution: InstitutionId,
    /// Where its relay agent (`kiosk serve-relay`) listens, `host:port`.
    pub address: String,
}

/// What the switch asks of the card.
pub enum RelayAction {
    /// PIN UNBLOCK (`84 2C`) with a new PIN: the try counter back at its maximum.
    PinUnblock(ClearPin),
    /// UPDATE RECORD with secure messaging (`04 DC`) of EF06 record `record` with `value`
    /// (the record's whole fixed-length value).
    UpdateEf06 {
        /// The record's identifier (`08`–`0D`, `crate::tags::ssse`).
        record: u8,
        /// Its new value.
        value: Vec<u8>,
    },
}

impl RelayAction {
    fn audit_action(&self) -> &'static str {
        match self {
            RelayAction::PinUnblock(_) => "card.relay.pin_unblock",
            RelayAction::UpdateEf06 { .. } => "card.relay.ef06_update",
        }
    }
}

/// What the card says after the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayDone {
    /// The PIN is unblocked: VERIFY without data reports this many tries left.
    PinUnblocked {
        /// The card's PIN tries left (its maximum).
        tries_left: u8,
    },
    /// The record was written and read back equal.
    RecordUpdated {
        /// The record's identifier.
        record: u8,
    },
}

/// Why the card was not driven, or refused.
#[derive(Debug, thiserror::Error)]
pub enum CardRelayError {
    /// No configured kiosk has this terminal id.
    #[error("no kiosk with terminal id {0:?} is configured for the card relay")]
    UnknownKiosk(String),
    /// The kiosk's institution has no TAK to key the relay with.
    #[error("the kiosk's institution has no TAK: the relay cannot be authenticated")]
    NoRelayKey,
    /// The switch has no province key for this action and the card's algorithm.
    #[error("no SSSE {0} key for the card's algorithm")]
    NoCardKey(&'static str),
    /// The card is not on record.
    #[error("no such card")]
    NoCard,
    /// The card may not be used (lost, stolen, blocked, closed, expired).
    #[error("the card is {0}")]
    CardNotUsable(&'static str),
    /// The card's record lacks what its SSSE keys are dispersed from.
    #[error("the card has no {0}")]
    CardIncomplete(&'static str),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(&'static str),
    /// The kiosk could not be reached, or its relay refused or cut the session.
    #[error("kiosk relay: {0}")]
    Relay(String),
    /// The card in the kiosk's reader is another card.
    #[error("the card in the kiosk's reader is not this card")]
    NotTheCard,
    /// The card refused a command (its status word).
    #[error("{command} refused by the card: {sw}")]
    CardRefused {
        /// The command.
        command: &'static str,
        /// The status word, as ISO/IEC 7816-4 names it.
        sw: String,
    },
    /// The card answered something the switch did not expect.
    #[error("card: {0}")]
    Card(String),
    /// The HSM made no MAC.
    #[error("HSM: {0}")]
    Hsm(String),
    /// The kiosk did not answer in time, or the action did not finish in time.
    #[error("the kiosk did not answer within {0:?}")]
    Timeout(Duration),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

impl CardRelayError {
    /// The HTTP status of the operator API's answer.
    pub fn http_status(&self) -> u16 {
        match self {
            CardRelayError::UnknownKiosk(_) | CardRelayError::Invalid(_) => 400,
            CardRelayError::NoCard => 404,
            CardRelayError::CardNotUsable(_)
            | CardRelayError::CardIncomplete(_)
            | CardRelayError::NotTheCard => 409,
            CardRelayError::Relay(_)
            | CardRelayError::CardRefused { .. }
            | CardRelayError::Card(_) => 502,
            CardRelayError::NoRelayKey
            | CardRelayError::NoCardKey(_)
            | CardRelayError::Hsm(_)
            | CardRelayError::Store(_) => 503,
            CardRelayError::Timeout(_) => 504,
        }
    }
}

/// A relay failure as the error it is: a kiosk that does not answer in time is a timeout
/// (504), anything else a failed relay (502).
fn relay_failed(e: ChannelError, waited: Duration) -> CardRelayError {
    match e {
        ChannelError::Timeout(_) => CardRelayError::Timeout(waited),
        ChannelError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            CardRelayError::Timeout(waited)
        }
        other => CardRelayError::Relay(other.to_string()),
    }
}

impl From<KioskError> for CardRelayError {
    fn from(e: KioskError) -> Self {
        match e {
            KioskError::Channel(c) => relay_failed(c, ANSWER_TIMEOUT),
            KioskError::Card { command, sw } => CardRelayError::CardRefused {
                command,
                sw: format!("{:04X} ({sw})", sw.to_u16()),
            },
            KioskError::Backend(why) => CardRelayError::Hsm(why),
            other => CardRelayError::Card(other.to_string()),
        }
    }
}

/// The card relay of a node: its kiosks, the kiosks' institutions' TAKs and the SSSE province
/// keys (LMK tokens), and the HSM that uses them.
pub struct CardRelay {
    hsm: Arc<dyn Hsm>,
    kiosks: HashMap<String, RelayKiosk>,
    taks: HashMap<InstitutionId, Tak>,
    ssse: SsseKeys,
    limits: RelayLimits,
    answer_timeout: Duration,
}

impl std::fmt::Debug for CardRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRelay")
            .field("kiosks", &self.kiosks.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How long the switch waits for the kiosk to connect and for each answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

impl CardRelay {
    /// The relay to `kiosks`, keyed with the TAKs and SSSE keys of `keys`.
    pub fn new(hsm: Arc<dyn Hsm>, keys: &PipelineKeys, kiosks: Vec<RelayKiosk>) -> Self {
        let taks = keys
            .acquirers
            .iter()
            .filter_map(|(id, k)| k.tak.clone().map(|t| (id.clone(), t)))
            .collect();
        Self {
            hsm,
            kiosks: kiosks
                .into_iter()
                .map(|k| (k.terminal.clone(), k))
                .collect(),
            taks,
            ssse: keys.ssse.clone(),
            limits: RelayLimits::default(),
            answer_timeout: ANSWER_TIMEOUT,
        }
    }

    /// Other bounds (tests use short ones).
    pub fn with_limits(mut self, limits: RelayLimits, answer_timeout: Duration) -> Self {
        self.limits = limits;
        self.answer_timeout = answer_timeout;
        self
    }

    /// The longest an action may take end to end: the relay's own session limit and the
    /// connection's time.
    pub fn action_time_max(&self) -> Duration {
        self.limits.session_time_max + self.answer_timeout
    }

    /// Runs `action` on card `card_id` at kiosk `terminal` and audits the outcome as `actor`.
    pub async fn run<S: Store>(
        &self,
        store: &S,
        actor: &Actor,
        card_id: CardId,
        terminal: &str,
        action: RelayAction,
    ) -> Result<RelayDone, CardRelayError> {
        let audit_action = action.audit_action();
        let detail_record = match &action {
            RelayAction::UpdateEf06 { record, .. } => Some(format!("{record:02X}")),
            RelayAction::PinUnblock(_) => None,
        };
        let outcome = self.drive(store, card_id, terminal, action).await;
        let mut detail = serde_json::json!({
            "terminal": printable(terminal),
            "outcome": match &outcome {
                Ok(_) => "done".to_owned(),
                Err(e) => e.to_string(),
            },
        });
        if let (Some(r), Some(map)) = (detail_record, detail.as_object_mut()) {
            map.insert("record".into(), r.into());
        }
        if let Ok(RelayDone::PinUnblocked { tries_left }) = &outcome {
            if let Some(map) = detail.as_object_mut() {
                map.insert("pin_tries_left".into(), (*tries_left).into());
            }
        }
        super::audit::record(
            store,
            actor,
            audit_action,
            format!("card:{}", card_id.0),
            detail,
        )
        .await
        .map_err(|e| CardRelayError::Store(e.to_string()))?;
        outcome
    }

    async fn drive<S: Store>(
        &self,
        store: &S,
        card_id: CardId,
        terminal: &str,
        action: RelayAction,
    ) -> Result<RelayDone, CardRelayError> {
        let kiosk = self
            .kiosks
            .get(terminal)
            .ok_or_else(|| CardRelayError::UnknownKiosk(printable(terminal)))?
            .clone();
        let card = card_on_record(store, card_id).await?;
        let card_ref = card_reference(&card)?;
        let tak = self
            .taks
            .get(&kiosk.institution)
            .ok_or(CardRelayError::NoRelayKey)?
            .clone();
        let backend = HsmSsse {
            hsm: Arc::clone(&self.hsm),
            rt: Handle::current(),
            keys: self.ssse.clone(),
            card: card_ref,
        };
        match &action {
            RelayAction::PinUnblock(_) => {
                backend.pin_unblock_key()?;
            }
            RelayAction::UpdateEf06 { value, .. } => {
                backend.line_protection_key()?;
                if value.is_empty() || value.len() > 240 {
                    return Err(CardRelayError::Invalid("a record value is 1 to 240 bytes"));
                }
            }
        }
        let key = HsmRelayKey {
            hsm: Arc::clone(&self.hsm),
            rt: Handle::current(),
            tak,
        };
        let (limits, timeout) = (self.limits, self.answer_timeout);
        let session = tokio::task::spawn_blocking(move || {
            drive_card(&kiosk, key, limits, timeout, backend, action)
        });
        let limit = self.action_time_max();
        match tokio::time::timeout(limit, session).await {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => Err(CardRelayError::Relay("the relay session stopped".into())),
            Err(_) => Err(CardRelayError::Timeout(limit)),
        }
    }
}

/// The card's row, and whether it may be driven.
async fn card_on_record<S: Store>(store: &S, card_id: CardId) -> Result<Card, CardRelayError> {
    let pan = match store.card_pan(card_id).await {
        Ok(pan) => pan,
        Err(crate::store::StoreError::NotFound(_)) => return Err(CardRelayError::NoCard),
        Err(e) => return Err(CardRelayError::Store(e.to_string())),
    };
    let card = store
        .card_by_pan(&pan)
        .await
        .map_err(|e| CardRelayError::Store(e.to_string()))?
        .ok_or(CardRelayError::NoCard)?;
    let status = match card.status {
        CardStatus::Active => None,
        CardStatus::Lost => Some("reported lost"),
        CardStatus::Stolen => Some("reported stolen"),
        CardStatus::Blocked => Some("blocked"),
        CardStatus::Issued => Some("not yet activated"),
        CardStatus::Closed => Some("closed"),
    };
    if let Some(why) = status {
        return Err(CardRelayError::CardNotUsable(why));
    }
    if crate::pipeline::cardholder::expired(&card.expiry_yymm, crate::store::now_us()) {
        return Err(CardRelayError::CardNotUsable("expired"));
    }
    Ok(card)
}

/// What the HSM disperses the card's keys from (as the identity session does).
fn card_reference(card: &Card) -> Result<SsseCardRef, CardRelayError> {
    let cic = card
        .card_identification_code
        .as_ref()
        .ok_or(CardRelayError::CardIncomplete("card identification code"))?;
    let algorithm = card
        .issuance
        .icc_algorithm
        .map(crate::pipeline::security::card_algorithm)
        .ok_or(CardRelayError::CardIncomplete("chip algorithm"))?;
    let city_code: String = cic.as_str().chars().take(6).collect();
    if city_code.len() != 6 || !city_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardRelayError::CardIncomplete("issuing city"));
    }
    Ok(SsseCardRef {
        algorithm,
        city_code,
        card_id: cic.as_str().to_owned(),
    })
}

/// The session on the blocking thread: connect, check the card, act, read back.
fn drive_card(
    kiosk: &RelayKiosk,
    key: HsmRelayKey,
    limits: RelayLimits,
    timeout: Duration,
    mut backend: HsmSsse,
    action: RelayAction,
) -> Result<RelayDone, CardRelayError> {
    let mut ch = SecureRelayChannel::connect(
        kiosk.address.as_str(),
        &kiosk.terminal,
        key,
        limits,
        timeout,
    )
    .map_err(|e| relay_failed(e, timeout))?;
    let mut card = SsseCard::open(&mut ch)?;
    if !card.card_id()?.eq_ignore_ascii_case(&backend.card.card_id) {
        return Err(CardRelayError::NotTheCard);
    }
    match action {
        RelayAction::PinUnblock(pin) => {
            card.unblock_pin(&mut backend, &pin)?;
            match card.pin_tries_left()? {
                Some(tries_left) => Ok(RelayDone::PinUnblocked { tries_left }),
                None => Err(CardRelayError::Card(
                    "PIN reported verified after an unblock".into(),
                )),
            }
        }
        RelayAction::UpdateEf06 { record, value } => {
            card.update_ef06_record(&mut backend, record, &value)?;
            if card.read_ef06_record(record)? != value {
                return Err(CardRelayError::Card(
                    "the record read back differs from the one written".into(),
                ));
            }
            Ok(RelayDone::RecordUpdated { record })
        }
    }
}

/// The relay key: the kiosk institution's TAK, used inside the HSM (M6) from the blocking
/// relay thread.
struct HsmRelayKey {
    hsm: Arc<dyn Hsm>,
    rt: Handle,
    tak: Tak,
}

impl RelayKey for HsmRelayKey {
    fn mac(&self, data: &[u8]) -> Result<[u8; MAC_LEN], ChannelError> {
        self.rt
            .block_on(crate::wire::mac::mac_of(&*self.hsm, &self.tak, data))
            .map_err(|e| ChannelError::Relay(format!("relay MAC not made: {e}")))
    }
}

/// The back end's side of the SSSE commands, through the HSM: card keys dispersed inside it
/// from the province keys, for the one card this session is about.
struct HsmSsse {
    hsm: Arc<dyn Hsm>,
    rt: Handle,
    keys: SsseKeys,
    card: SsseCardRef,
}

impl HsmSsse {
    fn pin_unblock_key(&self) -> Result<hsm_sim::keys::SssePinUnblockKey, CardRelayError> {
        match self.card.algorithm {
            CardAlgorithm::Tdes => self.keys.pin_unblock_tdes.clone(),
            CardAlgorithm::Sm4 => self.keys.pin_unblock_sm4.clone(),
        }
        .ok_or(CardRelayError::NoCardKey("PIN-unblock"))
    }

    fn line_protection_key(&self) -> Result<hsm_sim::keys::SsseLineProtectionKey, CardRelayError> {
        match self.card.algorithm {
            CardAlgorithm::Tdes => self.keys.line_protection_tdes.clone(),
            CardAlgorithm::Sm4 => self.keys.line_protection_sm4.clone(),
        }
        .ok_or(CardRelayError::NoCardKey("line-protection"))
    }

    /// The card this session may MAC for: any other card id is refused.
    fn this_card(&self, card_id: &str) -> Result<(), KioskError> {
        if card_id.eq_ignore_ascii_case(&self.card.card_id) {
            Ok(())
        } else {
            Err(KioskError::Backend("not the card of this session".into()))
        }
    }
}

fn hsm_failed(e: hsm_sim::HsmError) -> KioskError {
    KioskError::Backend(format!("HSM error {}", e.code()))
}

impl SsseBackend for HsmSsse {
    fn verify_internal_auth(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, KioskError> {
        self.this_card(card_id)?;
        let key = match self.card.algorithm {
            CardAlgorithm::Tdes => self.keys.internal_auth_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.keys.internal_auth_sm4.as_ref(),
        }
        .ok_or_else(|| KioskError::Backend("no SSSE internal-authentication key".into()))?;
        self.rt
            .block_on(
                self.hsm
                    .verify_ssse_internal_auth(key, &self.card, challenge, response),
            )
            .map_err(hsm_failed)
    }

    fn external_auth_cryptogram(
        &mut self,
        card_id: &str,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, KioskError> {
        self.this_card(card_id)?;
        let key = match self.card.algorithm {
            CardAlgorithm::Tdes => self.keys.external_auth_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.keys.external_auth_sm4.as_ref(),
        }
        .ok_or_else(|| KioskError::Backend("no SSSE external-authentication key".into()))?;
        self.rt
            .block_on(
                self.hsm
                    .ssse_external_auth_cryptogram(key, &self.card, card_challenge),
            )
            .map_err(hsm_failed)
    }

    fn pin_unblock_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], KioskError> {
        self.this_card(card_id)?;
        let key = self
            .pin_unblock_key()
            .map_err(|e| KioskError::Backend(e.to_string()))?;
        self.rt
            .block_on(
                self.hsm
                    .ssse_pin_unblock_mac(&key, &self.card, challenge, new_pin_bcd),
            )
            .map_err(hsm_failed)
    }

    fn update_record_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], KioskError> {
        self.this_card(card_id)?;
        let key = self
            .line_protection_key()
            .map_err(|e| KioskError::Backend(e.to_string()))?;
        self.rt
            .block_on(
                self.hsm
                    .ssse_update_record_mac(&key, &self.card, challenge, p1p2, record),
            )
            .map_err(hsm_failed)
    }
}

/// A terminal id fit for the audit log and an error: alphanumeric, at most 8 characters.
fn printable(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}
