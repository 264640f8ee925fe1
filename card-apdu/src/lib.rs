#![cfg_attr(not(test), deny(clippy::unwrap_used))]
//! Card side of the social-security card system: ISO 7816-4 APDUs and status words, BER-TLV and
//! DOLs, card channels (PC/SC, in-memory, relayed over TCP), the virtual third-generation
//! social-security card (SSSE + PBOC debit) served to vsmartcard's vpcd, and the kiosk flows.

pub mod apdu;
pub mod channel;
pub mod dol;
pub mod emv;
mod hexser;
pub mod issuer;
pub mod kiosk;
pub mod perso;
pub mod sw;
pub mod tags;
pub mod tlv;
pub mod vcard;
pub mod vpcd;

/// Masks a PAN for logs and human output: first 6 and last 4 digits (PCI DSS 3.4).
pub fn mask_pan(pan: &str) -> String {
    if pan.len() < 11 {
        return "*".repeat(pan.len());
    }
    format!(
        "{}{}{}",
        &pan[..6],
        "*".repeat(pan.len() - 10),
        &pan[pan.len() - 4..]
    )
}
