//! The settlement API's listener: mutual TLS (rustls, ring provider, its safe default protocol
//! versions) with a client certificate required, chaining to the CA of the switch nodes'
//! certificates; with an allow-list, only certificates whose SubjectPublicKeyInfo has one of
//! the listed SHA-256s (RFC 7469's pin: the key, which only its holder has) pass the
//! handshake. GB/T 22239 level 3 asks for every link to be protected: there is no plaintext
//! mode.
//!
//! Bounds: at most [`ApiLimits::connections_max`] connections at once (past it new clients
//! wait in the kernel's backlog), and a handshake that does not finish within
//! [`ApiLimits::handshake_timeout`] is dropped, in a task of its own so one slow client does
//! not hold up the others. Only a proven switch node gets past the handshake to send a request.

use super::{router, ApiState};
use crate::ledger::Ledger;
use crate::ClearingError;
use sha2::{Digest, Sha256};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Most connections open at once.
    pub connections_max: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            connections_max: 64,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The SHA-256 of a certificate's DER SubjectPublicKeyInfo (what `openssl x509 -pubkey |
/// openssl pkey -pubin -outform der | openssl dgst -sha256` prints), or None when it does not
/// parse.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).ok()?;
    Some(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

/// The CA's verification, then the allow-list.
#[derive(Debug)]
struct PinnedClientVerifier {
    ca: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    allowed: Vec<[u8; 32]>,
}

impl rustls::server::danger::ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.ca.verify_client_cert(end_entity, intermediates, now)?;
        let pin = spki_sha256(end_entity);
        if !pin.is_some_and(|p| self.allowed.contains(&p)) {
            tracing::warn!(
                spki_sha256 = pin.map(hex::encode).unwrap_or_default(),
                "settlement API: a client certificate of the CA is not on the allow-list"
            );
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> ClearingError {
    ClearingError::Config(format!("settlement API TLS: {what}: {e}"))
}

/// The server's TLS configuration from PEM text: its certificate chain and key, the CA of the
/// switch nodes' client certificates, and an allow-list of client key SHA-256s (empty: every
/// certificate of the CA).
pub fn server_config_from_pem(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    allowed_spki_sha256: &[[u8; 32]],
) -> Result<Arc<rustls::ServerConfig>, ClearingError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| config_error("certificate chain", e))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| config_error("key", e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| config_error("client CA", e))?)
            .map_err(|e| config_error("client CA", e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| config_error("client CA", e))?;
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
        if allowed_spki_sha256.is_empty() {
            ca
        } else {
            Arc::new(PinnedClientVerifier {
                ca,
                allowed: allowed_spki_sha256.to_vec(),
            })
        };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| config_error("certificate and key", e))?;
    Ok(Arc::new(config))
}

/// [`server_config_from_pem`] from files.
pub fn server_config_from_files(
    cert_chain: &Path,
    key: &Path,
    client_ca: &Path,
    allowed_spki_sha256: &[[u8; 32]],
) -> Result<Arc<rustls::ServerConfig>, ClearingError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| config_error(&p.display().to_string(), e))
    };
    server_config_from_pem(
        &read(cert_chain)?,
        &read(key)?,
        &read(client_ca)?,
        allowed_spki_sha256,
    )
}

/// Parses a list of SPKI SHA-256s (64 hex digits each).
pub fn parse_spki_pins(pins: &[String]) -> Result<Vec<[u8; 32]>, ClearingError> {
    pins.iter()
        .map(|p| {
            hex::decode(p.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    ClearingError::Config(format!("client SPKI SHA-256 {p:?}: 64 hex digits"))
                })
        })
        .collect()
}

/// A TLS connection that holds its connection permit until dropped.
pub struct ApiStream {
    inner: Box<tokio_rustls::server::TlsStream<TcpStream>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for ApiStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ApiStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connections that finished their handshake, for axum.
struct MtlsListener {
    ready: tokio::sync::mpsc::Receiver<(ApiStream, SocketAddr)>,
    bound: SocketAddr,
}

impl axum::serve::Listener for MtlsListener {
    type Io = ApiStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.bound)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: ApiLimits,
    ready: tokio::sync::mpsc::Sender<(ApiStream, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "settlement API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => {
                    let io = ApiStream {
                        inner: Box::new(stream),
                        _permit: permit,
                    };
                    let _ = ready.send((io, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "settlement API: TLS handshake refused")
                }
                Err(_) => tracing::warn!(%peer, "settlement API: TLS handshake timed out"),
            }
        });
    }
}

/// Serves the settlement API over `ledger` on `listener` with mutual TLS `tls` until
/// `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ledger: Ledger,
    limits: ApiLimits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClearingError> {
    let bound = listener
        .local_addr()
        .map_err(|e| config_error("listener", e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(limits.connections_max.max(1));
    let accepting = tokio::spawn(accept_loop(
        listener,
        tokio_rustls::TlsAcceptor::from(tls),
        limits,
        tx,
    ));
    tracing::info!(%bound, "settlement API listening (mutual TLS)");
    let app = router(Arc::new(ApiState::new(ledger)));
    let served = axum::serve(MtlsListener { ready: rx, bound }, app)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    accepting.abort();
    served.map_err(|e| config_error("serve", e))
}
