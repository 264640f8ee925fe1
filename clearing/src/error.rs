//! Errors of the clearing crate, one enum per concern so callers can match on what went wrong
//! (a database outage is retried, a configuration error is not).

/// What can go wrong in clearing.
#[derive(Debug, thiserror::Error)]
pub enum ClearingError {
    /// The ledger (or outbox) database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Running the embedded migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The settlement bus failed.
    #[error("settlement bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    /// A configuration value is out of range or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// No settlement window with this id.
    #[error("settlement window {0} does not exist")]
    WindowNotFound(i64),
    /// The window is still open, so it has no end, net settlement or digest yet: its
    /// settlement files are written once it is closed.
    #[error("settlement window {0} is still open: its settlement files exist once it is closed")]
    WindowOpen(i64),
    /// Another relay took over the outbox lease (fencing): this relay must stop publishing.
    #[error("outbox relay lease lost to another relay")]
    LeaseLost,
    /// A ledger invariant does not hold (a bug, never input-dependent).
    #[error("ledger invariant broken: {0}")]
    Invariant(String),
    /// A running total left the 64-bit range: refused rather than wrapped (the figures of a
    /// settlement must be exact or absent).
    #[error("total overflows 64 bits: {0}")]
    Overflow(&'static str),
    /// Writing a report failed.
    #[error("report: {0}")]
    Report(String),
    /// The component was shut down.
    #[error("shut down")]
    Shutdown,
}

/// Result with [`ClearingError`].
pub type Result<T, E = ClearingError> = std::result::Result<T, E>;

/// `total + amount` for a running total of fen; leaving the 64-bit range is
/// [`ClearingError::Overflow`] naming `what`, never a wrap (release) or a panic (debug).
pub(crate) fn add_fen(total: i64, amount: i64, what: &'static str) -> Result<i64> {
    total
        .checked_add(amount)
        .ok_or(ClearingError::Overflow(what))
}
