//! Administrative division codes of GB/T 2260 (中华人民共和国行政区划代码): six digits, the
//! first two naming the province-level division. The insuring region of a cardholder and the
//! address code of a citizen ID are such codes.
//!
//! Why only the province is checked: the full code list changes every year (counties merge,
//! districts are renamed) and belongs in reference data loaded by the bureau; the 34
//! province-level codes are stable and catch a mistyped or shifted column.

/// Length of a GB/T 2260 code in digits.
pub const REGION_CODE_LEN_DIGITS: usize = 6;

/// The province-level codes of GB/T 2260 (31 provinces, autonomous regions and municipalities,
/// Taiwan 71, Hong Kong 81, Macao 82).
pub const PROVINCE_CODES: [&str; 34] = [
    "11", "12", "13", "14", "15", // 北京 天津 河北 山西 内蒙古
    "21", "22", "23", // 辽宁 吉林 黑龙江
    "31", "32", "33", "34", "35", "36",
    "37", // 上海 江苏 浙江 安徽 福建 江西 山东
    "41", "42", "43", "44", "45", "46", // 河南 湖北 湖南 广东 广西 海南
    "50", "51", "52", "53", "54", // 重庆 四川 贵州 云南 西藏
    "61", "62", "63", "64", "65", // 陕西 甘肃 青海 宁夏 新疆
    "71", "81", "82", // 台湾 香港 澳门
];

/// Why a region code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    /// Not six ASCII digits.
    #[error("must be 6 digits (GB/T 2260)")]
    Format,
    /// The first two digits are no province of GB/T 2260.
    #[error("province {0} is not in GB/T 2260")]
    Province(String),
}

/// A six-digit GB/T 2260 code with a known province.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

impl RegionCode {
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, RegionCodeError> {
        let s = s.trim();
        if s.len() != REGION_CODE_LEN_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::Format);
        }
        if !PROVINCE_CODES.contains(&&s[..2]) {
            return Err(RegionCodeError::Province(s[..2].to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The province-level code (first two digits).
    pub fn province(&self) -> &str {
        &self.0[..2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_real_divisions_parse() {
        // 郑州市 410100, 北京市东城区 110101, 乌鲁木齐市 650100, 澳门 820000.
        for c in ["410100", "110101", "650100", "820000"] {
            assert_eq!(RegionCode::parse(c).unwrap().as_str(), c);
        }
        assert_eq!(RegionCode::parse("410100").unwrap().province(), "41");
    }

    #[test]
    fn unknown_provinces_and_malformed_codes_are_refused() {
        for c in ["000000", "100100", "990100", "240100", "700000"] {
            assert!(matches!(
                RegionCode::parse(c),
                Err(RegionCodeError::Province(_))
            ));
        }
        for c in ["41010", "4101000", "41010A", ""] {
            assert_eq!(RegionCode::parse(c), Err(RegionCodeError::Format));
        }
    }
}
