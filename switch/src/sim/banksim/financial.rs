//! The bank's answers that move money or count it: purchases, balance inquiries, refunds and
//! benefit credits (0200), reversals (0400/0420/0421), stand-in advices (0120/0220 and their
//! repeats) and reconciliation (0500).

use std::sync::atomic::Ordering;

use hsm_sim::hsm::{PinBlockIn, PinVerificationMethod};
use hsm_sim::keys::PinKey;
use hsm_sim::pin::{account_number_12, EncryptedPinBlock, PinBlockFormat};
use schemas::domain::AmountFen;
use schemas::iso8583::{Message, OwnedMessage, ReconciliationTotals, SettlementCode, TotalsLine};

use super::ledger::{balance_field, leg, original_key, Service};
use super::respond::reply;
use super::{lock, Shared};
use crate::wire::settlement_day;

async fn pin_ok(shared: &Shared, msg: &Message<'_>, pan: &str, offset: &str) -> bool {
    let Ok(block) = msg.get(52) else {
        return false;
    };
    let Ok(block) = EncryptedPinBlock::from_bytes(block.to_vec()) else {
        return false;
    };
    let Ok(validation) = account_number_12(pan) else {
        return false;
    };
    let pin = PinBlockIn {
        block,
        format: PinBlockFormat::Iso0,
        pan: pan.to_owned(),
    };
    let method = PinVerificationMethod::Ibm3624 {
        pvk: shared.config.keys.pvk.clone(),
        decimalisation_table: shared.config.decimalisation_table.clone(),
        validation_data: validation,
        offset: offset.to_owned(),
        check_length: shared.config.pin_check_length,
    };
    let zpks = lock(&shared.keys).zpk.candidates();
    // The previous key stays valid for PIN blocks translated before the last key exchange.
    for zpk in zpks {
        if let Ok(true) = shared
            .hsm
            .verify_pin(&PinKey::Zpk(zpk), &pin, &method)
            .await
        {
            return true;
        }
    }
    false
}

pub(super) async fn financial<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let leg = match leg(msg) {
        Ok(l) => l,
        Err(code) => return reply(msg, code),
    };
    let offset = {
        let ledger = lock(&shared.ledger);
        match ledger.accounts.get(&leg.pan) {
            Some(a) => a.pin_offset.clone(),
            None => return reply(msg, "14"),
        }
    };
    if matches!(leg.svc, Service::Purchase | Service::BalanceInquiry)
        && !pin_ok(shared, msg, &leg.pan, &offset).await
    {
        return reply(msg, "55");
    }
    let mut ledger = lock(&shared.ledger);
    let balance = ledger.accounts.get(&leg.pan)?.balance_fen;
    if leg.svc == Service::Purchase && balance < leg.amount {
        drop(ledger);
        let mut r = reply(msg, "51")?;
        if let Some(field54) = balance_field(balance) {
            r.set_str(54, &field54).ok()?;
        }
        return Some(r);
    }
    let balance = match ledger.post(leg) {
        Ok(balance) => balance,
        Err(code) => {
            drop(ledger);
            return reply(msg, code);
        }
    };
    ledger.auth_code = ledger.auth_code % 999_999 + 1;
    let code = format!("{:06}", ledger.auth_code);
    drop(ledger);
    let mut r = reply(msg, "00")?;
    r.set_str(38, &code).ok()?;
    if let Some(field54) = balance_field(balance) {
        r.set_str(54, &field54).ok()?;
    }
    Some(r)
}

pub(super) fn reversal<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let c = &shared.counters;
    c.reversal_messages.fetch_add(1, Ordering::Relaxed);
    if msg.mti().as_str() == "0421" {
        c.reversal_repeats.fetch_add(1, Ordering::Relaxed);
    }
    let Ok(pan) = msg.get_str(2) else {
        return reply(msg, "30");
    };
    let key = original_key(
        msg.get_str(37).ok().as_deref(),
        &pan,
        &msg.get_path_str("90.2").ok()?,
        &msg.get_path_str("90.3").ok()?,
        &msg.get_str(41).ok()?,
    );
    let mut ledger = lock(&shared.ledger);
    let Some(auth) = ledger.authorizations.get_mut(&key) else {
        drop(ledger);
        return reply(msg, "25");
    };
    if auth.reversed {
        // A repeat (0421) of a reversal already applied: acknowledge, change nothing.
        drop(ledger);
        return reply(msg, "00");
    }
    let (pan, delta) = (auth.pan.clone(), auth.delta_fen);
    let line = if delta < 0 {
        TotalsLine::DebitReversals
    } else {
        TotalsLine::CreditReversals
    };
    // The totals first: a reversal they cannot hold changes nothing.
    let counted = AmountFen::new(delta.saturating_abs())
        .ok()
        .and_then(|amount| ledger.count(line, amount).ok());
    if counted.is_none() {
        drop(ledger);
        return reply(msg, "96");
    }
    if let Some(auth) = ledger.authorizations.get_mut(&key) {
        auth.reversed = true;
    }
    if let Some(a) = ledger.accounts.get_mut(&pan) {
        a.balance_fen -= delta;
    }
    drop(ledger);
    shared
        .counters
        .reversals_applied
        .fetch_add(1, Ordering::Relaxed);
    reply(msg, "00")
}

/// A stand-in advice: the switch approved field 4 on the bank's behalf while the link was
/// down. The bank posts it once, keyed like an original (so a later 0420 finds it), and
/// acknowledges every copy.
pub(super) fn advice<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let c = &shared.counters;
    c.advice_messages.fetch_add(1, Ordering::Relaxed);
    if msg.mti().as_bytes().get(3) == Some(&b'1') {
        c.advice_repeats.fetch_add(1, Ordering::Relaxed);
    }
    let leg = match leg(msg) {
        Ok(l) if l.svc != Service::BalanceInquiry => l,
        Ok(_) => return reply(msg, "12"),
        Err(code) => return reply(msg, code),
    };
    let mut ledger = lock(&shared.ledger);
    if ledger.authorizations.contains_key(&leg.key) {
        // A repeat (0221) of an advice already posted: acknowledge, change nothing.
        drop(ledger);
        return reply(msg, "00");
    }
    let posted = ledger.post(leg);
    drop(ledger);
    if let Err(code) = posted {
        return reply(msg, code);
    }
    c.advices_applied.fetch_add(1, Ordering::Relaxed);
    reply(msg, "00")
}

/// A 0500: the bank's own totals of the settlement day of field 15 (the latest such date not
/// after the bank's today) in 74-77 and 86-89, and 66 = `1` when the switch's equal them, `2`
/// otherwise (no net in 97: the switch computes its own); 30 without a readable field 15.
pub(super) fn reconciliation<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    shared
        .counters
        .reconciliations
        .fetch_add(1, Ordering::Relaxed);
    let day = msg
        .get_str(15)
        .ok()
        .and_then(|d| settlement_day::from_mmdd(&d, crate::store::now_us()));
    let Some(day) = day else {
        return reply(msg, "30");
    };
    let ours = lock(&shared.ledger)
        .by_day
        .get(&day)
        .copied()
        .unwrap_or_default();
    let in_balance = ReconciliationTotals::from_message(msg)
        .is_ok_and(|theirs| ours.differing_fields(&theirs).is_empty());
    let mut r = reply(msg, "00")?;
    ours.write_lines(&mut r).ok()?;
    r.remove(97);
    let code = if in_balance {
        SettlementCode::InBalance
    } else {
        SettlementCode::OutOfBalance
    };
    code.to_message(&mut r).ok()?;
    Some(r)
}
