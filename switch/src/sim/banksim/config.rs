//! A simulated bank's configuration: its accounts, its keys as LMK tokens of its own HSM
//! ([`BankSimConfig`]), or the same as plain data with clear keys for the demo and the tests
//! ([`BankSimData`]).

use hsm_sim::keys::{KeyScheme, KeyType, Pvk, Tak, TypedKey, Zmk, Zpk};
use hsm_sim::pin::account_number_12;
use hsm_sim::{HsmError, SoftHsm};
use schemas::domain::{InstitutionId, Pan};
use serde::{Deserialize, Serialize};

use crate::wire::mac::LinkMacAlgorithm;
use crate::wire::transport::Framing;

/// One account of the bank, as seeded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSeed {
    /// PAN of the card's bank application (digits).
    pub pan: String,
    /// Opening balance in fen.
    pub balance_fen: i64,
    /// IBM 3624 PIN offset (4..=12 digits) under the bank's PVK.
    pub pin_offset: String,
}

impl std::fmt::Debug for AccountSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = Pan::parse(&self.pan)
            .map(|p| p.masked())
            .unwrap_or_else(|_| "invalid".into());
        write!(
            f,
            "AccountSeed {{ pan: {masked}, balance_fen: {} }}",
            self.balance_fen
        )
    }
}

/// The keys of a simulated bank, as LMK tokens of its own HSM.
#[derive(Debug, Clone)]
pub struct BankKeys {
    /// Zone master key shared with the switch.
    pub zmk: Zmk,
    /// Zone PIN key agreed out of band, until the first key exchange.
    pub zpk: Option<Zpk>,
    /// TAK of the link's MACs agreed out of band, until the first key exchange.
    pub tak: Option<Tak>,
    /// PIN verification key.
    pub pvk: Pvk,
}

/// Configuration of one simulated bank host.
#[derive(Debug, Clone)]
pub struct BankSimConfig {
    /// The bank's institution id.
    pub institution: InstitutionId,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// ISO 8583 spec name.
    pub spec_name: String,
    /// Framing.
    pub framing: Framing,
    /// Keys.
    pub keys: BankKeys,
    /// IBM 3624 decimalisation table (16 digits).
    pub decimalisation_table: String,
    /// PIN digits compared (4..=12).
    pub pin_check_length: u8,
    /// Accounts.
    pub accounts: Vec<AccountSeed>,
    /// Most simultaneous connections; more are closed at once.
    pub connections_max: usize,
    /// Require MACs on requests and MAC the answers ([`crate::wire::mac`]).
    pub mac: bool,
    /// The algorithm of those MACs: the scheme of the TAKs the bank accepts in key exchange,
    /// and the one a sign-on must name.
    pub mac_algorithm: LinkMacAlgorithm,
    /// Mutual TLS: the bank's certificate and the CA of the switch's (absent: plain TCP).
    pub tls: Option<crate::acquirer::TlsSettings>,
}

/// A bank's configuration as plain data with clear keys (demo and tests only: clear keys have
/// no place in production configuration). `Debug` hides the keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct BankSimData {
    /// Institution id.
    pub institution: String,
    /// Listen address.
    pub listen: String,
    /// Clear ZMK, 32 hex digits (odd parity).
    pub zmk_clear_hex: String,
    /// Clear initial ZPK, 32 hex digits, if agreed out of band.
    pub zpk_clear_hex: Option<String>,
    /// Clear initial TAK, 32 hex digits, if agreed out of band.
    #[serde(default)]
    pub tak_clear_hex: Option<String>,
    /// Require and send MACs.
    #[serde(default)]
    pub mac: bool,
    /// Their algorithm (`x9.19` when absent); the initial TAK, if any, is a key of it.
    #[serde(default)]
    pub mac_algorithm: LinkMacAlgorithm,
    /// Clear PVK, 32 hex digits.
    pub pvk_clear_hex: String,
    /// Decimalisation table.
    pub decimalisation_table: String,
    /// Accounts.
    pub accounts: Vec<AccountSeed>,
}

impl std::fmt::Debug for BankSimData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BankSimData {{ institution: {}, listen: {}, keys: ****, accounts: {:?} }}",
            self.institution, self.listen, self.accounts
        )
    }
}

impl BankSimData {
    /// Wraps the clear keys under `hsm`'s LMK and builds the configuration.
    pub fn into_config(self, hsm: &SoftHsm) -> Result<BankSimConfig, BankSimError> {
        let zmk = Zmk::from_token(hsm.import_clear_key(
            KeyType::Zmk,
            KeyScheme::U,
            &self.zmk_clear_hex,
        )?);
        let working = |key_type, scheme, clear: &Option<String>| {
            clear
                .as_deref()
                .map(|h| hsm.import_clear_key(key_type, scheme, h))
                .transpose()
        };
        let zpk = working(KeyType::Zpk, KeyScheme::U, &self.zpk_clear_hex)?.map(Zpk::from_token);
        let tak_scheme = self.mac_algorithm.key_scheme();
        let tak = working(KeyType::Tak, tak_scheme, &self.tak_clear_hex)?.map(Tak::from_token);
        let pvk = Pvk::from_token(hsm.import_clear_key(
            KeyType::Pvk,
            KeyScheme::U,
            &self.pvk_clear_hex,
        )?);
        Ok(BankSimConfig {
            institution: InstitutionId::parse(&self.institution)
                .map_err(|e| BankSimError::Config(e.to_string()))?,
            listen: self.listen,
            spec_name: "ssc87".into(),
            framing: Framing::default(),
            keys: BankKeys { zmk, zpk, tak, pvk },
            decimalisation_table: self.decimalisation_table,
            pin_check_length: 4,
            accounts: self.accounts,
            connections_max: 64,
            mac: self.mac,
            mac_algorithm: self.mac_algorithm,
            tls: None,
        })
    }
}

/// The IBM 3624 offset of `pin` for `pan` under `pvk` (issuance helper for seeding demo and
/// test accounts; the PIN is encrypted under the LMK at once and never stored).
pub fn pin_offset_for(
    hsm: &SoftHsm,
    pvk: &Pvk,
    pan: &str,
    pin: &str,
    decimalisation_table: &str,
) -> Result<String, HsmError> {
    let lmk_pin = hsm.encrypt_clear_pin_under_lmk(pin, pan)?;
    let validation = account_number_12(pan)?;
    hsm.generate_ibm_offset_lmk(pvk, &lmk_pin, pan, decimalisation_table, &validation)
}

/// Why a bank simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum BankSimError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A key could not be loaded.
    #[error("key: {0}")]
    Key(#[from] HsmError),
    /// Binding the port failed.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_data() -> BankSimData {
        BankSimData {
            institution: "01020000".into(),
            listen: "127.0.0.1:0".into(),
            zmk_clear_hex: "0123456789ABCDEFFEDCBA9876543210".into(),
            zpk_clear_hex: Some("1032547698BADCFEEFCDAB8967452301".into()),
            tak_clear_hex: None,
            mac: false,
            mac_algorithm: LinkMacAlgorithm::Sm4,
            pvk_clear_hex: "FEDCBA98765432100123456789ABCDEF".into(),
            decimalisation_table: "0123456789012345".into(),
            accounts: vec![AccountSeed {
                pan: "6228480012345678".into(),
                balance_fen: 50_000,
                pin_offset: "4321".into(),
            }],
        }
    }

    #[test]
    fn demo_config_is_plain_data_and_never_prints_keys_or_pans() {
        let data = demo_data();
        let json = serde_json::to_string(&data).expect("json");
        let back: BankSimData = serde_json::from_str(&json).expect("parse");
        let shown = format!("{back:?}");
        assert!(!shown.contains("0123456789ABCDEF"));
        assert!(!shown.contains("6228480012345678"));
        assert!(shown.contains("622848******5678"));
        let hsm = SoftHsm::with_test_lmk();
        let config = back.into_config(&hsm).expect("config");
        assert_eq!(config.institution.as_str(), "01020000");
        assert!(config.keys.zpk.is_some());
        let mut bad = demo_data();
        bad.zmk_clear_hex = "0123".into();
        assert!(bad.into_config(&hsm).is_err());
    }
}
