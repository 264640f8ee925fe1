//! The SSSE (social-security) application of the virtual card, after 社会保障(个人)卡规范:
//! the DDF "sx1.sh.社会保障" holding EF05 (card data) and EF06 (cardholder data), whose records
//! are read by identifier (`00 B2 id P2`, P2 b3–b1 = 000, ISO/IEC 7816-4 §11.3.3), and the
//! application directories DF01–DF04, each with a record file EF15 readable after PIN
//! verification and writable after EXTERNAL AUTHENTICATE in that DF.
//!
//! Commands: SELECT (FID), READ RECORD, UPDATE RECORD (`00 DC`, after EXTERNAL AUTHENTICATE in
//! the DF), UPDATE RECORD with secure messaging (`04 DC`, EF06 only, record ‖ MAC under the
//! line-protection key), VERIFY (`00 20 00 00`, BCD PIN), CHANGE PIN (`80 5E 01 00`, old ‖ FF ‖
//! new), PIN UNBLOCK (`84 2C 00 00`, new PIN ‖ MAC under the PIN-unblock key), GET CHALLENGE,
//! INTERNAL AUTHENTICATE and EXTERNAL AUTHENTICATE with the per-card keys (3DES or SM4,
//! hsm-sim's `card_crypto`).
//!
//! PIN UNBLOCK MAC ("line protection", this project's convention):
//! `card_crypto::mac(alg, K_pin_unblock, challenge ‖ 84 2C 00 00 Lc ‖ new PIN)`, leftmost 4 bytes,
//! where `challenge` is the card's last GET CHALLENGE answer; defined once, for host and card, in
//! [`hsm_sim::card_crypto::ssse_pin_unblock_mac`].
//!
//! EF06 UPDATE RECORD with secure messaging (the back end rewrites a cardholder record through
//! the card relay): `04 DC P1 P2 Lc ‖ record ‖ MAC`, the record as SIMPLE-TLV (identifier ‖
//! length ‖ value, the value of the record's fixed length), the MAC of
//! [`hsm_sim::card_crypto::ssse_update_record_mac`] after the card's last GET CHALLENGE (used
//! once, whatever the outcome). A MAC that does not verify is refused `6988` (ISO/IEC 7816-4
//! §5.6, incorrect secure messaging data objects) and changes nothing; no challenge is `6984`.

use hsm_sim::card_crypto::{self as cc, CardAlgorithm, CardKey, ClearPin};
use rand::RngCore;

use crate::apdu::{Case, Command, Response};
use crate::perso::SsseProfile;
use crate::sw::StatusWord;

/// FID of EF05 (card data).
pub const FID_EF05: u16 = 0xEF05;
/// FID of EF06 (cardholder data).
pub const FID_EF06: u16 = 0xEF06;
/// FID of the record file inside each of DF01–DF04.
pub const FID_EF15: u16 = 0xEF15;
/// Records in each DF's EF15 and their size (application data, zero at issue).
pub const DF_RECORDS: u8 = 4;
/// Size of each DF record value.
pub const DF_RECORD_LEN: usize = 16;

/// Where the SSSE file pointer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Ddf,
    /// DF01..DF04 as 1..=4.
    Df(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ef {
    Ef05,
    Ef06,
    Ef15,
}

#[derive(Default)]
struct Session {
    dir: Option<Dir>,
    ef: Option<Ef>,
    pin_verified: bool,
    external_auth: Option<Dir>,
    challenge: Option<Vec<u8>>,
}

/// One record: identifier and fixed-length value.
type Record = (u8, Vec<u8>);

/// The SSSE application: personalised data, persistent counters and the volatile session.
pub struct SsseApplet {
    algorithm: CardAlgorithm,
    ef05: Vec<Record>,
    ef06: Vec<Record>,
    dfs: [Vec<Record>; 4],
    pin: ClearPin,
    pin_tries_max: u8,
    pin_tries_left: u8,
    k_internal: CardKey,
    k_external: CardKey,
    k_pin_unblock: CardKey,
    k_line_protection: CardKey,
    session: Session,
}

/// Decodes a BCD PIN field (digits, `F` filler allowed only at the end) to a [`ClearPin`].
pub fn pin_from_bcd(bytes: &[u8]) -> Option<ClearPin> {
    let mut digits = String::with_capacity(bytes.len() * 2);
    let mut ended = false;
    for nib in bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match nib {
            0..=9 if !ended => digits.push(char::from(b'0' + nib)),
            0x0F => ended = true,
            _ => return None,
        }
    }
    let pin = ClearPin::new(&digits).ok();
    zeroize::Zeroize::zeroize(&mut digits);
    pin
}

impl SsseApplet {
    /// Issues the application from its profile.
    pub fn new(p: SsseProfile) -> Self {
        let empty_df = || {
            (1..=DF_RECORDS)
                .map(|id| (id, vec![0u8; DF_RECORD_LEN]))
                .collect::<Vec<_>>()
        };
        Self {
            algorithm: p.algorithm,
            ef05: p.ef05,
            ef06: p.ef06,
            dfs: [empty_df(), empty_df(), empty_df(), empty_df()],
            pin_tries_left: p.pin_tries_max,
            pin_tries_max: p.pin_tries_max,
            pin: p.pin,
            k_internal: p.k_internal_auth,
            k_external: p.k_external_auth,
            k_pin_unblock: p.k_pin_unblock,
            k_line_protection: p.k_line_protection,
            session: Session::default(),
        }
    }

    /// Loses the security state (deselected, reset, power off).
    pub fn deselect(&mut self) {
        self.session = Session::default();
    }

    /// SELECT by DF name answered with the FCI (6F: 84 DF name, A5 proprietary).
    pub fn select(&mut self) -> Response {
        self.session = Session {
            dir: Some(Dir::Ddf),
            ..Session::default()
        };
        let fci = crate::tlv::encode_constructed(
            crate::tags::FCI_TEMPLATE,
            &[
                crate::tlv::encode(crate::tags::DF_NAME, &super::SSSE_AID),
                crate::tlv::encode(
                    crate::tags::FCI_PROPRIETARY,
                    &crate::tlv::encode(0x9F08, &[0x03, 0x00]),
                ),
            ],
        );
        Response::ok(fci)
    }

    /// Handles one command while the SSSE application is selected.
    pub fn process(&mut self, cmd: &Command, case: Case) -> Response {
        let sw = |s| Response::status(s);
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => self.select_fid(cmd),
            (0x00, 0xB2) => self.read_record(cmd),
            (0x00, 0xDC) => self.update_record(cmd),
            (0x04, 0xDC) => self.update_record_sm(cmd),
            (0x00, 0x20) => self.verify(cmd, case),
            (0x80, 0x5E) => self.change_pin(cmd),
            (0x84, 0x2C) => self.pin_unblock(cmd),
            (0x00, 0x84) => self.get_challenge(cmd),
            (0x00, 0x88) => self.internal_authenticate(cmd),
            (0x00, 0x82) => self.external_authenticate(cmd),
            (_, 0xA4 | 0xB2 | 0xDC | 0x20 | 0x5E | 0x2C | 0x84 | 0x88 | 0x82) => {
                sw(StatusWord::ClaNotSupported)
            }
            _ => sw(StatusWord::InsNotSupported),
        }
    }

    fn select_fid(&mut self, cmd: &Command) -> Response {
        let dir = self.session.dir.unwrap_or(Dir::Ddf);
        if cmd.p1 == 0x03 {
            self.session.dir = Some(Dir::Ddf);
            self.session.ef = None;
            return Response::status(StatusWord::Success);
        }
        if !matches!(cmd.p1, 0x00..=0x02) || !matches!(cmd.p2, 0x00 | 0x0C) {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        let [hi, lo] = cmd.data[..] else {
            return Response::status(StatusWord::WrongLength);
        };
        let fid = u16::from_be_bytes([hi, lo]);
        match (dir, fid) {
            (Dir::Ddf, FID_EF05) => self.session.ef = Some(Ef::Ef05),
            (Dir::Ddf, FID_EF06) => self.session.ef = Some(Ef::Ef06),
            (Dir::Df(_), FID_EF15) => self.session.ef = Some(Ef::Ef15),
            (_, 0xDF01..=0xDF04) => {
                self.session.dir = Some(Dir::Df((fid & 0x0F) as u8));
                self.session.ef = None;
            }
            _ => return Response::status(StatusWord::FileNotFound),
        }
        Response::status(StatusWord::Success)
    }

    /// Resolves P2's SFI (or the current EF) to a file and checks read/write access.
    fn file(&self, p2: u8) -> Result<Ef, StatusWord> {
        let dir = self.session.dir.unwrap_or(Dir::Ddf);
        match (p2 >> 3, dir) {
            (0, _) => self
                .session
                .ef
                .ok_or(StatusWord::CommandNotAllowedNoCurrentEf),
            (0x05, Dir::Ddf) => Ok(Ef::Ef05),
            (0x06, Dir::Ddf) => Ok(Ef::Ef06),
            (0x15, Dir::Df(_)) => Ok(Ef::Ef15),
            _ => Err(StatusWord::FileNotFound),
        }
    }

    fn records(&mut self, ef: Ef) -> &mut Vec<Record> {
        match (ef, self.session.dir) {
            (Ef::Ef05, _) => &mut self.ef05,
            (Ef::Ef06, _) => &mut self.ef06,
            (Ef::Ef15, Some(Dir::Df(n))) => &mut self.dfs[usize::from(n.clamp(1, 4) - 1)],
            (Ef::Ef15, _) => &mut self.dfs[0],
        }
    }

    fn locate(records: &[Record], p1: u8, mode: u8) -> Result<usize, StatusWord> {
        match mode {
            // b3-b1 = 100: record number P1; 000: first record with identifier P1.
            0b100 if p1 >= 1 && usize::from(p1) <= records.len() => Ok(usize::from(p1) - 1),
            0b100 if p1 == 0 => Err(StatusWord::IncorrectP1P2),
            0b100 => Err(StatusWord::RecordNotFound),
            0b000 => records
                .iter()
                .position(|(id, _)| *id == p1)
                .ok_or(StatusWord::RecordNotFound),
            _ => Err(StatusWord::IncorrectP1P2),
        }
    }

    fn read_record(&mut self, cmd: &Command) -> Response {
        if !cmd.data.is_empty() {
            return Response::status(StatusWord::WrongLength);
        }
        let result = self.file(cmd.p2).and_then(|ef| {
            if ef == Ef::Ef15 && !self.session.pin_verified {
                return Err(StatusWord::SecurityStatusNotSatisfied);
            }
            let records = self.records(ef);
            let i = Self::locate(records, cmd.p1, cmd.p2 & 0x07)?;
            let (id, value) = &records[i];
            let mut out = vec![*id, value.len() as u8];
            out.extend_from_slice(value);
            Ok(out)
        });
        match result {
            Ok(data) => Response::ok(data),
            Err(sw) => Response::status(sw),
        }
    }

    fn update_record(&mut self, cmd: &Command) -> Response {
        let dir = self.session.dir.unwrap_or(Dir::Ddf);
        let result = self.file(cmd.p2).and_then(|ef| {
            if self.session.external_auth != Some(dir) {
                return Err(StatusWord::SecurityStatusNotSatisfied);
            }
            let records = self.records(ef);
            let i = Self::locate(records, cmd.p1, cmd.p2 & 0x07)?;
            let (id, value) = &mut records[i];
            // The data field is the whole record as SIMPLE-TLV: id, length, value.
            match cmd.data.as_slice() {
                [rid, len, rest @ ..]
                    if *rid == *id
                        && usize::from(*len) == rest.len()
                        && rest.len() == value.len() =>
                {
                    value.copy_from_slice(rest);
                    Ok(())
                }
                [rid, ..] if *rid != *id => Err(StatusWord::IncorrectData),
                _ => Err(StatusWord::WrongLength),
            }
        });
        Response::status(result.err().unwrap_or(StatusWord::Success))
    }

    /// `04 DC P1 P2 Lc ‖ record ‖ MAC`: an EF06 record rewritten under line protection.
    fn update_record_sm(&mut self, cmd: &Command) -> Response {
        let Some(challenge) = self.session.challenge.take() else {
            return Response::status(StatusWord::ReferenceDataNotUsable);
        };
        let result = self.file(cmd.p2).and_then(|ef| {
            if ef != Ef::Ef06 {
                return Err(StatusWord::SecurityStatusNotSatisfied);
            }
            let at = cmd
                .data
                .len()
                .checked_sub(4)
                .filter(|n| *n > 0)
                .ok_or(StatusWord::WrongLength)?;
            let (record, mac) = cmd.data.split_at(at);
            let expected = cc::ssse_update_record_mac(
                self.algorithm,
                &self.k_line_protection,
                &challenge,
                cmd.p1,
                cmd.p2,
                record,
            )
            .map_err(|_| StatusWord::WrongLength)?;
            if !ct_eq(&expected, mac) {
                return Err(StatusWord::SecureMessagingDataIncorrect);
            }
            let records = self.records(ef);
            let i = Self::locate(records, cmd.p1, cmd.p2 & 0x07)?;
            let (id, value) = &mut records[i];
            match record {
                [rid, len, rest @ ..]
                    if *rid == *id
                        && usize::from(*len) == rest.len()
                        && rest.len() == value.len() =>
                {
                    value.copy_from_slice(rest);
                    Ok(())
                }
                [rid, ..] if *rid != *id => Err(StatusWord::IncorrectData),
                _ => Err(StatusWord::WrongLength),
            }
        });
        Response::status(result.err().unwrap_or(StatusWord::Success))
    }

    fn verify(&mut self, cmd: &Command, case: Case) -> Response {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        if self.pin_tries_left == 0 {
            return Response::status(StatusWord::AuthenticationMethodBlocked);
        }
        if matches!(case, Case::One | Case::TwoShort) && cmd.data.is_empty() {
            // ISO/IEC 7816-4 §11.5.6: VERIFY without data returns the retry counter.
            if self.session.pin_verified {
                return Response::status(StatusWord::Success);
            }
            return Response::status(StatusWord::VerifyFailed {
                tries_left: self.pin_tries_left,
            });
        }
        if !(2..=6).contains(&cmd.data.len()) {
            return Response::status(StatusWord::WrongLength);
        }
        let Some(pin) = pin_from_bcd(&cmd.data) else {
            return Response::status(StatusWord::IncorrectData);
        };
        self.check_pin(&pin)
    }

    fn check_pin(&mut self, pin: &ClearPin) -> Response {
        if pin.ct_eq(&self.pin) {
            self.pin_tries_left = self.pin_tries_max;
            self.session.pin_verified = true;
            Response::status(StatusWord::Success)
        } else {
            self.session.pin_verified = false;
            self.pin_tries_left = self.pin_tries_left.saturating_sub(1);
            if self.pin_tries_left == 0 {
                Response::status(StatusWord::AuthenticationMethodBlocked)
            } else {
                Response::status(StatusWord::VerifyFailed {
                    tries_left: self.pin_tries_left,
                })
            }
        }
    }

    fn change_pin(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x01 || cmd.p2 != 0x00 {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        if self.pin_tries_left == 0 {
            return Response::status(StatusWord::AuthenticationMethodBlocked);
        }
        let Some(sep) = cmd.data.iter().position(|b| *b == 0xFF) else {
            return Response::status(StatusWord::IncorrectData);
        };
        let (old, new) = (&cmd.data[..sep], &cmd.data[sep + 1..]);
        let (Some(old), Some(new)) = (pin_from_bcd(old), pin_from_bcd(new)) else {
            return Response::status(StatusWord::IncorrectData);
        };
        let r = self.check_pin(&old);
        if r.sw == StatusWord::Success {
            self.pin = new;
        }
        r
    }

    fn pin_unblock(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        let Some(challenge) = self.session.challenge.take() else {
            return Response::status(StatusWord::ReferenceDataNotUsable);
        };
        if !(6..=10).contains(&cmd.data.len()) {
            return Response::status(StatusWord::WrongLength);
        }
        let (pin_bcd, mac) = cmd.data.split_at(cmd.data.len() - 4);
        let Ok(expected) =
            cc::ssse_pin_unblock_mac(self.algorithm, &self.k_pin_unblock, &challenge, pin_bcd)
        else {
            return Response::status(StatusWord::WrongLength);
        };
        if !ct_eq(&expected, mac) {
            return Response::status(StatusWord::SecureMessagingDataIncorrect);
        }
        let Some(pin) = pin_from_bcd(pin_bcd) else {
            return Response::status(StatusWord::IncorrectData);
        };
        self.pin = pin;
        self.pin_tries_left = self.pin_tries_max;
        Response::status(StatusWord::Success)
    }

    fn get_challenge(&mut self, cmd: &Command) -> Response {
        let n = match cmd.ne {
            Some(n @ (4 | 8 | 16)) if cmd.data.is_empty() => n,
            _ => return Response::status(StatusWord::WrongLength),
        };
        let mut challenge = vec![0u8; n];
        rand::thread_rng().fill_bytes(&mut challenge);
        self.session.challenge = Some(challenge.clone());
        Response::ok(challenge)
    }

    fn internal_authenticate(&mut self, cmd: &Command) -> Response {
        match cc::ssse_internal_auth_response(self.algorithm, &self.k_internal, &cmd.data) {
            Ok(r) => Response::ok(r),
            Err(_) => Response::status(StatusWord::WrongLength),
        }
    }

    fn external_authenticate(&mut self, cmd: &Command) -> Response {
        let Some(challenge) = self.session.challenge.take() else {
            return Response::status(StatusWord::ReferenceDataNotUsable);
        };
        if cmd.data.len() != self.algorithm.block_len() {
            return Response::status(StatusWord::WrongLength);
        }
        if cc::verify_ssse_external_auth(self.algorithm, &self.k_external, &challenge, &cmd.data) {
            self.session.external_auth = Some(self.session.dir.unwrap_or(Dir::Ddf));
            Response::status(StatusWord::Success)
        } else {
            Response::status(StatusWord::AuthenticationFailed)
        }
    }
}

/// Constant-time comparison of two short byte strings.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
