//! Data Object Lists (EMV Book 3 §5.4): PDOL, CDOL1, CDOL2, DDOL.
//!
//! A DOL is a list of (tag, length) the card asks the terminal to fill. The terminal side builds
//! the concatenated values ([`build`]), padding or truncating each by its format; the card side
//! splits received data back into values ([`split`]). Both sides must agree byte for byte or the
//! cryptogram the issuer recomputes will not match.

use crate::tags::{format_of, Format};
use crate::tlv::TagNum;

/// Upper bound on DOL entries (EMV DOLs are short; this stops hostile input from allocating).
pub const ENTRIES_MAX: usize = 64;

/// One DOL entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DolEntry {
    pub tag: TagNum,
    pub len: usize,
}

/// Why bytes are not a DOL, or data do not fit one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DolError {
    #[error("DOL truncated at offset {0}")]
    Truncated(usize),
    #[error("invalid tag in DOL at offset {0}")]
    BadTag(usize),
    #[error("DOL has more than {ENTRIES_MAX} entries")]
    TooManyEntries,
    #[error("DOL data is {actual} bytes, the DOL asks for {expected}")]
    DataLength { expected: usize, actual: usize },
}

/// Parses a DOL (tags with one-byte lengths; BER long lengths accepted).
pub fn parse(dol: &[u8]) -> Result<Vec<DolEntry>, DolError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < dol.len() {
        if entries.len() == ENTRIES_MAX {
            return Err(DolError::TooManyEntries);
        }
        let start = pos;
        let first = dol[pos];
        let mut tag = TagNum::from(first);
        pos += 1;
        if first & 0x1F == 0x1F {
            loop {
                let b = *dol.get(pos).ok_or(DolError::Truncated(start))?;
                tag = (tag << 8) | TagNum::from(b);
                pos += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if pos - start >= 3 {
                    return Err(DolError::BadTag(start));
                }
            }
        }
        let l = *dol.get(pos).ok_or(DolError::Truncated(start))?;
        pos += 1;
        let len = if l & 0x80 == 0 {
            usize::from(l)
        } else {
            let n = usize::from(l & 0x7F);
            if n == 0 || n > 2 {
                return Err(DolError::Truncated(start));
            }
            let bytes = dol.get(pos..pos + n).ok_or(DolError::Truncated(start))?;
            pos += n;
            bytes.iter().fold(0, |acc, b| (acc << 8) | usize::from(*b))
        };
        entries.push(DolEntry { tag, len });
    }
    Ok(entries)
}

/// Encodes a DOL (the card side, when personalising PDOL/CDOL1/CDOL2).
pub fn encode(entries: &[DolEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        crate::tlv::encode_tag(e.tag, &mut out);
        crate::tlv::encode_len(e.len, &mut out);
    }
    out
}

/// Total length of the data a DOL asks for.
pub fn data_len(entries: &[DolEntry]) -> usize {
    entries.iter().map(|e| e.len).sum()
}

/// Fills a DOL from terminal data (EMV Book 3 §5.4): missing values are zeros; format `n` is
/// right-justified (leading zeros, truncated on the left), `cn` padded with trailing `F`s, other
/// formats padded with trailing zeros and truncated on the right.
pub fn build<'a>(entries: &[DolEntry], lookup: impl Fn(TagNum) -> Option<&'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_len(entries));
    for e in entries {
        let value = lookup(e.tag).unwrap_or(&[]);
        let format = if value.is_empty() {
            Format::B
        } else {
            format_of(e.tag)
        };
        fit(value, e.len, format, &mut out);
    }
    out
}

fn fit(value: &[u8], len: usize, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::N if value.len() >= len => out.extend_from_slice(&value[value.len() - len..]),
        Format::N => {
            out.resize(out.len() + len - value.len(), 0);
            out.extend_from_slice(value);
        }
        Format::Cn if value.len() < len => {
            out.extend_from_slice(value);
            out.resize(out.len() + len - value.len(), 0xFF);
        }
        _ if value.len() >= len => out.extend_from_slice(&value[..len]),
        _ => {
            out.extend_from_slice(value);
            out.resize(out.len() + len - value.len(), 0);
        }
    }
}

/// Splits DOL-related data back into (tag, value) pairs (the card side of GPO / GENERATE AC).
pub fn split<'d>(
    entries: &[DolEntry],
    data: &'d [u8],
) -> Result<Vec<(TagNum, &'d [u8])>, DolError> {
    let expected = data_len(entries);
    if data.len() != expected {
        return Err(DolError::DataLength {
            expected,
            actual: data.len(),
        });
    }
    let mut pos = 0;
    Ok(entries
        .iter()
        .map(|e| {
            let v = &data[pos..pos + e.len];
            pos += e.len;
            (e.tag, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags;

    #[test]
    fn cdol1_parses_and_builds_with_padding_rules() {
        // A DOL with every padding rule: n (9F02), b (95, 97, 9F37 truncated), cn (5A, padded F).
        let dol = hex::decode("9F02069F1A02950597049F37045A0A").expect("hex");
        let entries = parse(&dol).expect("parses");
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[3], DolEntry { tag: 0x97, len: 4 });
        assert_eq!(encode(&entries), dol);
        let amount = [0x12, 0x34];
        let pan = [0x62, 0x12, 0x34];
        let data = build(&entries, |t| match t {
            tags::AMOUNT_AUTHORISED => Some(&amount[..]),
            tags::PAN => Some(&pan[..]),
            tags::UNPREDICTABLE_NUMBER => Some(&[1, 2, 3, 4, 5, 6][..]),
            _ => None,
        });
        assert_eq!(
            hex::encode_upper(&data),
            "000000001234\
0000\
0000000000\
00000000\
01020304\
621234FFFFFFFFFFFFFF"
        );
        let parts = split(&entries, &data).expect("splits");
        assert_eq!(parts[0], (tags::AMOUNT_AUTHORISED, &data[..6]));
        assert_eq!(
            split(&entries, &data[1..]),
            Err(DolError::DataLength {
                expected: 31,
                actual: 30
            })
        );
    }

    #[test]
    fn truncated_dol_is_an_error() {
        assert_eq!(parse(&[0x9F, 0x02]), Err(DolError::Truncated(0)));
        assert_eq!(parse(&[0x9F]), Err(DolError::Truncated(0)));
    }
}
