//! The virtual third-generation social-security card: one chip, two applications (SSSE and PBOC
//! 3.0 debit), answering raw APDUs exactly as the card OS of a real card would, including the
//! status words for malformed input. Served to pcscd through vpcd ([`crate::vpcd`]) or used
//! directly through [`crate::channel::memory::MemoryChannel`].
//!
//! This module is the card OS: APDU parsing (`6700` on inconsistent lengths), class checks
//! (`6E00`, `6881`), command chaining (ISO/IEC 7816-4 §5.4.1), response length handling (`61xx`
//! with GET RESPONSE, `6Cxx` for idempotent commands), application selection, and the power
//! state. The applications live in [`ssse`] and [`pboc`].

pub mod pboc;
pub mod ssse;

use crate::apdu::{Case, Command, Response};
use crate::perso::CardProfile;
use crate::sw::StatusWord;

/// Largest data field accepted across a command chain.
pub const CHAIN_DATA_MAX: usize = 4096;

/// SSSE DDF name "sx1.sh.社会保障" (GBK), 社会保障(个人)卡规范.
pub const SSSE_AID: [u8; 15] = [
    0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF,
];
/// PBOC debit AID (CUP RID A000000333, PIX 010101).
pub const PBOC_DEBIT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01];
/// Contact payment system environment (EMV Book 1 §12.2.2).
pub const PSE_NAME: &[u8] = b"1PAY.SYS.DDF01";
/// Proximity payment system environment.
pub const PPSE_NAME: &[u8] = b"2PAY.SYS.DDF01";

/// Historical bytes of the virtual card's ATR ("SSC3.0PBOC").
const HISTORICAL: &[u8; 10] = b"SSC3.0PBOC";

/// The ATR: TS 3B, T0 8A (TD1 present, 10 historical bytes), TD1 80, TD2 01 (T=1), historical
/// bytes, TCK (XOR of T0..last byte, ISO/IEC 7816-3 §8.2.5).
pub fn default_atr() -> Vec<u8> {
    let mut atr = vec![0x3B, 0x80 | HISTORICAL.len() as u8, 0x80, 0x01];
    atr.extend_from_slice(HISTORICAL);
    let tck = atr[1..].iter().fold(0u8, |a, b| a ^ b);
    atr.push(tck);
    atr
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selected {
    Mf,
    Pse,
    Ppse,
    Ssse,
    Pboc,
}

/// Data held back for GET RESPONSE after a `61xx`.
struct Pending {
    data: Vec<u8>,
}

/// A powered (or not) virtual card.
pub struct VirtualCard {
    atr: Vec<u8>,
    powered: bool,
    selected: Selected,
    ssse: ssse::SsseApplet,
    pboc: pboc::PbocApplet,
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("atr", &hex::encode_upper(&self.atr))
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// A card personalised with `profile`, powered off.
    pub fn new(profile: CardProfile) -> Self {
        let CardProfile { ssse, pboc } = profile;
        Self {
            atr: default_atr(),
            powered: false,
            selected: Selected::Mf,
            ssse: ssse::SsseApplet::new(ssse),
            pboc: pboc::PbocApplet::new(pboc),
            chain: None,
            pending: None,
        }
    }

    /// The answer to reset.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// Cold reset: powers on with a clean security state, returns the ATR.
    pub fn power_on(&mut self) -> &[u8] {
        self.clear_volatile();
        self.powered = true;
        &self.atr
    }

    /// Powers off: every volatile state (selection, PIN verified, authentications, transaction)
    /// is lost, as on a real chip. Persistent state (PIN try counters, ATC, blocks) remains.
    pub fn power_off(&mut self) {
        self.clear_volatile();
        self.powered = false;
    }

    /// Warm reset.
    pub fn reset(&mut self) -> &[u8] {
        self.power_on()
    }

    /// Whether the card is powered.
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    fn clear_volatile(&mut self) {
        self.selected = Selected::Mf;
        self.ssse.deselect();
        self.pboc.deselect();
        self.chain = None;
        self.pending = None;
    }

    /// Current ATC of the PBOC application (for tests and the demo).
    pub fn pboc_atc(&self) -> u16 {
        self.pboc.atc()
    }

    /// Processes one command APDU and returns the response APDU bytes. Never panics.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        if !self.powered {
            return StatusWord::NoPreciseDiagnosis.to_bytes().to_vec();
        }
        let (cmd, case) = match Command::parse(apdu) {
            Ok(parsed) => parsed,
            Err(_) => return StatusWord::WrongLength.to_bytes().to_vec(),
        };
        self.dispatch(cmd, case).to_bytes()
    }

    fn dispatch(&mut self, mut cmd: Command, case: Case) -> Response {
        // Anything but GET RESPONSE discards held-back response data.
        let pending = self.pending.take();
        if cmd.cla == 0xFF || cmd.cla & 0x60 != 0 {
            return Response::status(StatusWord::ClaNotSupported);
        }
        if cmd.cla & 0x03 != 0 {
            return Response::status(StatusWord::LogicalChannelNotSupported);
        }
        if cmd.ins == 0xC0 && cmd.cla & 0x80 == 0 {
            return self.get_response(&cmd, pending);
        }
        if cmd.cla & crate::apdu::CLA_CHAINING != 0 {
            return self.chain_part(cmd);
        }
        if let Some((ins, p1, p2, mut data)) = self.chain.take() {
            if (ins, p1, p2) != (cmd.ins, cmd.p1, cmd.p2) {
                return Response::status(StatusWord::LastCommandOfChainExpected);
            }
            data.append(&mut cmd.data);
            if data.len() > CHAIN_DATA_MAX {
                return Response::status(StatusWord::NotEnoughMemory);
            }
            cmd.data = data;
        }
        let idempotent = matches!(cmd.ins, 0xA4 | 0xB2 | 0xCA);
        let response = self.execute(&cmd, case);
        self.fit_response(response, cmd.ne, idempotent)
    }

    fn chain_part(&mut self, cmd: Command) -> Response {
        let entry = self
            .chain
            .get_or_insert_with(|| (cmd.ins, cmd.p1, cmd.p2, Vec::new()));
        if (entry.0, entry.1, entry.2) != (cmd.ins, cmd.p1, cmd.p2) {
            self.chain = None;
            return Response::status(StatusWord::LastCommandOfChainExpected);
        }
        entry.3.extend_from_slice(&cmd.data);
        if entry.3.len() > CHAIN_DATA_MAX {
            self.chain = None;
            return Response::status(StatusWord::NotEnoughMemory);
        }
        Response::status(StatusWord::Success)
    }

    fn get_response(&mut self, cmd: &Command, pending: Option<Pending>) -> Response {
        let Some(Pending { mut data }) = pending else {
            return Response::status(StatusWord::ConditionsNotSatisfied);
        };
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        let ne = cmd.ne.unwrap_or(256);
        if ne >= data.len() {
            return Response::ok(data);
        }
        let rest = data.split_off(ne);
        self.hold(rest, data)
    }

    fn hold(&mut self, rest: Vec<u8>, now: Vec<u8>) -> Response {
        let announce = if rest.len() >= 256 {
            0
        } else {
            rest.len() as u8
        };
        self.pending = Some(Pending { data: rest });
        Response {
            data: now,
            sw: StatusWord::BytesAvailable(announce),
        }
    }

    /// ISO/IEC 7816-4 §5.3.4: data longer than Ne, or data for a command sent without Le (the
    /// T=0 form of case 4), is announced with `61xx`; a short Le on an idempotent command gets
    /// `6Cxx` so the terminal resends with the exact length (EMV Book 1 §9.3.1.1).
    fn fit_response(&mut self, mut r: Response, ne: Option<usize>, idempotent: bool) -> Response {
        if r.data.is_empty() {
            return r;
        }
        let sw = r.sw;
        let ne = match ne {
            None => 0,
            Some(ne) if ne >= r.data.len() => return r,
            Some(ne) => ne,
        };
        if idempotent && ne > 0 && r.data.len() <= 256 && sw == StatusWord::Success {
            return Response::status(StatusWord::WrongLe(r.data.len() as u8));
        }
        let rest = r.data.split_off(ne);
        self.hold(rest, r.data)
    }

    fn execute(&mut self, cmd: &Command, case: Case) -> Response {
        if cmd.ins == 0xA4 && cmd.cla & 0x80 == 0 && cmd.p1 == 0x04 {
            return self.select_by_name(cmd);
        }
        if cmd.ins == 0xA4 && cmd.cla & 0x80 == 0 && cmd.p1 == 0x00 && cmd.data == [0x3F, 0x00] {
            self.switch_to(Selected::Mf);
            return Response::status(StatusWord::Success);
        }
        match self.selected {
            Selected::Ssse => self.ssse.process(cmd, case),
            Selected::Pboc => self.pboc.process(cmd, case),
            Selected::Pse | Selected::Ppse => self
                .pboc
                .process_directory(cmd, self.selected == Selected::Pse),
            Selected::Mf => match cmd.ins {
                0xA4 => Response::status(StatusWord::FileNotFound),
                0x84 => self.ssse.process(cmd, case),
                0xB2 | 0xB0 | 0x20 | 0x88 | 0x82 => {
                    Response::status(StatusWord::CommandNotAllowedNoCurrentEf)
                }
                _ => Response::status(StatusWord::InsNotSupported),
            },
        }
    }

    fn switch_to(&mut self, next: Selected) {
        if self.selected != next {
            match self.selected {
                Selected::Ssse => self.ssse.deselect(),
                Selected::Pboc => self.pboc.deselect(),
                _ => {}
            }
        }
        self.selected = next;
    }

    fn select_by_name(&mut self, cmd: &Command) -> Response {
        let name = cmd.data.as_slice();
        if name.is_empty() || name.len() > 16 {
            return Response::status(StatusWord::WrongLength);
        }
        if !matches!(cmd.p2, 0x00 | 0x0C | 0x02) {
            return Response::status(StatusWord::IncorrectP1P2);
        }
        // P2 = 02 asks for the next occurrence: this card has only one of each.
        let next_occurrence = cmd.p2 == 0x02;
        let target = if name == PSE_NAME {
            Selected::Pse
        } else if name == PPSE_NAME {
            Selected::Ppse
        } else if name == SSSE_AID {
            Selected::Ssse
        } else if name.len() >= 5 && PBOC_DEBIT_AID.starts_with(name) {
            Selected::Pboc
        } else {
            return Response::status(StatusWord::FileNotFound);
        };
        if next_occurrence {
            return Response::status(StatusWord::FileNotFound);
        }
        self.switch_to(target);
        let fci = match target {
            Selected::Ssse => self.ssse.select(),
            Selected::Pboc => self.pboc.select(),
            Selected::Pse => self.pboc.pse_fci(true),
            Selected::Ppse => self.pboc.pse_fci(false),
            Selected::Mf => Response::status(StatusWord::Success),
        };
        if cmd.p2 == 0x0C {
            Response::status(fci.sw)
        } else {
            fci
        }
    }
}
