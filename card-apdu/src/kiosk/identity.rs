//! The job-centre identity session, kiosk side: the cardholder proves who they are with their
//! social-security card, the switch proves itself to the card, and the kiosk opens a session
//! only when both hold (`schemas/iso8583/ssc87.md`, "Identity session").
//!
//! Why a module of its own: the flow spans the card (SSSE INTERNAL/EXTERNAL AUTHENTICATE) and
//! the switch (one ISO 8583 0100/0110), and it is run by the `kiosk` binary over PC/SC, by the
//! switch's simulated job-centre kiosk and by the tests: one definition of the request, its
//! field 48 elements and the MAC, so they cannot drift apart.
//!
//! The flow ([`prepare`], then [`complete`] with the switch's answer):
//!
//! 1. SELECT SSSE, read EF05/EF06 ([`SsseCard::read_basics`]): the card identification code
//!    (120) and the social security number (61);
//! 2. INTERNAL AUTHENTICATE on the session challenge, which is derived from the request
//!    itself ([`hsm_sim::card_crypto::ssse_identity_challenge`]: acquirer, terminal, STAN, RRN,
//!    field 7, card identification code), then GET CHALLENGE: field 48 `SIA` and `SCC`;
//! 3. the 0100 (field 3 `330000`, 60.1 `03`), MACed under the kiosk's TAK (field 128: 120 puts
//!    the message past the primary bitmap);
//! 4. the 0110: its MAC checked; on `00`, 48 `SEA` goes to the card as EXTERNAL AUTHENTICATE.

use hsm_sim::card_crypto::{ssse_identity_challenge, IdentitySessionRef};
use hsm_sim::crypto::WorkingCipher;
use hsm_sim::keys::{ClearKey, KeyScheme};
use hsm_sim::mac::{compute_mac, MacAlgorithm, MacPadding};
use schemas::iso8583::{self, Mti, OwnedMessage};

use super::ssse::{external_authenticate, CardBasics, SsseCard};
use super::KioskError;
use crate::channel::CardChannel;

/// Field 48 element: the card's INTERNAL AUTHENTICATE answer to the session challenge (hex).
pub const TAG_INTERNAL_AUTH: &str = "SIA";
/// Field 48 element: the card's GET CHALLENGE answer (hex).
pub const TAG_CARD_CHALLENGE: &str = "SCC";
/// Field 48 element of the answer: the EXTERNAL AUTHENTICATE cryptogram (hex).
pub const TAG_EXTERNAL_AUTH: &str = "SEA";
/// Field 3 of an identity session (ISO 8583:1993 "account verification", `33`).
pub const PROCESSING_CODE: &str = "330000";
/// Largest card cryptogram or challenge carried, in bytes (one SM4 block).
pub const CARD_VALUE_LEN_MAX: usize = 16;

/// Why a field 48 could not be read. Never carries the field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Field48Error {
    /// Not a sequence of tag (3), length (3 digits), value.
    #[error("field 48 is not a sequence of tag-length-value elements")]
    Malformed,
    /// An element the message needs is absent.
    #[error("field 48 has no {0} element")]
    Missing(&'static str),
    /// An element is not hex of an accepted length.
    #[error("field 48 element {0} is not hex of an accepted length")]
    Value(&'static str),
}

/// Appends one element (tag, 3-digit length, value) to a field 48 text, the form the bank
/// links' key exchange uses too.
pub fn push_element(s: &mut String, tag: &str, value: &str) {
    s.push_str(tag);
    s.push_str(&format!("{:03}", value.len()));
    s.push_str(value);
}

/// The value of element `tag` of a field 48 text (the first one; unknown tags are skipped).
pub fn element<'f>(field: &'f str, tag: &str) -> Result<Option<&'f str>, Field48Error> {
    let mut rest = field;
    while !rest.is_empty() {
        let t = rest.get(..3).ok_or(Field48Error::Malformed)?;
        let len: usize = rest
            .get(3..6)
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse().ok())
            .ok_or(Field48Error::Malformed)?;
        let value = rest.get(6..6 + len).ok_or(Field48Error::Malformed)?;
        if t == tag {
            return Ok(Some(value));
        }
        rest = &rest[6 + len..];
    }
    Ok(None)
}

/// Element `tag` as bytes: hex of 8 or 16 bytes.
fn card_value(field: &str, tag: &'static str) -> Result<Vec<u8>, Field48Error> {
    let hex_text = element(field, tag)?.ok_or(Field48Error::Missing(tag))?;
    let bytes = hex::decode(hex_text).map_err(|_| Field48Error::Value(tag))?;
    match bytes.len() {
        8 | 16 => Ok(bytes),
        _ => Err(Field48Error::Value(tag)),
    }
}

/// What the card gave for the switch to check (field 48 of the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardEvidence {
    /// The INTERNAL AUTHENTICATE answer to the session challenge (one block: 8 or 16 bytes).
    pub internal_auth_response: Vec<u8>,
    /// The card's challenge for the back end's EXTERNAL AUTHENTICATE (8 bytes).
    pub card_challenge: Vec<u8>,
}

impl CardEvidence {
    /// Field 48 of the request: `SIA` then `SCC`, hex.
    pub fn to_field48(&self) -> String {
        let mut s = String::with_capacity(64);
        push_element(
            &mut s,
            TAG_INTERNAL_AUTH,
            &hex::encode_upper(&self.internal_auth_response),
        );
        push_element(
            &mut s,
            TAG_CARD_CHALLENGE,
            &hex::encode_upper(&self.card_challenge),
        );
        s
    }

    /// Reads field 48 of a request.
    pub fn from_field48(field: &str) -> Result<Self, Field48Error> {
        Ok(Self {
            internal_auth_response: card_value(field, TAG_INTERNAL_AUTH)?,
            card_challenge: card_value(field, TAG_CARD_CHALLENGE)?,
        })
    }
}

/// Field 48 of an approved answer: `SEA`, the EXTERNAL AUTHENTICATE cryptogram.
pub fn external_auth_field48(cryptogram: &[u8]) -> String {
    let mut s = String::with_capacity(40);
    push_element(&mut s, TAG_EXTERNAL_AUTH, &hex::encode_upper(cryptogram));
    s
}

/// The EXTERNAL AUTHENTICATE cryptogram of an answer's field 48.
pub fn external_auth_of_field48(field: &str) -> Result<Vec<u8>, Field48Error> {
    card_value(field, TAG_EXTERNAL_AUTH)
}

/// How the kiosk MACs its messages: the algorithm its acquirer's link uses
/// (`schemas/iso8583/ssc87.md`, "MACs on issuer links": the kiosks' links use the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KioskMacAlgorithm {
    /// ISO 9797-1 MAC algorithm 3 (ANSI X9.19), padding method 1, double-length 3DES TAK.
    X919,
    /// SM4 CBC-MAC (GB/T 15852.1), padding method 2, SM4 TAK.
    Sm4,
    /// AES-CMAC (NIST SP 800-38B), AES-128 TAK.
    AesCmac,
}

impl KioskMacAlgorithm {
    /// By its configuration name: `x9.19`, `sm4`, `aes-cmac`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "x9.19" => Some(Self::X919),
            "sm4" => Some(Self::Sm4),
            "aes-cmac" => Some(Self::AesCmac),
            _ => None,
        }
    }

    fn scheme(self) -> KeyScheme {
        match self {
            Self::X919 => KeyScheme::U,
            Self::Sm4 => KeyScheme::G,
            Self::AesCmac => KeyScheme::A,
        }
    }

    fn parameters(self) -> (MacAlgorithm, MacPadding) {
        match self {
            Self::X919 => (MacAlgorithm::Iso9797Alg3, MacPadding::Method1),
            Self::Sm4 => (MacAlgorithm::Sm4CbcMac, MacPadding::Method2),
            Self::AesCmac => (MacAlgorithm::AesCmac, MacPadding::Method1),
        }
    }
}

/// The kiosk's terminal authentication key, in clear inside the kiosk's secure module. `Debug`
/// never shows the key.
pub struct KioskMac {
    algorithm: KioskMacAlgorithm,
    key: ClearKey,
}

impl std::fmt::Debug for KioskMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskMac")
            .field("algorithm", &self.algorithm)
            .field("key", &"****")
            .finish()
    }
}

/// MAC length on the wire (fields 64 and 128).
const MAC_LEN: usize = 8;

impl KioskMac {
    /// A TAK of `algorithm` (16 bytes).
    pub fn new(algorithm: KioskMacAlgorithm, tak: &[u8]) -> Result<Self, KioskError> {
        let key = ClearKey::new(algorithm.scheme(), tak.to_vec()).map_err(|_| {
            KioskError::Backend("the kiosk's TAK is not a key of its algorithm".into())
        })?;
        Ok(Self { algorithm, key })
    }

    /// The 8-byte MAC of `covered` (the leftmost 8 bytes of the algorithm's MAC).
    pub fn mac(&self, covered: &[u8]) -> Result<[u8; MAC_LEN], KioskError> {
        let fail = |_| KioskError::Backend("MAC computation failed".into());
        let cipher = WorkingCipher::new(&self.key).map_err(fail)?;
        let (algorithm, padding) = self.algorithm.parameters();
        let mac = compute_mac(&self.key, &cipher, algorithm, padding, covered).map_err(fail)?;
        mac.get(..MAC_LEN)
            .and_then(|m| m.try_into().ok())
            .ok_or_else(|| KioskError::Backend("MAC too short".into()))
    }

    /// Encodes `m` with its MAC: field 128 when a field above 64 is present, else 64, set to
    /// zeros, then replaced by the MAC of everything before it.
    pub fn seal(&self, m: &mut OwnedMessage<'_>) -> Result<Vec<u8>, KioskError> {
        m.remove(64).remove(128);
        let field = if m.fields().any(|f| (65..128).contains(&f)) {
            128
        } else {
            64
        };
        let encode = |_| KioskError::Backend("request does not encode".into());
        m.set_bytes(field, &[0u8; MAC_LEN]).map_err(encode)?;
        let mut out = Vec::with_capacity(256);
        m.spec().encode(m, &mut out).map_err(encode)?;
        let covered = out.len().saturating_sub(MAC_LEN);
        let mac = self.mac(&out[..covered])?;
        out[covered..].copy_from_slice(&mac);
        Ok(out)
    }

    /// Checks the MAC that ends an encoded answer.
    pub fn verify(&self, answer: &[u8]) -> Result<(), KioskError> {
        let covered = answer
            .len()
            .checked_sub(MAC_LEN)
            .ok_or_else(|| KioskError::Backend("answer too short for a MAC".into()))?;
        let mac = self.mac(&answer[..covered])?;
        if hsm_sim::block::ct_eq(&mac, &answer[covered..]) {
            Ok(())
        } else {
            Err(KioskError::Backend(
                "the answer's MAC does not verify".into(),
            ))
        }
    }
}

/// The message fields of one session that the kiosk chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFields {
    /// Field 32, the job centre.
    pub acquirer: String,
    /// Field 41.
    pub terminal: String,
    /// Field 11, 1..=999999.
    pub stan: u32,
    /// Field 37, 12 characters.
    pub rrn: String,
    /// Field 7, `MMDDhhmmss` UTC ([`transmission_now`]).
    pub transmission_at: String,
    /// 60.2, the insuring area (GB/T 2260).
    pub region: String,
}

/// A session waiting for the switch's answer.
#[derive(Debug)]
pub struct PendingIdentity {
    /// The encoded 0100 (no framing).
    pub request: Vec<u8>,
    /// What the card says about itself and its holder.
    pub basics: CardBasics,
    /// Field 11 of the request.
    pub stan: u32,
    terminal: String,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdentityOutcome {
    /// Field 39 of the switch's answer.
    pub response_code: String,
    /// The card identification code (not secret).
    pub card_identification_code: String,
    /// The social security number, masked (last four).
    pub social_security_number: String,
    /// The cardholder's name as the card has it.
    pub name: String,
    /// The switch accepted the card and its holder (`00`).
    pub card_authenticated: bool,
    /// The card accepted the switch's EXTERNAL AUTHENTICATE: the session is open.
    pub backend_authenticated: bool,
}

/// Field 7 now: `MMDDhhmmss` in UTC (ISO 8583:1987 says GMT).
pub fn transmission_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (_, m, d) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!("{m:02}{d:02}{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (i64, u64, u64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn masked_ssn(ssn: &str) -> String {
    let n = ssn.chars().count();
    ssn.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 >= n { c } else { '*' })
        .collect()
}

/// Steps 1-3: reads the card, has it answer the session challenge and give its own, and
/// encodes the request (MACed when `mac` is given).
pub fn prepare<C: CardChannel + ?Sized>(
    ch: &mut C,
    fields: &SessionFields,
    mac: Option<&KioskMac>,
) -> Result<PendingIdentity, KioskError> {
    let mut card = SsseCard::open(ch)?;
    let basics = card.read_basics()?;
    let stan = format!("{:06}", fields.stan);
    let challenge = ssse_identity_challenge(&IdentitySessionRef {
        acquirer: &fields.acquirer,
        terminal: &fields.terminal,
        stan: &stan,
        rrn: &fields.rrn,
        transmission_at: &fields.transmission_at,
        card_id: &basics.card_identification_code,
    });
    let evidence = card.identity_evidence(&challenge)?;
    let spec = iso8583::spec("ssc87").map_err(|e| KioskError::Backend(format!("spec: {e}")))?;
    let mut m = request(spec, fields, &basics, &evidence)
        .map_err(|e| KioskError::Backend(format!("request: {e}")))?;
    let request = match mac {
        Some(mac) => mac.seal(&mut m)?,
        None => {
            let mut out = Vec::with_capacity(256);
            m.spec()
                .encode(&m, &mut out)
                .map_err(|e| KioskError::Backend(format!("request: {e}")))?;
            out
        }
    };
    Ok(PendingIdentity {
        request,
        basics,
        stan: fields.stan,
        terminal: fields.terminal.clone(),
    })
}

/// The 0100 of a session.
fn request(
    spec: &'static iso8583::Spec,
    f: &SessionFields,
    basics: &CardBasics,
    evidence: &CardEvidence,
) -> Result<OwnedMessage<'static>, iso8583::Error> {
    let mut m = OwnedMessage::new(spec, Mti::new("0100")?);
    m.set_str(3, PROCESSING_CODE)?
        .set_u64(4, 0)?
        .set_str(7, &f.transmission_at)?
        .set_u64(11, u64::from(f.stan))?
        .set_str(32, &f.acquirer)?
        .set_str(37, &f.rrn)?
        .set_str(41, &f.terminal)?
        .set_str(48, &evidence.to_field48())?
        .set_str(49, "156")?
        .set_path("60.1", b"03")?
        .set_path("60.2", f.region.as_bytes())?
        .set_path("60.3", b"03")?
        .set_str(61, &basics.social_security_number)?
        .set_str(120, &basics.card_identification_code)?;
    Ok(m)
}

/// Step 4: reads the switch's answer (its MAC checked when `mac` is given) and, on `00`, gives
/// its EXTERNAL AUTHENTICATE cryptogram to the card, still in the reader with the SSSE
/// application selected since [`prepare`].
pub fn complete<C: CardChannel + ?Sized>(
    ch: &mut C,
    pending: &PendingIdentity,
    answer: &[u8],
    mac: Option<&KioskMac>,
) -> Result<IdentityOutcome, KioskError> {
    if let Some(mac) = mac {
        mac.verify(answer)?;
    }
    let bad = |what: &str| KioskError::Backend(format!("answer: {what}"));
    let spec = iso8583::spec("ssc87").map_err(|_| bad("spec"))?;
    let a = spec.decode(answer).map_err(|_| bad("does not decode"))?;
    if a.mti().as_str() != "0110"
        || a.get_u64(11).ok() != Some(u64::from(pending.stan))
        || a.get_str(41).ok().as_deref().map(str::trim_end) != Some(pending.terminal.trim_end())
    {
        return Err(bad("not the answer to this request"));
    }
    let code = a.get_str(39).map_err(|_| bad("field 39"))?.into_owned();
    let mut outcome = IdentityOutcome {
        card_authenticated: code == "00",
        response_code: code,
        card_identification_code: pending.basics.card_identification_code.clone(),
        social_security_number: masked_ssn(&pending.basics.social_security_number),
        name: pending.basics.name.clone(),
        backend_authenticated: false,
    };
    if outcome.card_authenticated {
        let f48 = a.get_str(48).map_err(|_| bad("no field 48"))?;
        let cryptogram = external_auth_of_field48(&f48).map_err(|e| bad(&e.to_string()))?;
        external_authenticate(ch, &cryptogram)?;
        outcome.backend_authenticated = true;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_48_elements_go_there_and_back_and_bad_ones_are_refused() {
        let e = CardEvidence {
            internal_auth_response: vec![0xAB; 16],
            card_challenge: vec![0x01; 8],
        };
        let f = e.to_field48();
        assert!(f.starts_with("SIA032ABAB"));
        assert_eq!(CardEvidence::from_field48(&f), Ok(e));
        assert_eq!(
            CardEvidence::from_field48("SIA002AB"),
            Err(Field48Error::Value("SIA"))
        );
        assert_eq!(
            CardEvidence::from_field48("SIA016ABABABABABABABAB"),
            Err(Field48Error::Missing("SCC"))
        );
        assert_eq!(
            CardEvidence::from_field48("SIA099AB"),
            Err(Field48Error::Malformed)
        );
        let sea = external_auth_field48(&[0x11; 16]);
        assert_eq!(external_auth_of_field48(&sea), Ok(vec![0x11; 16]));
    }

    #[test]
    fn field_7_is_ten_digits_and_days_map_to_dates() {
        assert_eq!(transmission_now().len(), 10);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
    }

    #[test]
    fn the_social_security_number_is_shown_by_its_last_four_only() {
        assert_eq!(masked_ssn("11010519491231002X"), "**************002X");
    }
}
