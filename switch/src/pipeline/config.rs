//! What a pipeline is configured with: the institutions it serves, the hospitals, the bill
//! policy, card limits, stand-in rules and timeouts ([`PipelineConfig`]), and its keys
//! ([`PipelineKeys`], LMK tokens only).
//!
//! Why apart from the steps: the configuration is the control plane, read once at start
//! (`switch::config` builds it from the TOML file, the demo world from its seed); the steps are
//! the data plane and only read it.

use super::security::{AcquirerKeys, IssuerKeys};
use super::split::{HospitalLevel, PolicyTable};
use super::velocity::CardLimits;
use hsm_sim::keys::{
    SsseExternalAuthKey, SsseInternalAuthKey, SsseLineProtectionKey, SssePinUnblockKey,
};
use schemas::domain::InstitutionId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// A designated hospital, by its code in field 62.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hospital {
    /// The hospital's institution id (its field 32 and settlement account).
    pub institution: InstitutionId,
    /// Its level, a key of the policy table.
    pub level: HospitalLevel,
}

/// Stand-in authorization for a bank whose link is down: the switch approves on the bank's
/// behalf within the limits the bank set, and tells the bank afterwards with an advice (0220,
/// ISO 8583:1987 financial transaction advice) queued in the same commit as the approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandIn {
    /// Largest bank leg approved in stand-in.
    pub per_transaction_fen_max: i64,
    /// Most approved in stand-in for one card per day (China Standard Time), all its stand-in
    /// legs for this bank together, reversed ones included.
    pub per_card_daily_fen_max: i64,
}

/// The pipeline's configuration (everything but keys).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The switch's own institution id (field 33 of what it forwards).
    pub switch_id: InstitutionId,
    /// The medical-insurance fund (pooled fund and personal accounts).
    pub insurance_fund: InstitutionId,
    /// The social-security fund (benefits).
    pub social_security_fund: InstitutionId,
    /// The store account benefits are paid from.
    pub social_security_fund_account: Option<crate::store::AccountId>,
    /// Designated hospitals by code.
    pub hospitals: HashMap<String, Hospital>,
    /// The bill-split policy table.
    pub policy: PolicyTable,
    /// Per-card limits.
    pub limits: CardLimits,
    /// How long a bank leg may take.
    pub bank_timeout: Duration,
    /// How long an authorization hold lives before it is released.
    pub hold_ttl: Duration,
    /// Stand-in rules per bank.
    pub stand_in: HashMap<InstitutionId, StandIn>,
    /// Wrong PINs in a row before the card is blocked.
    pub pin_tries_max: u32,
    /// Retransmissions remembered in memory for duplicate detection.
    pub recent_keys_max: usize,
    /// How far field 7 (transmission date and time, UTC) of a request may be from the
    /// switch's clock, either way, before the request is declined `63` as stale or replayed.
    /// Must stay well below the duplicate keys' retention
    /// (`crate::node::housekeeping::DUPLICATE_KEY_RETENTION`).
    pub transmission_window: Duration,
    /// The wall clock the transmission window, the duplicate keys' purge, the daily limits'
    /// day and the holds' expiry read (the system's; a test makes it jump).
    pub clock: crate::clock::Clock,
    /// Largest jump of a card's ATC over the highest seen before the cryptogram is declined
    /// (59) and the card flagged in the audit log; `None`: no limit. The jump is recorded, so
    /// the card's next transaction is judged from the new ATC.
    pub atc_gap_max: Option<u16>,
    /// Past days whose per-card spend (`card_day_usage`) is kept before housekeeping purges
    /// it; today's is always kept (the daily limits read it).
    pub card_days_kept: u32,
    /// The node's data directory, where the local reversal spool lives
    /// (`crate::store::spool`): a decline whose reversal the store cannot take is fsynced
    /// there before it is answered. `None` (only pipelines built by hand in tests): the spool
    /// is in memory and lost with the process.
    pub data_dir: Option<PathBuf>,
}

impl PipelineConfig {
    /// Defaults around the given institutions.
    pub fn new(
        switch_id: InstitutionId,
        insurance_fund: InstitutionId,
        social_security_fund: InstitutionId,
    ) -> Self {
        Self {
            switch_id,
            insurance_fund,
            social_security_fund,
            social_security_fund_account: None,
            hospitals: HashMap::new(),
            policy: PolicyTable::default(),
            limits: CardLimits::default(),
            bank_timeout: Duration::from_secs(5),
            hold_ttl: Duration::from_secs(7 * 86_400),
            stand_in: HashMap::new(),
            pin_tries_max: 3,
            recent_keys_max: 100_000,
            transmission_window: super::replay::TRANSMISSION_WINDOW_DEFAULT,
            clock: crate::clock::Clock::system(),
            atc_gap_max: Some(ATC_GAP_MAX_DEFAULT),
            card_days_kept: CARD_DAYS_KEPT_DEFAULT,
            data_dir: None,
        }
    }
}

/// Default [`PipelineConfig::atc_gap_max`]: an online-only card moves its ATC by one per
/// transaction, so a hundred unseen transactions are worth a look.
pub const ATC_GAP_MAX_DEFAULT: u16 = 100;

/// Default [`PipelineConfig::card_days_kept`]: a week of past per-card spend, for an operator
/// looking into a card's recent days.
pub const CARD_DAYS_KEPT_DEFAULT: u32 = 7;

/// Keys the pipeline works with (LMK tokens only).
#[derive(Debug, Clone)]
pub struct PipelineKeys {
    /// Per acquirer: TPK and optional TAK.
    pub acquirers: HashMap<InstitutionId, AcquirerKeys>,
    /// Issuer keys for PIN offsets and ARQCs.
    pub issuer: IssuerKeys,
    /// SSSE province keys for the identity session and the card relay.
    pub ssse: SsseKeys,
}

/// The SSSE application's province master keys (LMK tokens), one per algorithm: the HSM
/// disperses each card's key from them (province → city → card, `hsm_sim::card_crypto`'s SSSE
/// key tree) inside the HSM, so no card key is ever in clear in the switch. An authentication
/// key left `None` means identity sessions of cards of that algorithm are declined `12`; a
/// PIN-unblock or line-protection key left `None` means the card relay
/// ([`crate::cms::card_relay`]) refuses that action for cards of that algorithm.
#[derive(Debug, Clone, Default)]
pub struct SsseKeys {
    /// INTERNAL AUTHENTICATE (the card proves itself), 3DES cards (scheme U).
    pub internal_auth_tdes: Option<SsseInternalAuthKey>,
    /// INTERNAL AUTHENTICATE, SM4 cards (scheme G).
    pub internal_auth_sm4: Option<SsseInternalAuthKey>,
    /// EXTERNAL AUTHENTICATE (the back end proves itself to the card), 3DES cards.
    pub external_auth_tdes: Option<SsseExternalAuthKey>,
    /// EXTERNAL AUTHENTICATE, SM4 cards.
    pub external_auth_sm4: Option<SsseExternalAuthKey>,
    /// PIN UNBLOCK MAC (card relay), 3DES cards.
    pub pin_unblock_tdes: Option<SssePinUnblockKey>,
    /// PIN UNBLOCK MAC, SM4 cards.
    pub pin_unblock_sm4: Option<SssePinUnblockKey>,
    /// Line protection: the MAC of an EF06 UPDATE RECORD (card relay), 3DES cards.
    pub line_protection_tdes: Option<SsseLineProtectionKey>,
    /// Line protection, SM4 cards.
    pub line_protection_sm4: Option<SsseLineProtectionKey>,
}
