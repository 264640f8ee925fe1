//! The services of the switch, one module each. Every authorization service reads top to
//! bottom the same way:
//!
//! 1. **parse**: what the typed [`Request`] carries for this service;
//! 2. **check**: the cardholder checks the service asks for ([`Checks`], one call into
//!    `pipeline::cardholder`), which answer the declines themselves;
//! 3. **decide**: the service's own rules (balances, the original of a refund, the bill split)
//!    and its bank leg (`pipeline::bank_leg`), if any;
//! 4. **commit**: one [`Decision`] through the writer (`pipeline::decision`);
//! 5. **respond**: the fields of the answer ([`Outcome`], encoded by `pipeline::response`).
//!
//! | module | request | what it does |
//! |---|---|---|
//! | `medical_bill` | 0200 `19xxxx` | hospital bill split: pooled fund, personal account, bank |
//! | `purchase` | 0200 `00xxxx` | purchase paid by the card's bank |
//! | `balance` | 0200 `31xxxx` | balance of the personal account, or asked of the bank |
//! | `refund` | 0200 `20xxxx` | refund of a bank purchase |
//! | `benefit_credit` | 0200 `21xxxx` | social-security fund to the card's bank account |
//! | `preauthorization` | 0100 / 0120 | hold on the personal account / its advice |
//! | `completion` | 0220 | capture of a pre-authorization's hold |
//! | `reversal` | 0400/0401/0420/0421 | undo an earlier request |
//! | `reconciliation` | 0500 | an acquirer's totals against the switch's |
//! | `identity_session` | 0100 `33xxxx`, 60.1 `03` | a job-centre kiosk's cardholder proves who they are (SSSE mutual authentication through the HSM) |
//!
//! [`Checks`]: super::cardholder::Checks
//! [`Decision`]: crate::store::Decision
//! [`Outcome`]: super::response::Outcome

mod balance;
mod benefit_credit;
mod completion;
mod identity_session;
mod medical_bill;
mod preauthorization;
mod purchase;
pub(crate) mod reconciliation;
mod refund;
mod reversal;

use super::request::Request;
use super::Pipeline;
use crate::store::{Store, StoredTransaction, TransactionKind};
use schemas::domain::ResponseCode;

impl<S: Store> Pipeline<S> {
    /// The approved original of a refund or completion: same RRN, acquirer and terminal, an approved
    /// decision of `kinds`.
    pub(crate) async fn original(
        &self,
        req: &Request,
        kinds: &[TransactionKind],
    ) -> Result<Option<StoredTransaction>, ResponseCode> {
        let found = self
            .store
            .transactions_by_rrn(&req.rrn)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "original lookup failed");
                ResponseCode::SystemMalfunction
            })?;
        Ok(found.into_iter().find(|t| {
            let r = &t.record;
            r.is_approved()
                && kinds.contains(&r.kind)
                && r.acquirer == req.acquirer
                && r.terminal_id == req.terminal_id
        }))
    }
}
