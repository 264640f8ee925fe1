//! Rows read back into the store's records, the same for both drivers: each decoder takes the
//! columns its statement selects (the `*_columns!` lists of [`super`]) and checks every value
//! against its domain type, so a value changed outside the switch is reported as
//! [`StoreError::Corrupt`] rather than passed on.

use super::driver::Columns;
use crate::store::model::{
    leg_kind_from_sql, Account, AccountId, AccountKind, AdviceClass, AdviceId, Card, CardId,
    CardIssuance, CardStatus, Hold, HoldId, HoldState, IccAlgorithm, Institution, InstitutionKind,
    InsuranceCategory, OutboxRecord, PendingAdvice, PendingReversal, ReversalId, ReversalReason,
    TransactionId, TransactionKind, TransactionRecord, TxnLeg,
};
use crate::store::plan::HoldRow;
use crate::store::StoreError;
use schemas::domain::{
    AmountFen, CardIdentificationCode, InstitutionId, ResponseCode, Rrn, Stan, TerminalId,
    TransmissionDateTime,
};
use uuid::Uuid;

/// A stored value that does not parse back.
pub fn corrupt(column: &'static str) -> StoreError {
    StoreError::Corrupt { column }
}

/// A parse result, its failure reported as a corrupt `column`.
pub fn parse<T, E>(column: &'static str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|_| corrupt(column))
}

/// A SHA-256 hash column.
pub fn hash32(column: &'static str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt(column))
}

/// An institution id column.
pub fn institution_id(
    row: &impl Columns,
    name: &str,
    column: &'static str,
) -> Result<InstitutionId, StoreError> {
    parse(column, InstitutionId::parse(row.text(name)?))
}

/// A nullable column of a `sql_enum!` type, read by `from_sql`.
fn optional_enum<T>(
    row: &impl Columns,
    name: &str,
    column: &'static str,
    from_sql: fn(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    match row.get::<Option<String>>(name)? {
        Some(text) => Ok(Some(from_sql(&text).ok_or(corrupt(column))?)),
        None => Ok(None),
    }
}

pub fn institution(row: &impl Columns) -> Result<Institution, StoreError> {
    Ok(Institution {
        institution_id: institution_id(row, "institution_id", "institution.institution_id")?,
        name: row.get("name")?,
        kind: InstitutionKind::from_sql(row.text("kind")?).ok_or(corrupt("institution.kind"))?,
    })
}

pub fn card(row: &impl Columns) -> Result<Card, StoreError> {
    let cic: Option<String> = row.get("card_identification_code")?;
    Ok(Card {
        card_id: CardId(row.get("card_id")?),
        pan_masked: row.get("pan_masked")?,
        card_identification_code: match cic {
            Some(c) => Some(parse(
                "card.card_identification_code",
                CardIdentificationCode::parse(&c),
            )?),
            None => None,
        },
        issuer: institution_id(row, "issuer_institution_id", "card.issuer_institution_id")?,
        expiry_yymm: row.get("expiry_yymm")?,
        status: CardStatus::from_sql(row.text("status")?).ok_or(corrupt("card.status"))?,
        status_reason: row.get("status_reason")?,
        issuance: CardIssuance {
            pan_sequence_number: row.get("pan_sequence_number")?,
            icc_algorithm: optional_enum(
                row,
                "icc_algorithm",
                "card.icc_algorithm",
                IccAlgorithm::from_sql,
            )?,
            pin_offset: row.get("pin_offset")?,
            insurance_category: optional_enum(
                row,
                "insurance_category",
                "card.insurance_category",
                InsuranceCategory::from_sql,
            )?,
        },
        atc_max: match row.get::<Option<i32>>("atc_max")? {
            Some(a) => Some(u16::try_from(a).map_err(|_| corrupt("card.atc_max"))?),
            None => None,
        },
    })
}

pub fn account(row: &impl Columns) -> Result<Account, StoreError> {
    Ok(Account {
        account_id: AccountId(row.get("account_id")?),
        institution: institution_id(row, "institution_id", "account.institution_id")?,
        card_id: row.get::<Option<i64>>("card_id")?.map(CardId),
        kind: AccountKind::from_sql(row.text("kind")?).ok_or(corrupt("account.kind"))?,
        balance_fen: row.get("balance_fen")?,
        held_fen: row.get("held_fen")?,
    })
}

/// A hold as the group-commit planner keeps it (PostgreSQL's batch loads these too).
pub fn hold_row(row: &impl Columns) -> Result<(HoldId, HoldRow), StoreError> {
    Ok((
        HoldId(row.get("hold_id")?),
        HoldRow {
            account_id: AccountId(row.get("account_id")?),
            transaction_id: TransactionId(row.get("transaction_id")?),
            amount_fen: row.get("amount_fen")?,
            captured_fen: row.get("captured_fen")?,
            state: HoldState::from_sql(row.text("state")?).ok_or(corrupt("hold.state"))?,
            created_at_us: row.get("created_at_us")?,
            expires_at_us: row.get("expires_at_us")?,
            closed_at_us: row.get("closed_at_us")?,
        },
    ))
}

pub fn hold(row: &impl Columns) -> Result<Hold, StoreError> {
    let (hold_id, h) = hold_row(row)?;
    Ok(Hold {
        hold_id,
        account_id: h.account_id,
        transaction_id: h.transaction_id,
        amount_fen: h.amount_fen,
        captured_fen: h.captured_fen,
        state: h.state,
        expires_at_us: h.expires_at_us,
    })
}

/// A transaction row and the id of the event written with it.
pub fn txn(row: &impl Columns) -> Result<(TransactionRecord, Option<Uuid>), StoreError> {
    let issuer: Option<String> = row.get("issuer_institution_id")?;
    let record = TransactionRecord {
        transaction_id: TransactionId(row.get("transaction_id")?),
        kind: TransactionKind::from_sql(row.text("kind")?).ok_or(corrupt("txn.kind"))?,
        mti: row.get("mti")?,
        processing_code: row.get("processing_code")?,
        card_id: row.get::<Option<i64>>("card_id")?.map(CardId),
        pan_masked: row.get("pan_masked")?,
        acquirer: institution_id(
            row,
            "acquirer_institution_id",
            "txn.acquirer_institution_id",
        )?,
        issuer: match issuer {
            Some(i) => Some(parse(
                "txn.issuer_institution_id",
                InstitutionId::parse(&i),
            )?),
            None => None,
        },
        terminal_id: parse(
            "txn.terminal_id",
            TerminalId::parse(row.text("terminal_id")?),
        )?,
        stan: parse("txn.stan", Stan::parse(row.text("stan")?))?,
        rrn: parse("txn.rrn", Rrn::parse(row.text("rrn")?))?,
        transmission_at: parse(
            "txn.transmission_at",
            TransmissionDateTime::parse(row.text("transmission_at")?),
        )?,
        amount_fen: parse("txn.amount_fen", AmountFen::new(row.get("amount_fen")?))?,
        response_code: parse(
            "txn.response_code",
            ResponseCode::parse(row.text("response_code")?),
        )?,
        original_transaction_id: row
            .get::<Option<Uuid>>("original_transaction_id")?
            .map(TransactionId),
        decided_at_us: row.get("decided_at_us")?,
    };
    Ok((record, row.get("event_id")?))
}

pub fn leg(row: &impl Columns) -> Result<TxnLeg, StoreError> {
    Ok(TxnLeg {
        leg_no: parse("txn_leg.leg_no", u8::try_from(row.get::<i64>("leg_no")?))?,
        kind: leg_kind_from_sql(row.text("kind")?).ok_or(corrupt("txn_leg.kind"))?,
        institution: institution_id(row, "institution_id", "txn_leg.institution_id")?,
        account_id: row.get::<Option<i64>>("account_id")?.map(AccountId),
        amount_fen: parse("txn_leg.amount_fen", AmountFen::new(row.get("amount_fen")?))?,
    })
}

pub fn reversal(row: &impl Columns) -> Result<PendingReversal, StoreError> {
    Ok(PendingReversal {
        reversal_id: ReversalId(row.get("reversal_id")?),
        original_transaction_id: TransactionId(row.get("original_transaction_id")?),
        destination: institution_id(
            row,
            "destination_institution_id",
            "reversal_queue.destination_institution_id",
        )?,
        reason: ReversalReason::from_sql(row.text("reason")?)
            .ok_or(corrupt("reversal_queue.reason"))?,
        amount_fen: row.get("amount_fen")?,
        stan: parse("reversal_queue.stan", Stan::parse(row.text("stan")?))?,
        transmission_at: parse(
            "reversal_queue.transmission_at",
            TransmissionDateTime::parse(row.text("transmission_at")?),
        )?,
        attempts: row.get("attempts")?,
        next_attempt_at_us: row.get("next_attempt_at_us")?,
    })
}

pub fn advice(row: &impl Columns) -> Result<PendingAdvice, StoreError> {
    Ok(PendingAdvice {
        advice_id: AdviceId(row.get("advice_id")?),
        transaction_id: TransactionId(row.get("transaction_id")?),
        destination: institution_id(
            row,
            "destination_institution_id",
            "advice_queue.destination_institution_id",
        )?,
        class: AdviceClass::from_sql(row.text("mti_class")?)
            .ok_or(corrupt("advice_queue.mti_class"))?,
        processing_code: row.get("processing_code")?,
        amount_fen: row.get("amount_fen")?,
        stan: parse("advice_queue.stan", Stan::parse(row.text("stan")?))?,
        transmission_at: parse(
            "advice_queue.transmission_at",
            TransmissionDateTime::parse(row.text("transmission_at")?),
        )?,
        reason: parse(
            "advice_queue.reason_code",
            ResponseCode::parse(row.text("reason_code")?),
        )?,
        auth_code: row.get("auth_code")?,
        attempts: row.get("attempts")?,
        next_attempt_at_us: row.get("next_attempt_at_us")?,
    })
}

pub fn outbox(row: &impl Columns) -> Result<OutboxRecord, StoreError> {
    Ok(OutboxRecord {
        outbox_seq: row.get("outbox_seq")?,
        event_id: row.get("event_id")?,
        partition_key: row.get("partition_key")?,
        event_type: row.get("event_type")?,
        schema_version: row.get("schema_version")?,
        payload: row.get("payload")?,
        created_at_us: row.get("created_at_us")?,
        relayed_at_us: row.get("relayed_at_us")?,
    })
}
