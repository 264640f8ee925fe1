//! The acquirer side: the TCP (or TLS, or mutual-TLS) server that kiosks, hospital systems and
//! acquiring banks connect to.
//!
//! Why it looks like this (mini-redis's `Connection` and jPOS's channel, in tokio): each
//! connection has a reader that cuts frames (length header + optional TPDU, bounded size) and a
//! writer that sends answers; between them, every request runs as its own task so a slow bank
//! leg never holds up the next request on the same connection (responses may come back out of
//! order; clients match them by STAN, as ISO 8583 intends). Everything is bounded:
//!
//! - connections (`connections_max`): past it, new connections are closed at once;
//! - requests in flight per connection (`in_flight_per_connection_max`): past it the reader
//!   stops reading that socket, so one flooding client only slows itself;
//! - requests in flight across connections (`in_flight`, one [`InFlightCap`] per node): past
//!   it, a request is answered 91 at once;
//! - answers waiting to be written (same bound as per connection): a client that does not read
//!   its answers stalls only its own connection, and a write that makes no progress for
//!   `write_timeout` closes it;
//! - the TLS handshake (`handshake_timeout`): a client that connects and says nothing is
//!   dropped; with a client-certificate mapping ([`ClientInstitutions`]) the connection is the
//!   institution of its certificate, and a certificate that maps to none fails the handshake;
//! - frame size (`frame_len_max`): an oversize frame closes that connection;
//! - idle time (`idle_timeout`): a silent connection is closed.
//!
//! A frame that does not decode is answered 30 when its MTI can be read, else the connection is
//! closed (see `Pipeline::process`).
//!
//! `tls` loads the certificates; `listener` accepts and serves the connections.

mod listener;
mod tls;

pub use listener::{bind, open_connections, serve, AcquirerListener, InFlightCap};
pub(crate) use tls::Pem;
pub use tls::{spki_sha256, ClientInstitutions, TlsError, TlsSettings};
