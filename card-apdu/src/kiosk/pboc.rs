//! PBOC debit payment, terminal side (EMV Book 3 §10, JR/T 0025.6 终端规范), for an online-only
//! kiosk: application selection (PPSE, then PSE, then the known AID), GET PROCESSING OPTIONS
//! with the PDOL, READ RECORD per the AFL, first GENERATE AC asking for an ARQC, and the ISO 8583
//! field-55 bytes for the switch ([`start_payment`]). With the issuer's answer,
//! [`complete_payment`] runs EXTERNAL AUTHENTICATE (ARPC), issuer scripts (templates 71 before and
//! 72 after), and the second GENERATE AC.
//!
//! Offline data authentication is not performed (the card's AIP offers none); the kiosk goes
//! online for every payment and the PIN is an online PIN handled by the PIN pad and switch.

use std::collections::BTreeMap;

use super::{select_by_name, send, send_ok, KioskError};
use crate::apdu::Command;
use crate::channel::{CardChannel, Counted};
use crate::dol;
use crate::emv::{self, cid, Iad};
use crate::sw::StatusWord;
use crate::tags as t;
use crate::tlv::{self, TagNum};
use crate::vcard::{PBOC_DEBIT_AID, PPSE_NAME, PSE_NAME};

/// Terminal configuration of a kiosk (EMV terminal data elements).
#[derive(Clone, Debug)]
pub struct Terminal {
    /// 9F1A, e.g. `0156`.
    pub country: [u8; 2],
    /// 5F2A, e.g. `0156` (CNY).
    pub currency: [u8; 2],
    /// 9F33 terminal capabilities.
    pub capabilities: [u8; 3],
    /// 9F35 terminal type (14 = unattended, financial institution… 22 = attended merchant).
    pub terminal_type: u8,
    /// 9F1E, 8 characters.
    pub ifd_serial: [u8; 8],
    /// 9F4E, up to 20 characters.
    pub merchant_name: String,
    /// Whether the terminal supports the SM algorithm suite (sent as DF69).
    pub supports_sm: bool,
}

impl Default for Terminal {
    fn default() -> Self {
        Self {
            country: [0x01, 0x56],
            currency: [0x01, 0x56],
            capabilities: [0xE0, 0x40, 0xC8],
            terminal_type: 0x14,
            ifd_serial: *b"KIOSK001",
            merchant_name: "HOSPITAL KIOSK".into(),
            supports_sm: true,
        }
    }
}

/// One payment's transaction data.
#[derive(Clone, Debug)]
pub struct PaymentRequest {
    /// Amount in fen (minor units of CNY); encoded as 9F02 n12.
    pub amount_fen: u64,
    /// 9C: 00 goods and services.
    pub transaction_type: u8,
    /// 9A YYMMDD as BCD.
    pub date: [u8; 3],
    /// 9F21 HHMMSS as BCD.
    pub time: [u8; 3],
    /// 9F37.
    pub unpredictable_number: [u8; 4],
    /// 9F41.
    pub sequence_counter: u32,
    /// Continue when the application reports itself blocked (6283), so the issuer can send an
    /// APPLICATION UNBLOCK script; the card answers with an AAC.
    pub allow_blocked: bool,
}

impl PaymentRequest {
    /// A request for `amount_fen` now, with a random unpredictable number.
    pub fn new(amount_fen: u64, date: [u8; 3], time: [u8; 3]) -> Self {
        use rand::RngCore;
        let mut un = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut un);
        Self {
            amount_fen,
            transaction_type: 0x00,
            date,
            time,
            unpredictable_number: un,
            sequence_counter: 1,
            allow_blocked: false,
        }
    }
}

/// Encodes an amount in fen as n12 (6 bytes BCD). Amounts above 999 999 999 999 are refused.
pub fn amount_n12(amount_fen: u64) -> Option<[u8; 6]> {
    if amount_fen > 999_999_999_999 {
        return None;
    }
    let digits = format!("{amount_fen:012}");
    let v = crate::perso::bcd(&digits)?;
    v.try_into().ok()
}

/// What goes to the switch for online authorisation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnlineRequest {
    /// ISO 8583 field 55 (ICC system related data), BER-TLV.
    #[serde(serialize_with = "crate::hexser::bytes")]
    pub field55: Vec<u8>,
    /// PAN masked (first 6, last 4) for display and logs.
    pub pan_masked: String,
    /// Field 23: PAN sequence number, 3 digits.
    pub psn: String,
    pub expiry_yymm: String,
    pub aid: String,
    pub cid: u8,
    pub atc: u16,
    #[serde(serialize_with = "crate::hexser::bytes")]
    pub arqc: Vec<u8>,
    pub algorithm: String,
    pub amount_fen: u64,
    pub apdu_count: usize,
}

/// State carried from [`start_payment`] to [`complete_payment`]. Holds the full PAN (for field 2
/// and field 35 of the request), so it is not `Debug`.
pub struct PaymentSession {
    pub request: OnlineRequest,
    /// Full PAN for ISO 8583 field 2. Do not log.
    pub pan: String,
    /// Track 2 equivalent (57) for field 35. Do not log.
    pub track2: Vec<u8>,
    data: BTreeMap<TagNum, Vec<u8>>,
    cdol2: Vec<dol::DolEntry>,
}

/// The issuer's answer as the switch relays it (field 39 and field 55 of the 0110/0210).
#[derive(Clone, Debug, Default)]
pub struct IssuerResponse {
    /// Authorisation response code (8A), e.g. `*b"00"`.
    pub arc: [u8; 2],
    /// Issuer authentication data (91): ARPC ‖ ARC for method 1.
    pub issuer_authentication_data: Option<Vec<u8>>,
    /// Issuer script templates 71 (run before the second GENERATE AC) and 72 (after), encoded.
    pub scripts: Vec<Vec<u8>>,
}

/// Result of one issuer script.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScriptResult {
    pub template: u8,
    #[serde(serialize_with = "crate::hexser::bytes")]
    pub script_id: Vec<u8>,
    /// Status word of each command, in order; processing of a script stops at the first failure.
    pub status: Vec<String>,
    pub ok: bool,
}

/// How the transaction ended on the card.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PaymentOutcome {
    pub approved: bool,
    pub cid: u8,
    #[serde(serialize_with = "crate::hexser::bytes")]
    pub cryptogram: Vec<u8>,
    pub issuer_authentication: Option<bool>,
    pub scripts: Vec<ScriptResult>,
    #[serde(serialize_with = "crate::hexser::bytes")]
    pub tvr: Vec<u8>,
}

fn find_aid<C: CardChannel + ?Sized>(ch: &mut C) -> Result<Vec<u8>, KioskError> {
    let mut entries = Vec::new();
    let ppse = send(ch, select_by_name(PPSE_NAME))?;
    if ppse.sw == StatusWord::Success {
        let tlvs = tlv::parse_all(&ppse.data).map_err(|e| KioskError::CardData(e.to_string()))?;
        collect_entries(&tlvs, &mut entries);
    }
    if entries.is_empty() {
        let pse = send(ch, select_by_name(PSE_NAME))?;
        if pse.sw == StatusWord::Success {
            for rec in 1..=8u8 {
                let r = send(
                    ch,
                    Command::new(0x00, 0xB2, rec, (1 << 3) | 0x04).with_ne(256),
                )?;
                if r.sw != StatusWord::Success {
                    break;
                }
                let tlvs =
                    tlv::parse_all(&r.data).map_err(|e| KioskError::CardData(e.to_string()))?;
                collect_entries(&tlvs, &mut entries);
            }
        }
    }
    entries.retain(|(aid, _)| aid.starts_with(&PBOC_DEBIT_AID[..5]));
    entries.sort_by_key(|(_, prio)| *prio);
    Ok(entries
        .into_iter()
        .next()
        .map_or_else(|| PBOC_DEBIT_AID.to_vec(), |(aid, _)| aid))
}

fn collect_entries(tlvs: &[tlv::Tlv], out: &mut Vec<(Vec<u8>, u8)>) {
    for t in tlvs {
        if tlv::tag_num(t.tag()) == t::DIRECTORY_ENTRY {
            let kids = tlv::children(t);
            if let Some(aid) = tlv::find_value(kids, t::AID) {
                let prio = tlv::find_value(kids, t::APPLICATION_PRIORITY)
                    .and_then(|p| p.first().copied())
                    .unwrap_or(0x0F);
                out.push((aid.to_vec(), prio & 0x0F));
            }
        } else {
            collect_entries(tlv::children(t), out);
        }
    }
}

fn card_data(e: impl ToString) -> KioskError {
    KioskError::CardData(e.to_string())
}

fn merge(data: &mut BTreeMap<TagNum, Vec<u8>>, bytes: &[u8]) -> Result<(), KioskError> {
    let tlvs = tlv::parse_all(bytes).map_err(card_data)?;
    for (tag, v) in tlv::flatten(&tlvs) {
        data.insert(tag, v.to_vec());
    }
    Ok(())
}

/// Runs the card side of a PBOC payment up to the ARQC.
pub fn start_payment<C: CardChannel + ?Sized>(
    ch: &mut C,
    terminal: &Terminal,
    req: &PaymentRequest,
) -> Result<PaymentSession, KioskError> {
    let mut counted = Counted::new(ch);
    let mut session = run_until_arqc(&mut counted, terminal, req)?;
    session.request.apdu_count = counted.apdus;
    Ok(session)
}

/// Card data gathered during the transaction, by tag (EMV Book 3 §10: terminal and card data
/// objects in one place, as the DOLs reference them).
type CardData = BTreeMap<TagNum, Vec<u8>>;

/// The EMV flow up to the first GENERATE AC (EMV Book 3 §10.1-10.8): application selection,
/// GET PROCESSING OPTIONS, READ RECORD over the AFL, then GENERATE AC asking for an ARQC.
fn run_until_arqc<C: CardChannel + ?Sized>(
    ch: &mut C,
    terminal: &Terminal,
    req: &PaymentRequest,
) -> Result<PaymentSession, KioskError> {
    let aid = find_aid(ch)?;
    let mut data = select_application(ch, &aid, req)?;
    data.extend(terminal_data(terminal, req, &aid)?);
    get_processing_options(ch, &mut data)?;
    read_application_data(ch, &mut data)?;
    let cdol1 =
        dol::parse(data.get(&t::CDOL1).ok_or_else(|| card_data("no CDOL1"))?).map_err(card_data)?;
    let cdol2 =
        dol::parse(data.get(&t::CDOL2).ok_or_else(|| card_data("no CDOL2"))?).map_err(card_data)?;
    let pan_bcd = data.get(&t::PAN).ok_or_else(|| card_data("no PAN"))?;
    let pan: String = hex::encode(pan_bcd).trim_end_matches('f').to_owned();
    let gac_data = dol::build(&cdol1, |tag| data.get(&tag).map(Vec::as_slice));
    let gac = send_ok(
        ch,
        "GENERATE AC",
        Command::new(0x80, 0xAE, cid::ARQC, 0x00)
            .with_data(gac_data)
            .with_ne(256),
    )?;
    parse_gac(&mut data, &gac)?;
    let request = online_request(&data, &pan, &aid, req.amount_fen);
    let track2 = data.get(&t::TRACK2_EQUIVALENT).cloned().unwrap_or_default();
    Ok(PaymentSession {
        request,
        pan,
        track2,
        data,
        cdol2,
    })
}

/// SELECT by AID; the FCI's data objects start the card data. A blocked application is
/// selected only when the request allows it (to deliver an unblocking script).
fn select_application<C: CardChannel + ?Sized>(
    ch: &mut C,
    aid: &[u8],
    req: &PaymentRequest,
) -> Result<CardData, KioskError> {
    let fci = send(ch, select_by_name(aid))?;
    match fci.sw {
        StatusWord::Success => {}
        StatusWord::SelectedFileInvalidated if req.allow_blocked => {}
        StatusWord::SelectedFileInvalidated => return Err(KioskError::ApplicationBlocked),
        StatusWord::FileNotFound => return Err(KioskError::NoApplication),
        sw => {
            return Err(KioskError::Card {
                command: "SELECT",
                sw,
            })
        }
    }
    let mut data = CardData::new();
    merge(&mut data, &fci.data)?;
    Ok(data)
}

/// The terminal's data objects that the PDOL and CDOLs may ask for (EMV Book 3 Annex A).
fn terminal_data(
    terminal: &Terminal,
    req: &PaymentRequest,
    aid: &[u8],
) -> Result<[(TagNum, Vec<u8>); 18], KioskError> {
    let amount = amount_n12(req.amount_fen).ok_or_else(|| card_data("amount exceeds n12"))?;
    let mut merchant = terminal.merchant_name.as_bytes().to_vec();
    merchant.truncate(20);
    Ok([
        (
            t::SM_ALGORITHM_SUPPORT,
            vec![u8::from(terminal.supports_sm)],
        ),
        (t::AMOUNT_AUTHORISED, amount.to_vec()),
        (t::AMOUNT_OTHER, vec![0; 6]),
        (t::TERMINAL_COUNTRY, terminal.country.to_vec()),
        (t::TRANSACTION_CURRENCY, terminal.currency.to_vec()),
        (t::TVR, vec![0; 5]),
        (t::TRANSACTION_DATE, req.date.to_vec()),
        (t::TRANSACTION_TYPE, vec![req.transaction_type]),
        (t::UNPREDICTABLE_NUMBER, req.unpredictable_number.to_vec()),
        (t::TRANSACTION_TIME, req.time.to_vec()),
        (t::MERCHANT_NAME, merchant),
        (t::TERMINAL_CAPABILITIES, terminal.capabilities.to_vec()),
        (t::TERMINAL_TYPE, vec![terminal.terminal_type]),
        (t::IFD_SERIAL, terminal.ifd_serial.to_vec()),
        (t::APP_VERSION_TERMINAL, vec![0x00, 0x30]),
        (
            t::TRANSACTION_SEQUENCE_COUNTER,
            crate::perso::bcd(&format!("{:08}", req.sequence_counter % 100_000_000))
                .unwrap_or_default(),
        ),
        (t::CVM_RESULTS, vec![0x42, 0x03, 0x00]),
        (t::DF_NAME, aid.to_vec()),
    ])
}

/// GET PROCESSING OPTIONS with the PDOL's data (EMV Book 3 §10.1); adds the AIP and AFL.
fn get_processing_options<C: CardChannel + ?Sized>(
    ch: &mut C,
    data: &mut CardData,
) -> Result<(), KioskError> {
    let pdol = data
        .get(&t::PDOL)
        .map(|p| dol::parse(p))
        .transpose()
        .map_err(card_data)?
        .unwrap_or_default();
    let pdol_data = dol::build(&pdol, |tag| data.get(&tag).map(Vec::as_slice));
    let mut gpo_data = vec![t::COMMAND_TEMPLATE as u8];
    tlv::encode_len(pdol_data.len(), &mut gpo_data);
    gpo_data.extend_from_slice(&pdol_data);
    let gpo = send(
        ch,
        Command::new(0x80, 0xA8, 0x00, 0x00)
            .with_data(gpo_data)
            .with_ne(256),
    )?;
    if gpo.sw != StatusWord::Success {
        return Err(KioskError::Card {
            command: "GET PROCESSING OPTIONS",
            sw: gpo.sw,
        });
    }
    match gpo.data.split_first() {
        // Format 1 (tag 80): AIP ‖ AFL.
        Some((0x80, _)) => {
            let tlvs = tlv::parse_all(&gpo.data).map_err(card_data)?;
            let v = tlv::find_value(&tlvs, t::RESPONSE_FORMAT_1).unwrap_or(&[]);
            if v.len() < 2 {
                return Err(card_data("GPO format 1 too short"));
            }
            data.insert(t::AIP, v[..2].to_vec());
            data.insert(t::AFL, v[2..].to_vec());
        }
        _ => merge(data, &gpo.data)?,
    }
    Ok(())
}

/// READ RECORD of every record the AFL names (EMV Book 3 §10.2).
fn read_application_data<C: CardChannel + ?Sized>(
    ch: &mut C,
    data: &mut CardData,
) -> Result<(), KioskError> {
    let afl = data
        .get(&t::AFL)
        .cloned()
        .ok_or_else(|| card_data("no AFL"))?;
    if afl.len() % 4 != 0 {
        return Err(card_data("AFL length not a multiple of 4"));
    }
    for entry in afl.chunks(4) {
        let (sfi, first, last) = (entry[0] >> 3, entry[1], entry[2]);
        if first == 0 || last < first || sfi == 0 || sfi > 30 {
            return Err(card_data("AFL entry invalid"));
        }
        for rec in first..=last {
            let r = send_ok(
                ch,
                "READ RECORD",
                Command::new(0x00, 0xB2, rec, (sfi << 3) | 0x04).with_ne(256),
            )?;
            merge(data, &r)?;
        }
    }
    Ok(())
}

/// What the kiosk sends online after the first GENERATE AC: field 55 and the card facts the
/// request carries.
fn online_request(data: &CardData, pan: &str, aid: &[u8], amount_fen: u64) -> OnlineRequest {
    let iad = data.get(&t::IAD).and_then(|v| Iad::parse(v));
    OnlineRequest {
        field55: build_field55(data),
        pan_masked: crate::mask_pan(pan),
        psn: format!(
            "{:03}",
            data.get(&t::PAN_SEQUENCE_NUMBER)
                .map_or(0, |v| v.first().map_or(0, |b| (b >> 4) * 10 + (b & 0x0F)))
        ),
        expiry_yymm: data
            .get(&t::EXPIRY_DATE)
            .map(|v| hex::encode(&v[..v.len().min(2)]))
            .unwrap_or_default(),
        aid: hex::encode_upper(aid),
        cid: data
            .get(&t::CID)
            .and_then(|v| v.first().copied())
            .unwrap_or(0),
        atc: data
            .get(&t::ATC)
            .map_or(0, |v| v.iter().fold(0u16, |a, b| (a << 8) | u16::from(*b))),
        arqc: data
            .get(&t::APPLICATION_CRYPTOGRAM)
            .cloned()
            .unwrap_or_default(),
        algorithm: iad
            .map_or("unknown", |i| {
                if i.algorithm == hsm_sim::card_crypto::CardAlgorithm::Sm4 {
                    "SM4"
                } else {
                    "3DES"
                }
            })
            .into(),
        amount_fen,
        apdu_count: 0,
    }
}

fn parse_gac(data: &mut BTreeMap<TagNum, Vec<u8>>, gac: &[u8]) -> Result<(), KioskError> {
    match gac.split_first() {
        Some((0x80, _)) => {
            let tlvs = tlv::parse_all(gac).map_err(card_data)?;
            let v = tlv::find_value(&tlvs, t::RESPONSE_FORMAT_1).unwrap_or(&[]);
            if v.len() < 11 {
                return Err(card_data("GENERATE AC format 1 too short"));
            }
            data.insert(t::CID, v[..1].to_vec());
            data.insert(t::ATC, v[1..3].to_vec());
            data.insert(t::APPLICATION_CRYPTOGRAM, v[3..11].to_vec());
            data.insert(t::IAD, v[11..].to_vec());
            Ok(())
        }
        _ => merge(data, gac),
    }
}

/// Field 55 from the collected data, in [`emv::FIELD55_TAGS`] order, skipping absent tags.
fn build_field55(data: &BTreeMap<TagNum, Vec<u8>>) -> Vec<u8> {
    emv::FIELD55_TAGS
        .iter()
        .filter_map(|tag| data.get(tag).map(|v| tlv::encode(*tag, v)))
        .collect::<Vec<_>>()
        .concat()
}

/// Completes the payment with the issuer's answer: EXTERNAL AUTHENTICATE, scripts 71, second
/// GENERATE AC (TC if the issuer approved and authenticated, else AAC), scripts 72.
pub fn complete_payment<C: CardChannel + ?Sized>(
    ch: &mut C,
    session: &mut PaymentSession,
    resp: &IssuerResponse,
) -> Result<PaymentOutcome, KioskError> {
    let mut tvr = [0u8; 5];
    let mut issuer_authentication = None;
    if let Some(iad) = resp
        .issuer_authentication_data
        .as_ref()
        .filter(|_| session.request.cid == cid::ARQC)
    {
        let r = send(
            ch,
            Command::new(0x00, 0x82, 0x00, 0x00).with_data(iad.clone()),
        )?;
        let ok = r.sw == StatusWord::Success;
        if !ok {
            tvr[4] |= 0x40; // TVR byte 5 b7: issuer authentication failed.
        }
        issuer_authentication = Some(ok);
    }
    let mut scripts = Vec::new();
    run_scripts(ch, &resp.scripts, 0x71, &mut scripts, &mut tvr)?;
    if session.request.cid != cid::ARQC {
        // The card declined offline (AAC) in the first GENERATE AC: there is no second one.
        // Scripts still run (e.g. an APPLICATION UNBLOCK MACed over the AAC).
        run_scripts(ch, &resp.scripts, 0x72, &mut scripts, &mut tvr)?;
        return Ok(PaymentOutcome {
            approved: false,
            cid: session.request.cid,
            cryptogram: session.request.arqc.clone(),
            issuer_authentication,
            scripts,
            tvr: tvr.to_vec(),
        });
    }
    let approved_by_issuer = matches!(&resp.arc, b"00" | b"10" | b"11");
    session
        .data
        .insert(t::AUTHORISATION_RESPONSE_CODE, resp.arc.to_vec());
    session.data.insert(t::TVR, tvr.to_vec());
    let p1 = if approved_by_issuer {
        cid::TC
    } else {
        cid::AAC
    };
    let gac_data = dol::build(&session.cdol2, |tag| {
        session.data.get(&tag).map(Vec::as_slice)
    });
    let gac = send_ok(
        ch,
        "GENERATE AC",
        Command::new(0x80, 0xAE, p1, 0x00)
            .with_data(gac_data)
            .with_ne(256),
    )?;
    let mut second = BTreeMap::new();
    parse_gac(&mut second, &gac)?;
    run_scripts(ch, &resp.scripts, 0x72, &mut scripts, &mut tvr)?;
    let cid = second
        .get(&t::CID)
        .and_then(|v| v.first().copied())
        .unwrap_or(cid::AAC);
    Ok(PaymentOutcome {
        approved: cid == cid::TC,
        cid,
        cryptogram: second
            .get(&t::APPLICATION_CRYPTOGRAM)
            .cloned()
            .unwrap_or_default(),
        issuer_authentication,
        scripts,
        tvr: tvr.to_vec(),
    })
}

fn run_scripts<C: CardChannel + ?Sized>(
    ch: &mut C,
    templates: &[Vec<u8>],
    which: u8,
    out: &mut Vec<ScriptResult>,
    tvr: &mut [u8; 5],
) -> Result<(), KioskError> {
    for bytes in templates {
        let tlvs = tlv::parse_all(bytes).map_err(card_data)?;
        for script in tlvs
            .iter()
            .filter(|s| tlv::tag_num(s.tag()) == u32::from(which))
        {
            let kids = tlv::children(script);
            let script_id = tlv::find_value(kids, t::ISSUER_SCRIPT_ID)
                .unwrap_or(&[])
                .to_vec();
            let mut status = Vec::new();
            let mut ok = true;
            for cmd in kids
                .iter()
                .filter(|k| tlv::tag_num(k.tag()) == t::ISSUER_SCRIPT_COMMAND)
            {
                let raw = match cmd.value() {
                    tlv::Value::Primitive(v) => v.clone(),
                    tlv::Value::Constructed(_) => continue,
                };
                let r = crate::apdu::Response::from_bytes(&ch.transmit_raw(&raw)?)
                    .map_err(card_data)?;
                status.push(r.sw.to_string());
                // EMV Book 3 §10.10: 9000, 62xx, 63xx continue; anything else ends the script.
                let [sw1, _] = r.sw.to_bytes();
                if !matches!(sw1, 0x90 | 0x62 | 0x63) {
                    ok = false;
                    tvr[4] |= if which == 0x71 { 0x20 } else { 0x10 };
                    break;
                }
            }
            out.push(ScriptResult {
                template: which,
                script_id,
                status,
                ok,
            });
        }
    }
    Ok(())
}
