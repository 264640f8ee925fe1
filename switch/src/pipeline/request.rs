//! From a decoded ISO 8583 message to a typed request the pipeline can act on.
//!
//! Why this exists: the codec checks formats (digits, lengths, dates); this module checks
//! meaning (which service, amounts that agree, references that exist) once, so the steps after it
//! work with domain types (`Pan`, `AmountFen`, `Stan`) and never re-parse fields. Anything wrong
//! here is answered with response code 30 (format error) or 13 (invalid amount) or 12 (invalid
//! transaction), naming the field in the log but never its value.
//!
//! Services (ssc87, see `schemas/iso8583/ssc87.md`):
//!
//! | MTI | field 3 | 60.1 | service |
//! |---|---|---|---|
//! | 0200 | 19xxxx | 01 | hospital bill payment, split fund / personal / bank |
//! | 0200 | 00xxxx | – | purchase on the card's bank application |
//! | 0200 | 31xxxx | 04 = personal account, else bank | balance inquiry |
//! | 0200 | 20xxxx | – | refund of a bank purchase (field 37 = the purchase's RRN) |
//! | 0200 | 21xxxx | 02 | benefit credit from the social-security fund to the card's bank account |
//! | 0100 | 33xxxx | 03 | identity session of a job-centre kiosk (61, 120, 48; no amount) |
//! | 0100 / 0120 | any | – | pre-authorization on the personal account (hold) / its advice |
//! | 0220 | any | – | completion of a pre-authorization (field 37 = its RRN) |
//! | 0400, 0401, 0420, 0421 | any | – | reversal of an earlier request (field 37 = its RRN, 90) |

use schemas::domain::TransmissionDateTime;
use schemas::domain::{AmountFen, InstitutionId, Pan, ResponseCode, Rrn, Stan, TerminalId};
use schemas::iso8583::{Message, Mti};

/// What the request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Hospital bill payment with the medical-insurance split.
    MedicalBill,
    /// Purchase paid by the card's bank.
    BankPurchase,
    /// Balance of the personal medical-insurance account.
    PersonalBalance,
    /// Balance of the bank account (asked of the bank).
    BankBalance,
    /// Refund of a bank purchase.
    Refund,
    /// Benefit credit to the card's bank account.
    BenefitCredit,
    /// Pre-authorization: a hold on the personal account.
    Preauthorization,
    /// Advice of a pre-authorization the acquirer already gave.
    PreauthorizationAdvice,
    /// Completion of a pre-authorization.
    Completion,
    /// Reversal (0400/0401) or reversal advice (0420/0421).
    Reversal,
    /// Identity session: the card and its holder proven to the back end, and the back end to
    /// the card (`services::identity_session`).
    IdentitySession,
}

/// The medical bill of field 62.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// 62.1 medical category.
    pub category: u8,
    /// 62.2 hospital code.
    pub hospital_code: String,
    /// 62.3 bill number.
    pub bill_no: String,
    /// 62.4 total.
    pub total_fen: AmountFen,
}

/// Field 90: what a reversal refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalData {
    /// 90.1 original MTI.
    pub mti: String,
    /// 90.2 original STAN.
    pub stan: Stan,
}

/// A request, typed.
#[derive(Debug, Clone)]
pub struct Request {
    /// MTI.
    pub mti: Mti,
    /// The service.
    pub service: Service,
    /// Field 3.
    pub processing_code: String,
    /// Field 2.
    pub pan: Option<Pan>,
    /// Field 4.
    pub amount_fen: AmountFen,
    /// Field 7.
    pub transmission_at: TransmissionDateTime,
    /// Field 11.
    pub stan: Stan,
    /// Field 37.
    pub rrn: Rrn,
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 32.
    pub acquirer: InstitutionId,
    /// Field 14 (`YYMM`).
    pub expiry_yymm: Option<String>,
    /// Field 52.
    pub pin_block: Option<[u8; 8]>,
    /// Field 55.
    pub icc: Option<Vec<u8>>,
    /// Field 62.
    pub bill: Option<Bill>,
    /// Field 90.
    pub original: Option<OriginalData>,
    /// Field 61, the cardholder's social security number (citizen ID).
    pub social_security_number: Option<String>,
    /// Field 120, the SSSE card identification code.
    pub card_identification_code: Option<String>,
    /// Field 48, additional data (the identity session's elements).
    pub additional_data: Option<String>,
    /// Field 64 or 128.
    pub mac: Option<[u8; 8]>,
}

/// Why a request was refused before any processing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct RequestError {
    /// What to answer with.
    pub code: ResponseCode,
    /// The field at fault (0 = MTI).
    pub field: u16,
    /// Why, never carrying the value.
    pub reason: &'static str,
}

fn bad(field: u16, reason: &'static str) -> RequestError {
    RequestError {
        code: ResponseCode::FormatError,
        field,
        reason,
    }
}

fn text(m: &Message<'_>, id: u16) -> Result<Option<String>, RequestError> {
    if !m.has(id) {
        return Ok(None);
    }
    m.get_str(id)
        .map(|s| Some(s.trim_end().to_owned()))
        .map_err(|_| bad(id, "not text"))
}

fn required(m: &Message<'_>, id: u16) -> Result<String, RequestError> {
    text(m, id)?.ok_or_else(|| bad(id, "missing"))
}

fn eight(m: &Message<'_>, id: u16) -> Result<Option<[u8; 8]>, RequestError> {
    if !m.has(id) {
        return Ok(None);
    }
    let b = m.get_bytes(id).map_err(|_| bad(id, "unreadable"))?;
    let arr: [u8; 8] = b.as_ref().try_into().map_err(|_| bad(id, "not 8 bytes"))?;
    Ok(Some(arr))
}

/// The MAC of a message: field 128 when the secondary bitmap is in use, else field 64.
pub(crate) fn mac_of(m: &Message<'_>) -> Result<Option<[u8; 8]>, RequestError> {
    match eight(m, 128)? {
        Some(mac) => Ok(Some(mac)),
        None => eight(m, 64),
    }
}

/// The service of an MTI and processing code (and, for a balance inquiry, 60.1), or 12.
fn service_of(m: &Message<'_>, mti: &Mti, processing_code: &str) -> Result<Service, RequestError> {
    let business = if m.has(60) {
        Some(
            m.get_path_str("60.1")
                .map_err(|_| bad(60, "unreadable 60.1"))?
                .into_owned(),
        )
    } else {
        None
    };
    let pc2 = processing_code.get(..2).unwrap_or_default();
    if business.as_deref() == Some("03") {
        return match (mti.as_str(), pc2) {
            ("0100", "33") => Ok(Service::IdentitySession),
            _ => Err(RequestError {
                code: ResponseCode::InvalidTransaction,
                field: 3,
                reason: "an identity session (60.1 03) is a 0100 with processing code 33xxxx",
            }),
        };
    }
    Ok(match (mti.as_str(), pc2) {
        ("0200", "19") => Service::MedicalBill,
        ("0200", "00") => Service::BankPurchase,
        ("0200", "31") if business.as_deref() == Some("04") => Service::PersonalBalance,
        ("0200", "31") => Service::BankBalance,
        ("0200", "20") => Service::Refund,
        ("0200", "21") => Service::BenefitCredit,
        ("0100", _) => Service::Preauthorization,
        ("0120", _) => Service::PreauthorizationAdvice,
        ("0220", _) => Service::Completion,
        ("0400" | "0401" | "0420" | "0421", _) => Service::Reversal,
        _ => {
            return Err(RequestError {
                code: ResponseCode::InvalidTransaction,
                field: 3,
                reason: "service not offered for this MTI and processing code",
            })
        }
    })
}

/// Field 4 as money: 30 when it is not an amount, 13 when it does not fit.
fn amount_of(m: &Message<'_>) -> Result<AmountFen, RequestError> {
    let amount = m.get_u64(4).map_err(|_| bad(4, "not an amount"))?;
    i64::try_from(amount)
        .ok()
        .and_then(|v| AmountFen::new(v).ok())
        .ok_or(RequestError {
            code: ResponseCode::InvalidAmount,
            field: 4,
            reason: "amount out of range",
        })
}

/// Field 62, the medical bill, when present.
fn bill_of(m: &Message<'_>) -> Result<Option<Bill>, RequestError> {
    if !m.has(62) {
        return Ok(None);
    }
    let sub = |p: &str, id| -> Result<String, RequestError> {
        m.get_path_str(p)
            .map(|s| s.trim_end().to_owned())
            .map_err(|_| bad(id, "unreadable bill sub-field"))
    };
    let total: i64 = sub("62.4", 62)?
        .parse()
        .map_err(|_| bad(62, "bill total"))?;
    Ok(Some(Bill {
        category: sub("62.1", 62)?.parse().map_err(|_| bad(62, "category"))?,
        hospital_code: sub("62.2", 62)?,
        bill_no: sub("62.3", 62)?,
        total_fen: AmountFen::new(total).map_err(|_| bad(62, "bill total"))?,
    }))
}

/// Field 90, what a reversal refers to, when present.
fn original_of(m: &Message<'_>) -> Result<Option<OriginalData>, RequestError> {
    if !m.has(90) {
        return Ok(None);
    }
    let stan = m
        .get_path_str("90.2")
        .map_err(|_| bad(90, "original STAN"))?;
    Ok(Some(OriginalData {
        mti: m
            .get_path_str("90.1")
            .map_err(|_| bad(90, "original MTI"))?
            .into_owned(),
        stan: Stan::parse(&stan).map_err(|_| bad(90, "original STAN"))?,
    }))
}

/// Field 55, the chip data, when present.
fn icc_of(m: &Message<'_>) -> Result<Option<Vec<u8>>, RequestError> {
    if !m.has(55) {
        return Ok(None);
    }
    let icc = m.get_bytes(55).map_err(|_| bad(55, "unreadable"))?;
    Ok(Some(icc.into_owned()))
}

impl Request {
    /// Reads a decoded request. `default_acquirer` stands in for field 32 when the link's
    /// configuration fixes the acquirer (a kiosk link of one hospital); whether field 32 may
    /// name the institution it names is `pipeline::identity`'s question, not this one's. Fields are read in a
    /// fixed order, so a request with several faults is always refused for the same one.
    pub fn parse(
        m: &Message<'_>,
        default_acquirer: Option<&InstitutionId>,
    ) -> Result<Request, RequestError> {
        let mti = m.mti();
        let processing_code = required(m, 3)?;
        let service = service_of(m, &mti, &processing_code)?;
        let amount_fen = amount_of(m)?;
        let currency = required(m, 49)?;
        if currency != "156" && service != Service::Reversal {
            return Err(bad(49, "only CNY (156) is accepted"));
        }
        let pan = match text(m, 2)? {
            Some(p) => Some(Pan::parse(&p).map_err(|_| bad(2, "not a PAN"))?),
            None => None,
        };
        let acquirer = match text(m, 32)? {
            Some(a) => InstitutionId::parse(&a).map_err(|_| bad(32, "not an institution id"))?,
            None => default_acquirer.cloned().ok_or(bad(32, "missing"))?,
        };
        let bill = bill_of(m)?;
        let original = original_of(m)?;
        let request = Request {
            mti,
            service,
            pan,
            amount_fen,
            transmission_at: TransmissionDateTime::parse(&required(m, 7)?)
                .map_err(|_| bad(7, "not MMDDhhmmss"))?,
            stan: Stan::parse(&required(m, 11)?).map_err(|_| bad(11, "not a STAN"))?,
            rrn: Rrn::parse(&required(m, 37)?).map_err(|_| bad(37, "not an RRN"))?,
            terminal_id: TerminalId::parse(&required(m, 41)?)
                .map_err(|_| bad(41, "not a terminal id"))?,
            acquirer,
            expiry_yymm: text(m, 14)?,
            pin_block: eight(m, 52)?,
            icc: icc_of(m)?,
            bill,
            original,
            social_security_number: text(m, 61)?,
            card_identification_code: text(m, 120)?,
            additional_data: text(m, 48)?,
            mac: mac_of(m)?,
            processing_code,
        };
        request.check_service_fields()?;
        Ok(request)
    }

    /// Fields each service needs, and amounts that must agree.
    fn check_service_fields(&self) -> Result<(), RequestError> {
        let needs_pan = !matches!(
            self.service,
            Service::Reversal | Service::Completion | Service::IdentitySession
        );
        if needs_pan && self.pan.is_none() {
            return Err(bad(2, "missing"));
        }
        match self.service {
            Service::MedicalBill => {
                let bill = self.bill.as_ref().ok_or(bad(62, "missing"))?;
                if bill.total_fen != self.amount_fen {
                    return Err(RequestError {
                        code: ResponseCode::InvalidAmount,
                        field: 62,
                        reason: "bill total (62.4) differs from the amount (4)",
                    });
                }
            }
            Service::Reversal if self.original.is_none() => return Err(bad(90, "missing")),
            Service::IdentitySession => {
                if self.social_security_number.is_none() {
                    return Err(bad(61, "missing"));
                }
                if self.card_identification_code.is_none() {
                    return Err(bad(120, "missing"));
                }
                if self.additional_data.is_none() {
                    return Err(bad(48, "missing"));
                }
                if self.amount_fen != AmountFen::ZERO {
                    return Err(RequestError {
                        code: ResponseCode::InvalidAmount,
                        field: 4,
                        reason: "an identity session moves no money",
                    });
                }
            }
            _ => {}
        }
        let moves_money = !matches!(
            self.service,
            Service::PersonalBalance
                | Service::BankBalance
                | Service::Reversal
                | Service::IdentitySession
        );
        if moves_money && self.amount_fen == AmountFen::ZERO {
            return Err(RequestError {
                code: ResponseCode::InvalidAmount,
                field: 4,
                reason: "zero amount",
            });
        }
        Ok(())
    }
}
