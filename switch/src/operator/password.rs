//! Operator passwords: argon2id (RFC 9106) with the `argon2` crate's defaults (19 MiB, two
//! passes, one lane: OWASP's recommendation), a fresh 128-bit salt per hash, kept as a PHC
//! string so that the parameters travel with the hash.
//!
//! Why a type: a [`Password`] never prints (`Debug` shows `****`) and is wiped on drop, so it
//! cannot end up in a log or an error by accident.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; operators get 12).
pub const PASSWORD_LEN_MIN_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per login).
pub const PASSWORD_LEN_MAX_CHARS: usize = 128;

/// A clear password, as typed. Never printed.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(****)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        // Overwrite the bytes in place (a best effort: copies made by the JSON parser are
        // not reached).
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// Why a password or its hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long for a new password.
    #[error("a password has {PASSWORD_LEN_MIN_CHARS} to {PASSWORD_LEN_MAX_CHARS} characters")]
    Length,
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
}

impl Password {
    /// Wraps a password as typed (any length: checked where it matters).
    pub fn new(clear: String) -> Self {
        Self(clear)
    }

    /// A new random password (20 characters from a 57-symbol alphabet without look-alikes,
    /// about 116 bits), for a first login.
    pub fn generate() -> Result<Self, PasswordError> {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
        let rng = SystemRandom::new();
        let mut out = String::with_capacity(20);
        while out.len() < 20 {
            let mut b = [0u8; 1];
            rng.fill(&mut b).map_err(|_| PasswordError::Random)?;
            // Rejection sampling keeps the symbols uniform.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b[0]) < limit {
                out.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
            }
        }
        Ok(Self(out))
    }

    /// The clear text, to show once (a generated password) or to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the length of a password being set.
    pub fn check_new(&self) -> Result<(), PasswordError> {
        let n = self.0.chars().count();
        if (PASSWORD_LEN_MIN_CHARS..=PASSWORD_LEN_MAX_CHARS).contains(&n) {
            Ok(())
        } else {
            Err(PasswordError::Length)
        }
    }

    /// The argon2id PHC string of this password with a fresh salt.
    pub fn hash(&self) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| PasswordError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hash)
    }

    /// Whether this password matches `phc` (false for a malformed hash, or a password longer
    /// than [`PASSWORD_LEN_MAX_CHARS`]).
    pub fn verify(&self, phc: &str) -> bool {
        if self.0.chars().count() > PASSWORD_LEN_MAX_CHARS {
            return false;
        }
        PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(self.0.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// A hash of a password nobody knows, verified against when the user does not exist, so a
/// login for an unknown name costs the same time as one for a known name.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        Password::generate()
            .and_then(|p| p.hash())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let p = Password::new("correct horse battery".into());
        let h = p.hash().unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert_ne!(h, p.hash().unwrap(), "a fresh salt each time");
        assert!(p.verify(&h));
        assert!(!Password::new("correct horse battery!".into()).verify(&h));
        assert!(!p.verify("not a phc string"));
    }

    #[test]
    fn passwords_never_print_and_new_ones_have_a_length() {
        let p = Password::new("correct horse battery".into());
        assert_eq!(format!("{p:?}"), "Password(****)");
        assert_eq!(
            Password::new("short".into()).check_new(),
            Err(PasswordError::Length)
        );
        let g = Password::generate().unwrap();
        assert_eq!(g.expose().len(), 20);
        assert!(g.check_new().is_ok());
    }
}
