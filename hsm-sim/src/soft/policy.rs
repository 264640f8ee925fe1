//! The software HSM's security settings: what a caller may ask of it beyond holding the keys.
//!
//! Why this exists: a payment HSM protects PINs not only by encryption but by refusing requests
//! that leak them. IBM 3624 PIN verification with a caller-supplied decimalisation table lets
//! anyone who may verify PINs recover them digit by digit (M. Bond and P. Zieliński, "Decimalisation
//! table attacks for PIN cracking", 2003): a table mapping one hex digit to a wrong value answers
//! "does the PIN contain this digit?". payShield's security setting "User-specified decimalisation
//! tables" is off by default: only tables configured on the HSM are accepted. [`SecuritySettings`]
//! does the same, with the standard table [`STANDARD_DECIMALISATION_TABLE`] configured by default.

use crate::error::HsmError;

/// The usual IBM 3624 decimalisation table (hex digit `n` → `n mod 10`).
pub const STANDARD_DECIMALISATION_TABLE: &str = "0123456789012345";

/// Which decimalisation tables PIN commands (DA, EA, BK, DE) accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecimalisationTables {
    /// Only these tables, each 16 decimal digits (payShield: user-specified tables disabled).
    Only(Vec<String>),
    /// Whatever table the caller sends (payShield: user-specified tables enabled): leaves PINs
    /// open to the decimalisation-table attack. For testing other systems only.
    InsecureAny,
}

impl DecimalisationTables {
    /// An allow-list, each table checked to be 16 decimal digits (error 25 otherwise).
    pub fn only<S: AsRef<str>>(tables: &[S]) -> Result<DecimalisationTables, HsmError> {
        let tables: Vec<String> = tables.iter().map(|t| t.as_ref().to_string()).collect();
        let well_formed = |t: &String| t.len() == 16 && t.bytes().all(|b| b.is_ascii_digit());
        if tables.is_empty() || !tables.iter().all(well_formed) {
            return Err(HsmError::DecimalisationTable);
        }
        Ok(DecimalisationTables::Only(tables))
    }

    /// Error 25 unless `table` may be used.
    pub fn check(&self, table: &str) -> Result<(), HsmError> {
        match self {
            DecimalisationTables::InsecureAny => Ok(()),
            DecimalisationTables::Only(list) if list.iter().any(|t| t == table) => Ok(()),
            DecimalisationTables::Only(_) => Err(HsmError::DecimalisationTable),
        }
    }
}

impl Default for DecimalisationTables {
    fn default() -> Self {
        DecimalisationTables::Only(vec![STANDARD_DECIMALISATION_TABLE.to_string()])
    }
}

/// The security settings of a [`SoftHsm`](crate::SoftHsm) (payShield's `CS` console command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecuritySettings {
    /// Decimalisation tables accepted by PIN commands.
    pub decimalisation_tables: DecimalisationTables,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_well_formed_tables_pass() {
        let d = DecimalisationTables::default();
        assert_eq!(d.check(STANDARD_DECIMALISATION_TABLE), Ok(()));
        assert_eq!(
            d.check("0000000000000000"),
            Err(HsmError::DecimalisationTable)
        );
        assert_eq!(
            DecimalisationTables::InsecureAny.check("0000000000000000"),
            Ok(())
        );
        assert!(DecimalisationTables::only(&["1234567890123456"]).is_ok());
        for bad in [&[][..], &["12345"][..], &["123456789012345A"][..]] {
            assert_eq!(
                DecimalisationTables::only(bad),
                Err(HsmError::DecimalisationTable)
            );
        }
    }
}
