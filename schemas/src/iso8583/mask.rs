//! How field values are shown to people (Debug, Display, `--explain`).
//!
//! PCI DSS 3.4: a PAN may be displayed with at most the first six and last four digits; track
//! data, PIN blocks, expiry dates and ICC data are never displayed. The rule per field comes from
//! the spec ([`Mask`]); fields 2, 14, 35, 36, 45, 52 and 55 are masked by default in every spec.

use super::content::Content;
use super::spec::{FieldSpec, Mask};

/// The printable form of a logical value under the field's mask.
pub(crate) fn show(f: &FieldSpec, value: &[u8]) -> String {
    match f.mask {
        Mask::Full => "****".to_owned(),
        Mask::Pan => pan(value),
        Mask::None => plain(f.content, value),
    }
}

/// Unmasked printable form: text as is (Latin-1), binary as upper-case hex.
pub(crate) fn plain(content: Content, value: &[u8]) -> String {
    if content == Content::Binary {
        hex_upper(value)
    } else {
        value.iter().map(|&c| char::from(c)).collect()
    }
}

/// First 6 and last 4 characters, the rest as `*`; short values are fully masked.
pub fn pan(value: &[u8]) -> String {
    if value.len() < 13 {
        return "*".repeat(value.len().max(4));
    }
    let mut s = String::with_capacity(value.len());
    for (i, &c) in value.iter().enumerate() {
        if i < 6 || i >= value.len() - 4 {
            s.push(char::from(c));
        } else {
            s.push('*');
        }
    }
    s
}

/// Upper-case hex.
pub fn hex_upper(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0xF)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_keeps_first_six_and_last_four() {
        assert_eq!(pan(b"6214830012345678"), "621483******5678");
        assert_eq!(pan(b"1234567890123456789"), "123456*********6789");
        assert_eq!(pan(b"12345"), "*****");
    }
}
