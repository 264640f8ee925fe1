//! Kiosk-side card flows: what a hospital or job-centre kiosk runs against the card, over any
//! [`CardChannel`] (PC/SC, in-memory, relay). [`ssse`] holds the social-security flows (read card
//! basics, PIN, online card authentication), [`pboc`] the debit payment up to the ARQC and the
//! completion with the issuer's answer, [`identity`] the job-centre identity session with the
//! switch (ISO 8583, `schemas/iso8583/ssc87.md`).

pub mod identity;
pub mod pboc;
pub mod ssse;

use crate::apdu::{Command, Response};
use crate::channel::{CardChannel, ChannelError};
use crate::sw::StatusWord;

/// Why a kiosk flow stopped. Never carries PINs, keys or full PANs.
#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("{command} refused by the card: {sw}")]
    Card {
        command: &'static str,
        sw: StatusWord,
    },
    #[error("wrong PIN, {tries_left} tries left")]
    PinWrong { tries_left: u8 },
    #[error("PIN blocked")]
    PinBlocked,
    #[error("the card has no application this kiosk supports")]
    NoApplication,
    #[error("the payment application is blocked")]
    ApplicationBlocked,
    #[error("card data malformed: {0}")]
    CardData(String),
    #[error("the back end rejected the card's authentication")]
    CardNotAuthentic,
    #[error("the card rejected the back end's authentication")]
    BackendNotAuthentic,
    #[error("back end: {0}")]
    Backend(String),
}

/// Sends `cmd` and returns the response, whatever its status word.
pub(crate) fn send<C: CardChannel + ?Sized>(
    ch: &mut C,
    cmd: Command,
) -> Result<Response, KioskError> {
    Ok(ch.transmit(&cmd)?)
}

/// Sends `cmd` and requires `9000`.
pub(crate) fn send_ok<C: CardChannel + ?Sized>(
    ch: &mut C,
    name: &'static str,
    cmd: Command,
) -> Result<Vec<u8>, KioskError> {
    let r = send(ch, cmd)?;
    if r.sw == StatusWord::Success {
        Ok(r.data)
    } else {
        Err(KioskError::Card {
            command: name,
            sw: r.sw,
        })
    }
}

/// SELECT by DF name, first occurrence, FCI requested (ISO/IEC 7816-4 §11.2.2).
pub fn select_by_name(name: &[u8]) -> Command {
    Command::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(name)
        .with_ne(256)
}
