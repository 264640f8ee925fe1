//! Mutual TLS on a bank link, client side: the switch shows its certificate to the bank's
//! issuer host and accepts only a bank certificate that chains to the bank link CA and carries
//! the configured name (issue 24: the design promises mutual TLS to banks). rustls with the
//! ring provider and its safe default protocol versions, as on the acquirer side
//! ([`crate::acquirer::TlsSettings`], whose server configuration the simulated bank reuses).

use crate::acquirer::TlsError;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The client side of mutual TLS on one bank link.
#[derive(Clone)]
pub struct BankTls {
    /// Makes TLS sessions over connected sockets.
    pub connector: tokio_rustls::TlsConnector,
    /// The name the bank's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for BankTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl BankTls {
    /// Loads the switch's certificate chain and key and the CA of bank certificates (PEM);
    /// `server_name` is the DNS name (or IP address) the bank's certificate must carry.
    pub fn from_pem_files(
        bank_ca: &str,
        cert_chain: &str,
        key: &str,
        server_name: &str,
    ) -> Result<Self, TlsError> {
        let file_err = |path: &str, e: &dyn std::fmt::Display| TlsError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(bank_ca).map_err(|e| file_err(bank_ca, &e))? {
            roots
                .add(c.map_err(|e| file_err(bank_ca, &e))?)
                .map_err(|e| TlsError::Config(e.to_string()))?;
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
            .map_err(|e| file_err(cert_chain, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(cert_chain, &e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| TlsError::Config(format!("server name {server_name}: {e}")))?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}
