//! The supervisor of one issuer link: connects, signs on (0800, field 70 = 001), keeps the
//! link alive with echo tests (301) when idle, exchanges keys when configured, signs off (002)
//! at shutdown and reconnects with exponential back-off and jitter when the connection is lost.
//!
//! The read task checks up to [`IssuerConfig::answer_checks_in_flight_max`] answers at once:
//! with a network HSM each MAC check is a round trip (~0.3 ms on a LAN, more when the HSM is
//! busy), and checked one at a time they would bound a link near 3,000 answers/s and put every
//! answer behind the slowest check before it. At the bound the task stops reading the socket
//! until a check completes, so a flood of answers waits in TCP, not in memory.
//!
//! [`IssuerConfig::answer_checks_in_flight_max`]: super::IssuerConfig::answer_checks_in_flight_max

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::link::{Link, LinkError, LinkState};
use crate::wire::network::NetworkCode;
use crate::wire::transport::{self, FrameReader, FrameWriter};

/// Exponential back-off with "equal jitter": the n-th delay is drawn uniformly from
/// [d/2, d] where d = min(max, min × 2ⁿ), so many switch nodes do not reconnect in step.
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let d = self.min.saturating_mul(factor).min(self.max);
        let half = d / 2;
        let mut r = [0u8; 4];
        let frac =
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r).is_ok() {
                f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
            } else {
                0.5
            };
        half + half.mul_f64(frac)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost { was_signed_on: bool },
}

pub(super) async fn supervise(link: Arc<Link>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff {
        min: link.config.reconnect_backoff_min,
        max: link.config.reconnect_backoff_max,
        attempt: 0,
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        match serve_connection(&link, &mut shutdown).await {
            Ended::Shutdown => break,
            Ended::Lost { was_signed_on } => {
                link.set_state(LinkState::Down);
                if was_signed_on {
                    backoff.reset();
                }
            }
        }
        let delay = backoff.next();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
        }
    }
    link.set_state(LinkState::Down);
}

async fn read_loop(link: Arc<Link>, reader: FrameReader, writer: FrameWriter) {
    read_frames(&link, reader, &writer).await;
    // The connection is gone: nobody may queue on it any more, and whoever waits on it
    // learns at once (the socket closes when the last writer handle is dropped).
    link.set_writer(None);
    link.mux.fail_all();
}

/// Reads the link's messages and handles each ([`Link::on_message`]), up to
/// `answer_checks_in_flight_max` at once: an answer waiting for its MAC check (an HSM round
/// trip) does not hold up the answers behind it. At the bound, reading waits for a check to
/// complete. When the connection ends, the answers already read are still checked and
/// delivered before the caller fails what is left in the MUX.
async fn read_frames(link: &Arc<Link>, mut reader: FrameReader, writer: &FrameWriter) {
    let checks_max = link.config.answer_checks_in_flight_max.max(1);
    let mut handling = FuturesUnordered::new();
    loop {
        tokio::select! {
            // Completing checks first frees room before more is read.
            biased;
            Some(()) = handling.next(), if !handling.is_empty() => {}
            next = reader.next_message(), if handling.len() < checks_max => match next {
                Ok(Some(frame)) => {
                    link.touch();
                    handling.push(link.on_message(frame.message, writer));
                }
                Ok(None) => {
                    tracing::info!(bank = %link.config.institution, "bank closed the connection");
                    break;
                }
                Err(e) => {
                    tracing::warn!(bank = %link.config.institution, error = %e,
                        "closing the connection");
                    break;
                }
            },
        }
    }
    while handling.next().await.is_some() {}
}

/// Connects, signs on, then serves until the connection is lost or shutdown is asked.
async fn serve_connection(link: &Arc<Link>, shutdown: &mut watch::Receiver<bool>) -> Ended {
    link.set_state(LinkState::Connecting);
    let Some(stream) = connect(link).await else {
        return Ended::Lost {
            was_signed_on: false,
        };
    };
    link.connections.fetch_add(1, Ordering::Relaxed);
    let (reader, writer, _write_task) = match stream {
        Connected::Plain(tcp) => transport::split(tcp, &link.config.framing),
        Connected::Tls(tls) => transport::split_stream(*tls, &link.config.framing),
    };
    link.touch();
    let mut read_task = tokio::spawn(read_loop(Arc::clone(link), reader, writer.clone()));
    link.set_writer(Some(writer));
    if let Err(e) = sign_on(link).await {
        tracing::warn!(bank = %link.config.institution, error = %e, "sign-on failed");
        teardown(link, &read_task);
        return Ended::Lost {
            was_signed_on: false,
        };
    }
    link.set_state(LinkState::SignedOn);
    serve_signed_on(link, &mut read_task, shutdown).await
}

/// A connection to the bank: plain TCP, or a mutual-TLS session over it.
enum Connected {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The connection to the bank (TCP, then the TLS handshake when the link has TLS), within
/// the connect timeout.
async fn connect(link: &Link) -> Option<Connected> {
    let connect = tokio::time::timeout(link.config.connect_timeout, async {
        let tcp = TcpStream::connect(&link.config.address).await?;
        let Some(tls) = &link.config.tls else {
            return Ok(Connected::Plain(tcp));
        };
        let _ = tcp.set_nodelay(true);
        match tls.connector.connect(tls.server_name.clone(), tcp).await {
            Ok(session) => Ok::<_, std::io::Error>(Connected::Tls(Box::new(session))),
            Err(e) => {
                tracing::warn!(bank = %link.config.institution, error = %e,
                    "TLS handshake with the bank failed");
                Err(e)
            }
        }
    })
    .await;
    match connect {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(bank = %link.config.institution, error = %e, "connect failed");
            None
        }
        Err(_) => None,
    }
}

/// Signs on (0800, field 70 = 001), then exchanges keys when configured to at each sign-on
/// or when the link has no working key yet.
async fn sign_on(link: &Link) -> Result<(), LinkError> {
    link.sign_on().await?;
    let no_key = {
        let keys = link.keys();
        keys.zpk.current.is_none() || (link.config.mac && keys.tak.current.is_none())
    };
    if link.config.key_exchange_on_sign_on || no_key {
        link.key_exchange(false).await?;
    }
    Ok(())
}

/// The connection is gone or given up: nobody may queue on it, its reader stops, and whoever
/// waits on it learns at once.
fn teardown(link: &Link, read_task: &JoinHandle<()>) {
    link.set_writer(None);
    read_task.abort();
    link.mux.fail_all();
}

/// Serves a signed-on connection: echo tests when idle, periodic key exchanges, sign-off at
/// shutdown, until the connection is lost or shutdown is asked.
async fn serve_signed_on(
    link: &Arc<Link>,
    read_task: &mut JoinHandle<()>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let mut next_key_exchange = link
        .config
        .key_exchange_interval
        .map(|d| tokio::time::Instant::now() + d);
    loop {
        let idle = link.idle_for();
        let echo_in = link.config.echo_interval.saturating_sub(idle);
        let key_at = next_key_exchange;
        tokio::select! {
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    // Best effort: the bank learns we leave on purpose (field 70 = 002).
                    let _ = link.network(NetworkCode::SignOff, true).await;
                    teardown(link, read_task);
                    return Ended::Shutdown;
                }
            }
            _ = &mut *read_task => {
                teardown(link, read_task);
                return Ended::Lost { was_signed_on: true };
            }
            _ = tokio::time::sleep(echo_in) => {
                if link.idle_for() >= link.config.echo_interval {
                    if let Err(e) = link.network(NetworkCode::Echo, true).await {
                        tracing::warn!(bank = %link.config.institution, error = %e,
                            "echo test failed; reconnecting");
                        teardown(link, read_task);
                        return Ended::Lost { was_signed_on: true };
                    }
                }
            }
            _ = sleep_until_opt(key_at) => {
                next_key_exchange = link
                    .config
                    .key_exchange_interval
                    .map(|d| tokio::time::Instant::now() + d);
                if let Err(e) = link.key_exchange(true).await {
                    tracing::warn!(bank = %link.config.institution, error = %e,
                        "periodic key exchange failed; keeping the current key");
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_caps() {
        let mut b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempt: 0,
        };
        let d0 = b.next();
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        let d1 = b.next();
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(b.next() <= Duration::from_secs(1));
        }
        let capped = b.next();
        assert!(capped >= Duration::from_millis(500));
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
