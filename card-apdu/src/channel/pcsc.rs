//! PC/SC channel through the `pcsc` crate (pcsc-lite's libpcsclite on Linux, WinSCard on Windows).
//!
//! What a kiosk needs beyond "transmit": list readers, wait for a card to be inserted or removed
//! ([`PcscMonitor`]), hold the card exclusively for a multi-APDU flow ([`PcscChannel::transaction`],
//! `SCardBeginTransaction`), and survive pcscd restarting under it: a transmit that fails because
//! the service or the handle went away drops the handle, and the next transmit (or an explicit
//! [`PcscChannel::reconnect`]) establishes a new context and reconnects within a bounded time.
//! The card was reset in between, so the error tells the caller to restart its flow from SELECT.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use ::pcsc::{Card, Context, Disposition, Error, Protocols, ReaderState, Scope, ShareMode, State};

use super::{CardChannel, ChannelError};

/// How long [`PcscChannel::reconnect`] waits for the service, the reader and a card by default.
pub const RECONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// One reader as seen by pcscd.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReaderInfo {
    pub name: String,
    pub card_present: bool,
    /// ATR of the card in the reader, if any.
    #[serde(serialize_with = "crate::hexser::opt")]
    pub atr: Option<Vec<u8>>,
}

/// A change seen by [`PcscMonitor::wait`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardEvent {
    ReaderAdded(String),
    ReaderRemoved(String),
    CardInserted { reader: String, atr: Vec<u8> },
    CardRemoved { reader: String },
}

fn establish() -> Result<Context, ChannelError> {
    Ok(Context::establish(Scope::User)?)
}

fn reader_names(ctx: &Context) -> Result<Vec<CString>, ChannelError> {
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names),
        Err(Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Lists the readers pcscd knows and whether each holds a card.
pub fn list_readers() -> Result<Vec<ReaderInfo>, ChannelError> {
    let ctx = establish()?;
    let names = reader_names(&ctx)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut states: Vec<ReaderState> = names
        .into_iter()
        .map(|n| ReaderState::new(n, State::UNAWARE))
        .collect();
    ctx.get_status_change(Duration::from_millis(0), &mut states)?;
    Ok(states.iter().map(info_of).collect())
}

fn info_of(rs: &ReaderState) -> ReaderInfo {
    let present = rs.event_state().contains(State::PRESENT);
    ReaderInfo {
        name: rs.name().to_string_lossy().into_owned(),
        card_present: present,
        atr: present.then(|| rs.atr().to_vec()),
    }
}

/// Watches readers for insertion and removal (`SCardGetStatusChange` with PnP notification).
pub struct PcscMonitor {
    ctx: Context,
    states: Vec<ReaderState>,
}

impl PcscMonitor {
    /// Starts watching; the first [`wait`](Self::wait) reports cards already present as inserted.
    pub fn new() -> Result<Self, ChannelError> {
        let ctx = establish()?;
        let mut states = vec![ReaderState::new(::pcsc::PNP_NOTIFICATION(), State::UNAWARE)];
        states.extend(
            reader_names(&ctx)?
                .into_iter()
                .map(|n| ReaderState::new(n, State::UNAWARE)),
        );
        Ok(Self { ctx, states })
    }

    /// Waits up to `timeout` for changes; returns an empty list on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<CardEvent>, ChannelError> {
        let mut events = Vec::new();
        self.refresh_readers(&mut events)?;
        match self.ctx.get_status_change(timeout, &mut self.states) {
            Ok(()) => {}
            Err(Error::Timeout) => return Ok(events),
            Err(e) => return Err(e.into()),
        }
        for rs in self.states.iter_mut().skip(1) {
            let (cur, ev) = (rs.current_state(), rs.event_state());
            if ev.contains(State::CHANGED) {
                let name = rs.name().to_string_lossy().into_owned();
                let was = cur.contains(State::PRESENT);
                let is = ev.contains(State::PRESENT);
                if is && !was {
                    events.push(CardEvent::CardInserted {
                        reader: name,
                        atr: rs.atr().to_vec(),
                    });
                } else if was && !is {
                    events.push(CardEvent::CardRemoved { reader: name });
                }
            }
            rs.sync_current_state();
        }
        self.states[0].sync_current_state();
        Ok(events)
    }

    fn refresh_readers(&mut self, events: &mut Vec<CardEvent>) -> Result<(), ChannelError> {
        let names = reader_names(&self.ctx)?;
        let pnp = ::pcsc::PNP_NOTIFICATION();
        let gone: Vec<String> = self
            .states
            .iter()
            .filter(|rs| rs.name() != pnp && !names.iter().any(|n| n.as_c_str() == rs.name()))
            .map(|rs| rs.name().to_string_lossy().into_owned())
            .collect();
        self.states
            .retain(|rs| rs.name() == pnp || names.iter().any(|n| n.as_c_str() == rs.name()));
        events.extend(gone.into_iter().map(CardEvent::ReaderRemoved));
        for n in names {
            if !self.states.iter().any(|rs| rs.name() == n.as_c_str()) {
                events.push(CardEvent::ReaderAdded(n.to_string_lossy().into_owned()));
                self.states.push(ReaderState::new(n, State::UNAWARE));
            }
        }
        Ok(())
    }
}

/// Waits until a card is present in a reader whose name contains `filter` (any reader if
/// `None`), and returns that reader's name.
pub fn wait_for_card(filter: Option<&str>, timeout: Duration) -> Result<String, ChannelError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(readers) = list_readers() {
            let hit = readers
                .into_iter()
                .find(|r| r.card_present && filter.is_none_or(|f| r.name.contains(f)));
            if let Some(r) = hit {
                return Ok(r.name);
            }
        }
        if Instant::now() >= deadline {
            return Err(ChannelError::Timeout("a card in a reader"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A connection to the card in one PC/SC reader.
pub struct PcscChannel {
    ctx: Option<Context>,
    card: Option<Card>,
    reader: CString,
    share: ShareMode,
    /// Bound on the wait for pcscd, the reader and a card when reconnecting.
    pub reconnect_timeout: Duration,
}

impl PcscChannel {
    /// Connects to the card in `reader`; `exclusive` keeps every other application out for the
    /// life of the connection (`SCARD_SHARE_EXCLUSIVE`).
    pub fn connect(reader: &str, exclusive: bool) -> Result<Self, ChannelError> {
        let reader =
            CString::new(reader).map_err(|_| ChannelError::NoSuchReader(reader.to_owned()))?;
        let mut ch = Self {
            ctx: None,
            card: None,
            reader,
            share: if exclusive {
                ShareMode::Exclusive
            } else {
                ShareMode::Shared
            },
            reconnect_timeout: RECONNECT_TIMEOUT_DEFAULT,
        };
        ch.try_connect()?;
        Ok(ch)
    }

    /// The reader this channel is bound to.
    pub fn reader(&self) -> String {
        self.reader.to_string_lossy().into_owned()
    }

    fn try_connect(&mut self) -> Result<(), ChannelError> {
        if self.ctx.as_ref().is_none_or(|c| c.is_valid().is_err()) {
            self.card = None;
            self.ctx = Some(establish()?);
        }
        let ctx = self.ctx.as_ref().ok_or(ChannelError::CardReset)?;
        let card = ctx
            .connect(&self.reader, self.share, Protocols::ANY)
            .map_err(|e| match e {
                Error::UnknownReader | Error::ReaderUnavailable => {
                    ChannelError::NoSuchReader(self.reader())
                }
                Error::NoSmartcard | Error::RemovedCard => ChannelError::NoCard(self.reader()),
                e => e.into(),
            })?;
        self.card = Some(card);
        Ok(())
    }

    /// Drops the current handle and connects again, waiting up to `reconnect_timeout` for the
    /// service (after a pcscd restart), the reader and the card.
    pub fn reconnect(&mut self) -> Result<(), ChannelError> {
        self.card = None;
        let deadline = Instant::now() + self.reconnect_timeout;
        loop {
            match self.try_connect() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    self.ctx = None;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn connected(&mut self) -> Result<&Card, ChannelError> {
        if self.card.is_none() {
            self.reconnect()?;
        }
        self.card.as_ref().ok_or(ChannelError::CardReset)
    }

    /// Resets the card: a cold reset (`unpower`, the card loses power and with it every security
    /// state) or a warm reset (`SCardReconnect` with `SCARD_UNPOWER_CARD` / `SCARD_RESET_CARD`).
    pub fn reset_card(&mut self, unpower: bool) -> Result<(), ChannelError> {
        self.connected()?;
        let share = self.share;
        let card = self.card.as_mut().ok_or(ChannelError::CardReset)?;
        let disposition = if unpower {
            Disposition::UnpowerCard
        } else {
            Disposition::ResetCard
        };
        let result = card.reconnect(share, Protocols::ANY, disposition);
        result.map_err(|e| self.lost(e))
    }

    /// Runs `f` inside an exclusive PC/SC transaction (`SCardBeginTransaction` …
    /// `SCardEndTransaction`): no other application can interleave APDUs during the flow.
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut PcscTransaction<'_>) -> R,
    ) -> Result<R, ChannelError> {
        self.connected()?;
        let card = self.card.as_mut().ok_or(ChannelError::CardReset)?;
        let tx = card.transaction()?;
        let mut t = PcscTransaction { tx };
        Ok(f(&mut t))
    }

    fn lost(&mut self, e: Error) -> ChannelError {
        match e {
            Error::ResetCard | Error::RemovedCard => {
                self.card = None;
                ChannelError::CardReset
            }
            Error::NoService
            | Error::ServiceStopped
            | Error::InvalidHandle
            | Error::ReaderUnavailable
            | Error::UnknownReader
            | Error::CommError
            | Error::NoSmartcard
            | Error::InvalidParameter => {
                self.card = None;
                self.ctx = None;
                ChannelError::Pcsc(e)
            }
            e => ChannelError::Pcsc(e),
        }
    }
}

fn transmit_on(card: &Card, command: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; ::pcsc::MAX_BUFFER_SIZE_EXTENDED];
    Ok(card.transmit(command, &mut buf)?.to_vec())
}

fn atr_of(card: &Card) -> Result<Vec<u8>, Error> {
    Ok(card.status2_owned()?.atr().to_vec())
}

impl CardChannel for PcscChannel {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let result = transmit_on(self.connected()?, command);
        result.map_err(|e| self.lost(e))
    }

    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        let result = atr_of(self.connected()?);
        result.map_err(|e| self.lost(e))
    }
}

impl Drop for PcscChannel {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            // Unpower nothing: leave the card for the next application, as a kiosk should.
            let _ = card.disconnect(Disposition::LeaveCard);
        }
    }
}

/// A channel valid for the duration of one exclusive transaction.
pub struct PcscTransaction<'a> {
    tx: ::pcsc::Transaction<'a>,
}

impl CardChannel for PcscTransaction<'_> {
    fn transmit_raw(&mut self, command: &[u8]) -> Result<Vec<u8>, ChannelError> {
        Ok(transmit_on(&self.tx, command)?)
    }

    fn atr(&mut self) -> Result<Vec<u8>, ChannelError> {
        Ok(atr_of(&self.tx)?)
    }
}

/// Name of the reader as a C string (for callers that hold `CStr`s from pcsc).
pub fn reader_name(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}
