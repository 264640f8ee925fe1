//! The demo's certificates, made at its start: one demo CA, a certificate per simulated bank
//! host (name `localhost`) and the switch's client certificate, so the demo's bank links run
//! over mutual TLS like production's (`[[bank]] tls_*`; issue 24, finding 3) without any key
//! file on disk. Nothing here outlives the process: a new CA every run.
//!
//! One CA signs both sides here (a real network has the bank link CA the switch trusts and
//! the CA that signs the switch's certificate, possibly two); each side still proves its
//! certificate's key in the handshake.

use crate::acquirer::TlsSettings;
use crate::issuer::BankTls;

/// The name every simulated bank host's certificate carries.
pub const BANK_HOST_NAME: &str = "localhost";

/// Why the demo's certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused.
    #[error("demo certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the result.
    #[error(transparent)]
    Tls(#[from] crate::acquirer::TlsError),
}

/// The demo's CA and the switch's client certificate.
pub struct DemoPki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    switch_cert_pem: String,
    switch_key_pem: String,
}

impl std::fmt::Debug for DemoPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoPki { .. }")
    }
}

impl DemoPki {
    /// A new CA (ECDSA P-256, rcgen's default) and the switch's certificate under it.
    pub fn new() -> Result<Self, PkiError> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "ssc demo CA");
        let ca = p.self_signed(&ca_key)?;
        let (switch_cert_pem, switch_key_pem) = leaf(&ca, &ca_key, "ssc-switch")?;
        Ok(Self {
            ca,
            ca_key,
            switch_cert_pem,
            switch_key_pem,
        })
    }

    /// The TLS server settings of a bank host: its own certificate, and clients (the switch)
    /// must show one of the demo CA.
    pub fn bank_host(&self) -> Result<TlsSettings, PkiError> {
        let (cert, key) = leaf(&self.ca, &self.ca_key, BANK_HOST_NAME)?;
        Ok(TlsSettings::from_pem(&cert, &key, Some(&self.ca.pem()))?)
    }

    /// The switch's side of a bank link: its certificate, and the bank's must be the demo
    /// CA's and carry [`BANK_HOST_NAME`].
    pub fn switch_link(&self) -> Result<BankTls, PkiError> {
        Ok(BankTls::from_pem(
            &self.ca.pem(),
            &self.switch_cert_pem,
            &self.switch_key_pem,
            BANK_HOST_NAME,
        )?)
    }
}

/// A certificate for `name` under the CA, and its key (PEM).
fn leaf(
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
    name: &str,
) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = p.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The switch's side of a demo link and a demo bank host complete a mutual-TLS handshake
    /// and carry bytes; a bank host of another run's CA is refused by the switch.
    #[tokio::test]
    async fn the_demo_link_and_bank_host_speak_mutual_tls_and_another_ca_is_refused() {
        let pki = DemoPki::new().unwrap();
        let serve = |host: TlsSettings| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&host.config));
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut b = [0u8; 4];
                    if tls.read_exact(&mut b).await.is_ok() {
                        let _ = tls.write_all(&b).await;
                    }
                }
            });
            addr
        };
        let link = pki.switch_link().unwrap();
        let addr = serve(pki.bank_host().unwrap()).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = link
            .connector
            .connect(link.server_name.clone(), tcp)
            .await
            .unwrap();
        tls.write_all(b"0800").await.unwrap();
        let mut echo = [0u8; 4];
        tls.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"0800");

        let other = DemoPki::new().unwrap();
        let addr = serve(other.bank_host().unwrap()).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(
            link.connector
                .connect(link.server_name.clone(), tcp)
                .await
                .is_err(),
            "a bank host of another CA"
        );
    }
}
