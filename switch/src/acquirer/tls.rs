//! TLS (and mutual TLS) on an acquirer listener: the server certificate and key, and the CA
//! that client certificates must chain to, loaded from PEM files into a rustls configuration
//! (ring provider, safe default protocol versions).

use std::sync::Arc;

/// TLS settings of a listener.
#[derive(Clone)]
pub struct TlsSettings {
    /// The server configuration (certificate chain, key, client verification).
    pub config: Arc<tokio_rustls::rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings { .. }")
    }
}

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// Which file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsSettings {
    /// Loads a certificate chain and key (PEM); with `client_ca`, clients must present a
    /// certificate signed by it (mutual TLS).
    pub fn from_pem_files(
        cert_chain: &str,
        key: &str,
        client_ca: Option<&str>,
    ) -> Result<Self, TlsError> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let file_err = |path: &str, e: &dyn std::fmt::Display| TlsError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
            .map_err(|e| file_err(cert_chain, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(cert_chain, &e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, &e))? {
                    roots
                        .add(c.map_err(|e| file_err(ca, &e))?)
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
        })
    }
}
