//! Passwords: Argon2id hashes in PHC form (parameters from `[auth]`, stored with each hash, so
//! changing them affects new hashes only), verification that takes as long for an unknown
//! account, and generated passwords.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use super::AuthConfig;

/// Hashing failed (bad parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(String);

/// Argon2id with the configured cost.
pub struct Hasher {
    argon: Argon2<'static>,
    /// A hash of a random password, verified against when the account does not exist, so
    /// the answer takes as long either way.
    dummy: String,
}

impl Hasher {
    /// A hasher with `[auth]`'s parameters.
    pub fn new(cfg: &AuthConfig) -> Result<Hasher, HashError> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| HashError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut h = Hasher {
            argon,
            dummy: String::new(),
        };
        h.dummy = h.hash(&generate(24))?;
        Ok(h)
    }

    /// The PHC string of `password` with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches `phc` (`None`: no such account — the dummy hash is checked
    /// so the time does not tell).
    pub fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let target = phc.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(target) else {
            return false;
        };
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && phc.is_some()
    }
}

/// A random password of `n` characters (letters and digits, ~5.95 bits each).
pub fn generate(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let i = (rng.next_u32() as usize) % ALPHABET.len();
            ALPHABET[i] as char
        })
        .collect()
}

/// Why a new password is refused.
pub fn check_new(cfg: &AuthConfig, password: &str) -> Result<(), String> {
    if password.chars().count() < cfg.password_min_length {
        return Err(format!(
            "the password must have at least {} characters (`auth.password_min_length`)",
            cfg.password_min_length
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("the password must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let cfg = AuthConfig {
            argon2_memory_kib: 8 * 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        };
        let h = Hasher::new(&cfg).unwrap();
        let a = h.hash("correct horse battery").unwrap();
        let b = h.hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(h.verify("correct horse battery", Some(&a)));
        assert!(!h.verify("correct horse batterz", Some(&a)));
        assert!(!h.verify("anything", None), "no account never verifies");
        assert!(!h.verify("x", Some("not a hash")));
        assert_eq!(generate(20).len(), 20);
        assert!(check_new(&cfg, "short").is_err());
        assert!(check_new(&cfg, "long enough password").is_ok());
    }
}
