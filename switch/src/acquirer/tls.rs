//! TLS (and mutual TLS) on an acquirer listener: the server certificate and key, and the CA
//! that client certificates must chain to, loaded from PEM files into a rustls configuration
//! (ring provider, safe default protocol versions).
//!
//! With a [`ClientInstitutions`] mapping, a client certificate is also an institution's
//! identity (issue 24, finding 1): each certificate the switch knows is pinned by the SHA-256
//! of its SubjectPublicKeyInfo (RFC 7469's pin: the key, which only its holder has, not a name
//! the CA could issue again to someone else) and names one institution; a connection proving
//! that key is that institution's, and a request on it whose field 32 names another is
//! declined `03` and audited (`pipeline::identity`). A certificate that chains to the CA but
//! maps to no institution is refused during the handshake (the verifier fails it with
//! `ApplicationVerificationFailure`): such a client never gets to send a request.

use schemas::domain::InstitutionId;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};

/// Client certificates (by the SHA-256 of their SubjectPublicKeyInfo) and the institution each
/// proves.
#[derive(Debug, Clone, Default)]
pub struct ClientInstitutions(HashMap<[u8; 32], InstitutionId>);

impl ClientInstitutions {
    /// No certificate known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The certificate whose SPKI has SHA-256 `spki_sha256` proves `institution`. Refused
    /// when that key already names an institution.
    pub fn insert(
        &mut self,
        spki_sha256: [u8; 32],
        institution: InstitutionId,
    ) -> Result<(), TlsError> {
        if self.0.contains_key(&spki_sha256) {
            return Err(TlsError::Config(format!(
                "client certificate key {} mapped twice",
                hex::encode(spki_sha256)
            )));
        }
        self.0.insert(spki_sha256, institution);
        Ok(())
    }

    /// The institution the certificate `cert` proves, if it is one of ours.
    pub fn institution_of(&self, cert: &CertificateDer<'_>) -> Option<&InstitutionId> {
        self.0.get(&spki_sha256(cert)?)
    }

    /// How many certificates are mapped.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no certificate is mapped.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The SHA-256 of a certificate's DER SubjectPublicKeyInfo (what `openssl x509 -pubkey |
/// openssl pkey -pubin -outform der | openssl dgst -sha256` prints), or `None` when the
/// certificate does not parse.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    digest.as_ref().try_into().ok()
}

/// The CA's verification, then the mapping: a certificate of the CA that names no institution
/// fails the handshake.
#[derive(Debug)]
struct MappedClientVerifier {
    ca: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    institutions: Arc<ClientInstitutions>,
    /// Every client must present a certificate (an acquirer listener); otherwise a client
    /// without one goes on unauthenticated (the operator HTTP face, where people log in) and
    /// only one that presents a certificate must present a mapped one.
    mandatory: bool,
}

impl rustls::server::danger::ClientCertVerifier for MappedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
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
        if self.institutions.institution_of(end_entity).is_none() {
            tracing::warn!(
                spki_sha256 = spki_sha256(end_entity).map(hex::encode).unwrap_or_default(),
                "client certificate of the CA maps to no institution: handshake refused"
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

/// TLS settings of a listener.
#[derive(Clone)]
pub struct TlsSettings {
    /// The server configuration (certificate chain, key, client verification).
    pub config: Arc<tokio_rustls::rustls::ServerConfig>,
    /// With mutual TLS: the institution each client certificate proves. When set, every
    /// connection is the institution of its certificate.
    pub client_institutions: Option<Arc<ClientInstitutions>>,
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
        Self::load(cert_chain, key, client_ca, None)
    }

    /// Mutual TLS where each client certificate of `client_ca` proves the institution
    /// `institutions` maps it to; a certificate it does not map is refused at the handshake.
    pub fn with_client_institutions(
        cert_chain: &str,
        key: &str,
        client_ca: &str,
        institutions: ClientInstitutions,
    ) -> Result<Self, TlsError> {
        if institutions.is_empty() {
            return Err(TlsError::Config(
                "a client certificate mapping names at least one certificate".into(),
            ));
        }
        Self::load(
            cert_chain,
            key,
            Some(client_ca),
            Some(Arc::new(institutions)),
        )
    }

    /// The operator HTTP face's TLS: a client without a certificate is served (a person, who
    /// then logs in); a machine client that presents one must present a certificate of
    /// `client_ca` that `institutions` maps, or its handshake is refused
    /// (`operator::machine`).
    pub fn with_optional_client_institutions(
        cert_chain: &str,
        key: &str,
        client_ca: &str,
        institutions: ClientInstitutions,
    ) -> Result<Self, TlsError> {
        if institutions.is_empty() {
            return Err(TlsError::Config(
                "a client certificate mapping names at least one certificate".into(),
            ));
        }
        let map = Arc::new(institutions);
        let clients = (Pem::File(client_ca), Some((Arc::clone(&map), false)));
        Ok(Self {
            config: Arc::new(Self::server_config(
                Pem::File(cert_chain),
                Pem::File(key),
                Some(clients),
            )?),
            client_institutions: Some(map),
        })
    }

    /// [`TlsSettings::from_pem_files`] from PEM text in memory (the demo's certificates,
    /// generated at its start).
    pub fn from_pem(
        cert_chain_pem: &str,
        key_pem: &str,
        client_ca_pem: Option<&str>,
    ) -> Result<Self, TlsError> {
        Self::build(
            Pem::Text(cert_chain_pem),
            Pem::Text(key_pem),
            client_ca_pem.map(Pem::Text),
            None,
        )
    }

    fn load(
        cert_chain: &str,
        key: &str,
        client_ca: Option<&str>,
        institutions: Option<Arc<ClientInstitutions>>,
    ) -> Result<Self, TlsError> {
        Self::build(
            Pem::File(cert_chain),
            Pem::File(key),
            client_ca.map(Pem::File),
            institutions,
        )
    }

    fn build(
        cert_chain: Pem<'_>,
        key: Pem<'_>,
        client_ca: Option<Pem<'_>>,
        institutions: Option<Arc<ClientInstitutions>>,
    ) -> Result<Self, TlsError> {
        let clients = client_ca.map(|ca| (ca, institutions.clone().map(|m| (m, true))));
        Ok(Self {
            config: Arc::new(Self::server_config(cert_chain, key, clients)?),
            client_institutions: institutions,
        })
    }

    /// The rustls configuration: no client authentication, or clients of a CA (with a mapping
    /// of their certificates, mandatory or not).
    #[allow(clippy::type_complexity)]
    fn server_config(
        cert_chain: Pem<'_>,
        key: Pem<'_>,
        clients: Option<(Pem<'_>, Option<(Arc<ClientInstitutions>, bool)>)>,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let certs = cert_chain.certificates()?;
        let key = key.private_key()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match clients {
            Some((ca, mapping)) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(ca.roots()?),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                match mapping {
                    Some((map, mandatory)) => {
                        builder.with_client_cert_verifier(Arc::new(MappedClientVerifier {
                            ca: verifier,
                            institutions: map,
                            mandatory,
                        }))
                    }
                    None => builder.with_client_cert_verifier(verifier),
                }
            }
            None => builder.with_no_client_auth(),
        };
        builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))
    }
}

/// PEM text from a file (named in errors) or from memory.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pem<'a> {
    /// A file's path.
    File(&'a str),
    /// The text itself.
    Text(&'a str),
}

impl Pem<'_> {
    fn error(&self, e: &dyn std::fmt::Display) -> TlsError {
        TlsError::File {
            path: match self {
                Pem::File(path) => (*path).to_owned(),
                Pem::Text(_) => "(PEM in memory)".to_owned(),
            },
            reason: e.to_string(),
        }
    }

    /// Every certificate of the text, in order.
    pub(crate) fn certificates(self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let certs: Result<Vec<_>, _> = match self {
            Pem::File(path) => CertificateDer::pem_file_iter(path)
                .map_err(|e| self.error(&e))?
                .collect(),
            Pem::Text(text) => CertificateDer::pem_slice_iter(text.as_bytes()).collect(),
        };
        certs.map_err(|e| self.error(&e))
    }

    /// The private key of the text.
    pub(crate) fn private_key(
        self,
    ) -> Result<tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::PrivateKeyDer;
        match self {
            Pem::File(path) => PrivateKeyDer::from_pem_file(path),
            Pem::Text(text) => PrivateKeyDer::from_pem_slice(text.as_bytes()),
        }
        .map_err(|e| self.error(&e))
    }

    /// The certificates of the text as trust anchors.
    pub(crate) fn roots(self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certificates()? {
            roots.add(c).map_err(|e| TlsError::Config(e.to_string()))?;
        }
        Ok(roots)
    }
}
