//! A certificate authority made for a test (rcgen), issuing leaf certificates: one copy for the
//! TLS tests (acquirer links, bank links, clearing's API, the operator API's machine clients,
//! PostgreSQL over TLS), which each had their own.

#![allow(dead_code)]

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A self-signed CA.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

/// A leaf the CA issued: its certificate (DER and PEM) and private key (PKCS#8 DER and PEM).
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub key_pem: String,
}

impl Ca {
    /// A CA whose common name is `name`.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf with `name` as its subject alternative name.
    pub fn leaf(&self, name: &str) -> Leaf {
        self.issue(None, &[name])
    }

    /// (certificate PEM, key PEM) of a leaf with `name` as its subject alternative name.
    pub fn leaf_pem(&self, name: &str) -> (String, String) {
        let l = self.leaf(name);
        (l.pem, l.key_pem)
    }

    /// A leaf with `names` as subject alternative names and, if given, `common_name` (rcgen's
    /// default common name otherwise).
    pub fn issue(&self, common_name: Option<&str>, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        if let Some(cn) = common_name {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("leaf");
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
        }
    }
}
