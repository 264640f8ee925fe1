//! Mutual TLS on a bank link, client side: the switch shows its certificate to the bank's
//! issuer host and accepts only a bank certificate that chains to the bank link CA and carries
//! the configured name (issue 24: the design promises mutual TLS to banks). rustls with the
//! ring provider and its safe default protocol versions, as on the acquirer side
//! ([`crate::acquirer::TlsSettings`], whose server configuration the simulated bank reuses).

use crate::acquirer::{Pem, TlsError};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

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
        Self::build(
            Pem::File(bank_ca),
            Pem::File(cert_chain),
            Pem::File(key),
            server_name,
        )
    }

    /// [`BankTls::from_pem_files`] from PEM text in memory (the demo's certificates,
    /// generated at its start).
    pub fn from_pem(
        bank_ca_pem: &str,
        cert_chain_pem: &str,
        key_pem: &str,
        server_name: &str,
    ) -> Result<Self, TlsError> {
        Self::build(
            Pem::Text(bank_ca_pem),
            Pem::Text(cert_chain_pem),
            Pem::Text(key_pem),
            server_name,
        )
    }

    fn build(
        bank_ca: Pem<'_>,
        cert_chain: Pem<'_>,
        key: Pem<'_>,
        server_name: &str,
    ) -> Result<Self, TlsError> {
        let roots = bank_ca.roots()?;
        let certs = cert_chain.certificates()?;
        let key = key.private_key()?;
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
