//! The switch's link to clearing's settlement API (issue 25): where the operator routes
//! `/clearing/...` get settlement windows, net positions and statements from.
//!
//! Why a trait: the production switch does not link the `clearing` crate (`cargo tree -p
//! switch -e normal` has no clearing; `ops/test.sh` checks it). A node reaches clearing over
//! the network ([`ClearingClient`]: HTTPS with a client certificate, `[clearing_api]` in the
//! configuration); `switch demo` (feature `demo`) calls clearing's functions on its embedded
//! ledger in its own process (`sim::settlement`). The routes see only [`SettlementSource`],
//! and the wire types are [`schemas::settlement_api`], which both ends share.
//!
//! Each call names the operator it is made for ([`SettlementOperator`]): clearing scopes its
//! answer to that operator's institution again, after the route has (defence in depth).

pub mod client;

pub use client::{ClearingClient, ClearingClientConfig};

use crate::operator::Caller;
use crate::store::InstitutionKind;
use schemas::settlement_api::{
    CloseWindow, OpenPositions, StatementFormat, WindowDetail, WindowPage,
};

/// The operator a settlement request is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementOperator {
    /// The audit actor: `user:<uuid>` or `api_key:<id>`.
    pub operator_id: String,
    /// Its institution.
    pub institution: String,
    /// What its institution is (`switch`, `bank`, ...).
    pub kind: InstitutionKind,
}

impl SettlementOperator {
    /// The operator of an authenticated caller.
    pub fn of(caller: &Caller) -> Self {
        Self {
            operator_id: caller.actor(),
            institution: caller.institution.institution_id.as_str().to_owned(),
            kind: caller.institution.kind,
        }
    }
}

/// Why clearing did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// No such window or statement, or none the operator may see.
    #[error("not found")]
    NotFound,
    /// Clearing refused the operator's institution (only the centre closes windows).
    #[error("refused: {0}")]
    Forbidden(String),
    /// The ledger's state does not allow it (another window is open).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Clearing found the request malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Clearing did not answer, or answered something unexpected (the cause is logged).
    #[error("clearing unavailable: {0}")]
    Unavailable(String),
}

/// Settlement windows, positions and statements, as clearing gives them.
#[async_trait::async_trait]
pub trait SettlementSource: Send + Sync + 'static {
    /// Windows newest first: those below `before` (all when None), at most `limit`.
    async fn windows(
        &self,
        who: &SettlementOperator,
        before: Option<i64>,
        limit: u32,
    ) -> Result<WindowPage, SettlementError>;

    /// A window with its positions and instructions.
    async fn window(
        &self,
        who: &SettlementOperator,
        id: i64,
    ) -> Result<WindowDetail, SettlementError>;

    /// The open window's positions so far.
    async fn positions(&self, who: &SettlementOperator) -> Result<OpenPositions, SettlementError>;

    /// Closes the open window (freeze, net settlement, digests); the closed window.
    async fn close_window(
        &self,
        who: &SettlementOperator,
        request: &CloseWindow,
    ) -> Result<WindowDetail, SettlementError>;

    /// The last of the switch's outbox sequences clearing has applied to its ledger, when the
    /// source can tell (the demo's embedded ledger, whose bus offsets are outbox sequences);
    /// None when it cannot (clearing's API does not say: a broker's offsets are not outbox
    /// sequences). The console's dashboard measures clearing's lag with it.
    async fn applied_outbox_seq(&self) -> Result<Option<i64>, SettlementError> {
        Ok(None)
    }

    /// The statement of `institution` in window `id`.
    async fn statement(
        &self,
        who: &SettlementOperator,
        id: i64,
        institution: &str,
        format: StatementFormat,
    ) -> Result<String, SettlementError>;
}
