//! Social-security (SSSE) card keys and authentication: the province → city → card dispersal,
//! INTERNAL/EXTERNAL AUTHENTICATE cryptograms, the PIN UNBLOCK MAC and the MAC of an EF06
//! UPDATE RECORD with secure messaging.
//!
//! Why this exists apart: the SSSE application is specific to the social-security card (社会保障
//! 卡); its key tree and commands are independent of the EMV/PBOC payment application.

use zeroize::Zeroize;

use super::{disperse, mac, CardAlgorithm, CardCryptoError, CardKey};
use crate::block::ct_eq;

/// SSSE city-level factor: 6-digit administrative division code as BCD || FF×5.
pub fn ssse_city_factor(city_code: &str) -> Result<[u8; 8], CardCryptoError> {
    let b = city_code.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err(CardCryptoError::InvalidCityCode);
    }
    let mut d = [0xFFu8; 8];
    for i in 0..3 {
        d[i] = ((b[2 * i] - b'0') << 4) | (b[2 * i + 1] - b'0');
    }
    Ok(d)
}

/// SSSE card-level factor: the rightmost 8 bytes of the 16-byte card identification code.
pub fn ssse_card_factor(card_id: &str) -> Result<[u8; 8], CardCryptoError> {
    let mut raw = [0u8; 16];
    hex::decode_to_slice(card_id, &mut raw).map_err(|_| CardCryptoError::InvalidHex {
        what: "card identification code",
        expected: 32,
    })?;
    let mut d = [0u8; 8];
    d.copy_from_slice(&raw[8..]);
    Ok(d)
}

/// Province master key → city key.
pub fn derive_ssse_city_key(
    alg: CardAlgorithm,
    province_key: &CardKey,
    city_code: &str,
) -> Result<CardKey, CardCryptoError> {
    Ok(disperse(alg, province_key, ssse_city_factor(city_code)?))
}

/// City key → card key.
pub fn derive_ssse_card_key(
    alg: CardAlgorithm,
    city_key: &CardKey,
    card_id: &str,
) -> Result<CardKey, CardCryptoError> {
    Ok(disperse(alg, city_key, ssse_card_factor(card_id)?))
}

/// Province master key → city key → card key in one call.
pub fn derive_ssse_card_key_from_province(
    alg: CardAlgorithm,
    province_key: &CardKey,
    city_code: &str,
    card_id: &str,
) -> Result<CardKey, CardCryptoError> {
    let city = derive_ssse_city_key(alg, province_key, city_code)?;
    derive_ssse_card_key(alg, &city, card_id)
}

fn auth_block(alg: CardAlgorithm, challenge: &[u8]) -> Result<[u8; 16], CardCryptoError> {
    let mut block = [0u8; 16];
    match (alg, challenge.len()) {
        (CardAlgorithm::Tdes, 8) | (CardAlgorithm::Sm4, 8) | (CardAlgorithm::Sm4, 16) => {
            block[..challenge.len()].copy_from_slice(challenge);
            Ok(block)
        }
        (_, got) => Err(CardCryptoError::InvalidLength {
            what: "challenge",
            got,
        }),
    }
}

fn encrypt_challenge(
    alg: CardAlgorithm,
    key: &CardKey,
    challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    let mut block = auth_block(alg, challenge)?;
    let n = alg.block_len();
    key.cipher(alg).encrypt_block(&mut block[..n]);
    Ok(block[..n].to_vec())
}

/// Card side of INTERNAL AUTHENTICATE: E(K_internal, challenge).
pub fn ssse_internal_auth_response(
    alg: CardAlgorithm,
    k_internal: &CardKey,
    challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    encrypt_challenge(alg, k_internal, challenge)
}

/// Host side: check the card's INTERNAL AUTHENTICATE response (constant time).
pub fn verify_ssse_internal_auth(
    alg: CardAlgorithm,
    k_internal: &CardKey,
    challenge: &[u8],
    response: &[u8],
) -> bool {
    encrypt_challenge(alg, k_internal, challenge).is_ok_and(|exp| ct_eq(&exp, response))
}

/// Host side of EXTERNAL AUTHENTICATE: E(K_external, card challenge).
pub fn ssse_external_auth_cryptogram(
    alg: CardAlgorithm,
    k_external: &CardKey,
    card_challenge: &[u8],
) -> Result<Vec<u8>, CardCryptoError> {
    encrypt_challenge(alg, k_external, card_challenge)
}

/// Card side: check the terminal's EXTERNAL AUTHENTICATE cryptogram (constant time).
pub fn verify_ssse_external_auth(
    alg: CardAlgorithm,
    k_external: &CardKey,
    card_challenge: &[u8],
    cryptogram: &[u8],
) -> bool {
    encrypt_challenge(alg, k_external, card_challenge).is_ok_and(|exp| ct_eq(&exp, cryptogram))
}

/// The 4-byte MAC of an SSSE PIN UNBLOCK command (`84 2C 00 00 Lc ‖ new PIN ‖ MAC`), computed
/// by the issuer host and checked by the card.
///
/// 社会保障(个人)卡规范 protects PIN UNBLOCK with a MAC under the card's PIN-unblock key but this
/// project fixes the exact message (its "line protection" convention, shared by the kiosk back
/// end, the HSM and the virtual card):
/// `mac(alg, K_pin_unblock, challenge ‖ 84 2C 00 00 Lc ‖ new PIN)`, leftmost 4 bytes, where
/// [`mac`] is ISO/IEC 9797-1 MAC algorithm 3 / padding method 2 (3DES) or SM4 CBC-MAC / padding
/// method 2, `challenge` is the card's last GET CHALLENGE answer (ISO/IEC 7816-4 §11.5.2: 4, 8
/// or 16 bytes), `new PIN` is the BCD PIN field (4–12 digits, `F`-padded: 2–6 bytes) and
/// `Lc = len(new PIN) + 4` (the command data carries the MAC too). `Lc` is derived here so the
/// header MACed is always the header sent.
pub fn ssse_pin_unblock_mac(
    alg: CardAlgorithm,
    k_pin_unblock: &CardKey,
    challenge: &[u8],
    new_pin_bcd: &[u8],
) -> Result<[u8; 4], CardCryptoError> {
    if !matches!(challenge.len(), 4 | 8 | 16) {
        return Err(CardCryptoError::InvalidLength {
            what: "challenge",
            got: challenge.len(),
        });
    }
    let lc = match new_pin_bcd.len() {
        n @ 2..=6 => n as u8 + 4,
        got => {
            return Err(CardCryptoError::InvalidLength {
                what: "BCD PIN field",
                got,
            })
        }
    };
    let mut msg = Vec::with_capacity(challenge.len() + 5 + new_pin_bcd.len());
    msg.extend_from_slice(challenge);
    msg.extend_from_slice(&[0x84, 0x2C, 0x00, 0x00, lc]);
    msg.extend_from_slice(new_pin_bcd);
    let m = mac(alg, k_pin_unblock, &msg);
    msg.zeroize();
    Ok([m[0], m[1], m[2], m[3]])
}

/// Instruction class and code of an SSSE UPDATE RECORD with secure messaging (ISO/IEC 7816-4
/// §5.4.1: CLA `04`, secure messaging, command header not authenticated by the card's own
/// rules but by the MAC below; INS `DC`, §11.3.5).
pub const SSSE_UPDATE_RECORD_SM: [u8; 2] = [0x04, 0xDC];

/// Largest record (SIMPLE-TLV: identifier ‖ length ‖ value) an SSSE UPDATE RECORD with secure
/// messaging carries: a short APDU's 255 data bytes less the 4-byte MAC.
pub const SSSE_UPDATE_RECORD_DATA_MAX: usize = 251;

/// The 4-byte MAC of an SSSE UPDATE RECORD with secure messaging
/// (`04 DC P1 P2 Lc ‖ record ‖ MAC`), computed by the back end and checked by the card, under
/// the card's line-protection key (线路保护密钥, dispersed province → city → card like every
/// SSSE key).
///
/// 社会保障(个人)卡规范 protects the updates of the cardholder's records (EF06) with a MAC
/// under the line-protection key; this project fixes the exact message as it does for PIN
/// UNBLOCK ([`ssse_pin_unblock_mac`]):
/// `mac(alg, K_line_protection, challenge ‖ 04 DC P1 P2 Lc ‖ record)`, leftmost 4 bytes, where
/// `challenge` is the card's last GET CHALLENGE answer (4, 8 or 16 bytes), `P1`/`P2` address the
/// record (ISO/IEC 7816-4 §11.3.3: P2 b3–b1 = `000`, the record with identifier P1 in the
/// current EF), `record` is the record as SIMPLE-TLV (1 to
/// [`SSSE_UPDATE_RECORD_DATA_MAX`] bytes) and `Lc = len(record) + 4`.
pub fn ssse_update_record_mac(
    alg: CardAlgorithm,
    k_line_protection: &CardKey,
    challenge: &[u8],
    p1: u8,
    p2: u8,
    record: &[u8],
) -> Result<[u8; 4], CardCryptoError> {
    if !matches!(challenge.len(), 4 | 8 | 16) {
        return Err(CardCryptoError::InvalidLength {
            what: "challenge",
            got: challenge.len(),
        });
    }
    let lc = match record.len() {
        n @ 1..=SSSE_UPDATE_RECORD_DATA_MAX => n as u8 + 4,
        got => {
            return Err(CardCryptoError::InvalidLength {
                what: "record",
                got,
            })
        }
    };
    let [cla, ins] = SSSE_UPDATE_RECORD_SM;
    let mut msg = Vec::with_capacity(challenge.len() + 5 + record.len());
    msg.extend_from_slice(challenge);
    msg.extend_from_slice(&[cla, ins, p1, p2, lc]);
    msg.extend_from_slice(record);
    let m = mac(alg, k_line_protection, &msg);
    msg.zeroize();
    Ok([m[0], m[1], m[2], m[3]])
}

/// What an identity session's terminal challenge is bound to: the ISO 8583 request that
/// carries the card's answer (`schemas/iso8583/ssc87.md`, "Identity session"). Field values as
/// on the wire.
#[derive(Clone, Copy, Debug)]
pub struct IdentitySessionRef<'a> {
    /// Field 32, the acquirer.
    pub acquirer: &'a str,
    /// Field 41, the terminal.
    pub terminal: &'a str,
    /// Field 11, the STAN.
    pub stan: &'a str,
    /// Field 37, the RRN.
    pub rrn: &'a str,
    /// Field 7, the transmission date and time.
    pub transmission_at: &'a str,
    /// Field 120, the card identification code.
    pub card_id: &'a str,
}

/// The 8-byte challenge a kiosk gives the card's INTERNAL AUTHENTICATE in an identity
/// session, and the switch checks the answer against: the leftmost 8 bytes of SHA-256 (FIPS
/// 180-4) over `SSSE-IDENTITY-1` and the request's acquirer, terminal, STAN, RRN, field 7 and
/// card identification code, each followed by `|`.
///
/// Why derived rather than sent: the switch must know the answer is to a challenge of this
/// request, not one recorded earlier. Bound to the request's duplicate-detection key and to
/// field 7 (which the switch holds to its transmission window), a recorded card answer is
/// good for that one request only: a replay is a duplicate (`94`) or stale (`63`).
pub fn ssse_identity_challenge(r: &IdentitySessionRef<'_>) -> [u8; 8] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"SSSE-IDENTITY-1|");
    for part in [
        r.acquirer,
        r.terminal,
        r.stan,
        r.rrn,
        r.transmission_at,
        r.card_id,
    ] {
        ctx.update(part.as_bytes());
        ctx.update(b"|");
    }
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn the_identity_challenge_changes_with_every_part_of_the_request() {
        let base = IdentitySessionRef {
            acquirer: "4101009",
            terminal: "JOB00001",
            stan: "000001",
            rrn: "JC0134000001",
            transmission_at: "1207061500",
            card_id: "410100D156000005000000000000000A",
        };
        let c = ssse_identity_challenge(&base);
        assert_eq!(c, ssse_identity_challenge(&base));
        let other = IdentitySessionRef {
            stan: "000002",
            ..base
        };
        assert_ne!(c, ssse_identity_challenge(&other));
        let other = IdentitySessionRef {
            card_id: "410100D156000005000000000000000B",
            ..base
        };
        assert_ne!(c, ssse_identity_challenge(&other));
    }
}
