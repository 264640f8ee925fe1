//! The bank's books: accounts keyed by PAN with balances in fen, the approved transactions
//! remembered for their reversals (at most [`AUTHORIZATIONS_MAX`]), and the reconciliation
//! totals, overall and per settlement day (the China Standard Time day the bank posted on,
//! [`crate::wire::settlement_day`]); and how a request's leg (service, PAN, amount, reversal
//! key) is read and posted.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::NaiveDate;

use schemas::domain::{AmountFen, Currency};
use schemas::iso8583::{
    AccountType, AdditionalAmount, AmountType, Message, ReconciliationTotals, TotalsLine,
};

use super::AUTHORIZATIONS_MAX;

pub(super) struct Account {
    pub(super) balance_fen: i64,
    pub(super) pin_offset: String,
}

/// A transaction the bank approved, remembered for its reversal.
pub(super) struct Authorization {
    pub(super) pan: String,
    /// Signed effect on the balance (negative for a debit).
    pub(super) delta_fen: i64,
    pub(super) reversed: bool,
}

pub(super) struct Ledger {
    pub(super) accounts: HashMap<String, Account>,
    pub(super) authorizations: HashMap<String, Authorization>,
    pub(super) order: VecDeque<String>,
    pub(super) totals: ReconciliationTotals,
    /// The totals of each settlement day, what a 0500 for that day compares (at most
    /// [`DAYS_KEPT_MAX`] days, the oldest forgotten first).
    pub(super) by_day: BTreeMap<NaiveDate, ReconciliationTotals>,
    /// Postings still to leave out of the totals (a test hook: a bank whose books lost them).
    pub(super) uncounted: u64,
    pub(super) auth_code: u64,
}

/// Most settlement days whose totals the bank keeps.
pub const DAYS_KEPT_MAX: usize = 400;

impl Ledger {
    /// Counts one posting of `amount` on `line`, in the overall totals and today's; nothing
    /// changes when either cannot hold it. A posting the test hook leaves out is not counted.
    pub(super) fn count(&mut self, line: TotalsLine, amount: AmountFen) -> Result<(), ()> {
        if self.uncounted > 0 {
            self.uncounted -= 1;
            return Ok(());
        }
        let today = crate::wire::settlement_day::day_of(crate::store::now_us()).ok_or(())?;
        let mut day = self.by_day.get(&today).copied().unwrap_or_default();
        let mut all = self.totals;
        day.add(line, 1, amount).map_err(|_| ())?;
        all.add(line, 1, amount).map_err(|_| ())?;
        self.by_day.insert(today, day);
        self.totals = all;
        while self.by_day.len() > DAYS_KEPT_MAX {
            self.by_day.pop_first();
        }
        Ok(())
    }

    pub(super) fn remember(&mut self, key: String, auth: Authorization) {
        if self.authorizations.insert(key.clone(), auth).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > AUTHORIZATIONS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.authorizations.remove(&old);
            }
        }
    }
}

/// What a 0200 asks for, by the first two digits of field 3.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    Purchase,
    BalanceInquiry,
    Refund,
    BenefitCredit,
}

pub(super) fn service(processing_code: &str) -> Option<Service> {
    Some(match processing_code.get(..2)? {
        "00" => Service::Purchase,
        "31" => Service::BalanceInquiry,
        "20" => Service::Refund,
        "21" => Service::BenefitCredit,
        _ => return None,
    })
}

/// The key under which an approved transaction is remembered for its reversal.
pub(super) fn original_key(
    rrn: Option<&str>,
    pan: &str,
    stan: &str,
    time: &str,
    terminal: &str,
) -> String {
    match rrn {
        Some(r) => format!("R:{r}:{pan}"),
        None => format!("S:{stan}:{time}:{terminal}:{pan}"),
    }
}

/// Field 54 of an answer: the available balance of the savings account behind the card
/// (ISO 8583:1987 additional amounts); `None` when it needs more than 12 digits.
pub(super) fn balance_field(balance_fen: i64) -> Option<String> {
    AdditionalAmount::new(
        AccountType::SAVINGS,
        AmountType::AVAILABLE_BALANCE,
        Currency::Cny,
        balance_fen,
    )
    .ok()
    .map(|a| a.to_string())
}

/// What a 0200 or an advice asks of an account: the service (field 3), the PAN, the amount and
/// the key it is remembered under for its reversal.
pub(super) struct Leg {
    pub(super) svc: Service,
    pub(super) pan: String,
    pub(super) amount: i64,
    pub(super) key: String,
}

/// Reads a leg; `Err` is the response code to answer with.
pub(super) fn leg(msg: &Message<'_>) -> Result<Leg, &'static str> {
    let svc = msg.get_str(3).ok().and_then(|p| service(&p)).ok_or("12")?;
    let (Ok(pan), Ok(amount)) = (msg.get_str(2), msg.get_u64(4)) else {
        return Err("30");
    };
    let amount = i64::try_from(amount).map_err(|_| "13")?;
    let text = |id: u16| msg.get_str(id).map_err(|_| "30");
    let key = original_key(
        msg.get_str(37).ok().as_deref(),
        &pan,
        &text(11)?,
        &text(7)?,
        &text(41)?,
    );
    Ok(Leg {
        svc,
        pan: pan.into_owned(),
        amount,
        key,
    })
}

impl Ledger {
    /// Applies an approved leg to its account and the totals, remembers it for its reversal,
    /// and returns the new balance. `Err` is the response code to answer with: `14` an unknown
    /// account, `13` an amount the totals cannot hold (nothing changes then).
    pub(super) fn post(&mut self, leg: Leg) -> Result<i64, &'static str> {
        let (delta, line) = match leg.svc {
            Service::Purchase => (-leg.amount, Some(TotalsLine::Debits)),
            Service::BalanceInquiry => (0, None),
            Service::Refund | Service::BenefitCredit => (leg.amount, Some(TotalsLine::Credits)),
        };
        let Some(account) = self.accounts.get_mut(&leg.pan) else {
            return Err("14");
        };
        let Some(line) = line else {
            return Ok(account.balance_fen);
        };
        let balance = account.balance_fen.checked_add(delta).ok_or("13")?;
        let amount = AmountFen::new(leg.amount).map_err(|_| "13")?;
        self.count(line, amount).map_err(|_| "13")?;
        if let Some(account) = self.accounts.get_mut(&leg.pan) {
            account.balance_fen = balance;
        }
        self.remember(
            leg.key,
            Authorization {
                pan: leg.pan,
                delta_fen: delta,
                reversed: false,
            },
        );
        Ok(balance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_codes_map_to_services() {
        assert!(matches!(service("000000"), Some(Service::Purchase)));
        assert!(matches!(service("310000"), Some(Service::BalanceInquiry)));
        assert!(matches!(service("200000"), Some(Service::Refund)));
        assert!(matches!(service("210000"), Some(Service::BenefitCredit)));
        assert!(service("400000").is_none());
        assert!(service("").is_none());
    }

    #[test]
    fn field_54_carries_the_available_balance_with_its_sign() {
        assert_eq!(balance_field(12_345).unwrap(), "1002156C000000012345");
        assert_eq!(balance_field(-5).unwrap(), "1002156D000000000005");
        assert_eq!(balance_field(1_000_000_000_000), None);
    }
}
