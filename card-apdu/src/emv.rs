//! PBOC/EMV data both sides of an online authorisation must agree on: which terminal and card
//! values feed the application cryptogram, the layout of the Issuer Application Data (9F10), and
//! the field-55 tag set. The virtual card computes its ARQC with [`ac_input`]; a switch verifies
//! it by rebuilding the same bytes from field 55 with [`ac_input_from_field55`] and handing them,
//! with the algorithm from [`Iad::parse`], to the HSM.
//!
//! Cryptogram input (EMV Book 2 §8.1.1, Table 26 "recommended minimum set", as used by PBOC
//! CVN 01, JR/T 0025.5 附录 D): 9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖ 9C ‖ 9F37 ‖ AIP (82) ‖
//! ATC (9F36) ‖ CVR (9F10 bytes 4–7).

use hsm_sim::card_crypto::CardAlgorithm;

use crate::tags;
use crate::tlv::{self, TagNum};

/// Terminal data elements in the cryptogram input, with their lengths, in order.
pub const AC_TERMINAL_ELEMENTS: [(TagNum, usize); 8] = [
    (tags::AMOUNT_AUTHORISED, 6),
    (tags::AMOUNT_OTHER, 6),
    (tags::TERMINAL_COUNTRY, 2),
    (tags::TVR, 5),
    (tags::TRANSACTION_CURRENCY, 2),
    (tags::TRANSACTION_DATE, 3),
    (tags::TRANSACTION_TYPE, 1),
    (tags::UNPREDICTABLE_NUMBER, 4),
];

/// Tags a kiosk puts in ISO 8583 field 55 for an online authorisation (JR/T 0025.5 / CUP).
pub const FIELD55_TAGS: [TagNum; 19] = [
    tags::APPLICATION_CRYPTOGRAM,
    tags::CID,
    tags::IAD,
    tags::UNPREDICTABLE_NUMBER,
    tags::ATC,
    tags::TVR,
    tags::TRANSACTION_DATE,
    tags::TRANSACTION_TYPE,
    tags::AMOUNT_AUTHORISED,
    tags::TRANSACTION_CURRENCY,
    tags::AIP,
    tags::TERMINAL_COUNTRY,
    tags::AMOUNT_OTHER,
    tags::TERMINAL_CAPABILITIES,
    tags::CVM_RESULTS,
    tags::TERMINAL_TYPE,
    tags::DF_NAME,
    tags::APP_VERSION_TERMINAL,
    tags::TRANSACTION_SEQUENCE_COUNTER,
];

/// Errors reading cryptogram data from field 55.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Field55Error {
    #[error("field 55 is not BER-TLV: {0}")]
    Tlv(#[from] tlv::TlvError),
    #[error("field 55 lacks tag {0:X}")]
    Missing(TagNum),
    #[error("tag {tag:X} has {actual} bytes, expected {expected}")]
    Length {
        tag: TagNum,
        expected: usize,
        actual: usize,
    },
    #[error("issuer application data (9F10) not understood")]
    Iad,
}

/// Issuer Application Data as this card writes it (PBOC CVN 01 layout):
/// `07 ‖ DKI ‖ CVN ‖ CVR(4: 03 b1 b2 b3) ‖ algorithm (00 = 3DES, 04 = SM4)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iad {
    pub dki: u8,
    pub cvn: u8,
    pub cvr: [u8; 4],
    pub algorithm: CardAlgorithm,
}

/// CVR byte 3 (`cvr[2]`), b7: the offline PIN try limit is exceeded.
pub const CVR3_PIN_TRY_LIMIT_EXCEEDED: u8 = 0x40;
/// CVR byte 4 (`cvr[3]`), b8-5: issuer script commands processed; b4: script processing failed.
pub const CVR4_SCRIPT_COUNT_UNIT: u8 = 0x10;
/// CVR byte 4 (`cvr[3]`), b4: issuer script processing failed.
pub const CVR4_SCRIPT_FAILED: u8 = 0x08;

/// Algorithm indicator value for SM4 in IAD byte 8.
pub const IAD_ALGORITHM_SM4: u8 = 0x04;
/// Algorithm indicator value for 3DES in IAD byte 8.
pub const IAD_ALGORITHM_TDES: u8 = 0x00;

impl Iad {
    /// Encodes the 8 bytes of 9F10.
    pub fn to_bytes(&self) -> [u8; 8] {
        let alg = match self.algorithm {
            CardAlgorithm::Tdes => IAD_ALGORITHM_TDES,
            CardAlgorithm::Sm4 => IAD_ALGORITHM_SM4,
        };
        let c = self.cvr;
        [0x07, self.dki, self.cvn, c[0], c[1], c[2], c[3], alg]
    }

    /// CVR byte 3 (counting the length byte as byte 1), bit 7: "PIN Try Limit exceeded" — the
    /// card's offline PIN try counter (9F17) is 0 (JR/T 0025.5 CVR table; VIS 1.5 Appendix A,
    /// where the same bit is "byte 2, b7" counting from after the length). The issuer may then
    /// answer an online transaction whose PIN it verified itself with a PIN UNBLOCK script.
    pub fn pin_try_limit_exceeded(&self) -> bool {
        self.cvr[2] & CVR3_PIN_TRY_LIMIT_EXCEEDED != 0
    }

    /// Parses 9F10.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let [0x07, dki, cvn, c0, c1, c2, c3, alg, ..] = *bytes else {
            return None;
        };
        let algorithm = match alg {
            IAD_ALGORITHM_TDES => CardAlgorithm::Tdes,
            IAD_ALGORITHM_SM4 => CardAlgorithm::Sm4,
            _ => return None,
        };
        Some(Self {
            dki,
            cvn,
            cvr: [c0, c1, c2, c3],
            algorithm,
        })
    }
}

/// Builds the cryptogram input from terminal values (each exactly its length), AIP, ATC and CVR.
pub fn ac_input<'a>(
    terminal: impl Fn(TagNum) -> Option<&'a [u8]>,
    aip: [u8; 2],
    atc: [u8; 2],
    cvr: [u8; 4],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(29 + 8);
    for (tag, len) in AC_TERMINAL_ELEMENTS {
        let v = terminal(tag).unwrap_or(&[]);
        let start = out.len();
        out.extend_from_slice(&v[..v.len().min(len)]);
        out.resize(start + len, 0);
    }
    out.extend_from_slice(&aip);
    out.extend_from_slice(&atc);
    out.extend_from_slice(&cvr);
    out
}

/// What an issuer needs from field 55 to verify the cryptogram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptogramData {
    pub ac: [u8; 8],
    pub cid: u8,
    pub atc: [u8; 2],
    pub iad: Iad,
    /// The exact bytes the card MACed.
    pub input: Vec<u8>,
}

fn fixed<const N: usize>(tlvs: &[tlv::Tlv], tag: TagNum) -> Result<[u8; N], Field55Error> {
    let v = tlv::find_value(tlvs, tag).ok_or(Field55Error::Missing(tag))?;
    v.try_into().map_err(|_| Field55Error::Length {
        tag,
        expected: N,
        actual: v.len(),
    })
}

/// Rebuilds the cryptogram input and reads AC, CID, ATC and IAD from field-55 bytes.
pub fn ac_input_from_field55(field55: &[u8]) -> Result<CryptogramData, Field55Error> {
    let tlvs = tlv::parse_all(field55)?;
    for (tag, len) in AC_TERMINAL_ELEMENTS {
        let v = tlv::find_value(&tlvs, tag).ok_or(Field55Error::Missing(tag))?;
        if v.len() != len {
            return Err(Field55Error::Length {
                tag,
                expected: len,
                actual: v.len(),
            });
        }
    }
    let aip = fixed::<2>(&tlvs, tags::AIP)?;
    let atc = fixed::<2>(&tlvs, tags::ATC)?;
    let ac = fixed::<8>(&tlvs, tags::APPLICATION_CRYPTOGRAM)?;
    let [cid] = fixed::<1>(&tlvs, tags::CID)?;
    let iad_bytes = tlv::find_value(&tlvs, tags::IAD).ok_or(Field55Error::Missing(tags::IAD))?;
    let iad = Iad::parse(iad_bytes).ok_or(Field55Error::Iad)?;
    let input = ac_input(|t| tlv::find_value(&tlvs, t), aip, atc, iad.cvr);
    Ok(CryptogramData {
        ac,
        cid,
        atc,
        iad,
        input,
    })
}

/// Cryptogram Information Data values (EMV Book 3 Table 15).
pub mod cid {
    /// AAC: transaction declined.
    pub const AAC: u8 = 0x00;
    /// TC: transaction approved.
    pub const TC: u8 = 0x40;
    /// ARQC: online authorisation requested.
    pub const ARQC: u8 = 0x80;
}
