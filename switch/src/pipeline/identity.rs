//! Who is on an acquirer connection, and whether a request may speak for the institution its
//! field 32 names.
//!
//! Why this exists: field 32 is written by the sender. Believing it let anyone who could reach
//! the acquirer port act as any hospital, job centre or the social-security fund (issue 24,
//! finding 1: a benefit credit with field 32 = the fund, no MAC and no PIN was approved). So the
//! institution is proven by the connection, never by the message:
//!
//! - a connection of **one institution** ([`AcquirerIdentity::Fixed`]: a hospital's own
//!   line, or a mutual-TLS connection whose client certificate maps to one institution,
//!   `acquirer::ClientInstitutions`) serves only it; a request whose field 32 names another is
//!   declined `03` and audited (`acquirer.field32_mismatch`);
//! - a **shared** listener ([`AcquirerIdentity::ProvenByMac`]: a kiosk concentrator) believes
//!   field 32 only when the message's MAC verifies under that institution's TAK (ISO 9797-1
//!   algorithm 3, [`super::security::verify_mac`]); an institution without a TAK cannot be
//!   proven there (`03`).
//!
//! Whatever the listener, money moving towards a card or back to an acquirer and the
//! acquirer's totals (benefit credits, refunds, reversals, 0500 reconciliation) need a valid
//! MAC: on every listener they are refused `A0` from an institution without a TAK. A listener
//! marked MAC-free (a trusted in-house channel, `mac_free_trusted_in_house`) is the only place
//! where an institution without a TAK is served at all, and then only for the other services.

use super::{LinkContext, Pipeline};
use crate::store::{AuditEntry, Store};
use hsm_sim::keys::Tak;
use schemas::domain::{InstitutionId, ResponseCode};

/// Who is on the connections of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquirerIdentity {
    /// One institution: field 32, when present, must name it; when absent, it is assumed.
    Fixed(InstitutionId),
    /// Several institutions share the listener: each request proves its field 32 with a MAC
    /// under that institution's TAK.
    ProvenByMac,
}

impl AcquirerIdentity {
    /// The institution of a single-institution listener.
    pub fn fixed(&self) -> Option<&InstitutionId> {
        match self {
            AcquirerIdentity::Fixed(id) => Some(id),
            AcquirerIdentity::ProvenByMac => None,
        }
    }
}

/// Whether a request needs a valid MAC whatever the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacNeed {
    /// Benefit credits, refunds, reversals and 0500s: a MAC on every listener.
    Always,
    /// Other services: a MAC unless the listener is MAC-free and the acquirer has no TAK.
    UnlessMacFree,
}

/// Why a request is not accepted as coming from the institution it names: the answer, and
/// the TAK to MAC that answer with when the institution has one.
pub(crate) type Refusal = (ResponseCode, Option<Tak>);

impl<S: Store> Pipeline<S> {
    /// Proves that `frame` (whose MAC is `mac`) comes from `claimed`, the institution of its
    /// field 32, on `link`. Returns the TAK its answer is MACed with.
    pub(crate) async fn authenticate_acquirer(
        &self,
        claimed: &InstitutionId,
        link: &LinkContext,
        need: MacNeed,
        frame: &[u8],
        mac: Option<[u8; 8]>,
    ) -> Result<Option<Tak>, Refusal> {
        if let Some(on_line) = link.identity.fixed() {
            if on_line != claimed {
                self.audit_impersonation(on_line.as_str(), claimed).await;
                return Err((ResponseCode::InvalidMerchant, None));
            }
        }
        let Some(keys) = self.keys.acquirers.get(claimed) else {
            return Err((ResponseCode::InvalidMerchant, None));
        };
        match &keys.tak {
            Some(tak) => match super::security::verify_mac(&*self.hsm, tak, frame, mac).await {
                Ok(()) => Ok(Some(tak.clone())),
                Err(code) => Err((code, Some(tak.clone()))),
            },
            None if link.identity == AcquirerIdentity::ProvenByMac => {
                self.audit_impersonation("shared listener", claimed).await;
                Err((ResponseCode::InvalidMerchant, None))
            }
            None if need == MacNeed::UnlessMacFree && link.mac_free_trusted_in_house => Ok(None),
            None => Err((ResponseCode::MacFailure, None)),
        }
    }

    /// Records a request that named another institution than the one its connection proves.
    async fn audit_impersonation(&self, proven: &str, claimed: &InstitutionId) {
        tracing::warn!(%claimed, proven, "field 32 names another institution than the connection");
        let entry = AuditEntry {
            actor: "switch".into(),
            action: "acquirer.field32_mismatch".into(),
            subject: format!("institution:{claimed}"),
            detail: serde_json::json!({ "connection": proven }).to_string(),
            at_us: crate::store::now_us(),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "audit append failed");
        }
    }
}
