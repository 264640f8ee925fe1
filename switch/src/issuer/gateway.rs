//! The pipeline's view of the banks: send a request to a card's issuing bank and wait for its
//! answer, know whether the bank is reachable, and which zone PIN key is current on its link.
//!
//! Why a trait: the pipeline must not care whether a bank is reached through the real issuer
//! links ([`super::IssuerLinks`]), a test double that answers in memory, or nothing at all (a switch
//! with no bank configured). The links implement it in production and in the demo.

use async_trait::async_trait;
use hsm_sim::keys::Zpk;
use schemas::domain::{InstitutionId, Stan};
use schemas::iso8583::OwnedMessage;
use std::time::Duration;

/// Why a bank did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Sent, but no answer within the timeout: the bank may have acted on it, so the caller
    /// must reverse it (0420).
    #[error("bank did not answer in time")]
    Timeout,
    /// Not sent: the link is down or not signed on. Nothing to reverse.
    #[error("bank link unavailable")]
    Unavailable,
    /// Not sent: the link refused it (in-flight bound, encoding). Nothing to reverse.
    #[error("request refused by the link: {0}")]
    Refused(String),
    /// The answer could not be read. The bank may have acted on the request.
    #[error("malformed answer from the bank: {0}")]
    Malformed(String),
}

impl GatewayError {
    /// True when the bank may have processed the request, so a reversal must follow.
    pub fn needs_reversal(&self) -> bool {
        matches!(self, GatewayError::Timeout | GatewayError::Malformed(_))
    }
}

/// Access to the issuing banks.
#[async_trait]
pub trait BankGateway: Send + Sync + 'static {
    /// Sends `request` to `bank` and waits at most `timeout` for the matching answer.
    async fn send(
        &self,
        bank: &InstitutionId,
        request: OwnedMessage<'static>,
        timeout: Duration,
    ) -> Result<OwnedMessage<'static>, GatewayError>;

    /// True when the bank's link is signed on.
    fn is_up(&self, bank: &InstitutionId) -> bool;

    /// The zone PIN key currently agreed with `bank` (changes at key exchange).
    fn zpk(&self, bank: &InstitutionId) -> Option<Zpk>;

    /// A fresh system trace audit number for a message the switch originates towards `bank`.
    fn next_stan(&self, bank: &InstitutionId) -> Stan;
}

/// A switch with no bank links: every bank is unavailable.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBanks;

#[async_trait]
impl BankGateway for NoBanks {
    async fn send(
        &self,
        _bank: &InstitutionId,
        _request: OwnedMessage<'static>,
        _timeout: Duration,
    ) -> Result<OwnedMessage<'static>, GatewayError> {
        Err(GatewayError::Unavailable)
    }

    fn is_up(&self, _bank: &InstitutionId) -> bool {
        false
    }

    fn zpk(&self, _bank: &InstitutionId) -> Option<Zpk> {
        None
    }

    fn next_stan(&self, _bank: &InstitutionId) -> Stan {
        Stan::new(1).unwrap_or_else(|_| unreachable!("1 is a valid STAN"))
    }
}
