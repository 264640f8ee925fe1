//! Bearer secrets of the operator API: session tokens (the cookie), CSRF tokens and API keys.
//! Each is 256 random bits from the system's CSPRNG, shown to the client once in hex; the store
//! keeps only its SHA-256, so a copy of the database opens no session.

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a token (256 bits).
pub const TOKEN_LEN_BYTES: usize = 32;

/// A bearer token in clear (hex). Never printed.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(****)")
    }
}

impl Token {
    /// A new random token; None when the random generator fails.
    pub fn generate() -> Option<Self> {
        let mut raw = [0u8; TOKEN_LEN_BYTES];
        SystemRandom::new().fill(&mut raw).ok()?;
        Some(Self(hex::encode(raw)))
    }

    /// The text given to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, what the store keeps.
    pub fn hash(&self) -> [u8; 32] {
        hash_presented(&self.0)
    }
}

/// The SHA-256 of a token as presented by a client (looked up in the store).
pub fn hash_presented(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    out
}

/// Compares two hashes without an early exit.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_256_bit_hex_and_stored_as_their_hash() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), hash_presented(a.expose()));
        assert!(same_hash(&a.hash(), &a.hash()));
        assert!(!same_hash(&a.hash(), &b.hash()));
        assert_eq!(format!("{a:?}"), "Token(****)");
    }
}
