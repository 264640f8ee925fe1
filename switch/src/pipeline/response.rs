//! The last step: the answer a decision gives, as fields ([`Outcome`]), and the response
//! message built, MACed and encoded from it.
//!
//! Why apart: every service ends here, so what a response may carry (38 authorization code,
//! 39, 48 the identity session's elements, 54 balances, 55 ARPC and scripts, 63 the bill split, 66 and the 0510 totals, the MAC) is
//! declared once, and a service only says which of them it has.

use super::services::reconciliation::Reconciled;
use super::{Pipeline, Reply};
use crate::store::Store;
use crate::wire::mac::{self as link_mac, Rules};
use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{Error as CodecError, Message, OwnedMessage};

/// The fields a decision adds to the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub code: Option<ResponseCode>,
    pub auth_code: Option<String>,
    pub field54: Option<String>,
    /// Field 48 of an identity session's answer (its elements replace the request's).
    pub field48: Option<String>,
    pub field55: Option<Vec<u8>>,
    pub field63: Option<SplitFields>,
    /// The acquirer's TAK when its responses are MACed.
    pub mac_key: Option<hsm_sim::keys::Tak>,
    /// Field 66 and the switch's totals of a 0510.
    pub reconciled: Option<Reconciled>,
}

impl Outcome {
    /// An answer carrying only field 39 (a decline, or an approval with nothing to add).
    pub(crate) fn answer(code: ResponseCode) -> Self {
        Self {
            code: Some(code),
            ..Self::default()
        }
    }
}

/// The fields of an answer besides field 39, as remembered on the request's duplicate key
/// (`Store::record_answer`) so an exact retransmission gets the original answer: the
/// authorization code (38), balances (54), ARPC and issuer scripts (55, hex) and bill split
/// (63). None of them is secret: each went to the acquirer in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct RememberedAnswer {
    #[serde(rename = "38", default, skip_serializing_if = "Option::is_none")]
    auth_code: Option<String>,
    #[serde(rename = "54", default, skip_serializing_if = "Option::is_none")]
    field54: Option<String>,
    #[serde(rename = "55", default, skip_serializing_if = "Option::is_none")]
    field55_hex: Option<String>,
    #[serde(rename = "63", default, skip_serializing_if = "Option::is_none")]
    field63: Option<SplitFields>,
}

impl Outcome {
    /// What to remember of this answer for a retransmission: `None` when it carries only
    /// field 39 (the transaction row has that) or is not a decision's answer.
    pub(crate) fn remembered(&self) -> Option<String> {
        let r = RememberedAnswer {
            auth_code: self.auth_code.clone(),
            field54: self.field54.clone(),
            field55_hex: self.field55.as_ref().map(hex::encode_upper),
            field63: self.field63.clone(),
        };
        if r == RememberedAnswer::default() || self.reconciled.is_some() {
            return None;
        }
        serde_json::to_string(&r).ok()
    }

    /// The original answer of a retransmission: its field 39 and the fields remembered with
    /// it (when they cannot be read, field 39 alone).
    pub(crate) fn from_remembered(code: ResponseCode, remembered: Option<&str>) -> Self {
        let r: RememberedAnswer = remembered
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            code: Some(code),
            auth_code: r.auth_code,
            field54: r.field54,
            field55: r.field55_hex.and_then(|h| hex::decode(h).ok()),
            field63: r.field63,
            ..Self::default()
        }
    }
}

/// The bill split as answered in field 63.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SplitFields {
    pub pooled_fen: i64,
    pub personal_fen: i64,
    pub bank_fen: i64,
    pub bank: Option<InstitutionId>,
    pub personal_balance_after_fen: i64,
}

impl<S: Store> Pipeline<S> {
    /// Builds, MACs and encodes the response.
    pub(super) async fn respond(
        &self,
        msg: &Message<'_>,
        outcome: Outcome,
        service: &'static str,
    ) -> Reply {
        let code = outcome.code.unwrap_or(ResponseCode::SystemMalfunction);
        self.metrics.count_response(service, code.as_str());
        let spec = msg.spec();
        let mut answer = match msg.to_response() {
            Ok(a) => a,
            Err(_) => return Reply::Close,
        };
        let mut ok = answer.set_str(39, code.as_str()).is_ok();
        if let Some(a) = &outcome.auth_code {
            ok &= answer.set_str(38, a).is_ok();
        }
        if service == "identity_session" {
            answer.remove(48);
        }
        if let Some(f48) = &outcome.field48 {
            ok &= answer.set_str(48, f48).is_ok();
        }
        if let Some(f54) = &outcome.field54 {
            ok &= answer.set_str(54, f54).is_ok();
        }
        if let Some(f55) = &outcome.field55 {
            ok &= answer.set_bytes(55, f55).is_ok();
        }
        if let Some(s) = &outcome.field63 {
            ok &= set_split(&mut answer, s).is_ok();
        }
        if let Some(r) = &outcome.reconciled {
            ok &= r.write(&mut answer).is_ok();
        }
        if !ok {
            tracing::error!(service, "response field rejected by the spec");
        }
        if let Some(tak) = &outcome.mac_key {
            // Same MAC layout as the issuer links (field 64/128, the last 8 bytes).
            return match link_mac::encode_with_mac(&*self.hsm, tak, &mut answer, Rules::Unchecked)
                .await
            {
                Ok(out) => Reply::Send(out),
                Err(_) => Reply::Close,
            };
        }
        let mut out = Vec::with_capacity(256);
        match spec.encode(&answer, &mut out) {
            Ok(()) => Reply::Send(out),
            Err(_) => {
                out.clear();
                match spec.encode_unchecked(&answer, &mut out) {
                    Ok(()) => Reply::Send(out),
                    Err(_) => Reply::Close,
                }
            }
        }
    }
}

fn set_split(answer: &mut OwnedMessage<'_>, s: &SplitFields) -> Result<(), CodecError> {
    answer.set_path("63.1", format!("{:012}", s.pooled_fen).as_bytes())?;
    answer.set_path("63.2", format!("{:012}", s.personal_fen).as_bytes())?;
    answer.set_path("63.3", format!("{:012}", s.bank_fen).as_bytes())?;
    let bank = s
        .bank
        .as_ref()
        .map(|b| b.as_str().to_owned())
        .unwrap_or_default();
    answer.set_path("63.4", bank.as_bytes())?;
    answer.set_path(
        "63.5",
        format!("{:012}", s.personal_balance_after_fen.max(0)).as_bytes(),
    )?;
    Ok(())
}
