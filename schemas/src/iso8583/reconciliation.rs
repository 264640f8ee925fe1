//! The 0500/0510 reconciliation totals (ISO 8583:1987 §4.3.8, reconciliation request and
//! response): field 66 the settlement code, 74-77 the counts of credits, credit reversals,
//! debits and debit reversals (n 10), 86-89 the matching amounts in minor units (n 16), and 97
//! the net settlement amount (`x+n 16`: `C` the sender is owed, `D` it owes).
//!
//! Why this exists: an acquirer reconciles with the switch, the switch with each bank, and
//! clearing checks a bank's figures against its ledger; all of them read and write the same
//! fields, so the layout, its limits and the sign of the net are defined once, here
//! (schemas/iso8583/ssc87.md, "Acquirer reconciliation"). Totals add with checked arithmetic:
//! an overflow is an error, never a wrap.
//!
//! ```
//! use schemas::domain::AmountFen;
//! use schemas::iso8583::{self, Mti, ReconciliationTotals, SettlementCode, TotalsLine};
//!
//! let mut ours = ReconciliationTotals::default();
//! ours.add(TotalsLine::Debits, 1, AmountFen::new(12_345)?)?;
//! ours.add(TotalsLine::Credits, 1, AmountFen::new(5_000)?)?;
//! assert_eq!(ours.net()?.fen(), -7_345); // field 97 "D0000000000007345"
//!
//! let spec = iso8583::spec("ssc87")?;
//! let mut answer = spec.message(Mti::new("0510")?);
//! ours.to_message(&mut answer)?; // 74-77, 86-89 and 97
//! SettlementCode::InBalance.to_message(&mut answer)?; // 66 = "1"
//! assert_eq!(answer.get_str(97)?, "D0000000000007345");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use super::error::Error;
use super::message::Message;
use super::owned::OwnedMessage;
use crate::domain::AmountFen;

/// Why reconciliation figures cannot be read, added or written. Never carries a figure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconciliationError {
    /// A field is absent or not what the layout says.
    #[error("field {field}: {source}")]
    Read {
        /// ISO 8583 field number.
        field: u16,
        /// What the codec said.
        source: Error,
    },
    /// Writing a field failed.
    #[error("writing field {field}: {source}")]
    Write {
        /// ISO 8583 field number.
        field: u16,
        /// What the codec said.
        source: Error,
    },
    /// Field 97 does not start with `C` or `D`.
    #[error("field 97: the sign is neither C nor D")]
    BadSign,
    /// A field holds something other than its digits (field 97 after its sign, field 66).
    #[error("field {field}: not a number")]
    NotDigits {
        /// ISO 8583 field number.
        field: u16,
    },
    /// A sum or a value does not fit the field (n 10 counts, n 16 amounts, 16-digit net) or
    /// 64-bit arithmetic.
    #[error("field {field}: total overflows")]
    Overflow {
        /// ISO 8583 field number.
        field: u16,
    },
    /// Field 66 holds a code other than 1, 2 or 3.
    #[error("field 66: unknown settlement code")]
    UnknownSettlementCode,
}

/// Largest count of fields 74-77 (n 10).
pub const COUNT_MAX: u64 = 9_999_999_999;
/// Largest amount of fields 86-89 and magnitude of field 97 (n 16), minor units.
pub const AMOUNT_FEN_MAX: i64 = 9_999_999_999_999_999;

/// One line of the totals: which count field and which amount field it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TotalsLine {
    /// Fields 74 (number) and 86 (amount).
    Credits,
    /// Fields 75 and 87.
    CreditReversals,
    /// Fields 76 and 88.
    Debits,
    /// Fields 77 and 89.
    DebitReversals,
}

impl TotalsLine {
    /// The four lines in field order.
    pub const ALL: [TotalsLine; 4] = [
        TotalsLine::Credits,
        TotalsLine::CreditReversals,
        TotalsLine::Debits,
        TotalsLine::DebitReversals,
    ];

    /// The count field (74-77).
    pub const fn count_field(self) -> u16 {
        74 + self.index() as u16
    }

    /// The amount field (86-89).
    pub const fn amount_field(self) -> u16 {
        86 + self.index() as u16
    }

    /// The ISO 8583:1987 name of the count field (`credits, number` ...).
    pub const fn count_name(self) -> &'static str {
        match self {
            TotalsLine::Credits => "credits, number",
            TotalsLine::CreditReversals => "credits, reversal number",
            TotalsLine::Debits => "debits, number",
            TotalsLine::DebitReversals => "debits, reversal number",
        }
    }

    /// The ISO 8583:1987 name of the amount field (`credits, amount` ...).
    pub const fn amount_name(self) -> &'static str {
        match self {
            TotalsLine::Credits => "credits, amount",
            TotalsLine::CreditReversals => "credits, reversal amount",
            TotalsLine::Debits => "debits, amount",
            TotalsLine::DebitReversals => "debits, reversal amount",
        }
    }

    const fn index(self) -> usize {
        match self {
            TotalsLine::Credits => 0,
            TotalsLine::CreditReversals => 1,
            TotalsLine::Debits => 2,
            TotalsLine::DebitReversals => 3,
        }
    }
}

/// A count and an amount: one line of the totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tally {
    /// Number of transactions.
    pub count: u64,
    /// Their amount.
    pub amount: AmountFen,
}

/// The figures of fields 74-77 and 86-89.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReconciliationTotals {
    /// Fields 74 / 86.
    pub credits: Tally,
    /// Fields 75 / 87.
    pub credit_reversals: Tally,
    /// Fields 76 / 88.
    pub debits: Tally,
    /// Fields 77 / 89.
    pub debit_reversals: Tally,
}

impl ReconciliationTotals {
    /// The tally of `line`.
    pub fn line(&self, line: TotalsLine) -> Tally {
        match line {
            TotalsLine::Credits => self.credits,
            TotalsLine::CreditReversals => self.credit_reversals,
            TotalsLine::Debits => self.debits,
            TotalsLine::DebitReversals => self.debit_reversals,
        }
    }

    fn line_mut(&mut self, line: TotalsLine) -> &mut Tally {
        match line {
            TotalsLine::Credits => &mut self.credits,
            TotalsLine::CreditReversals => &mut self.credit_reversals,
            TotalsLine::Debits => &mut self.debits,
            TotalsLine::DebitReversals => &mut self.debit_reversals,
        }
    }

    /// Adds `count` transactions worth `amount` to `line`. A count or an amount that would
    /// leave its field's range is an error and changes nothing.
    pub fn add(
        &mut self,
        line: TotalsLine,
        count: u64,
        amount: AmountFen,
    ) -> Result<(), ReconciliationError> {
        let tally = self.line_mut(line);
        let count = tally
            .count
            .checked_add(count)
            .filter(|c| *c <= COUNT_MAX)
            .ok_or(ReconciliationError::Overflow {
                field: line.count_field(),
            })?;
        let amount = tally
            .amount
            .checked_add(amount)
            .ok()
            .filter(|a| a.get() <= AMOUNT_FEN_MAX)
            .ok_or(ReconciliationError::Overflow {
                field: line.amount_field(),
            })?;
        *tally = Tally { count, amount };
        Ok(())
    }

    /// Field 97: credits − credit reversals − debits + debit reversals (positive: the sender
    /// is owed).
    pub fn net(&self) -> Result<NetSettlement, ReconciliationError> {
        let overflow = ReconciliationError::Overflow { field: 97 };
        let net = self
            .credits
            .amount
            .get()
            .checked_sub(self.credit_reversals.amount.get())
            .and_then(|n| n.checked_sub(self.debits.amount.get()))
            .and_then(|n| n.checked_add(self.debit_reversals.amount.get()))
            .ok_or(overflow.clone())?;
        NetSettlement::new(net).ok_or(overflow)
    }

    /// The counts (74-77), then the amounts (86-89), that differ between `self` (ours) and
    /// `theirs`: the line-by-line half of [`ReconciliationFigures::differences`].
    fn line_differences(&self, theirs: &ReconciliationTotals) -> Vec<FigureDifference> {
        // Counts are at most n 10 (`COUNT_MAX`), so they fit an i64.
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let counts = TotalsLine::ALL.map(|l| {
            let (o, t) = (self.line(l), theirs.line(l));
            (
                l.count_field(),
                l.count_name(),
                count(o.count),
                count(t.count),
            )
        });
        let amounts = TotalsLine::ALL.map(|l| {
            let (o, t) = (self.line(l), theirs.line(l));
            (
                l.amount_field(),
                l.amount_name(),
                o.amount.get(),
                t.amount.get(),
            )
        });
        counts
            .into_iter()
            .chain(amounts)
            .filter(|(_, _, ours, theirs)| ours != theirs)
            .map(|(field, name, ours, theirs)| FigureDifference {
                field,
                name,
                ours,
                theirs,
            })
            .collect()
    }

    /// The fields whose figures differ between `self` and `other`, in field order: the counts
    /// (74-77), the amounts (86-89), then 97 when the nets the totals imply differ (a net that
    /// overflows differs from every net). Empty: in balance. What a reconciliation records as
    /// its differing lines; [`ReconciliationFigures::differences`] with the implied nets.
    pub fn differing_fields(&self, other: &ReconciliationTotals) -> Vec<u16> {
        match (
            ReconciliationFigures::of(*self),
            ReconciliationFigures::of(*other),
        ) {
            (Ok(ours), Ok(theirs)) => ours.differences(&theirs).iter().map(|d| d.field).collect(),
            _ => self
                .line_differences(other)
                .iter()
                .map(|d| d.field)
                .chain([97])
                .collect(),
        }
    }

    /// Reads fields 74-77 and 86-89.
    pub fn from_message(msg: &Message<'_>) -> Result<Self, ReconciliationError> {
        let mut totals = ReconciliationTotals::default();
        for line in TotalsLine::ALL {
            let read = |field: u16| {
                msg.get_u64(field)
                    .map_err(|source| ReconciliationError::Read { field, source })
            };
            let amount = read(line.amount_field())?;
            let amount = i64::try_from(amount)
                .ok()
                .and_then(|a| AmountFen::new(a).ok())
                .ok_or(ReconciliationError::Overflow {
                    field: line.amount_field(),
                })?;
            totals.add(line, read(line.count_field())?, amount)?;
        }
        Ok(totals)
    }

    /// Writes fields 74-77 and 86-89.
    pub fn write_lines(&self, out: &mut OwnedMessage<'_>) -> Result<(), ReconciliationError> {
        for line in TotalsLine::ALL {
            let Tally { count, amount } = self.line(line);
            for (field, value, max) in [
                (line.count_field(), count, COUNT_MAX),
                (
                    line.amount_field(),
                    amount.get().unsigned_abs(),
                    AMOUNT_FEN_MAX.unsigned_abs(),
                ),
            ] {
                if value > max {
                    return Err(ReconciliationError::Overflow { field });
                }
                out.set_u64(field, value)
                    .map_err(|source| ReconciliationError::Write { field, source })?;
            }
        }
        Ok(())
    }

    /// Writes fields 74-77, 86-89 and the net in 97.
    pub fn to_message(&self, out: &mut OwnedMessage<'_>) -> Result<(), ReconciliationError> {
        let net = self.net()?;
        self.write_lines(out)?;
        net.to_message(out)
    }
}

/// One figure that two sides of a reconciliation state differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureDifference {
    /// ISO 8583 field number (74-77, 86-89, 97).
    pub field: u16,
    /// What the field counts (its ISO 8583:1987 name).
    pub name: &'static str,
    /// Our figure: a count, an amount in fen, or the net in fen (positive: `C`).
    pub ours: i64,
    /// Theirs.
    pub theirs: i64,
}

/// What one side of a reconciliation states: its totals (74-77, 86-89) and its net (97).
///
/// Why this exists: the switch reconciles with acquirers and banks, clearing reconciles a bank's
/// 0500 with its ledger; each compares two sides' figures the same way, with
/// [`ReconciliationFigures::differences`], the one comparison (schemas/iso8583/ssc87.md, "Bank
/// cut-over").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconciliationFigures {
    /// Fields 74-77 and 86-89.
    pub totals: ReconciliationTotals,
    /// Field 97.
    pub net: NetSettlement,
}

impl ReconciliationFigures {
    /// Totals with the net they imply; an error when it overflows field 97.
    pub fn of(totals: ReconciliationTotals) -> Result<Self, ReconciliationError> {
        Ok(ReconciliationFigures {
            totals,
            net: totals.net()?,
        })
    }

    /// Reads 74-77, 86-89 and 97 as the sender states them: its 97 is read, not recomputed, so a
    /// net that does not follow from its own totals shows as a difference.
    pub fn from_message(msg: &Message<'_>) -> Result<Self, ReconciliationError> {
        Ok(ReconciliationFigures {
            totals: ReconciliationTotals::from_message(msg)?,
            net: NetSettlement::from_message(msg)?,
        })
    }

    /// The figures that differ between `self` (ours) and `theirs`, in field order: the counts
    /// (74-77), the amounts (86-89), then the net (97). Empty: in balance.
    pub fn differences(&self, theirs: &ReconciliationFigures) -> Vec<FigureDifference> {
        let mut out = self.totals.line_differences(&theirs.totals);
        if self.net != theirs.net {
            out.push(FigureDifference {
                field: 97,
                name: NET_SETTLEMENT_NAME,
                ours: self.net.fen(),
                theirs: theirs.net.fen(),
            });
        }
        out
    }
}

/// The ISO 8583:1987 name of field 97.
pub const NET_SETTLEMENT_NAME: &str = "amount, net settlement";

/// Field 97, the net settlement amount: a sign and 16 digits of minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NetSettlement(i64);

impl NetSettlement {
    /// Characters of the wire form (sign and 16 digits).
    pub const LEN: usize = 17;

    /// A net of `fen` (positive: the sender is owed, `C`); `None` beyond 16 digits.
    pub fn new(fen: i64) -> Option<NetSettlement> {
        (fen.unsigned_abs() <= AMOUNT_FEN_MAX.unsigned_abs()).then_some(NetSettlement(fen))
    }

    /// The net in minor units.
    pub const fn fen(self) -> i64 {
        self.0
    }

    /// Reads the wire form (`C0000000000001500`).
    pub fn parse(s: &str) -> Result<NetSettlement, ReconciliationError> {
        let (sign, digits) = s.split_at(s.len().min(1));
        let negative = match sign {
            "C" => false,
            "D" => true,
            _ => return Err(ReconciliationError::BadSign),
        };
        if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReconciliationError::NotDigits { field: 97 });
        }
        // At most 16 digits: below 10^16, inside i64.
        let magnitude: i64 = digits
            .parse()
            .map_err(|_| ReconciliationError::NotDigits { field: 97 })?;
        Ok(NetSettlement(if negative { -magnitude } else { magnitude }))
    }

    /// Reads field 97.
    pub fn from_message(msg: &Message<'_>) -> Result<NetSettlement, ReconciliationError> {
        let s = msg
            .get_str(97)
            .map_err(|source| ReconciliationError::Read { field: 97, source })?;
        Self::parse(&s)
    }

    /// Writes field 97.
    pub fn to_message(self, out: &mut OwnedMessage<'_>) -> Result<(), ReconciliationError> {
        out.set_str(97, &self.to_string())
            .map(|_| ())
            .map_err(|source| ReconciliationError::Write { field: 97, source })
    }
}

impl fmt::Display for NetSettlement {
    /// The wire form: `C` (zero included) or `D`, then 16 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { 'D' } else { 'C' };
        write!(f, "{sign}{:016}", self.0.unsigned_abs())
    }
}

/// Field 66, the settlement code of a 0510.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettlementCode {
    /// `1`: the sender's totals equal the receiver's.
    InBalance,
    /// `2`: they differ.
    OutOfBalance,
    /// `3`: the request could not be reconciled.
    Error,
}

impl SettlementCode {
    /// The one-digit code.
    pub const fn code(self) -> u8 {
        match self {
            SettlementCode::InBalance => 1,
            SettlementCode::OutOfBalance => 2,
            SettlementCode::Error => 3,
        }
    }

    /// The code as the field carries it.
    pub const fn as_str(self) -> &'static str {
        match self {
            SettlementCode::InBalance => "1",
            SettlementCode::OutOfBalance => "2",
            SettlementCode::Error => "3",
        }
    }

    /// The settlement code of a one-digit code.
    pub fn from_code(code: u8) -> Result<SettlementCode, ReconciliationError> {
        match code {
            1 => Ok(SettlementCode::InBalance),
            2 => Ok(SettlementCode::OutOfBalance),
            3 => Ok(SettlementCode::Error),
            _ => Err(ReconciliationError::UnknownSettlementCode),
        }
    }

    /// Reads field 66.
    pub fn from_message(msg: &Message<'_>) -> Result<SettlementCode, ReconciliationError> {
        let code = msg
            .get_u64(66)
            .map_err(|source| ReconciliationError::Read { field: 66, source })?;
        u8::try_from(code)
            .map_err(|_| ReconciliationError::UnknownSettlementCode)
            .and_then(Self::from_code)
    }

    /// Writes field 66.
    pub fn to_message(self, out: &mut OwnedMessage<'_>) -> Result<(), ReconciliationError> {
        out.set_str(66, self.as_str())
            .map(|_| ())
            .map_err(|source| ReconciliationError::Write { field: 66, source })
    }
}

#[cfg(test)]
mod tests;
