//! Password hashing with Argon2id at the OWASP minimum (19 MiB, 2 passes, 1 lane).
//!
//! Hashes are PHC strings, which carry their own parameters: raising the cost later only
//! changes new hashes, and old ones keep verifying.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// A well-formed hash with the current parameters whose output bytes are random, so no
/// password matches it. Logins for unknown addresses verify against it: they cost what a real
/// verification costs, and the response time does not tell which addresses have accounts.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZS1ub3QtYS1zZWNyZXQtc2FsdA$u2lQRI6mMAWPwiUoRM/M5u4/kp6pAk4EOQ5WRUwpx0k";

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher(argon2id)")
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .expect("the OWASP parameters are valid");
        Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        }
    }
}

impl PasswordHasher {
    /// Hashes off the async runtime: Argon2 is tens of milliseconds of pure CPU.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
    }

    /// Whether `password` matches `stored`; with no stored hash, a dummy verification of the
    /// same cost runs and the answer is `false`.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> bool {
        let argon = self.argon.clone();
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
                && known
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::new_for(raw, None).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hasher = PasswordHasher::default();

        let hash = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();

        assert!(
            hasher
                .verify(password("correct horse battery"), Some(hash.clone()))
                .await
        );
        assert!(
            !hasher
                .verify(password("correct horse battery!"), Some(hash))
                .await
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_owasp_parameters_in_the_phc_string() {
        let hash = PasswordHasher::default()
            .hash(password("correct horse battery"))
            .await
            .unwrap();

        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let other = PasswordHasher::default()
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        assert_ne!(hash, other, "every hash has its own salt");
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_current_parameters_so_unknown_emails_cost_the_same() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (MEMORY_KIB, ITERATIONS, PARALLELISM)
        );
        assert!(
            !PasswordHasher::default()
                .verify(password("anything at all"), None)
                .await
        );
    }
}
