//! [`Store`] for every [`Backend`]: the control plane's statements, run through the backend's
//! pools. Control-plane writes take the backend's write gate first (on SQLite the lock of the
//! group commit); the data plane's batch is the backend's own [`Backend::group_commit`]. The
//! store-and-forward queues and the audit chain, longer, are in [`super::queues`] and
//! [`super::audit_log`].

use super::driver::{Backend, Columns, Run, WriteTx};
use super::rows::{self, corrupt, institution_id};
use super::{audit_log, limit, queues, ACQUIRER_TOTALS};
use crate::store::model::totals_line;
use crate::store::model::{
    Account, AccountId, AdviceId, AuditEntry, AuditRecord, BatchOutcome, BinRoute, Card, CardId,
    CardStatus, DayUsage, Decision, DirectoryCard, DuplicateKey, Hold, HoldId, IccAlgorithm,
    Institution, InsuranceCategory, NewAccount, NewCard, OutboxRecord, PendingAdvice,
    PendingReversal, ReversalId, SafBacklog, StoredTransaction, TransactionId, TransactionKind,
};
use crate::store::{now_us, DecisionError, Store, StoreError, DECISIONS_PER_BATCH_MAX};
use schemas::domain::{AmountFen, InstitutionId, Pan, ResponseCode, Rrn};
use schemas::iso8583::ReconciliationTotals;
use std::collections::HashMap;

const UPSERT_INSTITUTION: &str =
    "INSERT INTO institution (institution_id, name, kind, created_at_us) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (institution_id) DO UPDATE SET name = excluded.name, kind = excluded.kind";
const INSTITUTIONS: &str =
    "SELECT institution_id, name, kind FROM institution ORDER BY institution_id";
const PUT_BIN_ROUTE: &str = "INSERT INTO bin_route (bin_prefix, issuer_institution_id) \
     VALUES ($1, $2) ON CONFLICT (bin_prefix) DO UPDATE SET \
     issuer_institution_id = excluded.issuer_institution_id";
const BIN_ROUTES: &str =
    "SELECT bin_prefix, issuer_institution_id FROM bin_route ORDER BY bin_prefix";
/// A PAN has at least 12 digits, so there are always 12 candidate prefixes.
const ROUTE_FOR_PAN: &str = "SELECT issuer_institution_id FROM bin_route WHERE bin_prefix IN \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ORDER BY length(bin_prefix) DESC LIMIT 1";

const ISSUE_CARD: &str = "INSERT INTO card (pan_hash, pan_ciphertext, pan_masked, \
     card_identification_code, issuer_institution_id, expiry_yymm, status, status_changed_at_us, \
     created_at_us, pan_sequence_number, icc_algorithm, pin_offset, insurance_category) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12) RETURNING card_id";
const CARD_BY_PAN: &str = concat!("SELECT ", card_columns!(), " FROM card WHERE pan_hash = $1");
const CARD_PAN: &str = "SELECT pan_ciphertext FROM card WHERE card_id = $1";
const CARD_BY_IDENTIFICATION_CODE: &str = concat!(
    "SELECT ",
    card_columns!(),
    ", (SELECT h.citizen_id FROM cardholder h WHERE h.cardholder_id = card.cardholder_id) \
     AS holder_citizen_id FROM card WHERE card_identification_code = $1 \
     ORDER BY card_id DESC LIMIT 1"
);
const SET_CARD_STATUS: &str = "UPDATE card SET status = $1, status_reason = $2, \
     status_changed_at_us = $3, pin_tries_failed = CASE WHEN $1 = 'active' THEN 0 \
     ELSE pin_tries_failed END, lifecycle = NULL, version = version + 1 WHERE card_id = $4";
const COUNT_WRONG_PIN: &str = "UPDATE card SET pin_tries_failed = pin_tries_failed + 1 \
     WHERE card_id = $1 RETURNING CAST(pin_tries_failed AS BIGINT)";
const HOT_LIST: &str = concat!(
    "SELECT ",
    card_columns!(),
    " FROM card WHERE status IN ('lost', 'stolen', 'blocked') ORDER BY card_id"
);
const DIRECTORY_CARDS: &str = concat!(
    "SELECT ",
    card_columns!(),
    ", pan_ciphertext FROM card WHERE card_id > $1 ORDER BY card_id LIMIT $2"
);
const DIRECTORY_ACCOUNTS: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM account WHERE card_id >= $1 AND card_id <= $2 ORDER BY card_id, account_id"
);

const OPEN_ACCOUNT: &str = "INSERT INTO account (institution_id, card_id, kind, balance_fen, \
     held_fen, created_at_us) VALUES ($1, $2, $3, $4, 0, $5) RETURNING account_id";
const OPENING_MOVEMENT: &str = "INSERT INTO account_movement (account_id, kind, amount_fen, \
     balance_after_fen, held_after_fen, at_us) VALUES ($1, 'opening', $2, $2, 0, $3)";
const ACCOUNT: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM account WHERE account_id = $1"
);
const ACCOUNTS_FOR_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM account WHERE card_id = $1 ORDER BY account_id"
);
const JOURNAL_BALANCE: &str = "SELECT CAST(COALESCE(SUM(CASE kind WHEN 'opening' THEN amount_fen \
     WHEN 'credit' THEN amount_fen WHEN 'debit' THEN -amount_fen WHEN 'capture' THEN -amount_fen \
     ELSE 0 END), 0) AS BIGINT) FROM account_movement WHERE account_id = $1";
const HOLD: &str = concat!("SELECT ", hold_columns!(), " FROM hold WHERE hold_id = $1");
const EXPIRED_HOLDS: &str = concat!(
    "SELECT ",
    hold_columns!(),
    " FROM hold WHERE state = 'pending' AND expires_at_us <= $1 ORDER BY expires_at_us LIMIT $2"
);

const FIND_DUPLICATE: &str = "SELECT transaction_id FROM duplicate_key WHERE terminal_id = $1 \
     AND stan = $2 AND rrn = $3 AND transmission_at = $4 AND message_class = $5 \
     AND acquirer = $6";
const TRANSACTIONS_BY_RRN: &str = concat!(
    "SELECT ",
    txn_columns!(),
    " FROM txn WHERE rrn = $1 ORDER BY decided_at_us, transaction_id"
);
const TRANSACTION: &str = concat!(
    "SELECT ",
    txn_columns!(),
    " FROM txn WHERE transaction_id = $1"
);
const LEGS: &str = "SELECT leg_no, kind, institution_id, account_id, amount_fen FROM txn_leg \
     WHERE transaction_id = $1 ORDER BY leg_no";
const PURGE_DUPLICATE_KEYS: &str = "DELETE FROM duplicate_key WHERE created_at_us < $1";
/// Answers go to `txn_answer` under the transaction id the key holds (migration 0019).
const RECORD_ANSWER: &str = "INSERT INTO txn_answer (transaction_id, answer) \
     SELECT transaction_id, $7 FROM duplicate_key WHERE terminal_id = $1 \
     AND stan = $2 AND rrn = $3 AND transmission_at = $4 AND message_class = $5 \
     AND acquirer = $6 ON CONFLICT (transaction_id) DO UPDATE SET answer = excluded.answer";
/// For a key the backend keeps outside the table (`Backend::unflushed_duplicate`).
const RECORD_ANSWER_BY_ID: &str = "INSERT INTO txn_answer (transaction_id, answer) \
     VALUES ($1, $2) ON CONFLICT (transaction_id) DO UPDATE SET answer = excluded.answer";
const ANSWER_BY_ID: &str = "SELECT answer FROM txn_answer WHERE transaction_id = $1";
const FIND_ANSWER: &str = "SELECT d.transaction_id, a.answer FROM duplicate_key AS d \
     LEFT JOIN txn_answer AS a ON a.transaction_id = d.transaction_id \
     WHERE d.terminal_id = $1 AND d.stan = $2 AND d.rrn = $3 AND d.transmission_at = $4 \
     AND d.message_class = $5 AND d.acquirer = $6";
/// Answers of transactions decided before $1 (a UUID v7 holding only a time: ids compare
/// by their time first).
const PURGE_ANSWERS: &str = "DELETE FROM txn_answer WHERE transaction_id < $1";
const CARD_DAY_USAGE: &str = "SELECT CAST(approved_count AS BIGINT) AS approved_count, \
     CAST(amount_fen AS BIGINT) AS amount_fen, \
     CAST(stand_in_fen AS BIGINT) AS stand_in_fen FROM card_day_usage \
     WHERE card_id = $1 AND day_start_us = $2";
const PURGE_CARD_DAY_USAGE: &str = "DELETE FROM card_day_usage WHERE day_start_us < $1";

const OUTBOX_AFTER: &str = concat!(
    "SELECT ",
    outbox_columns!(),
    " FROM outbox WHERE outbox_seq > $1 ORDER BY outbox_seq LIMIT $2"
);
const UNRELAYED_OUTBOX: &str = concat!(
    "SELECT ",
    outbox_columns!(),
    " FROM outbox WHERE relayed_at_us IS NULL ORDER BY outbox_seq LIMIT $1"
);

impl<B: Backend> Store for B {
    const WRITER_ON_OWN_THREAD: bool = B::WRITER_ON_OWN_THREAD;
    const GROUP_COMMITS_IN_FLIGHT: usize = B::GROUP_COMMITS_IN_FLIGHT;

    async fn upsert_institution(&self, i: &Institution) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let params = [
            i.institution_id.as_str().into(),
            (&i.name).into(),
            i.kind.as_sql().into(),
            now_us().into(),
        ];
        self.writer().execute(UPSERT_INSTITUTION, &params).await?;
        Ok(())
    }

    async fn institutions(&self) -> Result<Vec<Institution>, StoreError> {
        let rows = self.reader().fetch_all(INSTITUTIONS, &[]).await?;
        rows.iter().map(rows::institution).collect()
    }

    async fn put_bin_route(&self, r: &BinRoute) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let params = [(&r.bin_prefix).into(), r.issuer.as_str().into()];
        self.writer().execute(PUT_BIN_ROUTE, &params).await?;
        Ok(())
    }

    async fn bin_routes(&self) -> Result<Vec<BinRoute>, StoreError> {
        let rows = self.reader().fetch_all(BIN_ROUTES, &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(BinRoute {
                    bin_prefix: row.get("bin_prefix")?,
                    issuer: institution_id(
                        row,
                        "issuer_institution_id",
                        "bin_route.issuer_institution_id",
                    )?,
                })
            })
            .collect()
    }

    async fn route_for_pan(&self, pan: &Pan) -> Result<Option<InstitutionId>, StoreError> {
        let digits = pan.expose_digits();
        let prefixes: [_; 12] = std::array::from_fn(|len| digits[..=len].into());
        match self
            .reader()
            .fetch_optional(ROUTE_FOR_PAN, &prefixes)
            .await?
        {
            Some(row) => Ok(Some(institution_id(
                &row,
                "issuer_institution_id",
                "bin_route.issuer_institution_id",
            )?)),
            None => Ok(None),
        }
    }

    async fn issue_card(&self, c: &NewCard) -> Result<CardId, StoreError> {
        let _gate = self.write_gate().await;
        let hash = self.pan().lookup_hash(&c.pan);
        let sealed = self.pan().seal(&c.pan)?;
        let masked = c.pan.masked();
        let params = [
            hash.as_slice().into(),
            sealed.as_slice().into(),
            masked.as_str().into(),
            c.card_identification_code
                .as_ref()
                .map(|x| x.as_str())
                .into(),
            c.issuer.as_str().into(),
            (&c.expiry_yymm).into(),
            c.status.as_sql().into(),
            now_us().into(),
            (&c.issuance.pan_sequence_number).into(),
            c.issuance.icc_algorithm.map(IccAlgorithm::as_sql).into(),
            c.issuance.pin_offset.as_deref().into(),
            c.issuance
                .insurance_category
                .map(InsuranceCategory::as_sql)
                .into(),
        ];
        let row = self.writer().fetch_one(ISSUE_CARD, &params).await?;
        Ok(CardId(row.first()?))
    }

    async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, StoreError> {
        let hash = self.pan().lookup_hash(pan);
        let params = [hash.as_slice().into()];
        let row = self.reader().fetch_optional(CARD_BY_PAN, &params).await?;
        row.as_ref().map(rows::card).transpose()
    }

    async fn card_pan(&self, card_id: CardId) -> Result<Pan, StoreError> {
        let row = self
            .reader()
            .fetch_optional(CARD_PAN, &[card_id.0.into()])
            .await?;
        let sealed: Vec<u8> = row.ok_or(StoreError::NotFound("card"))?.first()?;
        Ok(self.pan().open(&sealed)?)
    }

    async fn card_by_identification_code(
        &self,
        cic: &schemas::domain::CardIdentificationCode,
    ) -> Result<Option<(Card, Option<String>)>, StoreError> {
        let params = [cic.as_str().into()];
        let row = self
            .reader()
            .fetch_optional(CARD_BY_IDENTIFICATION_CODE, &params)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let holder: Option<String> = row.get("holder_citizen_id")?;
        Ok(Some((rows::card(&row)?, holder)))
    }

    async fn count_wrong_pin(&self, card_id: CardId) -> Result<u32, StoreError> {
        let _gate = self.write_gate().await;
        let row = self
            .writer()
            .fetch_optional(COUNT_WRONG_PIN, &[card_id.0.into()])
            .await?
            .ok_or(StoreError::NotFound("card"))?;
        let tries: i64 = row.first()?;
        u32::try_from(tries).map_err(|_| corrupt("card.pin_tries_failed"))
    }

    async fn set_card_status(
        &self,
        card_id: CardId,
        status: CardStatus,
        reason: Option<&str>,
        at_us: i64,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let params = [
            status.as_sql().into(),
            reason.into(),
            at_us.into(),
            card_id.0.into(),
        ];
        if self.writer().execute(SET_CARD_STATUS, &params).await? == 0 {
            return Err(StoreError::NotFound("card"));
        }
        Ok(())
    }

    async fn hot_list(&self) -> Result<Vec<Card>, StoreError> {
        let rows = self.reader().fetch_all(HOT_LIST, &[]).await?;
        rows.iter().map(rows::card).collect()
    }

    async fn card_directory_page(
        &self,
        after: Option<CardId>,
        n: u32,
    ) -> Result<Vec<DirectoryCard>, StoreError> {
        let params = [after.map_or(i64::MIN, |c| c.0).into(), limit(n).into()];
        let cards = self.reader().fetch_all(DIRECTORY_CARDS, &params).await?;
        let (Some(first), Some(last)) = (cards.first(), cards.last()) else {
            return Ok(Vec::new());
        };
        let range = [
            first.get::<i64>("card_id")?.into(),
            last.get::<i64>("card_id")?.into(),
        ];
        let accounts = self.reader().fetch_all(DIRECTORY_ACCOUNTS, &range).await?;
        let mut by_card: HashMap<CardId, Vec<Account>> = HashMap::new();
        for row in &accounts {
            let a = rows::account(row)?;
            if let Some(c) = a.card_id {
                by_card.entry(c).or_default().push(a);
            }
        }
        cards
            .iter()
            .map(|row| {
                let card = rows::card(row)?;
                let sealed: Vec<u8> = row.get("pan_ciphertext")?;
                let pan = self.pan().open(&sealed)?;
                let accounts = by_card.remove(&card.card_id).unwrap_or_default();
                Ok(DirectoryCard {
                    card,
                    pan,
                    accounts,
                })
            })
            .collect()
    }

    async fn open_account(&self, a: &NewAccount, at_us: i64) -> Result<AccountId, StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let params = [
            a.institution.as_str().into(),
            a.card_id.map(|c| c.0).into(),
            a.kind.as_sql().into(),
            a.opening_balance.get().into(),
            at_us.into(),
        ];
        let id: i64 = tx.run().fetch_one(OPEN_ACCOUNT, &params).await?.first()?;
        let params = [id.into(), a.opening_balance.get().into(), at_us.into()];
        tx.run().execute(OPENING_MOVEMENT, &params).await?;
        tx.commit().await?;
        Ok(AccountId(id))
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let row = self
            .reader()
            .fetch_optional(ACCOUNT, &[id.0.into()])
            .await?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn accounts_for_card(&self, card_id: CardId) -> Result<Vec<Account>, StoreError> {
        let params = [card_id.0.into()];
        let rows = self.reader().fetch_all(ACCOUNTS_FOR_CARD, &params).await?;
        rows.iter().map(rows::account).collect()
    }

    async fn journal_balance(&self, id: AccountId) -> Result<i64, StoreError> {
        let row = self
            .reader()
            .fetch_one(JOURNAL_BALANCE, &[id.0.into()])
            .await?;
        Ok(row.first()?)
    }

    async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError> {
        let row = self.reader().fetch_optional(HOLD, &[id.0.into()]).await?;
        row.as_ref().map(rows::hold).transpose()
    }

    async fn expired_holds(&self, now_us: i64, n: u32) -> Result<Vec<Hold>, StoreError> {
        let params = [now_us.into(), limit(n).into()];
        let rows = self.reader().fetch_all(EXPIRED_HOLDS, &params).await?;
        rows.iter().map(rows::hold).collect()
    }

    async fn find_duplicate(&self, k: &DuplicateKey) -> Result<Option<TransactionId>, StoreError> {
        if let Some(id) = self.unflushed_duplicate(k) {
            return Ok(Some(id));
        }
        let stan = k.stan.to_string();
        let params = [
            k.terminal_id.as_str().into(),
            stan.as_str().into(),
            k.rrn.as_str().into(),
            k.transmission_at.as_str().into(),
            (&k.message_class).into(),
            k.acquirer.as_str().into(),
        ];
        match self
            .reader()
            .fetch_optional(FIND_DUPLICATE, &params)
            .await?
        {
            Some(row) => Ok(Some(TransactionId(row.first()?))),
            None => Ok(None),
        }
    }

    fn between_group_commits(&self) -> impl std::future::Future<Output = ()> + Send {
        Backend::between_group_commits(self)
    }

    async fn commit_decisions(&self, batch: Vec<Decision>, now_us: i64) -> BatchOutcome {
        if batch.len() > DECISIONS_PER_BATCH_MAX {
            let err =
                DecisionError::Invalid(format!("batch above {DECISIONS_PER_BATCH_MAX} decisions"));
            return BatchOutcome {
                results: vec![Err(err); batch.len()],
                db_transactions: 0,
            };
        }
        self.group_commit(batch, now_us).await
    }

    async fn transactions_by_rrn(&self, rrn: &Rrn) -> Result<Vec<StoredTransaction>, StoreError> {
        let params = [rrn.as_str().into()];
        let rows = self
            .reader()
            .fetch_all(TRANSACTIONS_BY_RRN, &params)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(with_legs(self, row).await?);
        }
        Ok(out)
    }

    async fn transaction(
        &self,
        id: TransactionId,
    ) -> Result<Option<StoredTransaction>, StoreError> {
        match self
            .reader()
            .fetch_optional(TRANSACTION, &[id.0.into()])
            .await?
        {
            Some(row) => Ok(Some(with_legs(self, &row).await?)),
            None => Ok(None),
        }
    }

    async fn purge_duplicate_keys(&self, older_than_us: i64) -> Result<u64, StoreError> {
        let mut gate = self.write_gate().await;
        self.flush_duplicate_keys(&mut gate)?;
        let params = [older_than_us.into()];
        let purged = self.writer().execute(PURGE_DUPLICATE_KEYS, &params).await?;
        let ms = u128::try_from(older_than_us.max(0) / 1_000).unwrap_or(0);
        let floor = [super::driver::Param::Uuid(uuid::Uuid::from_u128(ms << 80))];
        self.writer().execute(PURGE_ANSWERS, &floor).await?;
        Ok(purged)
    }

    async fn record_answers(&self, answers: &[(DuplicateKey, String)]) -> Result<u64, StoreError> {
        if answers.is_empty() {
            return Ok(0);
        }
        if let Some(done) = self.record_answers_own_way(answers).await {
            return done;
        }
        let _gate = self.write_gate().await;
        let mut tx = self.begin_write().await?;
        let mut found = 0;
        for (k, answer) in answers {
            if let Some(id) = self.unflushed_duplicate(k) {
                let params = [id.0.into(), answer.into()];
                found += tx.run().execute(RECORD_ANSWER_BY_ID, &params).await?;
                continue;
            }
            let stan = k.stan.to_string();
            let params = [
                k.terminal_id.as_str().into(),
                stan.as_str().into(),
                k.rrn.as_str().into(),
                k.transmission_at.as_str().into(),
                (&k.message_class).into(),
                k.acquirer.as_str().into(),
                answer.into(),
            ];
            found += tx.run().execute(RECORD_ANSWER, &params).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn find_answer(
        &self,
        k: &DuplicateKey,
    ) -> Result<Option<(TransactionId, Option<String>)>, StoreError> {
        if let Some(id) = self.unflushed_duplicate(k) {
            let row = self
                .reader()
                .fetch_optional(ANSWER_BY_ID, &[id.0.into()])
                .await?;
            return Ok(Some((id, row.map(|r| r.first::<String>()).transpose()?)));
        }
        let stan = k.stan.to_string();
        let params = [
            k.terminal_id.as_str().into(),
            stan.as_str().into(),
            k.rrn.as_str().into(),
            k.transmission_at.as_str().into(),
            (&k.message_class).into(),
            k.acquirer.as_str().into(),
        ];
        match self.reader().fetch_optional(FIND_ANSWER, &params).await? {
            Some(row) => Ok(Some((
                TransactionId(row.get("transaction_id")?),
                row.get("answer")?,
            ))),
            None => Ok(None),
        }
    }

    async fn card_day_usage(
        &self,
        card_id: CardId,
        day_start_us: i64,
    ) -> Result<DayUsage, StoreError> {
        let params = [card_id.0.into(), day_start_us.into()];
        let Some(row) = self
            .reader()
            .fetch_optional(CARD_DAY_USAGE, &params)
            .await?
        else {
            return Ok(DayUsage::default());
        };
        let count: i64 = row.get("approved_count")?;
        Ok(DayUsage {
            approved_count: u32::try_from(count)
                .map_err(|_| corrupt("card_day_usage.approved_count"))?,
            amount_fen: row.get("amount_fen")?,
            stand_in_fen: row.get("stand_in_fen")?,
        })
    }

    async fn purge_card_day_usage(&self, before_day_start_us: i64) -> Result<u64, StoreError> {
        let _gate = self.write_gate().await;
        let params = [before_day_start_us.into()];
        Ok(self.writer().execute(PURGE_CARD_DAY_USAGE, &params).await?)
    }

    async fn due_reversals(&self, now_us: i64, n: u32) -> Result<Vec<PendingReversal>, StoreError> {
        queues::due_reversals(self, now_us, n).await
    }

    async fn record_reversal_attempt(
        &self,
        id: ReversalId,
        next_attempt_at_us: i64,
        rc: Option<ResponseCode>,
    ) -> Result<(), StoreError> {
        queues::REVERSALS
            .attempt(self, id.0, next_attempt_at_us, rc)
            .await
    }

    async fn ack_reversal(
        &self,
        id: ReversalId,
        rc: ResponseCode,
        at_us: i64,
    ) -> Result<(), StoreError> {
        queues::REVERSALS.ack(self, id.0, rc, at_us).await
    }

    async fn due_advices(&self, now_us: i64, n: u32) -> Result<Vec<PendingAdvice>, StoreError> {
        queues::due_advices(self, now_us, n).await
    }

    async fn record_advice_attempt(
        &self,
        id: AdviceId,
        next_attempt_at_us: i64,
        rc: Option<ResponseCode>,
    ) -> Result<(), StoreError> {
        queues::ADVICES
            .attempt(self, id.0, next_attempt_at_us, rc)
            .await
    }

    async fn ack_advice(
        &self,
        id: AdviceId,
        rc: ResponseCode,
        at_us: i64,
    ) -> Result<(), StoreError> {
        queues::ADVICES.ack(self, id.0, rc, at_us).await
    }

    async fn stand_in_total_fen(
        &self,
        card_id: CardId,
        bank: &InstitutionId,
        since_us: i64,
    ) -> Result<i64, StoreError> {
        queues::stand_in_total_fen(self, card_id, bank, since_us).await
    }

    async fn store_and_forward_backlog(&self, oldest_max: u32) -> Result<SafBacklog, StoreError> {
        queues::backlog(self, oldest_max).await
    }

    async fn acquirer_totals(
        &self,
        acquirer: &InstitutionId,
        from_us: i64,
        to_us: i64,
    ) -> Result<ReconciliationTotals, StoreError> {
        let params = [acquirer.as_str().into(), from_us.into(), to_us.into()];
        let rows = self.reader().fetch_all(ACQUIRER_TOTALS, &params).await?;
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
            let fen = AmountFen::new(row.get("fen")?).map_err(|_| corrupt("txn.amount_fen"))?;
            totals
                .add(line, count, fen)
                .map_err(|_| StoreError::OutOfRange("acquirer totals"))?;
        }
        Ok(totals)
    }

    async fn outbox_after(&self, after_seq: i64, n: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        let params = [after_seq.into(), limit(n).into()];
        let rows = self.reader().fetch_all(OUTBOX_AFTER, &params).await?;
        rows.iter().map(rows::outbox).collect()
    }

    async fn unrelayed_outbox(&self, n: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        let params = [limit(n).into()];
        let rows = self.reader().fetch_all(UNRELAYED_OUTBOX, &params).await?;
        rows.iter().map(rows::outbox).collect()
    }

    async fn mark_outbox_relayed(&self, seqs: &[i64], at_us: i64) -> Result<u64, StoreError> {
        let _gate = self.write_gate().await;
        if seqs.is_empty() {
            return Ok(0);
        }
        let seqs = serde_json::Value::from(seqs.to_vec()).to_string();
        let params = [at_us.into(), seqs.as_str().into()];
        Ok(self
            .writer()
            .execute(B::DIALECT.mark_relayed, &params)
            .await?)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<AuditRecord, StoreError> {
        audit_log::append(self, e).await
    }

    async fn verify_audit_chain(&self) -> Result<u64, StoreError> {
        audit_log::verify(self).await
    }

    async fn verify_integrity(&self) -> Result<super::integrity::IntegrityReport, StoreError> {
        super::integrity::verify(self).await
    }

    fn install_audit_mac_key(&self, key: std::sync::Arc<dyn crate::store::AuditMacKey>) -> bool {
        self.audit_key_slot().install(key)
    }
}

/// A transaction row with its legs.
pub(super) async fn with_legs<B: Backend>(
    store: &B,
    row: &B::Row,
) -> Result<StoredTransaction, StoreError> {
    let (record, event_id) = rows::txn(row)?;
    let params = [record.transaction_id.0.into()];
    let legs = store.reader().fetch_all(LEGS, &params).await?;
    let legs = legs.iter().map(rows::leg).collect::<Result<Vec<_>, _>>()?;
    Ok(StoredTransaction {
        record,
        legs,
        event_id,
    })
}
