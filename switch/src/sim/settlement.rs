//! The demo's [`SettlementSource`]: clearing's settlement API answered in the switch's own
//! process, on the ledger of the demo's embedded clearing, by the very functions `clearing
//! api` serves ([`clearing::api::service`]), so `switch demo` has working `/clearing/...`
//! routes with the same scoping, without certificates. Feature `demo` only: a production
//! switch reaches clearing over mutual TLS ([`crate::clearing_link::ClearingClient`]).

use crate::clearing_link::{SettlementError, SettlementOperator, SettlementSource};
use clearing::api::{service, ApiError, ApiState, Operator};
use clearing::ledger::Ledger;
use schemas::settlement_api::{
    CloseWindow, OpenPositions, StatementFormat, Viewer, WindowDetail, WindowPage,
};

/// Clearing's settlement functions on an embedded ledger.
pub struct InProcessSettlement {
    state: ApiState,
}

impl std::fmt::Debug for InProcessSettlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessSettlement")
            .finish_non_exhaustive()
    }
}

impl InProcessSettlement {
    /// On `ledger` (the embedded clearing's, [`clearing::embedded::EmbeddedClearing::ledger`]).
    pub fn new(ledger: Ledger) -> Self {
        Self {
            state: ApiState::new(ledger),
        }
    }
}

fn operator(who: &SettlementOperator) -> Operator {
    Operator {
        operator_id: who.operator_id.clone(),
        institution: who.institution.clone(),
        viewer: Viewer::of(&who.institution, who.kind.as_sql()),
    }
}

fn failed(e: ApiError) -> SettlementError {
    match e {
        ApiError::NotFound(_) => SettlementError::NotFound,
        ApiError::Forbidden(why) => SettlementError::Forbidden(why.to_owned()),
        ApiError::Conflict(why) => SettlementError::Conflict(why),
        ApiError::Invalid(why) => SettlementError::Invalid(why),
        ApiError::Ledger(e) => {
            tracing::error!(error = %e, "embedded clearing: the ledger failed");
            SettlementError::Unavailable(e.to_string())
        }
    }
}

#[async_trait::async_trait]
impl SettlementSource for InProcessSettlement {
    async fn windows(
        &self,
        who: &SettlementOperator,
        before: Option<i64>,
        limit: u32,
    ) -> Result<WindowPage, SettlementError> {
        service::windows(&self.state.ledger, &operator(who), before, limit)
            .await
            .map_err(failed)
    }

    async fn window(
        &self,
        who: &SettlementOperator,
        id: i64,
    ) -> Result<WindowDetail, SettlementError> {
        service::window(&self.state.ledger, &operator(who), id)
            .await
            .map_err(failed)
    }

    async fn positions(&self, who: &SettlementOperator) -> Result<OpenPositions, SettlementError> {
        service::open_positions(&self.state.ledger, &operator(who))
            .await
            .map_err(failed)
    }

    async fn close_window(
        &self,
        who: &SettlementOperator,
        request: &CloseWindow,
    ) -> Result<WindowDetail, SettlementError> {
        self.state
            .close_window(&operator(who), request)
            .await
            .map_err(failed)
    }

    async fn applied_outbox_seq(&self) -> Result<Option<i64>, SettlementError> {
        clearing::embedded::applied_outbox_seq(&self.state.ledger)
            .await
            .map(Some)
            .map_err(|e| {
                tracing::error!(error = %e, "embedded clearing: its offset not read");
                SettlementError::Unavailable(e.to_string())
            })
    }

    async fn statement(
        &self,
        who: &SettlementOperator,
        id: i64,
        institution: &str,
        format: StatementFormat,
    ) -> Result<String, SettlementError> {
        service::statement(&self.state.ledger, &operator(who), id, institution, format)
            .await
            .map_err(failed)
    }
}
