//! Command and response APDUs (ISO/IEC 7816-4:2020 §5.2, "Command-response pairs").
//!
//! One [`Command`] type covers the seven cases of the standard: the case is not stored but follows
//! from whether there is a data field and an expected length, and the encoder picks short or
//! extended length fields (§5.2.2) from the sizes. [`Command::parse`] is the card side: it
//! classifies raw bytes into a case or returns a typed error that the card answers with `6700`.

use crate::sw::StatusWord;

/// Largest Nc of a short APDU and largest Ne of a short APDU.
pub const SHORT_NC_MAX: usize = 255;
/// Largest Ne of a short APDU (Le = 00).
pub const SHORT_NE_MAX: usize = 256;
/// Largest Nc of an extended APDU.
pub const EXTENDED_NC_MAX: usize = 65_535;
/// Largest Ne of an extended APDU (Le = 0000).
pub const EXTENDED_NE_MAX: usize = 65_536;

/// CLA bit b5 (0x10): "command is not the last of a chain" (ISO/IEC 7816-4 §5.4.1).
pub const CLA_CHAINING: u8 = 0x10;

/// The seven command cases of ISO/IEC 7816-4 §5.2.2 (S = short, E = extended length fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// No data, no response data.
    One,
    /// Le only, short.
    TwoShort,
    /// Lc + data, short.
    ThreeShort,
    /// Lc + data + Le, short.
    FourShort,
    /// Le only, extended.
    TwoExtended,
    /// Lc + data, extended.
    ThreeExtended,
    /// Lc + data + Le, extended.
    FourExtended,
}

/// Why bytes are not a well-formed command or response APDU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    #[error("APDU of {0} bytes is shorter than its 4-byte header")]
    TooShort(usize),
    #[error("Lc says {lc} data bytes but the body holds {body} bytes")]
    LengthMismatch { lc: usize, body: usize },
    #[error("extended Lc of 0000 is not allowed")]
    ExtendedLcZero,
    #[error("data field of {0} bytes exceeds 65535")]
    DataTooLong(usize),
    #[error("expected length {0} is outside 1..=65536")]
    BadExpectedLength(usize),
    #[error("response of {0} bytes has no SW1-SW2")]
    ResponseTooShort(usize),
}

/// A command APDU. `ne` is Ne, the maximum number of response bytes expected (1..=65536), or
/// `None` when no response data is expected (cases 1 and 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    pub ne: Option<usize>,
}

impl Command {
    /// A case-1 command (header only).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            ne: None,
        }
    }

    /// Adds a data field (cases 3 and 4).
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// Sets Ne (cases 2 and 4). 256 encodes as short `Le = 00`.
    pub fn with_ne(mut self, ne: usize) -> Self {
        self.ne = Some(ne);
        self
    }

    /// Whether this command needs extended length fields.
    pub fn is_extended(&self) -> bool {
        self.data.len() > SHORT_NC_MAX || self.ne.is_some_and(|ne| ne > SHORT_NE_MAX)
    }

    /// The case this command encodes as.
    pub fn case(&self) -> Case {
        let ext = self.is_extended();
        match (self.data.is_empty(), self.ne.is_some(), ext) {
            (true, false, _) => Case::One,
            (true, true, false) => Case::TwoShort,
            (true, true, true) => Case::TwoExtended,
            (false, false, false) => Case::ThreeShort,
            (false, false, true) => Case::ThreeExtended,
            (false, true, false) => Case::FourShort,
            (false, true, true) => Case::FourExtended,
        }
    }

    /// Encodes the command, choosing short or extended length fields (§5.2.2).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        let nc = self.data.len();
        if nc > EXTENDED_NC_MAX {
            return Err(ApduError::DataTooLong(nc));
        }
        if let Some(ne) = self.ne {
            if ne == 0 || ne > EXTENDED_NE_MAX {
                return Err(ApduError::BadExpectedLength(ne));
            }
        }
        let mut out = Vec::with_capacity(4 + 3 + nc + 3);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let extended = self.is_extended();
        if nc > 0 {
            if extended {
                out.push(0);
                out.extend_from_slice(&(nc as u16).to_be_bytes());
            } else {
                out.push(nc as u8);
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(ne) = self.ne {
            if extended {
                if nc == 0 {
                    out.push(0);
                }
                // 65536 encodes as 0000.
                out.extend_from_slice(&((ne % EXTENDED_NE_MAX) as u16).to_be_bytes());
            } else {
                out.push((ne % SHORT_NE_MAX) as u8);
            }
        }
        Ok(out)
    }

    /// Parses a command as a card receives it, classifying it into one of the seven cases.
    pub fn parse(bytes: &[u8]) -> Result<(Self, Case), ApduError> {
        let Some((header, body)) = bytes.split_first_chunk::<4>() else {
            return Err(ApduError::TooShort(bytes.len()));
        };
        let [cla, ins, p1, p2] = *header;
        let mut cmd = Self::new(cla, ins, p1, p2);
        let case = match body {
            [] => Case::One,
            [le] => {
                cmd.ne = Some(short_ne(*le));
                Case::TwoShort
            }
            [0, rest @ ..] if rest.len() >= 2 => Self::parse_extended(&mut cmd, rest)?,
            [0, rest @ ..] => {
                return Err(ApduError::LengthMismatch {
                    lc: 0,
                    body: rest.len(),
                })
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if rest.len() == lc {
                    cmd.data = rest.to_vec();
                    Case::ThreeShort
                } else if rest.len() == lc + 1 {
                    cmd.data = rest[..lc].to_vec();
                    cmd.ne = rest.last().map(|le| short_ne(*le));
                    Case::FourShort
                } else {
                    return Err(ApduError::LengthMismatch {
                        lc,
                        body: rest.len(),
                    });
                }
            }
        };
        Ok((cmd, case))
    }

    fn parse_extended(cmd: &mut Self, rest: &[u8]) -> Result<Case, ApduError> {
        let (len, tail) = rest.split_at(2);
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if tail.is_empty() {
            cmd.ne = Some(extended_ne(n));
            return Ok(Case::TwoExtended);
        }
        if n == 0 {
            return Err(ApduError::ExtendedLcZero);
        }
        if tail.len() == n {
            cmd.data = tail.to_vec();
            Ok(Case::ThreeExtended)
        } else if tail.len() == n + 2 {
            cmd.data = tail[..n].to_vec();
            cmd.ne = Some(extended_ne(usize::from(u16::from_be_bytes([
                tail[n],
                tail[n + 1],
            ]))));
            Ok(Case::FourExtended)
        } else {
            Err(ApduError::LengthMismatch {
                lc: n,
                body: tail.len(),
            })
        }
    }

    /// Splits a command whose data exceeds `chunk_max` bytes into a chain (§5.4.1): every command
    /// but the last has CLA bit b5 set; only the last one carries Ne.
    pub fn into_chain(self, chunk_max: usize) -> Vec<Command> {
        let chunk_max = chunk_max.clamp(1, SHORT_NC_MAX);
        if self.data.len() <= chunk_max {
            return vec![self];
        }
        let count = self.data.len().div_ceil(chunk_max);
        self.data
            .chunks(chunk_max)
            .enumerate()
            .map(|(i, part)| {
                let last = i + 1 == count;
                Command {
                    cla: if last {
                        self.cla
                    } else {
                        self.cla | CLA_CHAINING
                    },
                    ins: self.ins,
                    p1: self.p1,
                    p2: self.p2,
                    data: part.to_vec(),
                    ne: if last { self.ne } else { None },
                }
            })
            .collect()
    }
}

fn short_ne(le: u8) -> usize {
    if le == 0 {
        SHORT_NE_MAX
    } else {
        usize::from(le)
    }
}

fn extended_ne(le: usize) -> usize {
    if le == 0 {
        EXTENDED_NE_MAX
    } else {
        le
    }
}

/// A response APDU: data field and the status word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    /// A response with data and `9000`.
    pub fn ok(data: impl Into<Vec<u8>>) -> Self {
        Self {
            data: data.into(),
            sw: StatusWord::Success,
        }
    }

    /// A response carrying only a status word.
    pub fn status(sw: StatusWord) -> Self {
        Self {
            data: Vec::new(),
            sw,
        }
    }

    /// Parses `data || SW1 SW2`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ApduError> {
        let Some((data, sw)) = bytes.split_last_chunk::<2>() else {
            return Err(ApduError::ResponseTooShort(bytes.len()));
        };
        Ok(Self {
            data: data.to_vec(),
            sw: StatusWord::from_u16(u16::from_be_bytes(*sw)),
        })
    }

    /// Encodes `data || SW1 SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(cmd: Command, case: Case, wire: &str) {
        let bytes = cmd.to_bytes().expect("encodable");
        assert_eq!(hex::encode_upper(&bytes), wire);
        let (parsed, parsed_case) = Command::parse(&bytes).expect("parses");
        assert_eq!(parsed, cmd);
        assert_eq!(parsed_case, case);
        assert_eq!(cmd.case(), case);
    }

    #[test]
    fn all_seven_cases_encode_and_parse() {
        roundtrip(Command::new(0, 0x44, 0, 0), Case::One, "00440000");
        roundtrip(
            Command::new(0, 0x84, 0, 0).with_ne(8),
            Case::TwoShort,
            "0084000008",
        );
        roundtrip(
            Command::new(0, 0xB0, 0, 0).with_ne(256),
            Case::TwoShort,
            "00B0000000",
        );
        roundtrip(
            Command::new(0, 0x20, 0, 0).with_data([0x12, 0x34, 0x56]),
            Case::ThreeShort,
            "0020000003123456",
        );
        roundtrip(
            Command::new(0, 0xA4, 4, 0)
                .with_data([0xA0, 0])
                .with_ne(256),
            Case::FourShort,
            "00A4040002A00000",
        );
        roundtrip(
            Command::new(0, 0xB0, 0, 0).with_ne(65_536),
            Case::TwoExtended,
            "00B00000000000",
        );
        roundtrip(
            Command::new(0, 0xB0, 0, 0).with_ne(300),
            Case::TwoExtended,
            "00B0000000012C",
        );
        let big = vec![0xAB; 300];
        let wire3 = format!("00D60000{}{}", "00012C", "AB".repeat(300));
        roundtrip(
            Command::new(0, 0xD6, 0, 0).with_data(big.clone()),
            Case::ThreeExtended,
            &wire3,
        );
        let wire4 = format!("00880000{}{}0000", "00012C", "AB".repeat(300));
        roundtrip(
            Command::new(0, 0x88, 0, 0).with_data(big).with_ne(65_536),
            Case::FourExtended,
            &wire4,
        );
    }

    #[test]
    fn inconsistent_lengths_are_rejected() {
        assert_eq!(Command::parse(&[0, 0xA4]), Err(ApduError::TooShort(2)));
        assert_eq!(
            Command::parse(&[0, 0x20, 0, 0, 3, 1, 2]),
            Err(ApduError::LengthMismatch { lc: 3, body: 2 })
        );
        assert_eq!(
            Command::parse(&[0, 0xB0, 0, 0, 0, 1]),
            Err(ApduError::LengthMismatch { lc: 0, body: 1 })
        );
        assert_eq!(
            Command::parse(&[0, 0xB0, 0, 0, 0, 0, 0, 1]),
            Err(ApduError::ExtendedLcZero)
        );
    }

    #[test]
    fn chaining_sets_cla_bit_on_all_but_last() {
        let chain = Command::new(0x80, 0xE2, 0, 0)
            .with_data(vec![1; 600])
            .with_ne(256)
            .into_chain(255);
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[0].cla, 0x90);
        assert_eq!(chain[1].cla, 0x90);
        assert_eq!(chain[2].cla, 0x80);
        assert_eq!(chain[2].data.len(), 90);
        assert_eq!((chain[0].ne, chain[2].ne), (None, Some(256)));
    }
}
