//! Machine clients proven by their TLS certificate: a hospital's HIS or a bank's back office
//! calling the operator API over mutual TLS instead of with an API key.
//!
//! Why: at graded protection level 3 (GB/T 22239-2019, 8.1.4.1 identity authentication) a
//! system's own clients are authenticated as strongly as its people; a bearer key copied from
//! a configuration file works from anywhere, a certificate's private key stays in the client's
//! keystore or HSM. Each certificate the node knows is pinned by the SHA-256 of its
//! SubjectPublicKeyInfo (RFC 7469), as on the acquirer listeners (`acquirer::tls`), and names
//! an institution (the tenant it sees) and a role (what it may do). A client with no
//! certificate is a person and logs in; one whose certificate chains to the CA but is not
//! pinned here is refused at the handshake.

use schemas::domain::InstitutionId;
use std::collections::HashMap;

/// One machine client: its name (in the audit log), its institution and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineClient {
    /// Who it is, for people reading the audit log ("HIS of the First People's Hospital").
    pub name: String,
    /// The institution whose data it sees.
    pub institution: InstitutionId,
    /// The role whose permissions it holds (a role id of the store).
    pub role_id: String,
}

/// Pinned client certificates (SHA-256 of their SPKI) and the machine client each proves.
#[derive(Debug, Clone, Default)]
pub struct MachineClients(HashMap<[u8; 32], MachineClient>);

impl MachineClients {
    /// Pins `spki_sha256` to `client`; refused when that key is already pinned.
    pub fn insert(&mut self, spki_sha256: [u8; 32], client: MachineClient) -> Result<(), String> {
        if self.0.contains_key(&spki_sha256) {
            return Err(format!(
                "client certificate key {} pinned twice",
                hex::encode(spki_sha256)
            ));
        }
        self.0.insert(spki_sha256, client);
        Ok(())
    }

    /// The machine client whose certificate key has SHA-256 `spki_sha256`.
    pub fn get(&self, spki_sha256: &[u8; 32]) -> Option<&MachineClient> {
        self.0.get(spki_sha256)
    }

    /// Each pinned key with the institution it names: what the TLS handshake checks.
    pub fn institutions(&self) -> impl Iterator<Item = ([u8; 32], &InstitutionId)> {
        self.0.iter().map(|(k, c)| (*k, &c.institution))
    }

    /// True when no certificate is pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
