//! Social-security (SSSE) kiosk flows: read the card basics (the equivalent of LD/T 6001.5's
//! `iReadCardBas`), verify / change / unblock the PIN, and online card authentication (the card
//! proves itself to the back end with INTERNAL AUTHENTICATE; optionally the back end proves
//! itself to the card with EXTERNAL AUTHENTICATE).

use hsm_sim::card_crypto::ClearPin;
use rand::RngCore;

use super::{select_by_name, send, send_ok, KioskError};
use crate::apdu::Command;
use crate::channel::CardChannel;
use crate::sw::StatusWord;
use crate::tags::ssse as id;
use crate::vcard::SSSE_AID;

/// The back end's side of SSSE card authentication, PIN unblock and EF06 updates: an
/// HSM-backed service in production (the switch's card relay driver), [`crate::issuer::IssuerSim`]
/// in tests. Keys are found from the card
/// identification code (its first 6 characters are the issuing city's area code).
pub trait SsseBackend {
    /// Checks the card's INTERNAL AUTHENTICATE answer to `challenge`.
    fn verify_internal_auth(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, KioskError>;
    /// The EXTERNAL AUTHENTICATE cryptogram for the card's challenge.
    fn external_auth_cryptogram(
        &mut self,
        card_id: &str,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, KioskError>;
    /// The MAC of a PIN UNBLOCK command carrying `new_pin_bcd` (see
    /// [`hsm_sim::card_crypto::ssse_pin_unblock_mac`]).
    fn pin_unblock_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], KioskError>;
    /// The MAC of an UPDATE RECORD with secure messaging (`04 DC P1 P2`) carrying `record`
    /// (SIMPLE-TLV), see [`hsm_sim::card_crypto::ssse_update_record_mac`].
    fn update_record_mac(
        &mut self,
        card_id: &str,
        challenge: &[u8],
        p1p2: [u8; 2],
        record: &[u8],
    ) -> Result<[u8; 4], KioskError>;
}

/// What `iReadCardBas` returns: EF05 and EF06 decoded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CardBasics {
    /// 发卡地区行政区划代码: the first 6 characters of the card identification code.
    pub area_code: String,
    pub social_security_number: String,
    pub card_number: String,
    /// 卡识别码, 32 hex characters.
    pub card_identification_code: String,
    pub name: String,
    /// 卡复位信息: the ATR in hex.
    pub atr: String,
    pub spec_version: String,
    pub issue_date: String,
    pub expiry_date: String,
    pub card_type: String,
    pub sex: String,
    pub ethnicity: String,
    pub birthplace: String,
    pub birth_date: String,
}

impl CardBasics {
    /// The `iReadCardBas` output string: area|SSN|card number|card id|name|ATR|version|issue
    /// date|expiry|terminal number|terminal device number|
    pub fn to_ireadcardbas(&self, terminal_number: &str, device_number: &str) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
            self.area_code,
            self.social_security_number,
            self.card_number,
            self.card_identification_code,
            self.name,
            self.atr,
            self.spec_version,
            self.issue_date,
            self.expiry_date,
            terminal_number,
            device_number
        )
    }
}

/// Outcome of online card authentication.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuthenticationResult {
    pub card_identification_code: String,
    pub card_authenticated: bool,
    pub backend_authenticated: bool,
}

/// BCD PIN field as SSSE VERIFY expects (odd lengths padded with F).
pub fn pin_bcd(pin: &ClearPin) -> Vec<u8> {
    crate::perso::bcd(pin.expose()).unwrap_or_default()
}

fn ascii(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_end_matches([' ', '\0'])
        .to_owned()
}

/// An open SSSE application (selected); dropped security state when the card is deselected.
pub struct SsseCard<'c, C: CardChannel + ?Sized> {
    ch: &'c mut C,
    card_id: Option<String>,
}

impl<'c, C: CardChannel + ?Sized> SsseCard<'c, C> {
    /// Selects the SSSE application (`00 A4 04 00 0F 7378312E…`).
    pub fn open(ch: &'c mut C) -> Result<Self, KioskError> {
        let r = send(ch, select_by_name(&SSSE_AID))?;
        match r.sw {
            StatusWord::Success => Ok(Self { ch, card_id: None }),
            StatusWord::FileNotFound => Err(KioskError::NoApplication),
            sw => Err(KioskError::Card {
                command: "SELECT SSSE",
                sw,
            }),
        }
    }

    /// The channel, for flows that continue with other applications.
    pub fn channel(&mut self) -> &mut C {
        self.ch
    }

    fn select_ef(&mut self, fid: u16) -> Result<(), KioskError> {
        let cmd = Command::new(0x00, 0xA4, 0x02, 0x0C).with_data(fid.to_be_bytes());
        send_ok(self.ch, "SELECT EF", cmd).map(|_| ())
    }

    /// READ RECORD by identifier in the current EF: `00 B2 id 00`.
    fn read(&mut self, record: u8) -> Result<Vec<u8>, KioskError> {
        let data = send_ok(
            self.ch,
            "READ RECORD",
            Command::new(0x00, 0xB2, record, 0x00).with_ne(256),
        )?;
        match data.as_slice() {
            [rid, len, value @ ..] if *rid == record && usize::from(*len) == value.len() => {
                Ok(value.to_vec())
            }
            _ => Err(KioskError::CardData(format!(
                "record {record:02X} is not id-length-value"
            ))),
        }
    }

    /// Reads EF05 and EF06: the card basics.
    pub fn read_basics(&mut self) -> Result<CardBasics, KioskError> {
        let atr = hex::encode_upper(self.ch.atr()?);
        self.select_ef(crate::vcard::ssse::FID_EF05)?;
        let cic = hex::encode_upper(self.read(id::CARD_IDENTIFICATION_CODE)?);
        let card_type = ascii(&self.read(id::CARD_TYPE)?);
        let spec_version = ascii(&self.read(id::SPEC_VERSION)?);
        let issue_date = hex::encode(self.read(id::ISSUE_DATE)?);
        let expiry_date = hex::encode(self.read(id::EXPIRY_DATE)?);
        let card_number = ascii(&self.read(id::CARD_NUMBER)?);
        self.select_ef(crate::vcard::ssse::FID_EF06)?;
        let ssn = ascii(&self.read(id::SOCIAL_SECURITY_NUMBER)?);
        let name_raw = self.read(id::NAME)?;
        let end = name_raw
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(name_raw.len());
        let (name, _, malformed) = encoding_rs::GBK.decode(&name_raw[..end]);
        if malformed {
            return Err(KioskError::CardData("name is not valid GBK".into()));
        }
        let basics = CardBasics {
            area_code: cic.chars().take(6).collect(),
            social_security_number: ssn,
            card_number,
            card_identification_code: cic.clone(),
            name: name.trim_end().to_owned(),
            atr,
            spec_version,
            issue_date,
            expiry_date,
            card_type,
            sex: ascii(&self.read(id::SEX)?),
            ethnicity: hex::encode(self.read(id::ETHNICITY)?),
            birthplace: hex::encode(self.read(id::BIRTHPLACE)?),
            birth_date: hex::encode(self.read(id::BIRTH_DATE)?),
        };
        self.card_id = Some(cic);
        Ok(basics)
    }

    /// The card identification code (read once and cached).
    pub fn card_id(&mut self) -> Result<String, KioskError> {
        if let Some(c) = &self.card_id {
            return Ok(c.clone());
        }
        self.select_ef(crate::vcard::ssse::FID_EF05)?;
        let cic = hex::encode_upper(self.read(id::CARD_IDENTIFICATION_CODE)?);
        self.card_id = Some(cic.clone());
        Ok(cic)
    }

    /// VERIFY (`00 20 00 00 Lc PIN`): Ok on 9000, typed errors for 63Cx and 6983.
    pub fn verify_pin(&mut self, pin: &ClearPin) -> Result<(), KioskError> {
        let r = send(
            self.ch,
            Command::new(0x00, 0x20, 0x00, 0x00).with_data(pin_bcd(pin)),
        )?;
        pin_status(r.sw, "VERIFY")
    }

    /// Remaining PIN tries (VERIFY without data), `None` if already verified in this session.
    pub fn pin_tries_left(&mut self) -> Result<Option<u8>, KioskError> {
        let r = send(self.ch, Command::new(0x00, 0x20, 0x00, 0x00))?;
        match r.sw {
            StatusWord::Success => Ok(None),
            StatusWord::VerifyFailed { tries_left } => Ok(Some(tries_left)),
            StatusWord::AuthenticationMethodBlocked => Ok(Some(0)),
            sw => Err(KioskError::Card {
                command: "VERIFY",
                sw,
            }),
        }
    }

    /// CHANGE PIN (`80 5E 01 00 Lc old FF new`).
    pub fn change_pin(&mut self, old: &ClearPin, new: &ClearPin) -> Result<(), KioskError> {
        let mut data = pin_bcd(old);
        data.push(0xFF);
        data.extend(pin_bcd(new));
        let r = send(
            self.ch,
            Command::new(0x80, 0x5E, 0x01, 0x00).with_data(data),
        )?;
        pin_status(r.sw, "CHANGE PIN")
    }

    /// PIN UNBLOCK with a new PIN: GET CHALLENGE, the back end MACs the command, `84 2C 00 00`.
    pub fn unblock_pin(
        &mut self,
        backend: &mut dyn SsseBackend,
        new: &ClearPin,
    ) -> Result<(), KioskError> {
        let card_id = self.card_id()?;
        let challenge = send_ok(
            self.ch,
            "GET CHALLENGE",
            Command::new(0x00, 0x84, 0x00, 0x00).with_ne(8),
        )?;
        let pin = pin_bcd(new);
        let mac = backend.pin_unblock_mac(&card_id, &challenge, &pin)?;
        let mut data = pin;
        data.extend_from_slice(&mac);
        send_ok(
            self.ch,
            "PIN UNBLOCK",
            Command::new(0x84, 0x2C, 0x00, 0x00).with_data(data),
        )
        .map(|_| ())
    }

    /// Rewrites EF06 record `record_id` with `value` (the record's whole fixed-length value)
    /// under line protection: SELECT EF06, GET CHALLENGE, the back end MACs the command,
    /// `04 DC id 00 Lc ‖ id ‖ len ‖ value ‖ MAC`. A MAC the card refuses is
    /// [`KioskError::Card`] with `6988`.
    pub fn update_ef06_record(
        &mut self,
        backend: &mut dyn SsseBackend,
        record_id: u8,
        value: &[u8],
    ) -> Result<(), KioskError> {
        let card_id = self.card_id()?;
        let len = u8::try_from(value.len())
            .ok()
            .filter(|_| value.len() + 2 <= hsm_sim::card_crypto::SSSE_UPDATE_RECORD_DATA_MAX)
            .ok_or_else(|| KioskError::CardData("record value too long".into()))?;
        self.select_ef(crate::vcard::ssse::FID_EF06)?;
        let challenge = send_ok(
            self.ch,
            "GET CHALLENGE",
            Command::new(0x00, 0x84, 0x00, 0x00).with_ne(8),
        )?;
        let mut record = vec![record_id, len];
        record.extend_from_slice(value);
        // P2 = 00: the record with identifier P1 in the current EF (ISO/IEC 7816-4 §11.3.3).
        let p1p2 = [record_id, 0x00];
        let mac = backend.update_record_mac(&card_id, &challenge, p1p2, &record)?;
        record.extend_from_slice(&mac);
        let [cla, ins] = hsm_sim::card_crypto::SSSE_UPDATE_RECORD_SM;
        send_ok(
            self.ch,
            "UPDATE RECORD",
            Command::new(cla, ins, p1p2[0], p1p2[1]).with_data(record),
        )
        .map(|_| ())
    }

    /// Reads EF06 record `record_id`'s value.
    pub fn read_ef06_record(&mut self, record_id: u8) -> Result<Vec<u8>, KioskError> {
        self.select_ef(crate::vcard::ssse::FID_EF06)?;
        self.read(record_id)
    }

    /// Online card authentication: INTERNAL AUTHENTICATE on a fresh terminal challenge checked by
    /// the back end; with `mutual`, also EXTERNAL AUTHENTICATE of the back end to the card.
    pub fn authenticate(
        &mut self,
        backend: &mut dyn SsseBackend,
        mutual: bool,
    ) -> Result<AuthenticationResult, KioskError> {
        let card_id = self.card_id()?;
        let mut challenge = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut challenge);
        let response = send_ok(
            self.ch,
            "INTERNAL AUTHENTICATE",
            Command::new(0x00, 0x88, 0x00, 0x00)
                .with_data(challenge)
                .with_ne(256),
        )?;
        if !backend.verify_internal_auth(&card_id, &challenge, &response)? {
            return Err(KioskError::CardNotAuthentic);
        }
        let mut backend_authenticated = false;
        if mutual {
            let card_challenge = send_ok(
                self.ch,
                "GET CHALLENGE",
                Command::new(0x00, 0x84, 0x00, 0x00).with_ne(8),
            )?;
            let cryptogram = backend.external_auth_cryptogram(&card_id, &card_challenge)?;
            let r = send(
                self.ch,
                Command::new(0x00, 0x82, 0x00, 0x00).with_data(cryptogram),
            )?;
            match r.sw {
                StatusWord::Success => backend_authenticated = true,
                StatusWord::AuthenticationFailed => return Err(KioskError::BackendNotAuthentic),
                sw => {
                    return Err(KioskError::Card {
                        command: "EXTERNAL AUTHENTICATE",
                        sw,
                    })
                }
            }
        }
        Ok(AuthenticationResult {
            card_identification_code: card_id,
            card_authenticated: true,
            backend_authenticated,
        })
    }
}

impl<C: CardChannel + ?Sized> SsseCard<'_, C> {
    /// The card's part of an identity session (`super::identity`): its INTERNAL AUTHENTICATE
    /// answer to `challenge` (the session challenge derived from the request), then a fresh
    /// 8-byte GET CHALLENGE for the back end's EXTERNAL AUTHENTICATE, which must follow with no
    /// other command in between ([`external_authenticate`]).
    pub fn identity_evidence(
        &mut self,
        challenge: &[u8; 8],
    ) -> Result<super::identity::CardEvidence, KioskError> {
        let internal_auth_response = send_ok(
            self.ch,
            "INTERNAL AUTHENTICATE",
            Command::new(0x00, 0x88, 0x00, 0x00)
                .with_data(challenge.to_vec())
                .with_ne(256),
        )?;
        let card_challenge = send_ok(
            self.ch,
            "GET CHALLENGE",
            Command::new(0x00, 0x84, 0x00, 0x00).with_ne(8),
        )?;
        Ok(super::identity::CardEvidence {
            internal_auth_response,
            card_challenge,
        })
    }
}

/// EXTERNAL AUTHENTICATE (`00 82 00 00 Lc cryptogram`) on the SSSE application still selected
/// on `ch`, answering the card's last GET CHALLENGE: `BackendNotAuthentic` when the card
/// refuses the cryptogram (`6300`).
pub fn external_authenticate<C: CardChannel + ?Sized>(
    ch: &mut C,
    cryptogram: &[u8],
) -> Result<(), KioskError> {
    let r = send(
        ch,
        Command::new(0x00, 0x82, 0x00, 0x00).with_data(cryptogram.to_vec()),
    )?;
    match r.sw {
        StatusWord::Success => Ok(()),
        StatusWord::AuthenticationFailed => Err(KioskError::BackendNotAuthentic),
        sw => Err(KioskError::Card {
            command: "EXTERNAL AUTHENTICATE",
            sw,
        }),
    }
}

fn pin_status(sw: StatusWord, command: &'static str) -> Result<(), KioskError> {
    match sw {
        StatusWord::Success => Ok(()),
        StatusWord::VerifyFailed { tries_left: 0 } | StatusWord::AuthenticationMethodBlocked => {
            Err(KioskError::PinBlocked)
        }
        StatusWord::VerifyFailed { tries_left } => Err(KioskError::PinWrong { tries_left }),
        sw => Err(KioskError::Card { command, sw }),
    }
}
