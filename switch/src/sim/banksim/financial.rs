//! The bank's answers that move money or count it: purchases, balance inquiries, refunds and
//! benefit credits (0200), reversals (0400/0420/0421), stand-in advices (0120/0220 and their
//! repeats) and reconciliation (0500).

use std::sync::atomic::Ordering;

use hsm_sim::hsm::{PinBlockIn, PinVerificationMethod};
use hsm_sim::keys::PinKey;
use hsm_sim::pin::{account_number_12, EncryptedPinBlock, PinBlockFormat};
use schemas::iso8583::{Message, OwnedMessage};

use super::ledger::{balance_field, leg, original_key, Service};
use super::respond::reply;
use super::{lock, Shared};

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
        r.set_str(54, &balance_field(balance)).ok()?;
        return Some(r);
    }
    let balance = ledger.post(leg)?;
    ledger.auth_code = ledger.auth_code % 999_999 + 1;
    let code = format!("{:06}", ledger.auth_code);
    drop(ledger);
    let mut r = reply(msg, "00")?;
    r.set_str(38, &code)
        .ok()?
        .set_str(54, &balance_field(balance))
        .ok()?;
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
    auth.reversed = true;
    let (pan, delta) = (auth.pan.clone(), auth.delta_fen);
    if let Some(a) = ledger.accounts.get_mut(&pan) {
        a.balance_fen -= delta;
    }
    if delta < 0 {
        ledger.totals.debit_reversals.0 += 1;
        ledger.totals.debit_reversals.1 += -delta;
    } else {
        ledger.totals.credit_reversals.0 += 1;
        ledger.totals.credit_reversals.1 += delta;
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
    let posted = ledger.post(leg).is_some();
    drop(ledger);
    if !posted {
        return reply(msg, "14");
    }
    c.advices_applied.fetch_add(1, Ordering::Relaxed);
    reply(msg, "00")
}

pub(super) fn reconciliation<'a>(shared: &Shared, msg: &Message<'a>) -> Option<OwnedMessage<'a>> {
    let t = lock(&shared.ledger).totals;
    let ours: [(u16, u64); 8] = [
        (74, t.credits.0),
        (75, t.credit_reversals.0),
        (76, t.debits.0),
        (77, t.debit_reversals.0),
        (86, t.credits.1.unsigned_abs()),
        (87, t.credit_reversals.1.unsigned_abs()),
        (88, t.debits.1.unsigned_abs()),
        (89, t.debit_reversals.1.unsigned_abs()),
    ];
    let in_balance = ours.iter().all(|(id, v)| msg.get_u64(*id).ok() == Some(*v));
    let mut r = reply(msg, "00")?;
    for (id, v) in ours {
        r.set_u64(id, v).ok()?;
    }
    r.set_str(66, if in_balance { "1" } else { "2" }).ok()?;
    Some(r)
}
