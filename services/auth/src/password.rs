//! Password hashing with argon2id, stored as PHC strings
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), and the password policy.
//!
//! Hashing is CPU- and memory-heavy on purpose; callers on an async runtime
//! must run it on `tokio::task::spawn_blocking` (the service does).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// Length limits and argon2id cost. Defaults follow the OWASP recommendation
/// for argon2id (19 MiB, 2 iterations, 1 lane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    pub min_len: usize,
    /// Maximum length in characters; bounds the work an attacker can ask for.
    pub max_len: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 128,
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Upper bounds on the cost read from a stored hash, so a corrupt or hostile
/// row cannot make one verification allocate gigabytes or spin for minutes.
const MAX_VERIFY_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_VERIFY_ITERATIONS: u32 = 64;
const MAX_VERIFY_PARALLELISM: u32 = 64;

impl PasswordPolicy {
    /// A cheap policy for tests: same length rules, minimal argon2 cost.
    pub fn fast_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            ..Self::default()
        }
    }

    /// Checks a candidate password for registration.
    pub fn check(&self, password: &str) -> Result<(), AuthError> {
        let len = password.chars().count();
        if len < self.min_len {
            return Err(AuthError::WeakPassword(format!(
                "must be at least {} characters",
                self.min_len
            )));
        }
        if len > self.max_len {
            return Err(AuthError::WeakPassword(format!(
                "must be at most {} characters",
                self.max_len
            )));
        }
        if password.trim().is_empty() {
            return Err(AuthError::WeakPassword(
                "must not be only spaces".to_string(),
            ));
        }
        Ok(())
    }

    /// The argon2id hasher for this policy; fails on impossible parameters
    /// (e.g. memory below 8 KiB per lane).
    pub fn hasher(&self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::Unavailable(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes `password` with a fresh random salt; returns the PHC string.
/// Blocking: call from `spawn_blocking`.
pub fn hash_password(policy: &PasswordPolicy, password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = policy
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Unavailable(format!("cannot hash password: {e}")))?;
    Ok(hash.to_string())
}

/// True when `password` matches the PHC string `phc`. Never panics: a
/// malformed, unsupported or absurdly expensive hash simply does not match.
/// The cost parameters come from the hash itself, so hashes made under an
/// older policy still verify. Blocking: call from `spawn_blocking`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB
        || params.t_cost() > MAX_VERIFY_ITERATIONS
        || params.p_cost() > MAX_VERIFY_PARALLELISM
    {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips() {
        let policy = PasswordPolicy::fast_for_tests();
        let hash = hash_password(&policy, "correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn same_password_gets_a_different_salt() {
        let policy = PasswordPolicy::fast_for_tests();
        let a = hash_password(&policy, "password123").expect("hash");
        let b = hash_password(&policy, "password123").expect("hash");
        assert_ne!(a, b);
    }

    #[test]
    fn default_policy_produces_owasp_parameters() {
        let hash = hash_password(&PasswordPolicy::default(), "password123").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("password123", &hash));
    }

    #[test]
    fn garbage_hashes_do_not_match_or_panic() {
        for garbage in [
            "",
            "$",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=64,t=1,p=1$!!!$###",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$whatever",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password123", garbage), "{garbage:?}");
        }
    }

    #[test]
    fn policy_enforces_length_in_characters() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("1234567").is_err());
        assert!(policy.check("12345678").is_ok());
        // 8 characters, 16 bytes: counts as 8.
        assert!(policy.check("ÄÖÜäöüßé").is_ok());
        assert!(policy.check(&"x".repeat(128)).is_ok());
        assert!(policy.check(&"x".repeat(129)).is_err());
        assert!(policy.check("          ").is_err());
        assert_eq!(
            policy.check("short").map_err(|e| e.code()),
            Err("WEAK_PASSWORD")
        );
    }

    #[test]
    fn impossible_parameters_are_reported_not_panicking() {
        let policy = PasswordPolicy {
            memory_kib: 1,
            ..PasswordPolicy::default()
        };
        assert!(policy.hasher().is_err());
        assert!(hash_password(&policy, "password123").is_err());
    }
}
