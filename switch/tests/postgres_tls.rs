//! The store's link to PostgreSQL over mutual TLS (issue 24; GB/T 22239-2019 level 3,
//! "communication transmission": every link protected). A private cluster is started for the
//! test with certificates made at test time: it accepts only TLS connections that present a
//! client certificate from the switch's CA (`hostssl ... cert`). The switch's store connects
//! with libpq's parameters (`sslmode=verify-full`, `sslrootcert`, `sslcert`, `sslkey`) and
//! works; without TLS, without its certificate, or facing a server from another CA, it is
//! refused.
//!
//! Needs PostgreSQL's server binaries (Debian's `postgresql` package, `initdb` and `pg_ctl`
//! under /usr/lib/postgresql/*/bin): the test FAILS when they are missing (ops/setup.sh).

#[path = "support/pg_server.rs"]
mod pg_server;
use pg_server::*;

use std::path::PathBuf;
use std::sync::Arc;

use switch::sim::testkit;
use switch::store::{DataKeyPanProtector, PostgresConfig, PostgresStore, Store};

/// A certificate authority made for this test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf for `common_name` with `names` as subject alternative names: (cert PEM, key PEM).
    fn leaf(&self, common_name: &str, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A private cluster on a free port that takes only TLS with a client certificate.
struct TlsCluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
}

impl TlsCluster {
    fn start(server_ca: &Ca, client_ca: &Ca) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        chown_to_server_user(dir.path());
        let out = as_server_user(
            &pg_bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (cert, key) = server_ca.leaf("127.0.0.1", &["127.0.0.1", "localhost"]);
        std::fs::write(data.join("server.crt"), cert).unwrap();
        std::fs::write(data.join("server.key"), key).unwrap();
        std::fs::write(data.join("client-ca.crt"), client_ca.cert.pem()).unwrap();
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'client-ca.crt'\nfsync = off\nmax_connections = 20\n",
            dir.path().display()
        );
        let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        c.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), c).unwrap();
        // TCP only over TLS, and only with a client certificate whose CN names the user.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
        )
        .unwrap();
        chown_to_server_user(&data);
        let key = data.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let out = as_server_user(
            &pg_bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                data.join("server.log").to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
        );
        Self {
            _dir: dir,
            data,
            port,
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = as_server_user(
            &pg_bin("pg_ctl"),
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

/// The switch's side: its trusted CA for the server and its client certificate.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new(trusted_server_ca: &Ca, client_ca: &Ca, user: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = client_ca.leaf(user, &[]);
        std::fs::write(dir.path().join("ca.crt"), trusted_server_ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("switch.crt"), cert).unwrap();
        std::fs::write(dir.path().join("switch.key"), key).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_owned()
    }

    fn url(&self, port: u16, sslmode: &str, with_certificate: bool) -> String {
        let mut url = format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode={sslmode}&sslrootcert={}",
            self.path("ca.crt")
        );
        if with_certificate {
            url.push_str(&format!(
                "&sslcert={}&sslkey={}",
                self.path("switch.crt"),
                self.path("switch.key")
            ));
        }
        url
    }
}

async fn connect(url: String) -> Result<PostgresStore, String> {
    PostgresStore::connect(
        &PostgresConfig {
            url,
            schema: None,
            connections_max: 2,
        },
        Arc::new(DataKeyPanProtector::for_tests()),
    )
    .await
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_store_works_over_mutual_tls_and_is_refused_without_it() {
    let (server_ca, client_ca) = (Ca::new("db server CA"), Ca::new("switch client CA"));
    let cluster = TlsCluster::start(&server_ca, &client_ca);
    let client = Client::new(&server_ca, &client_ca, "postgres");

    let store = connect(client.url(cluster.port, "verify-full", true))
        .await
        .expect("verified TLS with the switch's certificate connects");
    let fx = testkit::seed(&store, 10_000, 50_000).await.unwrap();
    let institutions = store.institutions().await.unwrap();
    assert!(institutions.iter().any(|i| i.institution_id == fx.hospital));
    store.close().await;

    let plain = connect(client.url(cluster.port, "disable", true)).await;
    assert!(plain.is_err(), "a connection without TLS is refused");
    let anonymous = connect(client.url(cluster.port, "verify-full", false)).await;
    assert!(
        anonymous.is_err(),
        "TLS without the switch's certificate is refused"
    );
}

#[tokio::test]
async fn a_server_whose_certificate_the_switch_does_not_trust_is_refused() {
    let (server_ca, client_ca) = (Ca::new("db server CA"), Ca::new("switch client CA"));
    let cluster = TlsCluster::start(&server_ca, &client_ca);
    let impostor_ca = Ca::new("someone else's CA");
    let client = Client::new(&impostor_ca, &client_ca, "postgres");
    let refused = connect(client.url(cluster.port, "verify-full", true))
        .await
        .map(|_| ())
        .expect_err("a server certificate from an untrusted CA is refused");
    assert!(
        refused.to_lowercase().contains("certificate") || refused.to_lowercase().contains("tls"),
        "{refused}"
    );
}
