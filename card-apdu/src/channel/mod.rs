//! Card channels: how a kiosk reaches a card, and the ISO 7816-4 procedure bytes handled once.
//!
//! A [`CardChannel`] moves raw APDU bytes ([`CardChannel::transmit_raw`]); PC/SC, the in-memory
//! virtual card and the TCP relay each implement only that. The provided method
//! [`CardChannel::transmit`] adds what every caller would otherwise repeat (ISO/IEC 7816-4
//! §5.3.4 and EMV Book 1 §9.3): `61xx` → GET RESPONSE until all data is collected, `6Cxx` →
//! resend with the right Le, and command chaining for data fields longer than 255 bytes.

pub mod memory;
pub mod pcsc;
pub mod relay;
pub mod secure_relay;

use crate::apdu::{ApduError, Command, Response, SHORT_NC_MAX};
use crate::sw::StatusWord;

/// Limit on GET RESPONSE rounds for one command (256 × 64 = 16 KiB of response data).
pub const GET_RESPONSE_ROUNDS_MAX: usize = 64;

/// Why a command could not be exchanged with the card (the card's own refusals are status words
/// in an `Ok(Response)`, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("malformed APDU: {0}")]
    Apdu(#[from] ApduError),
    #[error("PC/SC: {0}")]
    Pcsc(#[from] ::pcsc::Error),
    #[error("no reader named {0:?}")]
    NoSuchReader(String),
    #[error("no card in reader {0:?}")]
    NoCard(String),
    #[error("card was removed or reset; restart the flow from SELECT")]
    CardReset,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("relay protocol: {0}")]
    Relay(String),
    #[error("card returned more than {GET_RESPONSE_ROUNDS_MAX} GET RESPONSE rounds")]
    TooManyGetResponses,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// A connection to one card.
pub trait CardChannel {
    /// Sends one command APDU as bytes and returns the response bytes (data || SW1 SW2).
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError>;

    /// The card's answer to reset.
    fn atr(&mut self) -> Result<Vec<u8>, ChannelError>;

    /// Whether the card accepts extended-length APDUs; if not, long data is sent as a chain.
    fn supports_extended_length(&self) -> bool {
        false
    }

    /// Sends a command and returns its complete response, handling `61xx`, `6Cxx` and chaining.
    fn transmit(&mut self, command: &Command) -> Result<Response, ChannelError> {
        let commands = if command.data.len() > SHORT_NC_MAX && !self.supports_extended_length() {
            command.clone().into_chain(SHORT_NC_MAX)
        } else {
            vec![command.clone()]
        };
        let count = commands.len();
        for (i, part) in commands.into_iter().enumerate() {
            let response = exchange_one(self, &part)?;
            if i + 1 == count || response.sw != StatusWord::Success {
                return Ok(response);
            }
        }
        Err(ChannelError::Relay("empty command chain".into()))
    }
}

fn exchange_one<C: CardChannel + ?Sized>(
    ch: &mut C,
    command: &Command,
) -> Result<Response, ChannelError> {
    let mut response = Response::from_bytes(&ch.transmit_raw(&command.to_bytes()?)?)?;
    if let StatusWord::WrongLe(exact) = response.sw {
        // EMV Book 1 §9.3.1.1: resend the same command with Le = SW2 (00 meaning 256).
        let retry = Command {
            ne: Some(if exact == 0 { 256 } else { usize::from(exact) }),
            ..command.clone()
        };
        response = Response::from_bytes(&ch.transmit_raw(&retry.to_bytes()?)?)?;
    }
    let mut data = std::mem::take(&mut response.data);
    let mut rounds = 0;
    while let StatusWord::BytesAvailable(n) = response.sw {
        rounds += 1;
        if rounds > GET_RESPONSE_ROUNDS_MAX {
            return Err(ChannelError::TooManyGetResponses);
        }
        let get = Command::new(command.cla & 0x03, 0xC0, 0, 0).with_ne(if n == 0 {
            256
        } else {
            usize::from(n)
        });
        response = Response::from_bytes(&ch.transmit_raw(&get.to_bytes()?)?)?;
        data.append(&mut response.data);
    }
    response.data = data;
    Ok(response)
}

/// Wraps a channel and counts the APDUs that cross it (GET RESPONSE and resends included).
pub struct Counted<C> {
    pub inner: C,
    pub apdus: usize,
}

impl<C> Counted<C> {
    /// Starts counting at zero.
    pub fn new(inner: C) -> Self {
        Self { inner, apdus: 0 }
    }
}

impl<C: CardChannel> CardChannel for Counted<C> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.apdus += 1;
        self.inner.transmit_raw(command)
    }
    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.inner.atr()
    }
    fn supports_extended_length(&self) -> bool {
        self.inner.supports_extended_length()
    }
}

impl<C: CardChannel + ?Sized> CardChannel for &mut C {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        (**self).transmit_raw(command)
    }
    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        (**self).atr()
    }
    fn supports_extended_length(&self) -> bool {
        (**self).supports_extended_length()
    }
}

impl<C: CardChannel + ?Sized> CardChannel for Box<C> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        (**self).transmit_raw(command)
    }
    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        (**self).atr()
    }
    fn supports_extended_length(&self) -> bool {
        (**self).supports_extended_length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted card: answers each raw command from a queue and records what it received.
    struct Scripted {
        answers: Vec<Vec<u8>>,
        seen: Vec<Vec<u8>>,
    }

    impl CardChannel for Scripted {
        fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
            self.seen.push(command.to_vec());
            Ok(self.answers.remove(0))
        }
        fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
            Ok(vec![0x3B, 0])
        }
    }

    #[test]
    fn get_response_collects_all_data() {
        let mut card = Scripted {
            answers: vec![
                vec![0x61, 0x03],
                vec![1, 2, 3, 0x61, 0x02],
                vec![4, 5, 0x90, 0],
            ],
            seen: vec![],
        };
        let r = card
            .transmit(&Command::new(0, 0xA4, 4, 0).with_data([0xA0]).with_ne(256))
            .expect("ok");
        assert_eq!(r, Response::ok([1, 2, 3, 4, 5]));
        assert_eq!(card.seen[1], vec![0, 0xC0, 0, 0, 3]);
        assert_eq!(card.seen[2], vec![0, 0xC0, 0, 0, 2]);
    }

    #[test]
    fn wrong_le_is_resent_with_exact_length() {
        let mut card = Scripted {
            answers: vec![vec![0x6C, 0x10], [vec![7; 16], vec![0x90, 0]].concat()],
            seen: vec![],
        };
        let r = card
            .transmit(&Command::new(0, 0xB2, 1, 0x0C).with_ne(256))
            .expect("ok");
        assert_eq!(r.data.len(), 16);
        assert_eq!(card.seen[1], vec![0, 0xB2, 1, 0x0C, 0x10]);
    }

    #[test]
    fn endless_get_response_is_bounded() {
        let mut card = Scripted {
            answers: vec![vec![0x61, 0x01]; GET_RESPONSE_ROUNDS_MAX + 2],
            seen: vec![],
        };
        let r = card.transmit(&Command::new(0, 0xCA, 0x9F, 0x36).with_ne(256));
        assert!(matches!(r, Err(ChannelError::TooManyGetResponses)));
    }

    #[test]
    fn long_data_is_chained_and_stops_at_first_error() {
        let mut card = Scripted {
            answers: vec![vec![0x90, 0], vec![0x6A, 0x80]],
            seen: vec![],
        };
        let r = card
            .transmit(&Command::new(0, 0xDA, 0, 0).with_data(vec![0; 600]))
            .expect("ok");
        assert_eq!(r.sw, StatusWord::IncorrectData);
        assert_eq!(card.seen.len(), 2);
        assert_eq!(card.seen[0][0], 0x10);
    }
}
