//! Reconciliation with acquirers: an acquirer's 0500 answered with a 0510 (ISO 8583:1987
//! §4.3.8, reconciliation request and response).
//!
//! Why this exists: at the end of a settlement day a kiosk operator, a hospital system or an
//! acquiring bank compares what it believes it did through the switch with what the switch
//! recorded. The acquirer sends its totals for a settlement date (field 15, `MMDD`, a day in
//! China Standard Time) in fields 74-77 (counts of credits, credit reversals, debits, debit
//! reversals) and 86-89 (the matching amounts in fen); the switch computes its own from the
//! store ([`crate::store::Store::acquirer_totals`]: approved decisions of that acquirer that
//! day, purchases and bill payments as debits, refunds and benefit credits as credits, a
//! reversal against the side of its original) and answers 0510 with 39 = `00`, 66 = `1` (in
//! balance) or `2` (out of balance: [`ReconciliationTotals::differing_fields`], the comparison
//! every reconciliation uses), and its own figures in 74-77, 86-89 and 97 (the net: `C` or `D`
//! and 16 digits). The field layout is [`schemas::iso8583::ReconciliationTotals`], the one
//! `banksim` and clearing's `reconcile_0500` use with banks (schemas/iso8583/ssc87.md,
//! "Acquirer reconciliation").
//!
//! Errors: an unknown acquirer, or one the connection does not prove, is answered 03, a
//! missing or bad MAC A0 (a 0500 always needs one, `pipeline::identity`), a field 7 outside the
//! transmission window 63 (like every other request, `pipeline::replay`: a captured 0500
//! replayed later must not read the acquirer's totals again), a missing or unreadable field 7,
//! settlement date or total 30, a store failure 96; each with 66 = `3` (error).

use crate::pipeline::identity::MacNeed;
use crate::pipeline::request::mac_of;
use crate::pipeline::response::Outcome;
use crate::pipeline::{LinkContext, Pipeline};
use crate::store::Store;
use crate::wire::settlement_day;
use schemas::domain::{InstitutionId, ResponseCode};
use schemas::iso8583::{
    Message, OwnedMessage, ReconciliationError, ReconciliationTotals, SettlementCode,
};

/// What a 0510 adds to the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Field 66.
    pub code: SettlementCode,
    /// The switch's totals (74-77, 86-89, 97), when it could compute them.
    pub ours: Option<ReconciliationTotals>,
}

/// The settlement day of field 15 (`MMDD`) as `[from, to)` in µs: the latest such date, China
/// Standard Time, not after today ([`crate::wire::settlement_day`]).
fn settlement_window(mmdd: &str, now_us: i64) -> Option<(i64, i64)> {
    settlement_day::window_us(settlement_day::from_mmdd(mmdd, now_us)?)
}

impl Reconciled {
    /// Writes field 66 and, when the switch has them, its totals (74-77, 86-89 and the net in
    /// 97: `C` in the acquirer's favour, `D` otherwise).
    pub(crate) fn write(self, answer: &mut OwnedMessage<'_>) -> Result<(), ReconciliationError> {
        self.code.to_message(answer)?;
        match &self.ours {
            Some(totals) => totals.to_message(answer),
            None => Ok(()),
        }
    }
}

impl<S: Store> Pipeline<S> {
    /// Answers an acquirer's 0500.
    pub(crate) async fn reconciliation(
        &self,
        msg: &Message<'_>,
        frame: &[u8],
        link: &LinkContext,
    ) -> Outcome {
        let error = |code: ResponseCode, mac_key| Outcome {
            reconciled: Some(Reconciled {
                code: SettlementCode::Error,
                ours: None,
            }),
            mac_key,
            ..Outcome::answer(code)
        };
        let acquirer = match msg.get_str(32) {
            Ok(a) => InstitutionId::parse(&a).ok(),
            Err(_) => link.identity.fixed().cloned(),
        };
        let Some(claimed) = acquirer.as_ref() else {
            return error(ResponseCode::InvalidMerchant, None);
        };
        let mac = mac_of(msg).ok().flatten();
        let mac_key = match self
            .authenticate_acquirer(claimed, link, MacNeed::Always, frame, mac)
            .await
        {
            Ok(k) => k,
            Err((code, mac_key)) => return error(code, mac_key),
        };
        if let Some(stale) = self.stale_reconciliation(msg, claimed) {
            return error(stale, mac_key);
        }
        let now = crate::store::now_us();
        let window = msg
            .get_str(15)
            .ok()
            .and_then(|d| settlement_window(&d, now));
        let (Some((from, to)), Ok(theirs), Some(acquirer)) =
            (window, ReconciliationTotals::from_message(msg), acquirer)
        else {
            return error(ResponseCode::FormatError, mac_key);
        };
        let ours = match self.store.acquirer_totals(&acquirer, from, to).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "acquirer totals unavailable");
                return error(ResponseCode::SystemMalfunction, mac_key);
            }
        };
        let differing = ours.differing_fields(&theirs);
        let code = if differing.is_empty() {
            SettlementCode::InBalance
        } else {
            tracing::warn!(acquirer = %acquirer, ?differing, ?theirs, ?ours, "acquirer out of balance");
            SettlementCode::OutOfBalance
        };
        Outcome {
            reconciled: Some(Reconciled {
                code,
                ours: Some(ours),
            }),
            mac_key,
            ..Outcome::answer(ResponseCode::Approved)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::domain::AmountFen;
    use schemas::iso8583::TotalsLine;

    const DAY_US: i64 = settlement_day::DAY_US;
    // 2026-11-23 12:00 CST.
    const NOW: i64 = 1_795_406_400_000_000;

    #[test]
    fn the_settlement_date_is_the_latest_china_day_not_after_today() {
        let (from, to) = settlement_window("1123", NOW).unwrap();
        assert_eq!(from, NOW - 12 * 3_600 * 1_000_000);
        assert_eq!(to - from, DAY_US);
        let (from, _) = settlement_window("1124", NOW).unwrap();
        assert_eq!(
            from,
            NOW - 12 * 3_600 * 1_000_000 - 364 * DAY_US,
            "last year"
        );
        assert!(settlement_window("1332", NOW).is_none());
        assert!(settlement_window("11", NOW).is_none());
        assert!(settlement_window("11234", NOW).is_none());
        assert!(
            settlement_window("0229", NOW).is_some(),
            "the last leap day"
        );
    }

    #[test]
    fn a_0510_carries_the_totals_and_the_sign_of_the_net_in_97() {
        let spec = schemas::iso8583::spec("ssc87").unwrap();
        for (credits_fen, debits_fen, net) in
            [(1_500, 0, "C0000000000001500"), (0, 7, "D0000000000000007")]
        {
            let mut answer = OwnedMessage::new(spec, schemas::iso8583::Mti::new("0510").unwrap());
            let mut ours = ReconciliationTotals::default();
            ours.add(TotalsLine::Credits, 1, AmountFen::new(credits_fen).unwrap())
                .unwrap();
            ours.add(TotalsLine::Debits, 2, AmountFen::new(debits_fen).unwrap())
                .unwrap();
            let reconciled = Reconciled {
                code: SettlementCode::InBalance,
                ours: Some(ours),
            };
            reconciled.write(&mut answer).unwrap();
            assert_eq!(answer.get_str(66).unwrap(), "1");
            assert_eq!(answer.get_u64(76).unwrap(), 2);
            assert_eq!(answer.get_u64(88).unwrap(), debits_fen.unsigned_abs());
            assert_eq!(answer.get_str(97).unwrap(), net);
        }
    }
}
