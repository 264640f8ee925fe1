//! In-memory channel straight to a [`VirtualCard`]: no sockets, no pcscd. Unit tests, the
//! criterion bench and `kiosk --card FILE` use it; every byte still goes through the card's APDU
//! parser, so it exercises the same code the PC/SC path does.

use super::{CardChannel, ChannelError};
use crate::vcard::VirtualCard;

/// A channel that owns its virtual card.
pub struct MemoryChannel {
    card: VirtualCard,
    apdu_count: u64,
}

impl MemoryChannel {
    /// Powers the card on and wraps it.
    pub fn new(mut card: VirtualCard) -> Self {
        card.power_on();
        Self {
            card,
            apdu_count: 0,
        }
    }

    /// The card behind the channel (to inspect or power-cycle it in tests).
    pub fn card_mut(&mut self) -> &mut VirtualCard {
        &mut self.card
    }

    /// Number of APDUs exchanged so far (GET RESPONSE and resends included).
    pub fn apdu_count(&self) -> u64 {
        self.apdu_count
    }

    /// Gives the card back.
    pub fn into_card(self) -> VirtualCard {
        self.card
    }
}

impl CardChannel for MemoryChannel {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.apdu_count += 1;
        Ok(self.card.process(command))
    }

    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        Ok(self.card.atr().to_vec())
    }
}
