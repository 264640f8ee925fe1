//! Card verification values: CVV/CVC (magnetic stripe), CVV2 (printed) and iCVV (chip track 2).
//!
//! Why this exists: the switch verifies CVV2 on card-not-present payments and CVV/iCVV on
//! track data; the issuance system generates them. One algorithm (Visa CVV, as payShield CW/CY)
//! with the service code changed per kind: CVV2 uses `000`, iCVV uses `999`.
//!
//! Algorithm: data = PAN || expiry (YYMM) || service code, zero-filled to 32 digits; with the
//! CVK halves A and B: R = DES_A(block1); R = 3DES_AB(R ⊕ block2); decimalise (digits, then hex
//! A-F minus 10); the first three digits.

use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

use crate::error::HsmError;

/// Which card verification value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CvvKind {
    /// Magnetic-stripe CVV with the card's service code.
    Cvv,
    /// Printed CVV2 (service code 000).
    Cvv2,
    /// Chip iCVV (service code 999).
    Icvv,
}

impl CvvKind {
    /// The service code used for this kind (the card's own for `Cvv`).
    pub fn effective_service_code(self, service_code: &str) -> &str {
        match self {
            CvvKind::Cvv => service_code,
            CvvKind::Cvv2 => "000",
            CvvKind::Icvv => "999",
        }
    }
}

fn digits_ok(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Compute a 3-digit CVV with a double-length CVK (16 clear bytes).
pub fn compute_cvv(
    cvk: &[u8; 16],
    pan: &str,
    expiry_yymm: &str,
    service_code: &str,
) -> Result<String, HsmError> {
    if !digits_ok(pan, 12..=19) {
        return Err(HsmError::InvalidAccount);
    }
    if !digits_ok(expiry_yymm, 4..=4) || !digits_ok(service_code, 3..=3) {
        return Err(HsmError::InvalidInput);
    }
    let mut nib = [0u8; 32];
    for (n, d) in nib.iter_mut().zip(
        pan.bytes()
            .chain(expiry_yymm.bytes())
            .chain(service_code.bytes()),
    ) {
        *n = d - b'0';
    }
    let mut blocks = [0u8; 16];
    for (i, b) in blocks.iter_mut().enumerate() {
        *b = (nib[2 * i] << 4) | nib[2 * i + 1];
    }
    let a = des::Des::new(GenericArray::from_slice(&cvk[..8]));
    let b = des::Des::new(GenericArray::from_slice(&cvk[8..]));
    let mut r = GenericArray::clone_from_slice(&blocks[..8]);
    a.encrypt_block(&mut r);
    for (x, y) in r.iter_mut().zip(&blocks[8..]) {
        *x ^= y;
    }
    a.encrypt_block(&mut r);
    b.decrypt_block(&mut r);
    a.encrypt_block(&mut r);
    let hexn: Vec<u8> = r.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect();
    let mut out: String = hexn
        .iter()
        .filter(|&&n| n <= 9)
        .take(3)
        .map(|&n| char::from(b'0' + n))
        .collect();
    for &n in hexn.iter().filter(|&&n| n > 9) {
        if out.len() == 3 {
            break;
        }
        out.push(char::from(b'0' + n - 10));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_cvv_example() {
        // CVK 9999999999999999 8888888888888888, PAN 2222222222222222, expiry 3333, SC 111 → 361.
        let mut k = [0u8; 16];
        hex::decode_to_slice("99999999999999998888888888888888", &mut k).expect("hex");
        assert_eq!(
            compute_cvv(&k, "2222222222222222", "3333", "111").expect("cvv"),
            "361"
        );
    }

    #[test]
    fn cvv2_and_icvv_use_fixed_service_codes() {
        assert_eq!(CvvKind::Cvv2.effective_service_code("201"), "000");
        assert_eq!(CvvKind::Icvv.effective_service_code("201"), "999");
        assert_eq!(CvvKind::Cvv.effective_service_code("201"), "201");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let k = [1u8; 16];
        assert_eq!(
            compute_cvv(&k, "12AB", "3333", "111"),
            Err(HsmError::InvalidAccount)
        );
        assert_eq!(
            compute_cvv(&k, "2222222222222222", "333", "111"),
            Err(HsmError::InvalidInput)
        );
    }
}
