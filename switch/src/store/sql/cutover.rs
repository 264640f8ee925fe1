//! [`CutoverStore`] for every [`Backend`]: a bank's totals over a settlement day, and the
//! `bank_reconciliation` records (migration 0012) of the bank cut-over.

use super::driver::{Backend, Columns, Param, Run};
use super::limit;
use super::rows::{corrupt, institution_id};
use crate::store::cutover::{
    BankAnswer, BankReconciliation, CutoverStore, ReconciliationCount, ReconciliationQuery,
    ReconciliationStatus, Resolution, ResolveOutcome, RECONCILIATION_PAGE_MAX,
};
use crate::store::model::{totals_line, TransactionKind};
use crate::store::StoreError;
use chrono::NaiveDate;
use schemas::domain::{AmountFen, InstitutionId};
use schemas::iso8583::{ReconciliationTotals, Tally, TotalsLine};

/// Approved transactions of bank `$1` decided in `[$2, $3)` with the bank's money in them (its
/// bank leg, or the benefit credit it received: a `social_security_fund` leg), counted once each
/// and summed over those legs, by kind and by the kind of their original (reversals). The window
/// is read through `txn_by_decided_at` (migration 0006).
pub const BANK_TOTALS: &str = "SELECT t.kind AS kind, o.kind AS original_kind, \
     CAST(COUNT(DISTINCT t.transaction_id) AS BIGINT) AS n, \
     CAST(COALESCE(SUM(l.amount_fen), 0) AS BIGINT) AS fen \
     FROM txn AS t JOIN txn_leg AS l ON l.transaction_id = t.transaction_id \
     AND l.kind IN ('bank', 'social_security_fund') \
     LEFT JOIN txn AS o ON o.transaction_id = t.original_transaction_id \
     WHERE t.issuer_institution_id = $1 AND t.response_code = '00' \
     AND t.decided_at_us >= $2 AND t.decided_at_us < $3 GROUP BY t.kind, o.kind";

const CREATE: &str = "INSERT INTO bank_reconciliation (bank_institution_id, settlement_day, \
     created_at_us, next_attempt_at_us) VALUES ($1, $2, $3, $3) \
     ON CONFLICT (bank_institution_id, settlement_day) DO NOTHING";
const CLAIM: &str = "UPDATE bank_reconciliation SET attempts = attempts + 1, \
     next_attempt_at_us = $4 WHERE bank_institution_id = $1 AND settlement_day = $2 \
     AND result IS NULL AND next_attempt_at_us <= $3 RETURNING reconciliation_id";
const ATTEMPT: &str = "UPDATE bank_reconciliation SET last_error = $2, next_attempt_at_us = $3 \
     WHERE reconciliation_id = $1 AND result IS NULL";
const FINISH: &str = "UPDATE bank_reconciliation SET result = $2, bank_settlement_code = $3, \
     stan = $4, reconciled_at_us = $5, differing_fields = $6, last_error = NULL, \
     switch_credits_count = $7, switch_credits_fen = $8, \
     switch_credit_reversals_count = $9, switch_credit_reversals_fen = $10, \
     switch_debits_count = $11, switch_debits_fen = $12, \
     switch_debit_reversals_count = $13, switch_debit_reversals_fen = $14, \
     bank_credits_count = $15, bank_credits_fen = $16, \
     bank_credit_reversals_count = $17, bank_credit_reversals_fen = $18, \
     bank_debits_count = $19, bank_debits_fen = $20, \
     bank_debit_reversals_count = $21, bank_debit_reversals_fen = $22 \
     WHERE reconciliation_id = $1 AND result IS NULL";
const RESOLVE: &str = "UPDATE bank_reconciliation SET resolved_by = $2, resolved_reason = $3, \
     resolved_at_us = $4 WHERE reconciliation_id = $1 AND result = 'out_of_balance' \
     AND resolved_at_us IS NULL";

/// The status of a record, as SQL (the same rule as [`status_of`]).
macro_rules! status_sql {
    () => {
        "CASE WHEN result IS NULL THEN 'pending' WHEN resolved_at_us IS NOT NULL \
         THEN 'resolved' ELSE result END"
    };
}

macro_rules! reconciliation_columns {
    () => {
        "reconciliation_id, bank_institution_id, settlement_day, created_at_us, attempts, \
         last_error, stan, result, bank_settlement_code, reconciled_at_us, differing_fields, \
         switch_credits_count, switch_credits_fen, switch_credit_reversals_count, \
         switch_credit_reversals_fen, switch_debits_count, switch_debits_fen, \
         switch_debit_reversals_count, switch_debit_reversals_fen, bank_credits_count, \
         bank_credits_fen, bank_credit_reversals_count, bank_credit_reversals_fen, \
         bank_debits_count, bank_debits_fen, bank_debit_reversals_count, \
         bank_debit_reversals_fen, resolved_by, resolved_reason, resolved_at_us"
    };
}

const ONE: &str = concat!(
    "SELECT ",
    reconciliation_columns!(),
    " FROM bank_reconciliation WHERE reconciliation_id = $1"
);
const PAGE: &str = concat!(
    "SELECT ",
    reconciliation_columns!(),
    " FROM bank_reconciliation WHERE ($1 IS NULL OR bank_institution_id = $1) \
     AND ($2 IS NULL OR settlement_day = $2) AND ($3 IS NULL OR ",
    status_sql!(),
    " = $3) AND reconciliation_id < $4 ORDER BY reconciliation_id DESC LIMIT $5"
);
const RECONCILED_BANKS: &str = "SELECT bank_institution_id FROM bank_reconciliation \
     WHERE settlement_day = $1 AND result IS NOT NULL ORDER BY bank_institution_id";
const COUNTS: &str = concat!(
    "SELECT bank_institution_id, ",
    status_sql!(),
    " AS status, CAST(COUNT(*) AS BIGINT) AS n FROM bank_reconciliation \
     GROUP BY bank_institution_id, ",
    status_sql!(),
    " ORDER BY bank_institution_id"
);

/// The stored form of a settlement day.
fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The columns of one set of figures, in [`TotalsLine::ALL`] order (count, then fen).
const SWITCH_COLUMNS: [(&str, &str); 4] = [
    ("switch_credits_count", "switch_credits_fen"),
    (
        "switch_credit_reversals_count",
        "switch_credit_reversals_fen",
    ),
    ("switch_debits_count", "switch_debits_fen"),
    ("switch_debit_reversals_count", "switch_debit_reversals_fen"),
];
const BANK_COLUMNS: [(&str, &str); 4] = [
    ("bank_credits_count", "bank_credits_fen"),
    ("bank_credit_reversals_count", "bank_credit_reversals_fen"),
    ("bank_debits_count", "bank_debits_fen"),
    ("bank_debit_reversals_count", "bank_debit_reversals_fen"),
];

fn totals(
    row: &impl Columns,
    columns: &[(&str, &str); 4],
) -> Result<ReconciliationTotals, StoreError> {
    let mut t = ReconciliationTotals::default();
    for (line, (count, fen)) in TotalsLine::ALL.into_iter().zip(columns) {
        let count: i64 = row.get(count)?;
        let fen: i64 = row.get(fen)?;
        let count = u64::try_from(count).map_err(|_| corrupt("bank_reconciliation.count"))?;
        let fen = AmountFen::new(fen).map_err(|_| corrupt("bank_reconciliation.fen"))?;
        t.add(line, count, fen)
            .map_err(|_| corrupt("bank_reconciliation.totals"))?;
    }
    Ok(t)
}

fn status_of(result: Option<&str>, resolved: bool) -> Result<ReconciliationStatus, StoreError> {
    Ok(match (result, resolved) {
        (None, _) => ReconciliationStatus::Pending,
        (Some("in_balance"), _) => ReconciliationStatus::InBalance,
        (Some("out_of_balance"), false) => ReconciliationStatus::OutOfBalance,
        (Some("out_of_balance"), true) => ReconciliationStatus::Resolved,
        _ => return Err(corrupt("bank_reconciliation.result")),
    })
}

fn record(row: &impl Columns) -> Result<BankReconciliation, StoreError> {
    let day: String = row.get("settlement_day")?;
    let settlement_day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .map_err(|_| corrupt("bank_reconciliation.settlement_day"))?;
    let result: Option<String> = row.get("result")?;
    let resolved_at_us: Option<i64> = row.get("resolved_at_us")?;
    let status = status_of(result.as_deref(), resolved_at_us.is_some())?;
    let answer = match row.get::<Option<i64>>("reconciled_at_us")? {
        Some(at_us) => {
            let differing: String = row
                .get::<Option<String>>("differing_fields")?
                .unwrap_or_default();
            let differing_fields = differing
                .split_whitespace()
                .map(|f| f.parse::<u16>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| corrupt("bank_reconciliation.differing_fields"))?;
            Some(BankAnswer {
                switch_totals: totals(row, &SWITCH_COLUMNS)?,
                bank_totals: totals(row, &BANK_COLUMNS)?,
                bank_settlement_code: row
                    .get::<Option<String>>("bank_settlement_code")?
                    .unwrap_or_default(),
                differing_fields,
                stan: row.get::<Option<String>>("stan")?.unwrap_or_default(),
                at_us,
            })
        }
        None => None,
    };
    let resolution = match resolved_at_us {
        Some(at_us) => Some(Resolution {
            by: row
                .get::<Option<String>>("resolved_by")?
                .unwrap_or_default(),
            reason: row
                .get::<Option<String>>("resolved_reason")?
                .unwrap_or_default(),
            at_us,
        }),
        None => None,
    };
    let attempts: i64 = row.get("attempts")?;
    Ok(BankReconciliation {
        reconciliation_id: row.get("reconciliation_id")?,
        bank: institution_id(
            row,
            "bank_institution_id",
            "bank_reconciliation.bank_institution_id",
        )?,
        settlement_day,
        status,
        attempts: u32::try_from(attempts).map_err(|_| corrupt("bank_reconciliation.attempts"))?,
        last_error: row.get("last_error")?,
        created_at_us: row.get("created_at_us")?,
        answer,
        resolution,
    })
}

/// A figure as a BIGINT (counts are n 10 and amounts n 16: both fit).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The eight figures of `t` in [`TotalsLine::ALL`] order, count then fen.
fn figures(t: &ReconciliationTotals) -> [i64; 8] {
    let mut out = [0; 8];
    for (i, line) in TotalsLine::ALL.into_iter().enumerate() {
        let Tally { count, amount } = t.line(line);
        out[2 * i] = int(count);
        out[2 * i + 1] = amount.get();
    }
    out
}

impl<B: Backend> CutoverStore for B {
    async fn bank_totals(
        &self,
        bank: &InstitutionId,
        from_us: i64,
        to_us: i64,
    ) -> Result<ReconciliationTotals, StoreError> {
        let params = [bank.as_str().into(), from_us.into(), to_us.into()];
        let rows = self.reader().fetch_all(BANK_TOTALS, &params).await?;
        let mut totals = ReconciliationTotals::default();
        for row in &rows {
            let kind = TransactionKind::from_sql(row.text("kind")?).ok_or(corrupt("txn.kind"))?;
            let original = match row.get::<Option<String>>("original_kind")? {
                Some(k) => Some(TransactionKind::from_sql(&k).ok_or(corrupt("txn.kind"))?),
                None => None,
            };
            let Some(line) = totals_line(kind, original) else {
                continue;
            };
            let n: i64 = row.get("n")?;
            let count = u64::try_from(n).map_err(|_| corrupt("txn count"))?;
            let fen = AmountFen::new(row.get("fen")?).map_err(|_| corrupt("txn_leg.amount_fen"))?;
            totals
                .add(line, count, fen)
                .map_err(|_| StoreError::OutOfRange("bank totals"))?;
        }
        Ok(totals)
    }

    async fn claim_bank_reconciliation(
        &self,
        bank: &InstitutionId,
        day: NaiveDate,
        now_us: i64,
        lease_until_us: i64,
    ) -> Result<Option<i64>, StoreError> {
        let day = day_text(day);
        let _gate = self.write_gate().await;
        let create = [bank.as_str().into(), day.as_str().into(), now_us.into()];
        self.writer().execute(CREATE, &create).await?;
        let claim = [
            bank.as_str().into(),
            day.as_str().into(),
            now_us.into(),
            lease_until_us.into(),
        ];
        match self.writer().fetch_optional(CLAIM, &claim).await? {
            Some(row) => Ok(Some(row.first::<i64>()?)),
            None => Ok(None),
        }
    }

    async fn record_reconciliation_attempt(
        &self,
        reconciliation_id: i64,
        error: &str,
        next_attempt_at_us: i64,
    ) -> Result<(), StoreError> {
        let params = [
            reconciliation_id.into(),
            error.into(),
            next_attempt_at_us.into(),
        ];
        let _gate = self.write_gate().await;
        self.writer().execute(ATTEMPT, &params).await?;
        Ok(())
    }

    async fn finish_bank_reconciliation(
        &self,
        reconciliation_id: i64,
        a: &BankAnswer,
    ) -> Result<bool, StoreError> {
        let result = if a.differing_fields.is_empty() {
            "in_balance"
        } else {
            "out_of_balance"
        };
        let differing = a
            .differing_fields
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let mut params: Vec<Param<'_>> = vec![
            reconciliation_id.into(),
            result.into(),
            a.bank_settlement_code.as_str().into(),
            a.stan.as_str().into(),
            a.at_us.into(),
            differing.as_str().into(),
        ];
        params.extend(figures(&a.switch_totals).map(Param::from));
        params.extend(figures(&a.bank_totals).map(Param::from));
        let _gate = self.write_gate().await;
        Ok(self.writer().execute(FINISH, &params).await? == 1)
    }

    async fn bank_reconciliation(
        &self,
        reconciliation_id: i64,
    ) -> Result<Option<BankReconciliation>, StoreError> {
        let params = [reconciliation_id.into()];
        match self.reader().fetch_optional(ONE, &params).await? {
            Some(row) => Ok(Some(record(&row)?)),
            None => Ok(None),
        }
    }

    async fn bank_reconciliations(
        &self,
        q: &ReconciliationQuery,
    ) -> Result<Vec<BankReconciliation>, StoreError> {
        let day = q.day.map(day_text);
        let params = [
            q.bank.as_ref().map(InstitutionId::as_str).into(),
            day.as_deref().into(),
            q.status.map(ReconciliationStatus::as_str).into(),
            q.before_id.unwrap_or(i64::MAX).into(),
            limit(q.limit.min(RECONCILIATION_PAGE_MAX)).into(),
        ];
        let rows = self.reader().fetch_all(PAGE, &params).await?;
        rows.iter().map(record).collect()
    }

    async fn reconciled_banks(&self, day: NaiveDate) -> Result<Vec<InstitutionId>, StoreError> {
        let day = day_text(day);
        let params = [day.as_str().into()];
        let rows = self.reader().fetch_all(RECONCILED_BANKS, &params).await?;
        rows.iter()
            .map(|r| {
                institution_id(
                    r,
                    "bank_institution_id",
                    "bank_reconciliation.bank_institution_id",
                )
            })
            .collect()
    }

    async fn resolve_bank_reconciliation(
        &self,
        reconciliation_id: i64,
        r: &Resolution,
    ) -> Result<ResolveOutcome, StoreError> {
        let params = [
            reconciliation_id.into(),
            r.by.as_str().into(),
            r.reason.as_str().into(),
            r.at_us.into(),
        ];
        let changed = {
            let _gate = self.write_gate().await;
            self.writer().execute(RESOLVE, &params).await?
        };
        Ok(match self.bank_reconciliation(reconciliation_id).await? {
            None => ResolveOutcome::NotFound,
            Some(rec) if changed == 1 => ResolveOutcome::Resolved(rec),
            Some(rec) => ResolveOutcome::NotAnException(rec),
        })
    }

    async fn reconciliation_counts(&self) -> Result<Vec<ReconciliationCount>, StoreError> {
        let rows = self.reader().fetch_all(COUNTS, &[]).await?;
        rows.iter()
            .map(|r| {
                let status = ReconciliationStatus::parse(r.text("status")?)
                    .ok_or(corrupt("bank_reconciliation.result"))?;
                let n: i64 = r.get("n")?;
                Ok(ReconciliationCount {
                    bank: institution_id(
                        r,
                        "bank_institution_id",
                        "bank_reconciliation.bank_institution_id",
                    )?,
                    status,
                    count: u64::try_from(n).map_err(|_| corrupt("bank_reconciliation count"))?,
                })
            })
            .collect()
    }
}
