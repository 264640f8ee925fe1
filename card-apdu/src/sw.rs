//! Status words (ISO/IEC 7816-4:2020 §5.6, table 6 and 7; EMV Book 3 §6.3.5).
//!
//! Cards answer every command with SW1-SW2. Callers match on [`StatusWord`] rather than on raw
//! `u16`s so that "PIN wrong, 2 tries left" and "PIN blocked" are distinct types of answer, and
//! the channel layer can act on the procedural ones (`61xx`, `6Cxx`) before a caller sees them.

use std::fmt;

/// A typed SW1-SW2. Round-trips exactly through [`StatusWord::from_u16`] / [`StatusWord::to_u16`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusWord {
    /// 9000: normal processing.
    Success,
    /// 61xx: xx more bytes available, fetch with GET RESPONSE (00 = 256).
    BytesAvailable(u8),
    /// 6281: part of returned data may be corrupted.
    DataMayBeCorrupted,
    /// 6282: end of file or record reached before reading Ne bytes.
    EndOfFile,
    /// 6283: selected file or application deactivated (EMV: application blocked on SELECT).
    SelectedFileInvalidated,
    /// 63Cx: verification failed, x tries left.
    VerifyFailed { tries_left: u8 },
    /// 6300: authentication failed (no counter).
    AuthenticationFailed,
    /// 6400: execution error, state of non-volatile memory unchanged.
    ExecutionError,
    /// 6581: memory failure.
    MemoryFailure,
    /// 6700: wrong length (Lc or Le inconsistent with the command).
    WrongLength,
    /// 6881: logical channel not supported.
    LogicalChannelNotSupported,
    /// 6882: secure messaging not supported.
    SecureMessagingNotSupported,
    /// 6883: last command of the chain expected.
    LastCommandOfChainExpected,
    /// 6884: command chaining not supported.
    ChainingNotSupported,
    /// 6981: command incompatible with file structure.
    IncompatibleFileStructure,
    /// 6982: security status not satisfied (e.g. no external authentication, PIN not verified).
    SecurityStatusNotSatisfied,
    /// 6983: authentication method blocked (PIN try counter at zero).
    AuthenticationMethodBlocked,
    /// 6984: reference data not usable (e.g. no challenge issued before EXTERNAL AUTHENTICATE).
    ReferenceDataNotUsable,
    /// 6985: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// 6986: command not allowed (no current EF).
    CommandNotAllowedNoCurrentEf,
    /// 6987: expected secure-messaging data objects missing.
    SecureMessagingDataMissing,
    /// 6988: incorrect secure-messaging data objects (bad MAC).
    SecureMessagingDataIncorrect,
    /// 6A80: incorrect parameters in the command data field.
    IncorrectData,
    /// 6A81: function not supported (EMV: card or application blocked).
    FunctionNotSupported,
    /// 6A82: file or application not found.
    FileNotFound,
    /// 6A83: record not found.
    RecordNotFound,
    /// 6A84: not enough memory space in the file.
    NotEnoughMemory,
    /// 6A86: incorrect parameters P1-P2.
    IncorrectP1P2,
    /// 6A87: Lc inconsistent with P1-P2.
    LcInconsistentWithP1P2,
    /// 6A88: referenced data or reference data not found.
    ReferencedDataNotFound,
    /// 6B00: wrong parameters P1-P2 (offset outside the EF).
    WrongP1P2,
    /// 6Cxx: wrong Le; xx is the exact length available.
    WrongLe(u8),
    /// 6D00: instruction code not supported or invalid.
    InsNotSupported,
    /// 6E00: class not supported.
    ClaNotSupported,
    /// 6F00: no precise diagnosis.
    NoPreciseDiagnosis,
    /// Any other value, kept verbatim.
    Other(u16),
}

impl StatusWord {
    /// Decodes SW1-SW2.
    pub fn from_u16(sw: u16) -> Self {
        let [sw1, sw2] = sw.to_be_bytes();
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Success,
            (0x61, n) => Self::BytesAvailable(n),
            (0x62, 0x81) => Self::DataMayBeCorrupted,
            (0x62, 0x82) => Self::EndOfFile,
            (0x62, 0x83) => Self::SelectedFileInvalidated,
            (0x63, 0x00) => Self::AuthenticationFailed,
            (0x63, n) if n & 0xF0 == 0xC0 => Self::VerifyFailed {
                tries_left: n & 0x0F,
            },
            (0x64, 0x00) => Self::ExecutionError,
            (0x65, 0x81) => Self::MemoryFailure,
            (0x67, 0x00) => Self::WrongLength,
            (0x68, 0x81) => Self::LogicalChannelNotSupported,
            (0x68, 0x82) => Self::SecureMessagingNotSupported,
            (0x68, 0x83) => Self::LastCommandOfChainExpected,
            (0x68, 0x84) => Self::ChainingNotSupported,
            (0x69, 0x81) => Self::IncompatibleFileStructure,
            (0x69, 0x82) => Self::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Self::AuthenticationMethodBlocked,
            (0x69, 0x84) => Self::ReferenceDataNotUsable,
            (0x69, 0x85) => Self::ConditionsNotSatisfied,
            (0x69, 0x86) => Self::CommandNotAllowedNoCurrentEf,
            (0x69, 0x87) => Self::SecureMessagingDataMissing,
            (0x69, 0x88) => Self::SecureMessagingDataIncorrect,
            (0x6A, 0x80) => Self::IncorrectData,
            (0x6A, 0x81) => Self::FunctionNotSupported,
            (0x6A, 0x82) => Self::FileNotFound,
            (0x6A, 0x83) => Self::RecordNotFound,
            (0x6A, 0x84) => Self::NotEnoughMemory,
            (0x6A, 0x86) => Self::IncorrectP1P2,
            (0x6A, 0x87) => Self::LcInconsistentWithP1P2,
            (0x6A, 0x88) => Self::ReferencedDataNotFound,
            (0x6B, 0x00) => Self::WrongP1P2,
            (0x6C, n) => Self::WrongLe(n),
            (0x6D, 0x00) => Self::InsNotSupported,
            (0x6E, 0x00) => Self::ClaNotSupported,
            (0x6F, 0x00) => Self::NoPreciseDiagnosis,
            _ => Self::Other(sw),
        }
    }

    /// Encodes back to SW1-SW2.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Success => 0x9000,
            Self::BytesAvailable(n) => 0x6100 | u16::from(n),
            Self::DataMayBeCorrupted => 0x6281,
            Self::EndOfFile => 0x6282,
            Self::SelectedFileInvalidated => 0x6283,
            Self::AuthenticationFailed => 0x6300,
            Self::VerifyFailed { tries_left } => 0x63C0 | u16::from(tries_left & 0x0F),
            Self::ExecutionError => 0x6400,
            Self::MemoryFailure => 0x6581,
            Self::WrongLength => 0x6700,
            Self::LogicalChannelNotSupported => 0x6881,
            Self::SecureMessagingNotSupported => 0x6882,
            Self::LastCommandOfChainExpected => 0x6883,
            Self::ChainingNotSupported => 0x6884,
            Self::IncompatibleFileStructure => 0x6981,
            Self::SecurityStatusNotSatisfied => 0x6982,
            Self::AuthenticationMethodBlocked => 0x6983,
            Self::ReferenceDataNotUsable => 0x6984,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::CommandNotAllowedNoCurrentEf => 0x6986,
            Self::SecureMessagingDataMissing => 0x6987,
            Self::SecureMessagingDataIncorrect => 0x6988,
            Self::IncorrectData => 0x6A80,
            Self::FunctionNotSupported => 0x6A81,
            Self::FileNotFound => 0x6A82,
            Self::RecordNotFound => 0x6A83,
            Self::NotEnoughMemory => 0x6A84,
            Self::IncorrectP1P2 => 0x6A86,
            Self::LcInconsistentWithP1P2 => 0x6A87,
            Self::ReferencedDataNotFound => 0x6A88,
            Self::WrongP1P2 => 0x6B00,
            Self::WrongLe(n) => 0x6C00 | u16::from(n),
            Self::InsNotSupported => 0x6D00,
            Self::ClaNotSupported => 0x6E00,
            Self::NoPreciseDiagnosis => 0x6F00,
            Self::Other(sw) => sw,
        }
    }

    /// SW1 and SW2 as they travel on the wire.
    pub fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// 9000, or a 62xx/63xx warning that still carries the command's result.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }
}

impl From<u16> for StatusWord {
    fn from(sw: u16) -> Self {
        Self::from_u16(sw)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.to_u16())?;
        match self {
            Self::VerifyFailed { tries_left } => {
                write!(f, " (verification failed, {tries_left} tries left)")
            }
            Self::AuthenticationMethodBlocked => f.write_str(" (authentication method blocked)"),
            Self::SecurityStatusNotSatisfied => f.write_str(" (security status not satisfied)"),
            Self::FileNotFound => f.write_str(" (file or application not found)"),
            Self::RecordNotFound => f.write_str(" (record not found)"),
            Self::InsNotSupported => f.write_str(" (instruction not supported)"),
            Self::ClaNotSupported => f.write_str(" (class not supported)"),
            Self::WrongLength => f.write_str(" (wrong length)"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_round_trips() {
        for sw in 0u16..=0xFFFF {
            assert_eq!(StatusWord::from_u16(sw).to_u16(), sw, "{sw:04X}");
        }
    }

    #[test]
    fn pin_counter_and_blocked_are_distinct() {
        assert_eq!(
            StatusWord::from_u16(0x63C2),
            StatusWord::VerifyFailed { tries_left: 2 }
        );
        assert_eq!(
            StatusWord::from_u16(0x6983),
            StatusWord::AuthenticationMethodBlocked
        );
    }
}
