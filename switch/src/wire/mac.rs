//! Message authentication codes on the issuer links (switch ↔ bank issuer host).
//!
//! Why this exists: an approval from a bank moves money, so the switch must know it came from
//! the bank and was not altered on the way; the bank must know the same of a debit or a
//! reversal the switch sends. Both ends of a link that has a TAK MAC what they send and check
//! what they receive, and both use this module so they agree byte for byte on:
//!
//! - **which messages**: requests and answers of the financial (01xx, 02xx), reversal (04xx)
//!   and reconciliation (05xx) classes, advices included ([`is_maced`]). Network management
//!   (08xx) is not MACed: sign-on comes before any TAK exists, and the key exchange is already
//!   bound to the ZMK by its check values; MACing it under the key being replaced would make a
//!   link whose TAKs disagree unable to recover.
//! - **where the MAC sits**: ISO 8583:1987 field 64 when the message has only a primary bitmap,
//!   field 128 when it has a secondary one; either way it is the last field, so it is the last
//!   8 bytes of the message ([`mac_field`]).
//! - **what it covers**: every byte of the message before the MAC (MTI, bitmaps with the MAC's
//!   bit set, all fields), without the length header or TPDU.
//! - **how**: ISO 9797-1 MAC algorithm 3 (the ANSI X9.19 retail MAC) with padding method 1 under
//!   the link's double-length TAK, all 8 bytes; computed and checked by the `Hsm` (payShield
//!   M6/M8), so the TAK is never in clear outside it. The published X9.19 example is checked
//!   through this path in the tests below.

use hsm_sim::error::HsmError;
use hsm_sim::keys::{MacKey, Tak};
use hsm_sim::mac::{MacAlgorithm, MacPadding};
use hsm_sim::Hsm;
use schemas::iso8583::{self, Message, Mti, OwnedMessage};

/// Why a message could not be MACed, or its MAC did not verify.
#[derive(Debug, thiserror::Error)]
pub enum MacError {
    /// The link MACs its messages but has no TAK yet.
    #[error("no TAK on the link")]
    NoKey,
    /// Neither field 64 nor field 128 is present.
    #[error("MAC missing")]
    Missing,
    /// The MAC is not the last field of the message (or both 64 and 128 are present).
    #[error("MAC field is not the last field")]
    Misplaced,
    /// No key of the link verifies the MAC.
    #[error("MAC does not verify")]
    Mismatch,
    /// The HSM refused (its error code only; never key material).
    #[error("hsm: {0}")]
    Hsm(#[from] HsmError),
    /// The message could not be encoded.
    #[error("codec: {0}")]
    Codec(#[from] iso8583::Error),
}

/// True for the message classes a MACed link authenticates (see the module documentation).
pub fn is_maced(mti: Mti) -> bool {
    matches!(mti.class(), 1 | 2 | 4 | 5)
}

/// The field that carries the MAC of `msg` (ISO 8583:1987: 64 with a primary bitmap only, 128
/// when a field above 64 needs the secondary bitmap).
pub fn mac_field(msg: &OwnedMessage<'_>) -> u16 {
    if msg.fields().any(|f| (65..128).contains(&f)) {
        128
    } else {
        64
    }
}

/// How strictly the message is encoded: `Checked` applies the spec's per-MTI presence rules;
/// `Unchecked` only for format-error answers (30) to requests that did not satisfy them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Presence rules applied.
    Checked,
    /// Presence rules skipped.
    Unchecked,
}

/// Encodes `msg` with its MAC under `tak`: sets the MAC field to zeros, encodes, then replaces
/// the last 8 bytes with the MAC of everything before them.
pub async fn encode_with_mac(
    hsm: &dyn Hsm,
    tak: &Tak,
    msg: &mut OwnedMessage<'_>,
    rules: Rules,
) -> Result<Vec<u8>, MacError> {
    msg.remove(64).remove(128);
    let field = mac_field(msg);
    msg.set_bytes(field, &[0u8; 8])?;
    let mut out = Vec::with_capacity(256);
    match rules {
        Rules::Checked => msg.spec().encode(msg, &mut out)?,
        Rules::Unchecked => msg.spec().encode_unchecked(msg, &mut out)?,
    }
    let covered = out.len().checked_sub(8).ok_or(MacError::Misplaced)?;
    let mac = hsm
        .generate_mac(
            &MacKey::Tak(tak.clone()),
            MacAlgorithm::Iso9797Alg3,
            MacPadding::Method1,
            &out[..covered],
        )
        .await?;
    let mac = mac.get(..8).ok_or(HsmError::InvalidInput)?;
    out[covered..].copy_from_slice(mac);
    Ok(out)
}

/// Checks the MAC of `msg` (decoded from `frame`) under each of `taks` in turn (current key
/// first, then the one it replaced) and returns the key that verified it, so an answer can be
/// MACed under the same key as its request.
pub async fn verify<'k>(
    hsm: &dyn Hsm,
    taks: &'k [Tak],
    frame: &[u8],
    msg: &Message<'_>,
) -> Result<&'k Tak, MacError> {
    let field = match (msg.has(64), msg.has(128)) {
        (false, false) => return Err(MacError::Missing),
        (true, true) => return Err(MacError::Misplaced),
        (true, false) => 64,
        (false, true) => 128,
    };
    if msg.fields().max() != Some(field) {
        return Err(MacError::Misplaced);
    }
    let covered = frame.len().checked_sub(8).ok_or(MacError::Misplaced)?;
    let mac = frame.get(covered..).ok_or(MacError::Misplaced)?;
    if msg.get_bytes(field)?.as_ref() != mac {
        return Err(MacError::Misplaced);
    }
    let mut refused = None;
    let mut mismatched = false;
    for tak in taks {
        let verified = hsm
            .verify_mac(
                &MacKey::Tak(tak.clone()),
                MacAlgorithm::Iso9797Alg3,
                MacPadding::Method1,
                &frame[..covered],
                mac,
            )
            .await;
        match verified {
            Ok(true) => return Ok(tak),
            Ok(false) => mismatched = true,
            Err(e) => refused = Some(e),
        }
    }
    match (mismatched, refused) {
        (false, Some(e)) => Err(MacError::Hsm(e)),
        (false, None) => Err(MacError::NoKey),
        (true, _) => Err(MacError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_sim::keys::{KeyScheme, KeyType, TypedKey};
    use hsm_sim::SoftHsm;

    fn tak(hsm: &SoftHsm, clear_hex: &str) -> Tak {
        Tak::from_token(
            hsm.import_clear_key(KeyType::Tak, KeyScheme::U, clear_hex)
                .expect("tak"),
        )
    }

    fn purchase() -> OwnedMessage<'static> {
        let spec = iso8583::spec("ssc87").expect("spec");
        let mut m = OwnedMessage::new(spec, Mti::new("0200").expect("mti"));
        m.set_str(2, "6228480012345678")
            .and_then(|m| m.set_str(3, "000000"))
            .and_then(|m| m.set_u64(4, 12_345))
            .and_then(|m| m.set_str(7, "1123093605"))
            .and_then(|m| m.set_u64(11, 42))
            .and_then(|m| m.set_str(41, "KIOSK001"))
            .and_then(|m| m.set_str(49, "156"))
            .expect("fields");
        m
    }

    #[tokio::test]
    async fn the_hsm_path_gives_the_published_x9_19_example() {
        // ISO/IEC 9797-1 Annex B / ANSI X9.9 example (also hsm-sim's mac.rs): key
        // 0123456789ABCDEF written twice (algorithm 3 then reduces to single DES), data
        // "7654321 Now is the time for ", padding method 1 → F1D30F6849312CA4.
        let hsm = SoftHsm::with_test_lmk();
        let key = tak(&hsm, "0123456789ABCDEF0123456789ABCDEF");
        let mac = hsm
            .generate_mac(
                &MacKey::Tak(key),
                MacAlgorithm::Iso9797Alg3,
                MacPadding::Method1,
                b"7654321 Now is the time for ",
            )
            .await
            .expect("mac");
        assert_eq!(hex::encode_upper(mac), "F1D30F6849312CA4");
    }

    #[tokio::test]
    async fn a_maced_message_verifies_under_its_key_only_and_any_flipped_bit_fails() {
        let hsm = SoftHsm::with_test_lmk();
        let key = tak(&hsm, "0123456789ABCDEFFEDCBA9876543210");
        let other = tak(&hsm, "1032547698BADCFEEFCDAB8967452301");
        let mut m = purchase();
        let wire = encode_with_mac(&hsm, &key, &mut m, Rules::Checked)
            .await
            .expect("mac");
        let spec = m.spec();
        let decoded = spec.decode(&wire).expect("decode");
        assert!(decoded.has(64), "primary bitmap only: field 64");
        let keys = [other.clone(), key.clone()];
        assert_eq!(
            verify(&hsm, &keys, &wire, &decoded)
                .await
                .expect("verifies"),
            &key
        );
        assert!(matches!(
            verify(&hsm, &[other], &wire, &decoded).await,
            Err(MacError::Mismatch)
        ));
        let mut tampered = wire.clone();
        tampered[20] ^= 0x01;
        let t = spec.decode(&tampered).expect("still decodes");
        assert!(matches!(
            verify(&hsm, &keys, &tampered, &t).await,
            Err(MacError::Mismatch)
        ));
        let mut plain = Vec::new();
        spec.encode(&purchase(), &mut plain).expect("encode");
        let p = spec.decode(&plain).expect("decode");
        assert!(matches!(
            verify(&hsm, &keys, &plain, &p).await,
            Err(MacError::Missing)
        ));
    }

    #[tokio::test]
    async fn with_a_secondary_bitmap_the_mac_is_field_128() {
        let hsm = SoftHsm::with_test_lmk();
        let key = tak(&hsm, "0123456789ABCDEFFEDCBA9876543210");
        let mut m = purchase();
        m.set_str(100, "01020000").expect("100");
        let wire = encode_with_mac(&hsm, &key, &mut m, Rules::Checked)
            .await
            .expect("mac");
        let decoded = m.spec().decode(&wire).expect("decode");
        assert!(decoded.has(128) && !decoded.has(64));
        assert!(verify(&hsm, &[key], &wire, &decoded).await.is_ok());
    }
}
