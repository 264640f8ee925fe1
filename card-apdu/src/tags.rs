//! Tag dictionary: EMV/PBOC data elements (EMV Book 3 Annex A, JR/T 0025.5 附录 A) and the SSSE
//! record identifiers of EF05/EF06 (社会保障(个人)卡规范). Used to name tags in human output, to
//! pad/truncate DOL entries correctly by format (EMV Book 3 §5.4), and as named constants so no
//! module writes `0x9F26` where it means "application cryptogram".

use crate::tlv::TagNum;

/// Data element format (EMV Book 3 §4.3): decides DOL padding and truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Numeric BCD, right-justified, padded with leading zeros.
    N,
    /// Compressed numeric, left-justified, padded with trailing `F`s.
    Cn,
    /// Binary.
    B,
    /// Alphanumeric (special).
    Ans,
}

/// One dictionary entry.
#[derive(Clone, Copy, Debug)]
pub struct TagInfo {
    pub tag: TagNum,
    pub name: &'static str,
    pub format: Format,
}

macro_rules! tags {
    ($( $konst:ident = $tag:literal, $fmt:ident, $name:literal; )*) => {
        $( #[doc = $name] pub const $konst: TagNum = $tag; )*
        /// Every EMV/PBOC tag this crate knows.
        pub const DICTIONARY: &[TagInfo] = &[
            $( TagInfo { tag: $tag, name: $name, format: Format::$fmt }, )*
        ];
    };
}

tags! {
    AID = 0x4F, B, "Application Identifier (ADF Name)";
    APPLICATION_LABEL = 0x50, Ans, "Application Label";
    TRACK2_EQUIVALENT = 0x57, B, "Track 2 Equivalent Data";
    PAN = 0x5A, Cn, "Application PAN";
    DIRECTORY_ENTRY = 0x61, B, "Application Template";
    FCI_TEMPLATE = 0x6F, B, "FCI Template";
    READ_RECORD_TEMPLATE = 0x70, B, "READ RECORD Response Template";
    ISSUER_SCRIPT_71 = 0x71, B, "Issuer Script Template 1";
    ISSUER_SCRIPT_72 = 0x72, B, "Issuer Script Template 2";
    RESPONSE_FORMAT_2 = 0x77, B, "Response Message Template Format 2";
    RESPONSE_FORMAT_1 = 0x80, B, "Response Message Template Format 1";
    AMOUNT_AUTHORISED_BINARY = 0x81, B, "Amount, Authorised (Binary)";
    AIP = 0x82, B, "Application Interchange Profile";
    COMMAND_TEMPLATE = 0x83, B, "Command Template";
    DF_NAME = 0x84, B, "Dedicated File (DF) Name";
    ISSUER_SCRIPT_COMMAND = 0x86, B, "Issuer Script Command";
    APPLICATION_PRIORITY = 0x87, B, "Application Priority Indicator";
    SFI = 0x88, B, "Short File Identifier (SFI)";
    AUTHORISATION_RESPONSE_CODE = 0x8A, Ans, "Authorisation Response Code";
    CDOL1 = 0x8C, B, "CDOL1";
    CDOL2 = 0x8D, B, "CDOL2";
    CVM_LIST = 0x8E, B, "CVM List";
    ISSUER_AUTHENTICATION_DATA = 0x91, B, "Issuer Authentication Data";
    AFL = 0x94, B, "Application File Locator";
    TVR = 0x95, B, "Terminal Verification Results";
    TRANSACTION_DATE = 0x9A, N, "Transaction Date";
    TSI = 0x9B, B, "Transaction Status Information";
    TRANSACTION_TYPE = 0x9C, N, "Transaction Type";
    FCI_PROPRIETARY = 0xA5, B, "FCI Proprietary Template";
    CARDHOLDER_NAME = 0x5F20, Ans, "Cardholder Name";
    EXPIRY_DATE = 0x5F24, N, "Application Expiration Date";
    EFFECTIVE_DATE = 0x5F25, N, "Application Effective Date";
    ISSUER_COUNTRY = 0x5F28, N, "Issuer Country Code";
    TRANSACTION_CURRENCY = 0x5F2A, N, "Transaction Currency Code";
    LANGUAGE_PREFERENCE = 0x5F2D, Ans, "Language Preference";
    SERVICE_CODE = 0x5F30, N, "Service Code";
    PAN_SEQUENCE_NUMBER = 0x5F34, N, "Application PAN Sequence Number";
    AMOUNT_AUTHORISED = 0x9F02, N, "Amount, Authorised (Numeric)";
    AMOUNT_OTHER = 0x9F03, N, "Amount, Other (Numeric)";
    AUC = 0x9F07, B, "Application Usage Control";
    APP_VERSION_CARD = 0x9F08, B, "Application Version Number (card)";
    APP_VERSION_TERMINAL = 0x9F09, B, "Application Version Number (terminal)";
    IAC_DEFAULT = 0x9F0D, B, "Issuer Action Code - Default";
    IAC_DENIAL = 0x9F0E, B, "Issuer Action Code - Denial";
    IAC_ONLINE = 0x9F0F, B, "Issuer Action Code - Online";
    IAD = 0x9F10, B, "Issuer Application Data";
    ISSUER_CODE_TABLE = 0x9F11, N, "Issuer Code Table Index";
    PREFERRED_NAME = 0x9F12, Ans, "Application Preferred Name";
    LAST_ONLINE_ATC = 0x9F13, B, "Last Online ATC Register";
    PIN_TRY_COUNTER = 0x9F17, B, "PIN Try Counter";
    ISSUER_SCRIPT_ID = 0x9F18, B, "Issuer Script Identifier";
    TERMINAL_COUNTRY = 0x9F1A, N, "Terminal Country Code";
    IFD_SERIAL = 0x9F1E, Ans, "Interface Device (IFD) Serial Number";
    TRACK1_DISCRETIONARY = 0x9F1F, Ans, "Track 1 Discretionary Data";
    TRANSACTION_TIME = 0x9F21, N, "Transaction Time";
    APPLICATION_CRYPTOGRAM = 0x9F26, B, "Application Cryptogram";
    CID = 0x9F27, B, "Cryptogram Information Data";
    TERMINAL_CAPABILITIES = 0x9F33, B, "Terminal Capabilities";
    CVM_RESULTS = 0x9F34, B, "CVM Results";
    TERMINAL_TYPE = 0x9F35, N, "Terminal Type";
    ATC = 0x9F36, B, "Application Transaction Counter";
    UNPREDICTABLE_NUMBER = 0x9F37, B, "Unpredictable Number";
    PDOL = 0x9F38, B, "PDOL";
    POS_ENTRY_MODE = 0x9F39, N, "Point-of-Service Entry Mode";
    ADDITIONAL_TERMINAL_CAPABILITIES = 0x9F40, B, "Additional Terminal Capabilities";
    TRANSACTION_SEQUENCE_COUNTER = 0x9F41, N, "Transaction Sequence Counter";
    APPLICATION_CURRENCY = 0x9F42, N, "Application Currency Code";
    LOG_ENTRY = 0x9F4D, B, "Log Entry";
    MERCHANT_NAME = 0x9F4E, Ans, "Merchant Name and Location";
    LOG_FORMAT = 0x9F4F, B, "Log Format";
    CARD_TRANSACTION_QUALIFIERS = 0x9F6C, B, "Card Transaction Qualifiers";
    TERMINAL_EC_SUPPORT = 0x9F7A, B, "EC Terminal Support Indicator (PBOC)";
    FCI_ISSUER_DISCRETIONARY = 0xBF0C, B, "FCI Issuer Discretionary Data";
    SM_ALGORITHM_SUPPORT = 0xDF69, B, "SM Algorithm Supported Indicator (PBOC 3.0)";
}

/// Looks a tag up in the dictionary.
pub fn describe(tag: TagNum) -> Option<&'static TagInfo> {
    DICTIONARY.iter().find(|t| t.tag == tag)
}

/// Format of a tag for DOL handling; unknown tags are binary (EMV Book 3 §5.4).
pub fn format_of(tag: TagNum) -> Format {
    describe(tag).map_or(Format::B, |t| t.format)
}

/// Record identifiers inside the SSSE files EF05 and EF06 (社会保障(个人)卡规范 v3, 卡内数据).
/// These are SIMPLE-TLV tags local to their EF, so they live apart from the EMV dictionary.
pub mod ssse {
    /// EF05 01: card identification code (卡的识别码), 16 bytes.
    pub const CARD_IDENTIFICATION_CODE: u8 = 0x01;
    /// EF05 02: card type (卡的类别), 1 byte.
    pub const CARD_TYPE: u8 = 0x02;
    /// EF05 03: specification version (规范版本), 4 ASCII bytes, e.g. `3.00`.
    pub const SPEC_VERSION: u8 = 0x03;
    /// EF05 04: initialising organisation number (初始化机构编号), 12 bytes.
    pub const INIT_ORG: u8 = 0x04;
    /// EF05 05: issue date (发卡日期), 4 bytes BCD YYYYMMDD.
    pub const ISSUE_DATE: u8 = 0x05;
    /// EF05 06: expiry date (卡有效期), 4 bytes BCD YYYYMMDD.
    pub const EXPIRY_DATE: u8 = 0x06;
    /// EF05 07: card number (卡号), 9 ASCII bytes.
    pub const CARD_NUMBER: u8 = 0x07;
    /// EF06 08: social security number (社会保障号码), 18 ASCII bytes.
    pub const SOCIAL_SECURITY_NUMBER: u8 = 0x08;
    /// EF06 09: name (姓名), 30 bytes GBK, padded with 00.
    pub const NAME: u8 = 0x09;
    /// EF06 0A: sex (性别), 1 ASCII byte (GB/T 2261.1: 1 male, 2 female).
    pub const SEX: u8 = 0x0A;
    /// EF06 0B: ethnicity (民族), 1 byte (GB 3304 code).
    pub const ETHNICITY: u8 = 0x0B;
    /// EF06 0C: birthplace (出生地), 3 bytes BCD area code.
    pub const BIRTHPLACE: u8 = 0x0C;
    /// EF06 0D: birth date (出生日期), 4 bytes BCD YYYYMMDD.
    pub const BIRTH_DATE: u8 = 0x0D;

    /// Human name of a record identifier.
    pub fn name(id: u8) -> &'static str {
        match id {
            CARD_IDENTIFICATION_CODE => "card identification code",
            CARD_TYPE => "card type",
            SPEC_VERSION => "specification version",
            INIT_ORG => "initialising organisation",
            ISSUE_DATE => "issue date",
            EXPIRY_DATE => "expiry date",
            CARD_NUMBER => "card number",
            SOCIAL_SECURITY_NUMBER => "social security number",
            NAME => "name",
            SEX => "sex",
            ETHNICITY => "ethnicity",
            BIRTHPLACE => "birthplace",
            BIRTH_DATE => "birth date",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_no_duplicates() {
        for (i, a) in DICTIONARY.iter().enumerate() {
            assert!(
                DICTIONARY[i + 1..].iter().all(|b| b.tag != a.tag),
                "{:X}",
                a.tag
            );
        }
    }

    #[test]
    fn amount_is_numeric_and_pan_compressed_numeric() {
        assert_eq!(format_of(AMOUNT_AUTHORISED), Format::N);
        assert_eq!(format_of(PAN), Format::Cn);
        assert_eq!(format_of(0xDF7F), Format::B);
        assert_eq!(
            describe(APPLICATION_CRYPTOGRAM).map(|t| t.name),
            Some("Application Cryptogram")
        );
    }
}
