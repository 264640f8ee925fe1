//! TLS on the HSM link (rustls): the server's certificate and, for mutual TLS, the CA its
//! clients' certificates must chain to; the client's trust anchor and certificate.
//!
//! Why this exists: the host-command protocol has no authentication of its own; anyone who can
//! reach the port can ask for PIN translations and MACs. With mutual TLS only holders of a
//! certificate from the configured CA are served, and what crosses the link cannot be read or
//! altered on the way (issue 24: "every link protected"). A TLS connection counts as protected
//! for the commands that answer clear keys ([`crate::commands::returns_clear_key`]).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zeroize::Zeroize;

/// Longest a TLS handshake may take before the connection is dropped (a client that opens a
/// connection and sends nothing must not hold a connection slot).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Why TLS settings could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// Which file.
        path: String,
        /// Why.
        reason: String,
    },
    /// PEM text without the expected certificate or key.
    #[error("PEM {what}: {reason}")]
    Pem {
        /// What was expected.
        what: &'static str,
        /// Why it was not found.
        reason: String,
    },
    /// The server name is not a DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: &dyn std::fmt::Display| TlsError::Pem {
        what,
        reason: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&e))?;
    if certs.is_empty() {
        return Err(pem_err(&"no certificate"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: "private key",
        reason: e.to_string(),
    })
}

fn roots(pem: &[u8], what: &'static str) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(pem, what)? {
        roots.add(c).map_err(|e| TlsError::Config(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: certificate chain, key and, for mutual TLS, the clients' CA.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer { .. }")
    }
}

impl TlsServer {
    /// From PEM text. With `client_ca`, a client must present a certificate chaining to it
    /// (mutual TLS); without, any client may connect (server authentication only).
    pub fn from_pem(
        cert_chain: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<TlsServer, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match client_ca {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots(ca, "client CA")?,
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(
                certificates(cert_chain, "server certificate")?,
                private_key(key)?,
            )
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(TlsServer {
            config: Arc::new(config),
        })
    }

    /// From PEM files (see [`TlsServer::from_pem`]).
    pub fn from_pem_files(
        cert_chain: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<TlsServer, TlsError> {
        let ca = client_ca.map(read).transpose()?;
        let mut key = read(key)?;
        let server = TlsServer::from_pem(&read(cert_chain)?, &key, ca.as_deref());
        key.zeroize();
        server
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

/// The client side: the CA the HSM's certificate must chain to, the name it must carry, and
/// the client's own certificate and key for mutual TLS.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient {{ server_name: {:?} }}", self.server_name)
    }
}

impl TlsClient {
    /// From PEM text: the server's CA, the server name to check (DNS name or IP address) and,
    /// for mutual TLS, the client's certificate chain and key.
    pub fn from_pem(
        server_ca: &[u8],
        server_name: &str,
        client_cert: Option<(&[u8], &[u8])>,
    ) -> Result<TlsClient, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots(server_ca, "server CA")?);
        let config = match client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    certificates(chain, "client certificate")?,
                    private_key(key)?,
                )
                .map_err(|e| TlsError::Config(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsError::ServerName(server_name.to_string()))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// From PEM files (see [`TlsClient::from_pem`]).
    pub fn from_pem_files(
        server_ca: &Path,
        server_name: &str,
        client_cert: Option<(&Path, &Path)>,
    ) -> Result<TlsClient, TlsError> {
        let mut client = match client_cert {
            Some((c, k)) => Some((read(c)?, read(k)?)),
            None => None,
        };
        let tls = TlsClient::from_pem(
            &read(server_ca)?,
            server_name,
            client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        );
        if let Some((_, k)) = client.as_mut() {
            k.zeroize();
        }
        tls
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }
}
