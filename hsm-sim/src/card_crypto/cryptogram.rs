//! MACs and cryptograms on card session keys: the application cryptogram (ARQC/TC/AAC), the
//! ARPC (methods 1 and 2), issuer-script MACs and the enciphered PIN of a PIN CHANGE script.
//!
//! Why this exists apart: these are the values exchanged with the card during a transaction,
//! computed identically by the HSM (host side) and the virtual card (card side).

use zeroize::Zeroize;

use super::{CardAlgorithm, CardCipher, CardCryptoError, CardKey, ClearPin};
use crate::block::{ct_eq, pad_method_2};

/// The card MAC: ISO 9797-1 alg 3 + padding 2 (3DES) or SM4 CBC-MAC + padding 2, leftmost 8.
pub fn mac(alg: CardAlgorithm, key: &CardKey, message: &[u8]) -> [u8; 8] {
    mac_with(&key.cipher(alg), message)
}

/// [`mac`] on an expanded key.
pub fn mac_with(key: &CardCipher, message: &[u8]) -> [u8; 8] {
    let padded = pad_method_2(message, key.block_len());
    let h = key.card_mac_padded(&padded);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// ARQC / TC / AAC over the transaction data (EMV Book 2 §8.1.2, A1.2).
pub fn generate_ac(alg: CardAlgorithm, sk_ac: &CardKey, data: &[u8]) -> [u8; 8] {
    mac(alg, sk_ac, data)
}

/// [`verify_ac`] on an expanded session key.
pub fn verify_ac_with(sk_ac: &CardCipher, data: &[u8], ac: &[u8; 8]) -> bool {
    ct_eq(&mac_with(sk_ac, data), ac)
}

/// Constant-time check of a received application cryptogram.
pub fn verify_ac(alg: CardAlgorithm, sk_ac: &CardKey, data: &[u8], ac: &[u8; 8]) -> bool {
    ct_eq(&generate_ac(alg, sk_ac, data), ac)
}

/// ARPC method 1: E(SK, ARQC ⊕ (ARC || 00×6)) (EMV Book 2 §8.2.1).
pub fn arpc_method_1(alg: CardAlgorithm, sk: &CardKey, arqc: &[u8; 8], arc: [u8; 2]) -> [u8; 8] {
    arpc_method_1_with(&sk.cipher(alg), arqc, arc)
}

/// [`arpc_method_1`] on an expanded session key.
pub fn arpc_method_1_with(sk: &CardCipher, arqc: &[u8; 8], arc: [u8; 2]) -> [u8; 8] {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(arqc);
    block[0] ^= arc[0];
    block[1] ^= arc[1];
    sk.encrypt_block(&mut block[..sk.block_len()]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&block[..8]);
    out
}

/// ARPC method 2: MAC(SK, ARQC || CSU || proprietary data), leftmost 4 bytes (EMV Book 2
/// §8.2.2).
pub fn arpc_method_2(
    alg: CardAlgorithm,
    sk: &CardKey,
    arqc: &[u8; 8],
    csu: [u8; 4],
    proprietary: &[u8],
) -> [u8; 4] {
    let mut msg = Vec::with_capacity(12 + proprietary.len());
    msg.extend_from_slice(arqc);
    msg.extend_from_slice(&csu);
    msg.extend_from_slice(proprietary);
    let m = mac(alg, sk, &msg);
    [m[0], m[1], m[2], m[3]]
}

/// Issuer-script command MAC (EMV Book 2 §9.2.3): MAC over header || ATC || ARQC || data,
/// leftmost 4 bytes. `header` is CLA INS P1 P2 Lc with Lc counting the data and the MAC.
pub fn script_mac(
    alg: CardAlgorithm,
    sk_smi: &CardKey,
    header: [u8; 5],
    atc: [u8; 2],
    arqc: &[u8; 8],
    data: &[u8],
) -> [u8; 4] {
    let mut msg = Vec::with_capacity(15 + data.len());
    msg.extend_from_slice(&header);
    msg.extend_from_slice(&atc);
    msg.extend_from_slice(arqc);
    msg.extend_from_slice(data);
    let m = mac(alg, sk_smi, &msg);
    [m[0], m[1], m[2], m[3]]
}

/// ISO 9564-1 format 2 PIN block: 0x2 | length | digits | F filler.
fn format_2_pin_block(pin: &ClearPin) -> [u8; 8] {
    let mut nibbles = [0x0Fu8; 16];
    nibbles[0] = 2;
    nibbles[1] = pin.len() as u8;
    for (slot, d) in nibbles[2..].iter_mut().zip(pin.0.iter()) {
        *slot = d - b'0';
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    nibbles.zeroize();
    out
}

/// Enciphered PIN data for PIN CHANGE/UNBLOCK (EMV Book 2 §9.3, CCD form): format 2 PIN block,
/// padding method 2, CBC with zero IV under SK-SMC. 16 bytes for both algorithms.
pub fn encrypt_pin_change(
    alg: CardAlgorithm,
    sk_smc: &CardKey,
    new_pin: &str,
) -> Result<Vec<u8>, CardCryptoError> {
    let pin = ClearPin::new(new_pin)?;
    let mut block = format_2_pin_block(&pin);
    let mut padded = pad_method_2(&block, alg.block_len());
    block.zeroize();
    let out = sk_smc
        .cipher(alg)
        .encrypt_cbc_zero_iv(&padded)
        .ok_or(CardCryptoError::InvalidPinBlock)?;
    padded.zeroize();
    Ok(out)
}

/// Card side of [`encrypt_pin_change`]: decrypt, check the padding and the format 2 block.
pub fn decrypt_pin_change(
    alg: CardAlgorithm,
    sk_smc: &CardKey,
    enciphered: &[u8],
) -> Result<ClearPin, CardCryptoError> {
    if enciphered.len() != 16 {
        return Err(CardCryptoError::InvalidLength {
            what: "enciphered PIN data",
            got: enciphered.len(),
        });
    }
    let mut plain = sk_smc
        .cipher(alg)
        .decrypt_cbc_zero_iv(enciphered)
        .ok_or(CardCryptoError::InvalidPinBlock)?;
    let result = parse_format_2(&plain);
    plain.zeroize();
    result
}

fn parse_format_2(plain: &[u8]) -> Result<ClearPin, CardCryptoError> {
    let padding_ok = plain[8] == 0x80 && plain[9..].iter().all(|&b| b == 0);
    let control = plain[0] >> 4;
    let len = usize::from(plain[0] & 0x0F);
    if !padding_ok || control != 2 || !(4..=12).contains(&len) {
        return Err(CardCryptoError::InvalidPinBlock);
    }
    let mut digits = Vec::with_capacity(14);
    for i in 0..14 {
        let byte = plain[1 + i / 2];
        let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
        if i < len {
            if nib > 9 {
                digits.zeroize();
                return Err(CardCryptoError::InvalidPinBlock);
            }
            digits.push(b'0' + nib);
        } else if nib != 0x0F {
            digits.zeroize();
            return Err(CardCryptoError::InvalidPinBlock);
        }
    }
    Ok(ClearPin(digits))
}
