//! The second factor: time-based one-time passwords, RFC 6238 (TOTP) over RFC 4226 (HOTP),
//! HMAC-SHA-1, 30-second steps from the Unix epoch, 6 digits, as every authenticator app
//! computes them. HMAC-SHA-1 is `ring`'s (`HMAC_SHA1_FOR_LEGACY_USE_ONLY`: SHA-1 is what the
//! RFC and the apps use; HMAC-SHA-1 is not broken by SHA-1's collisions).
//!
//! The secret is 160 bits (RFC 4226 §4 asks for at least 128), shown once in base32
//! (RFC 4648) and stored only sealed under the operator data key ([`super::keys`]). A
//! [`TotpSecret`] never prints and is wiped on drop.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The time step (RFC 6238 §4.1, X = 30 s).
pub const TOTP_STEP_S: u64 = 30;
/// Digits of an operator's code.
pub const TOTP_DIGITS: u32 = 6;
/// Steps either side of now a code is still accepted (clock drift, RFC 6238 §5.2).
pub const TOTP_DRIFT_STEPS: u64 = 1;
/// Bytes of a secret.
pub const TOTP_SECRET_LEN_BYTES: usize = 20;

/// A TOTP shared secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; TOTP_SECRET_LEN_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(****)")
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Option<Self> {
        let mut s = [0u8; TOTP_SECRET_LEN_BYTES];
        SystemRandom::new().fill(&mut s).ok()?;
        Some(Self(s))
    }

    /// From its bytes (as unsealed).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; TOTP_SECRET_LEN_BYTES]>::try_from(bytes)
            .ok()
            .map(Self)
    }

    /// From its base32 text (RFC 4648, upper case, no padding).
    pub fn from_base32(text: &str) -> Option<Self> {
        let bytes = data_encoding::BASE32_NOPAD.decode(text.as_bytes()).ok()?;
        Self::from_bytes(&bytes)
    }

    /// The bytes, to seal.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Base32 text, to type into an authenticator app (shown once).
    pub fn to_base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The code of time `unix_s` with `digits` digits (RFC 6238 §4.2: HOTP of the step count).
    pub fn code_at(&self, unix_s: u64, digits: u32) -> u32 {
        hotp(&self.0, unix_s / TOTP_STEP_S, digits)
    }

    /// Whether `code` (6 digits) is the code of `unix_s`, or of a step either side of it.
    pub fn verify(&self, code: &str, unix_s: u64) -> bool {
        self.verified_step(code, unix_s).is_some()
    }

    /// The time step whose code `code` is (`unix_s`'s, or one either side of it; the latest
    /// when several match), or None. A verifier keeps the last step it accepted per user and
    /// refuses a code of that step or an earlier one (RFC 6238 §5.2: an OTP is accepted once).
    pub fn verified_step(&self, code: &str, unix_s: u64) -> Option<u64> {
        if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code = code.parse::<u32>().ok()?;
        let step = unix_s / TOTP_STEP_S;
        let mut matched = None;
        // Every candidate is computed, so the time taken does not say which one matched.
        for s in step.saturating_sub(TOTP_DRIFT_STEPS)..=step + TOTP_DRIFT_STEPS {
            if hotp(&self.0, s, TOTP_DIGITS) == code {
                matched = Some(s);
            }
        }
        matched
    }
}

/// RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte big-endian counter, dynamic truncation, modulo
/// 10^digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    word % 10u32.pow(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the SHA-1 seed is the ASCII of "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let s = rfc_secret();
        for (t, code) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(s.code_at(t, 8), code, "T = {t}");
            // An operator's 6 digits are the same number modulo 10^6.
            assert_eq!(s.code_at(t, 6), code % 1_000_000, "T = {t}");
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            755_224u32, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), *code);
        }
    }

    #[test]
    fn the_verified_step_is_the_step_of_the_code() {
        let s = rfc_secret();
        let code = |t: u64| format!("{:06}", s.code_at(t, TOTP_DIGITS));
        let now = 59 * TOTP_STEP_S + 7;
        assert_eq!(s.verified_step(&code(now), now), Some(59));
        assert_eq!(s.verified_step(&code(now - TOTP_STEP_S), now), Some(58));
        assert_eq!(s.verified_step(&code(now + TOTP_STEP_S), now), Some(60));
        assert_eq!(s.verified_step(&code(now + 2 * TOTP_STEP_S), now), None);
        assert_eq!(s.verified_step("12345", now), None);
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_not_further() {
        let s = rfc_secret();
        let code = format!("{:06}", s.code_at(1_111_111_111, 6));
        assert!(s.verify(&code, 1_111_111_111));
        assert!(s.verify(&code, 1_111_111_111 + 30));
        assert!(s.verify(&code, 1_111_111_111 - 30));
        assert!(!s.verify(&code, 1_111_111_111 + 90));
        assert!(!s.verify("12345", 1_111_111_111));
        assert!(!s.verify("1234567", 1_111_111_111));
        assert!(!s.verify("+12345", 1_111_111_111));
    }

    #[test]
    fn a_secret_round_trips_through_base32_and_never_prints() {
        let s = TotpSecret::generate().unwrap();
        assert_eq!(TotpSecret::from_base32(&s.to_base32()), Some(s.clone()));
        assert_eq!(s.to_base32().len(), 32);
        assert_eq!(format!("{s:?}"), "TotpSecret(****)");
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
