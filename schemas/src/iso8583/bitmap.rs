//! The set of present fields, and its wire form: primary, secondary and tertiary bitmaps.
//!
//! ISO 8583:1987 §4.2: bit 1 of the primary bitmap announces the secondary bitmap (fields
//! 65-128). ISO 8583:1993 adds a tertiary bitmap (fields 129-192), announced by bit 65. Bit `n`
//! is the most significant bit of byte `(n-1)/8` counting from 1.

use super::encoding::Sink;
use super::error::Error;
use super::spec::BitmapEncoding;

/// A set of field numbers 1..=192 (a bitmap in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FieldSet([u64; 3]);

impl FieldSet {
    /// No fields.
    pub const EMPTY: FieldSet = FieldSet([0; 3]);

    #[inline]
    fn pos(id: u16) -> Option<(usize, u32)> {
        (1..=192)
            .contains(&id)
            .then(|| (usize::from((id - 1) / 64), 63 - u32::from((id - 1) % 64)))
    }

    /// Adds `id` (ignored outside 1..=192).
    #[inline]
    pub fn insert(&mut self, id: u16) {
        if let Some((w, b)) = Self::pos(id) {
            self.0[w] |= 1 << b;
        }
    }

    /// Removes `id`.
    #[inline]
    pub fn remove(&mut self, id: u16) {
        if let Some((w, b)) = Self::pos(id) {
            self.0[w] &= !(1 << b);
        }
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: u16) -> bool {
        Self::pos(id).is_some_and(|(w, b)| self.0[w] & (1 << b) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 3]
    }

    /// Field numbers in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let lead = bits.leading_zeros();
                bits &= !(1u64 << (63 - lead));
                Some(w as u16 * 64 + lead as u16 + 1)
            })
        })
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet([
            self.0[0] & !other.0[0],
            self.0[1] & !other.0[1],
            self.0[2] & !other.0[2],
        ])
    }

    /// The 64-bit word holding fields `64*index+1 ..= 64*index+64`.
    pub(crate) fn word(&self, index: usize) -> u64 {
        self.0[index]
    }

    pub(crate) fn set_word(&mut self, index: usize, word: u64) {
        self.0[index] = word;
    }
}

impl FromIterator<u16> for FieldSet {
    fn from_iter<T: IntoIterator<Item = u16>>(iter: T) -> Self {
        let mut s = FieldSet::EMPTY;
        for id in iter {
            s.insert(id);
        }
        s
    }
}

/// Bytes one bitmap takes on the wire.
pub(crate) fn wire_len(enc: BitmapEncoding) -> usize {
    match enc {
        BitmapEncoding::Binary => 8,
        BitmapEncoding::Hex => 16,
    }
}

/// Reads one 64-bit bitmap from exactly [`wire_len`] bytes.
#[inline]
pub(crate) fn read(enc: BitmapEncoding, b: &[u8]) -> Result<u64, Error> {
    match enc {
        BitmapEncoding::Binary => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            Ok(u64::from_be_bytes(w))
        }
        BitmapEncoding::Hex => {
            let mut v = 0u64;
            for &c in &b[..16] {
                let n = match c {
                    b'0'..=b'9' => c - b'0',
                    b'A'..=b'F' => c - b'A' + 10,
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => {
                        return Err(Error::InvalidBitmap {
                            reason: "not hexadecimal",
                        })
                    }
                };
                v = (v << 4) | u64::from(n);
            }
            Ok(v)
        }
    }
}

/// Writes one bitmap (hex bitmaps in upper case, as jPOS writes them).
pub(crate) fn write(enc: BitmapEncoding, word: u64, out: &mut impl Sink) {
    match enc {
        BitmapEncoding::Binary => out.extend_from_slice(&word.to_be_bytes()),
        BitmapEncoding::Hex => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            for i in (0..16).rev() {
                out.push(HEX[((word >> (4 * i)) & 0xF) as usize]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_one_is_the_top_bit_of_the_first_byte() {
        let mut s = FieldSet::EMPTY;
        s.insert(1);
        s.insert(64);
        s.insert(65);
        s.insert(192);
        assert_eq!(s.word(0), 0x8000_0000_0000_0001);
        assert_eq!(s.word(1), 0x8000_0000_0000_0000);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 64, 65, 192]);
        s.remove(64);
        assert!(!s.contains(64));
        assert!(!s.contains(0) && !s.contains(193));
    }

    #[test]
    fn hex_bitmap_round_trips_in_upper_case() {
        let mut out = Vec::new();
        write(BitmapEncoding::Hex, 0x723A_4001_0841_8010, &mut out);
        assert_eq!(out, b"723A400108418010");
        assert_eq!(
            read(BitmapEncoding::Hex, b"723a400108418010"),
            Ok(0x723A_4001_0841_8010)
        );
        assert!(read(BitmapEncoding::Hex, b"723A40010841801G").is_err());
    }
}
