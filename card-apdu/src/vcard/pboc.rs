//! The PBOC 3.0 debit application of the virtual card (JR/T 0025.5 借记/贷记应用规范, EMV Books
//! 2–3), contact interface, online-only: PSE/PPSE directories, SELECT with FCI and PDOL, GET
//! PROCESSING OPTIONS (AIP + AFL), READ RECORD, GET DATA, offline plaintext PIN VERIFY, GENERATE
//! AC 1 and 2 with an ATC, EXTERNAL AUTHENTICATE with an ARPC (method 1), and issuer scripts with
//! a secure-messaging MAC: APPLICATION BLOCK/UNBLOCK and PIN CHANGE/UNBLOCK.
//!
//! Algorithm (PBOC 3.0 part 17): the PDOL asks the terminal for DF69 (SM algorithm supported
//! indicator). If the terminal sends 01 and the card holds SM4 keys, the transaction uses SM4;
//! otherwise 3DES (if the card holds 3DES keys; an SM4-only card refuses GPO with 6985).
//! All cryptography is hsm-sim's `card_crypto`; the cryptogram input is [`crate::emv::ac_input`].

use hsm_sim::card_crypto::{self as cc, CardAlgorithm, ClearPin};

use crate::apdu::{Case, Command, Response};
use crate::dol::{self, DolEntry};
use crate::emv::{self, cid, Iad};
use crate::perso::{bcd, PbocKeys, PbocProfile};
use crate::sw::StatusWord;
use crate::tags as t;
use crate::tlv::{encode as tlv, encode_constructed as template};

/// Application Interchange Profile: cardholder verification, terminal risk management and
/// issuer authentication supported; no offline data authentication (EMV Book 3 Table 37).
pub const AIP: [u8; 2] = [0x1C, 0x00];
/// Application File Locator: SFI 1 record 1, SFI 2 records 1–2, none for offline auth.
pub const AFL: [u8; 8] = [0x08, 0x01, 0x01, 0x00, 0x10, 0x01, 0x02, 0x00];
/// Derivation key index and cryptogram version number written in the IAD.
pub const DKI: u8 = 0x01;
/// CVN 01 (PBOC).
pub const CVN: u8 = 0x01;

/// PDOL: terminal SM support (DF69), amount, currency, country.
pub fn pdol() -> Vec<DolEntry> {
    vec![
        DolEntry {
            tag: t::SM_ALGORITHM_SUPPORT,
            len: 1,
        },
        DolEntry {
            tag: t::AMOUNT_AUTHORISED,
            len: 6,
        },
        DolEntry {
            tag: t::TRANSACTION_CURRENCY,
            len: 2,
        },
        DolEntry {
            tag: t::TERMINAL_COUNTRY,
            len: 2,
        },
    ]
}

/// CDOL1: the cryptogram's terminal elements plus time and merchant name.
pub fn cdol1() -> Vec<DolEntry> {
    let mut v: Vec<DolEntry> = emv::AC_TERMINAL_ELEMENTS
        .iter()
        .map(|&(tag, len)| DolEntry { tag, len })
        .collect();
    v.push(DolEntry {
        tag: t::TRANSACTION_TIME,
        len: 3,
    });
    v.push(DolEntry {
        tag: t::MERCHANT_NAME,
        len: 20,
    });
    v
}

/// CDOL2: authorisation response code then the cryptogram's terminal elements.
pub fn cdol2() -> Vec<DolEntry> {
    let mut v = vec![DolEntry {
        tag: t::AUTHORISATION_RESPONSE_CODE,
        len: 2,
    }];
    v.extend(
        emv::AC_TERMINAL_ELEMENTS
            .iter()
            .map(|&(tag, len)| DolEntry { tag, len }),
    );
    v
}

#[derive(Clone, Copy)]
struct FirstAc {
    cid: u8,
    ac: [u8; 8],
}

#[derive(Default)]
struct Tx {
    alg: Option<CardAlgorithm>,
    first: Option<FirstAc>,
    issuer_auth: Option<bool>,
    second_done: bool,
    cvr: [u8; 4],
}

/// The PBOC application.
pub struct PbocApplet {
    profile: PbocProfile,
    pin: ClearPin,
    pin_tries_left: u8,
    atc: u16,
    last_online_atc: u16,
    blocked: bool,
    sfi1: Vec<Vec<u8>>,
    sfi2: Vec<Vec<u8>>,
    tx: Tx,
}

fn track2(p: &PbocProfile) -> Vec<u8> {
    let exp = hex::encode(&p.expiry_date[..2]);
    let svc = hex::encode(p.service_code);
    let digits = format!("{}D{}{}00000", p.pan, exp, &svc[1..]);
    let mut nibbles: Vec<u8> = digits
        .bytes()
        .map(|b| if b == b'D' { 0x0D } else { b - b'0' })
        .collect();
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    nibbles.chunks(2).map(|c| (c[0] << 4) | c[1]).collect()
}

fn pan_cn(pan: &str) -> Vec<u8> {
    bcd(pan).unwrap_or_default()
}

fn iso8859(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii).collect()
}

impl PbocApplet {
    /// Issues the application from its profile.
    pub fn new(p: PbocProfile) -> Self {
        let psn = bcd(&format!("{:0>2}", p.psn)).unwrap_or_else(|| vec![0]);
        let sfi1 = vec![template(
            t::READ_RECORD_TEMPLATE,
            &[
                tlv(t::TRACK2_EQUIVALENT, &track2(&p)),
                tlv(t::CARDHOLDER_NAME, &iso8859(&p.cardholder_name)),
            ],
        )];
        let sfi2 = vec![
            template(
                t::READ_RECORD_TEMPLATE,
                &[
                    tlv(t::PAN, &pan_cn(&p.pan)),
                    tlv(t::EXPIRY_DATE, &p.expiry_date),
                    tlv(t::EFFECTIVE_DATE, &p.effective_date),
                    tlv(t::PAN_SEQUENCE_NUMBER, &psn[psn.len().saturating_sub(1)..]),
                    tlv(t::ISSUER_COUNTRY, &p.issuer_country),
                    tlv(t::AUC, &[0xFF, 0x00]),
                    // CVM list: online enciphered PIN if supported, else signature, else none.
                    tlv(
                        t::CVM_LIST,
                        &[0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x03, 0x1E, 0x03, 0x1F, 0x00],
                    ),
                    tlv(t::IAC_DEFAULT, &[0xD8, 0x40, 0x00, 0xA8, 0x00]),
                    tlv(t::IAC_DENIAL, &[0x00, 0x10, 0x00, 0x00, 0x00]),
                    tlv(t::IAC_ONLINE, &[0xD8, 0x40, 0x04, 0xF8, 0x00]),
                    tlv(t::CDOL1, &dol::encode(&cdol1())),
                    tlv(t::CDOL2, &dol::encode(&cdol2())),
                ],
            ),
            template(
                t::READ_RECORD_TEMPLATE,
                &[
                    tlv(t::APP_VERSION_CARD, &[0x00, 0x30]),
                    tlv(t::SERVICE_CODE, &p.service_code),
                    tlv(t::APPLICATION_CURRENCY, &p.currency),
                ],
            ),
        ];
        Self {
            pin: p.pin.clone(),
            pin_tries_left: p.pin_tries_max,
            atc: p.atc,
            last_online_atc: 0,
            blocked: false,
            sfi1,
            sfi2,
            profile: p,
            tx: Tx::default(),
        }
    }

    /// Current ATC.
    pub fn atc(&self) -> u16 {
        self.atc
    }

    /// Ends any transaction in progress.
    pub fn deselect(&mut self) {
        self.tx = Tx::default();
    }

    fn entry(&self) -> Vec<u8> {
        template(
            t::DIRECTORY_ENTRY,
            &[
                tlv(t::AID, &super::PBOC_DEBIT_AID),
                tlv(t::APPLICATION_LABEL, self.profile.label.as_bytes()),
                tlv(t::APPLICATION_PRIORITY, &[0x01]),
            ],
        )
    }

    /// FCI of the PSE (contact: SFI of the directory) or the PPSE (directory entries inline).
    pub fn pse_fci(&mut self, contact: bool) -> Response {
        let (name, prop) = if contact {
            (
                super::PSE_NAME,
                vec![tlv(t::SFI, &[0x01]), tlv(t::LANGUAGE_PREFERENCE, b"zhen")],
            )
        } else {
            (
                super::PPSE_NAME,
                vec![tlv(t::FCI_ISSUER_DISCRETIONARY, &self.entry())],
            )
        };
        Response::ok(template(
            t::FCI_TEMPLATE,
            &[tlv(t::DF_NAME, name), template(t::FCI_PROPRIETARY, &prop)],
        ))
    }

    /// Commands while the PSE or PPSE is selected: the PSE directory record.
    pub fn process_directory(&mut self, cmd: &Command, contact: bool) -> Response {
        match (cmd.cla, cmd.ins) {
            (0x00, 0xB2) if contact => match (cmd.p1, cmd.p2) {
                (1, 0x0C) => Response::ok(template(t::READ_RECORD_TEMPLATE, &[self.entry()])),
                (_, 0x0C) => Response::status(StatusWord::RecordNotFound),
                (_, p2) if p2 & 0x07 != 0x04 => Response::status(StatusWord::IncorrectP1P2),
                _ => Response::status(StatusWord::FileNotFound),
            },
            (0x00, 0xB2) => Response::status(StatusWord::CommandNotAllowedNoCurrentEf),
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }

    /// SELECT of the application: FCI, with 6283 when the application is blocked.
    pub fn select(&mut self) -> Response {
        self.tx = Tx::default();
        let fci = template(
            t::FCI_TEMPLATE,
            &[
                tlv(t::DF_NAME, &super::PBOC_DEBIT_AID),
                template(
                    t::FCI_PROPRIETARY,
                    &[
                        tlv(t::APPLICATION_LABEL, self.profile.label.as_bytes()),
                        tlv(t::APPLICATION_PRIORITY, &[0x01]),
                        tlv(t::PDOL, &dol::encode(&pdol())),
                        tlv(t::LANGUAGE_PREFERENCE, b"zhen"),
                        tlv(t::ISSUER_CODE_TABLE, &[0x01]),
                        tlv(
                            t::FCI_ISSUER_DISCRETIONARY,
                            &tlv(t::LOG_ENTRY, &[0x0B, 0x0A]),
                        ),
                    ],
                ),
            ],
        );
        let sw = if self.blocked {
            StatusWord::SelectedFileInvalidated
        } else {
            StatusWord::Success
        };
        Response { data: fci, sw }
    }

    /// Handles one command while the application is selected.
    pub fn process(&mut self, cmd: &Command, _case: Case) -> Response {
        let r = match (cmd.cla, cmd.ins) {
            (0x80, 0xA8) => self.gpo(cmd),
            (0x00, 0xB2) => self.read_record(cmd),
            (0x80, 0xCA) => self.get_data(cmd),
            (0x00, 0x20) => self.verify(cmd),
            (0x80, 0xAE) => self.generate_ac(cmd),
            (0x00, 0x82) => self.external_authenticate(cmd),
            (0x84, 0x1E | 0x18 | 0x24) => self.script(cmd),
            (0x00, 0xA4) => Err(StatusWord::FileNotFound),
            (_, 0xA8 | 0xB2 | 0xCA | 0x20 | 0xAE | 0x82 | 0x1E | 0x18 | 0x24) => {
                Err(StatusWord::ClaNotSupported)
            }
            _ => Err(StatusWord::InsNotSupported),
        };
        r.unwrap_or_else(Response::status)
    }

    fn keys(&self, alg: CardAlgorithm) -> Option<&PbocKeys> {
        match alg {
            CardAlgorithm::Tdes => self.profile.keys_tdes.as_ref(),
            CardAlgorithm::Sm4 => self.profile.keys_sm4.as_ref(),
        }
    }

    fn gpo(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        if (cmd.p1, cmd.p2) != (0, 0) {
            return Err(StatusWord::IncorrectP1P2);
        }
        let entries = pdol();
        let data = match cmd.data.as_slice() {
            [0x83, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
            _ => return Err(StatusWord::WrongLength),
        };
        let values = dol::split(&entries, data).map_err(|_| StatusWord::WrongLength)?;
        let terminal_sm = values
            .iter()
            .any(|(tag, v)| *tag == t::SM_ALGORITHM_SUPPORT && *v == [0x01]);
        let alg = if terminal_sm && self.profile.keys_sm4.is_some() {
            CardAlgorithm::Sm4
        } else if self.profile.keys_tdes.is_some() {
            CardAlgorithm::Tdes
        } else {
            return Err(StatusWord::ConditionsNotSatisfied);
        };
        if self.atc == u16::MAX {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        self.atc += 1;
        self.tx = Tx {
            alg: Some(alg),
            cvr: [0x03, 0, 0, 0],
            ..Tx::default()
        };
        Ok(Response::ok(template(
            t::RESPONSE_FORMAT_2,
            &[tlv(t::AIP, &AIP), tlv(t::AFL, &AFL)],
        )))
    }

    fn read_record(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        if cmd.p2 & 0x07 != 0x04 || cmd.p1 == 0 {
            return Err(StatusWord::IncorrectP1P2);
        }
        let records = match cmd.p2 >> 3 {
            1 => &self.sfi1,
            2 => &self.sfi2,
            _ => return Err(StatusWord::FileNotFound),
        };
        let rec = records
            .get(usize::from(cmd.p1) - 1)
            .ok_or(StatusWord::RecordNotFound)?;
        Ok(Response::ok(rec.clone()))
    }

    fn get_data(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        let tag = u32::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
        let value = match tag {
            t::ATC => self.atc.to_be_bytes().to_vec(),
            t::LAST_ONLINE_ATC => self.last_online_atc.to_be_bytes().to_vec(),
            t::PIN_TRY_COUNTER => vec![self.pin_tries_left],
            _ => return Err(StatusWord::ReferencedDataNotFound),
        };
        Ok(Response::ok(tlv(tag, &value)))
    }

    fn verify(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        if (cmd.p1, cmd.p2) != (0x00, 0x80) {
            return Err(StatusWord::IncorrectP1P2);
        }
        if cmd.data.len() != 8 {
            return Err(StatusWord::WrongLength);
        }
        if self.pin_tries_left == 0 {
            return Err(StatusWord::AuthenticationMethodBlocked);
        }
        // Plaintext offline PIN block (EMV Book 3 §6.5.12): 2L PPPP… FF.
        let len = usize::from(cmd.data[0] & 0x0F);
        if cmd.data[0] >> 4 != 2 || !(4..=12).contains(&len) {
            return Err(StatusWord::IncorrectData);
        }
        let pin = super::ssse::pin_from_bcd(&cmd.data[1..])
            .filter(|p| p.len() == len)
            .ok_or(StatusWord::IncorrectData)?;
        self.tx.cvr[1] |= 0x04;
        if pin.ct_eq(&self.pin) {
            self.pin_tries_left = self.profile.pin_tries_max;
            return Ok(Response::status(StatusWord::Success));
        }
        self.tx.cvr[1] |= 0x02;
        self.pin_tries_left -= 1;
        Err(match self.pin_tries_left {
            0 => StatusWord::AuthenticationMethodBlocked,
            n => StatusWord::VerifyFailed { tries_left: n },
        })
    }

    fn session_key(&self, alg: CardAlgorithm) -> Result<cc::CardKey, StatusWord> {
        let keys = self.keys(alg).ok_or(StatusWord::ConditionsNotSatisfied)?;
        Ok(cc::derive_ac_session_key(
            alg,
            &keys.mk_ac,
            self.atc.to_be_bytes(),
        ))
    }

    fn generate_ac(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        let requested = cmd.p1 & 0xC0;
        if requested == 0xC0 || cmd.p1 & 0x2F != 0 || cmd.p2 != 0 {
            return Err(StatusWord::IncorrectP1P2);
        }
        let alg = self.tx.alg.ok_or(StatusWord::ConditionsNotSatisfied)?;
        let (dol_entries, second) = match (self.tx.first, self.tx.second_done) {
            (None, _) => (cdol1(), false),
            (Some(first), false) if first.cid == cid::ARQC => (cdol2(), true),
            _ => return Err(StatusWord::ConditionsNotSatisfied),
        };
        let values = dol::split(&dol_entries, &cmd.data).map_err(|_| StatusWord::WrongLength)?;
        let value = |tag| values.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
        let cid = if second {
            let approved = matches!(
                value(t::AUTHORISATION_RESPONSE_CODE),
                Some(b"00" | b"10" | b"11")
            );
            let cid = if requested == cid::TC && approved && self.tx.issuer_auth == Some(true) {
                cid::TC
            } else {
                cid::AAC
            };
            self.tx.cvr[1] = (self.tx.cvr[1] & 0x3F) | if cid == cid::TC { 0x40 } else { 0x00 };
            if self.tx.issuer_auth == Some(false) {
                self.tx.cvr[1] |= 0x08;
            }
            self.tx.second_done = true;
            if cid == cid::TC {
                self.last_online_atc = self.atc;
            }
            cid
        } else {
            let cid = if self.blocked || requested == cid::AAC {
                cid::AAC
            } else {
                cid::ARQC
            };
            // CVR byte 2: b8-7 = 10 (second GAC not yet requested), b6-5 = first AC type.
            self.tx.cvr[1] |= 0x80 | if cid == cid::ARQC { 0x20 } else { 0x00 };
            // CVR byte 3, b7: the offline PIN try counter is exhausted, so the issuer knows.
            if self.pin_tries_left == 0 {
                self.tx.cvr[2] |= emv::CVR3_PIN_TRY_LIMIT_EXCEEDED;
            }
            cid
        };
        let atc = self.atc.to_be_bytes();
        let input = emv::ac_input(value, AIP, atc, self.tx.cvr);
        let ac = cc::generate_ac(alg, &self.session_key(alg)?, &input);
        if !second {
            self.tx.first = Some(FirstAc { cid, ac });
        }
        let iad = Iad {
            dki: DKI,
            cvn: CVN,
            cvr: self.tx.cvr,
            algorithm: alg,
        };
        Ok(Response::ok(template(
            t::RESPONSE_FORMAT_2,
            &[
                tlv(t::CID, &[cid]),
                tlv(t::ATC, &atc),
                tlv(t::APPLICATION_CRYPTOGRAM, &ac),
                tlv(t::IAD, &iad.to_bytes()),
            ],
        )))
    }

    fn external_authenticate(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        let alg = self.tx.alg.ok_or(StatusWord::ConditionsNotSatisfied)?;
        let first = match self.tx.first {
            Some(f)
                if f.cid == cid::ARQC && !self.tx.second_done && self.tx.issuer_auth.is_none() =>
            {
                f
            }
            _ => return Err(StatusWord::ConditionsNotSatisfied),
        };
        let [a0, a1, a2, a3, a4, a5, a6, a7, arc0, arc1] = cmd.data[..] else {
            return Err(StatusWord::WrongLength);
        };
        let expected = cc::arpc_method_1(alg, &self.session_key(alg)?, &first.ac, [arc0, arc1]);
        let ok = super::ssse::ct_eq(&expected, &[a0, a1, a2, a3, a4, a5, a6, a7]);
        self.tx.issuer_auth = Some(ok);
        if ok {
            Ok(Response::status(StatusWord::Success))
        } else {
            Err(StatusWord::AuthenticationFailed)
        }
    }

    fn script(&mut self, cmd: &Command) -> Result<Response, StatusWord> {
        let alg = self.tx.alg.ok_or(StatusWord::ConditionsNotSatisfied)?;
        let first = self.tx.first.ok_or(StatusWord::ConditionsNotSatisfied)?;
        if cmd.data.len() < 4 || cmd.data.len() > 255 {
            return Err(StatusWord::SecureMessagingDataMissing);
        }
        let atc = self.atc.to_be_bytes();
        let (body, mac) = cmd.data.split_at(cmd.data.len() - 4);
        let header = [cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data.len() as u8];
        let (expected, sk_smc) = {
            let keys = self.keys(alg).ok_or(StatusWord::ConditionsNotSatisfied)?;
            let sk_smi = cc::derive_sm_session_key(alg, &keys.mk_smi, atc, first.ac);
            let sk_smc = cc::derive_sm_session_key(alg, &keys.mk_smc, atc, first.ac);
            (
                cc::script_mac(alg, &sk_smi, header, atc, &first.ac, body),
                sk_smc,
            )
        };
        // CVR byte 4, b8-5: issuer script commands processed (saturating at 15); b4: failed.
        if self.tx.cvr[3] < 0xF0 {
            self.tx.cvr[3] += emv::CVR4_SCRIPT_COUNT_UNIT;
        }
        if !super::ssse::ct_eq(&expected, mac) {
            self.tx.cvr[3] |= emv::CVR4_SCRIPT_FAILED;
            return Err(StatusWord::SecureMessagingDataIncorrect);
        }
        match (cmd.ins, cmd.p1, cmd.p2, body.len()) {
            (0x1E, 0, 0, 0) => self.blocked = true,
            (0x18, 0, 0, 0) => self.blocked = false,
            (0x24, 0, 0, 0) => self.pin_tries_left = self.profile.pin_tries_max,
            (0x24, 0, 2, 16) => {
                let pin = cc::decrypt_pin_change(alg, &sk_smc, body)
                    .map_err(|_| StatusWord::IncorrectData)?;
                self.pin = pin;
                self.pin_tries_left = self.profile.pin_tries_max;
            }
            (_, _, _, 0) => return Err(StatusWord::IncorrectP1P2),
            _ => return Err(StatusWord::WrongLength),
        }
        Ok(Response::status(StatusWord::Success))
    }
}
