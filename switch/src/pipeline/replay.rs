//! The replay defences of step 3, before any HSM call: the freshness of field 7, the
//! duplicate-detection key, and the answer to a retransmission.
//!
//! - A request whose transmission date and time (field 7) is further from the switch's clock
//!   than [`super::PipelineConfig::transmission_window`] is declined `63` (ISO 8583:1987
//!   "security violation"). Why: the duplicate key remembers a request only for a while;
//!   without this check a request captured on the wire could be replayed once its key was
//!   purged. With it, a replay is either inside the window (and the duplicate key, kept far
//!   longer, still catches it) or outside it (and declined here). Advices and repeats (0120,
//!   0220, 0420, 0401, 0421) are store-and-forward: they are resent until answered, possibly
//!   long after field 7, so they are not held to the window (the duplicate key and the
//!   original's state stop them moving money twice).
//! - The duplicate key includes the acquirer (field 32, or the link's): two acquirers may use
//!   the same terminal id and STAN, and one must not be answered with the other's decision.
//! - An exact retransmission (same key) gets the original's answer, not `94`: its field 39
//!   from the transaction row and the other fields it carried (38 authorization code, 54
//!   balances, 55 ARPC and scripts, 63 bill split) as remembered on the duplicate key, so a
//!   terminal that lost the first answer learns what happened and its chip gets the same
//!   ARPC; `94` is left for a retransmission whose original is still being decided.
//!
//! Field 7 is `MMDDhhmmss` in UTC (ISO 8583:1987 says GMT) without a year: the year is the one
//! of the switch's clock, the year before or the year after, whichever puts the time nearest
//! to now, so a request sent at 23:59:59 on 31 December and read at 00:00:01 on 1 January is
//! two seconds old, not a year.

use super::request::Request;
use super::response::Outcome;
use super::Pipeline;
use crate::store::{DuplicateKey, Store};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use schemas::domain::ResponseCode;
use schemas::domain::TransmissionDateTime;
use std::time::Duration;

/// Default [`super::PipelineConfig::transmission_window`]: five minutes either way.
pub const TRANSMISSION_WINDOW_DEFAULT: Duration = Duration::from_secs(5 * 60);

/// How far field 7 is from `now` (positive: in the past), taking the nearest year.
/// `None` when no year makes the date real (29 February with no leap year near).
pub(crate) fn transmission_age(f7: &TransmissionDateTime, now: DateTime<Utc>) -> Option<TimeDelta> {
    let s = f7.as_str();
    let part = |i: usize| s.get(i..i + 2).and_then(|p| p.parse::<u32>().ok());
    let (month, day, hour, minute, second) = (part(0)?, part(2)?, part(4)?, part(6)?, part(8)?);
    [now.year() - 1, now.year(), now.year() + 1]
        .into_iter()
        .filter_map(|year| {
            NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second)
        })
        .map(|at| now.naive_utc() - at)
        .min_by_key(|age| age.abs())
}

/// True when field 7 is within `window` of `now`, either way.
pub(crate) fn is_fresh(f7: &TransmissionDateTime, now: DateTime<Utc>, window: Duration) -> bool {
    let Ok(window) = TimeDelta::from_std(window) else {
        return true;
    };
    transmission_age(f7, now).is_some_and(|age| age.abs() <= window)
}

/// The duplicate-detection key of a request.
pub(crate) fn duplicate_key(req: &Request) -> DuplicateKey {
    DuplicateKey {
        acquirer: req.acquirer.clone(),
        terminal_id: req.terminal_id.clone(),
        stan: req.stan,
        rrn: req.rrn.clone(),
        transmission_at: req.transmission_at.clone(),
        message_class: req.mti.as_str().get(..2).unwrap_or_default().to_owned(),
    }
}

/// True for advices and repeats (MTI function digit 2 or origin digit 1: xx2x, xxx1),
/// which are resent until answered and so not held to the transmission window.
pub(crate) fn is_store_and_forward(req: &Request) -> bool {
    let mti = req.mti.as_str().as_bytes();
    mti.get(2) == Some(&b'2') || mti.get(3) == Some(&b'1')
}

impl<S: Store> Pipeline<S> {
    /// The decline of a request whose field 7 is outside the transmission window, if it is.
    pub(crate) fn stale(&self, req: &Request) -> Option<Outcome> {
        if is_store_and_forward(req)
            || is_fresh(
                &req.transmission_at,
                self.cfg.clock.now(),
                self.cfg.transmission_window,
            )
        {
            return None;
        }
        tracing::warn!(
            acquirer = %req.acquirer,
            terminal = %req.terminal_id,
            stan = %req.stan,
            field7 = %req.transmission_at,
            "field 7 outside the transmission window: declined as stale or replayed"
        );
        Some(Outcome::answer(ResponseCode::SecurityViolation))
    }

    /// The decline of a 0500 whose field 7 is missing (`30`) or outside the transmission
    /// window (`63`), if it is: reconciliation is held to the same freshness as requests.
    pub(crate) fn stale_reconciliation(
        &self,
        msg: &schemas::iso8583::Message<'_>,
        acquirer: &schemas::domain::InstitutionId,
    ) -> Option<ResponseCode> {
        let f7 = msg
            .get_str(7)
            .ok()
            .and_then(|s| TransmissionDateTime::parse(&s).ok());
        let Some(f7) = f7 else {
            return Some(ResponseCode::FormatError);
        };
        if is_fresh(&f7, self.cfg.clock.now(), self.cfg.transmission_window) {
            return None;
        }
        tracing::warn!(
            %acquirer,
            field7 = %f7,
            "0500 field 7 outside the transmission window: declined as stale or replayed"
        );
        Some(ResponseCode::SecurityViolation)
    }

    /// The answer to a retransmission of `key`: the original's answer (field 39 from its
    /// transaction row, the other fields as remembered on its key) when it is decided and
    /// stored, `94` while it is still being decided (or cannot be read). An approval's other
    /// fields are written just after its answer leaves ([`Pipeline::remember_answer`]): a
    /// retransmission that comes first waits for them a little.
    pub(crate) async fn retransmission(&self, key: &DuplicateKey) -> Outcome {
        let mut waited = 0;
        loop {
            let found = match self.store.find_answer(key).await {
                Ok(Some((id, answer))) => match self.store.transaction(id).await {
                    Ok(Some(t)) => Some((t.record.response_code, answer)),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "original of a retransmission not read");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "original of a retransmission not read");
                    None
                }
            };
            let Some((code, answer)) = found else {
                return Outcome::answer(ResponseCode::DuplicateTransmission);
            };
            if code.is_approved() && self.compensated(key).await {
                // Answered 96 while its commit outcome was unknown, and reversed by the switch
                // since: the retransmission gets the answer the terminal got.
                return Outcome::answer(ResponseCode::SystemMalfunction);
            }
            if answer.is_none() && code.is_approved() && waited < ANSWER_WAITS_MAX {
                waited += 1;
                tokio::time::sleep(ANSWER_WAIT).await;
                continue;
            }
            return Outcome::from_remembered(code, answer.as_deref());
        }
    }

    /// Whether the approval holding `key` was reversed by the switch's compensation (it was
    /// answered `96` while its commit outcome was unknown: `store::spool::Compensation`, recorded
    /// under the request's references as a 0420 of its own).
    async fn compensated(&self, key: &DuplicateKey) -> bool {
        let Ok(found) = self.store.transactions_by_rrn(&key.rrn).await else {
            return false;
        };
        found.iter().any(|t| {
            let r = &t.record;
            r.kind == crate::store::TransactionKind::Reversal
                && r.is_approved()
                && r.mti == crate::store::spool::COMPENSATION_MTI
                && r.acquirer == key.acquirer
                && r.terminal_id == key.terminal_id
                && r.stan == key.stan
                && r.transmission_at == key.transmission_at
                && r.original_transaction_id.is_some_and(|o| {
                    found
                        .iter()
                        .any(|x| x.record.transaction_id == o && x.record.duplicate_key() == *key)
                })
        })
    }

    /// Remembers the fields of `outcome` besides 39 on the duplicate key of its request, off
    /// the answer's path: queued for the answer writer ([`spawn_answer_writer`]), which writes
    /// what is queued together in one transaction. When the queue is full the answer is not
    /// remembered (a retransmission then gets field 39 alone).
    pub(crate) fn remember_answer(&self, key: DuplicateKey, outcome: &Outcome) {
        let Some(answer) = outcome.remembered() else {
            return;
        };
        if self.answers.try_send((key, answer)).is_err() {
            tracing::debug!("answer queue full: not remembered for retransmissions");
        }
    }
}

/// Answers queued for the answer writer, at most.
pub(crate) const ANSWERS_QUEUED_MAX: usize = 16_384;
/// Answers the answer writer writes in one transaction, at most.
const ANSWERS_PER_WRITE_MAX: usize = 512;

/// Where [`Pipeline::remember_answer`] queues answers.
pub(crate) type AnswerQueue = tokio::sync::mpsc::Sender<(DuplicateKey, String)>;

/// Calls of `Store::record_answers` under way at once, at most.
const ANSWER_WRITES_IN_FLIGHT_MAX: usize = 8;

/// The answer writer: remembers queued answers in batches (one store call each, so an
/// approval costs the store a row, not a transaction of its own). Up to
/// [`ANSWER_WRITES_IN_FLIGHT_MAX`] calls run at once: on SQLite a call waits for the next group
/// commit to carry its answers (`store::sqlite::batch`), and the answers queued meanwhile go in
/// the next call rather than waiting behind it. It ends when the pipeline holding the queue is
/// dropped.
pub(crate) fn spawn_answer_writer<S: Store>(store: std::sync::Arc<S>) -> AnswerQueue {
    let (queue, mut queued) = tokio::sync::mpsc::channel(ANSWERS_QUEUED_MAX);
    let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(ANSWER_WRITES_IN_FLIGHT_MAX));
    tokio::spawn(async move {
        loop {
            let Ok(turn) = turns.clone().acquire_owned().await else {
                break;
            };
            let mut batch = Vec::with_capacity(ANSWERS_PER_WRITE_MAX);
            if queued.recv_many(&mut batch, ANSWERS_PER_WRITE_MAX).await == 0 {
                break;
            }
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.record_answers(&batch).await {
                    tracing::warn!(error = %e, answers = batch.len(), "answers not remembered for retransmissions");
                }
                drop(turn);
            });
        }
    });
    queue
}

/// How long a retransmission of an approval waits, each time, for the original's answer
/// fields to be written, and how many times.
const ANSWER_WAIT: Duration = Duration::from_millis(25);
const ANSWER_WAITS_MAX: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn f7(s: &str) -> TransmissionDateTime {
        TransmissionDateTime::parse(s).expect("field 7")
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("time")
    }

    #[test]
    fn a_request_of_a_minute_ago_or_ahead_is_fresh_and_one_of_two_days_ago_is_not() {
        let now = at(2026, 12, 7, 1, 30, 0);
        let w = TRANSMISSION_WINDOW_DEFAULT;
        assert!(is_fresh(&f7("1207012900"), now, w));
        assert!(is_fresh(&f7("1207013100"), now, w));
        assert!(is_fresh(&f7("1207012500"), now, w), "exactly five minutes");
        assert!(!is_fresh(&f7("1207012459"), now, w));
        assert!(!is_fresh(&f7("1207013501"), now, w));
        assert!(!is_fresh(&f7("1205013000"), now, w), "two days old");
        // China Standard Time instead of UTC: eight hours off.
        assert!(!is_fresh(&f7("1207093000"), now, w));
    }

    #[test]
    fn the_year_boundary_takes_the_nearest_year() {
        let w = TRANSMISSION_WINDOW_DEFAULT;
        // Sent on 31 December, read on 1 January.
        let now = at(2027, 1, 1, 0, 0, 30);
        assert_eq!(
            transmission_age(&f7("1231235959"), now),
            Some(TimeDelta::seconds(31))
        );
        assert!(is_fresh(&f7("1231235959"), now, w));
        // Sent on 1 January by a clock a little ahead, read on 31 December.
        let now = at(2026, 12, 31, 23, 59, 50);
        assert_eq!(
            transmission_age(&f7("0101000010"), now),
            Some(TimeDelta::seconds(-20))
        );
        assert!(is_fresh(&f7("0101000010"), now, w));
        // Last year's request of the same day is a year old, not fresh.
        assert!(!is_fresh(
            &f7("0101000010"),
            at(2027, 1, 1, 0, 0, 0) + TimeDelta::days(2),
            w
        ));
    }

    #[test]
    fn a_29_february_without_a_leap_year_near_is_not_fresh() {
        let now = at(2026, 6, 1, 0, 0, 0);
        assert_eq!(transmission_age(&f7("0229120000"), now), None);
        assert!(!is_fresh(
            &f7("0229120000"),
            now,
            TRANSMISSION_WINDOW_DEFAULT
        ));
        // 2028 is a leap year: on 29 February 2028 it is today.
        let now = at(2028, 2, 29, 12, 0, 10);
        assert!(is_fresh(
            &f7("0229120000"),
            now,
            TRANSMISSION_WINDOW_DEFAULT
        ));
    }
}
