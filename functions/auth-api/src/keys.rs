//! The signing half of the key ring, read from the vault when a route first needs it.
//!
//! Only POST /login (to sign) and a keyed POST /signup (for the pepper) need the private key.
//! Reading it before the first event made every route of a new instance wait for Secrets
//! Manager, and made every route fail while Secrets Manager did: an init error fails the
//! instance. `main` starts the read as soon as the runtime starts polling for events, so it
//! normally overlaps the wait for the first event; a read that fails is tried again by the
//! next request that needs the key, and the routes that do not need it keep answering.

use evently_shared::ports::{KeyVault, StoreError};
use evently_shared::tokens::{KeyRing, PublicKey, TokenConfig, TokenSigner};
use tokio::sync::OnceCell;

/// What the private key gives a request.
pub struct Signing {
    pub signer: TokenSigner,
    /// Keys the signup fingerprints (see `KeyScope::pepper`). It is derived from the signing
    /// key: a secret every instance shares and that never leaves the function.
    pub idempotency_pepper: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading the key secret: {0}")]
    Vault(#[from] StoreError),
    #[error("the key secret is empty")]
    Empty,
    #[error("the key secret does not hold a valid key ring")]
    Invalid,
    #[error("JWT_PUBLIC_KEYS does not list the current signing key {kid}")]
    Unlisted { kid: String },
}

/// The signing key material of one instance, read at most once successfully.
pub struct SigningKeys<V> {
    pub(crate) vault: V,
    tokens: TokenConfig,
    ttl_seconds: i64,
    read: OnceCell<Signing>,
}

impl<V: KeyVault> SigningKeys<V> {
    pub fn new(vault: V, tokens: TokenConfig, ttl_seconds: i64) -> Self {
        Self {
            vault,
            tokens,
            ttl_seconds,
            read: OnceCell::new(),
        }
    }

    /// The key material, read from the vault on the first call. Concurrent callers share one
    /// read; a failed read is not remembered.
    pub async fn get(&self) -> Result<&Signing, KeyError> {
        self.read.get_or_try_init(|| self.load()).await
    }

    async fn load(&self) -> Result<Signing, KeyError> {
        let secret = self.vault.read().await?.ok_or(KeyError::Empty)?;
        let ring = KeyRing::from_json(&secret).map_err(|_| KeyError::Invalid)?;
        // Tokens signed with a key the verifiers do not know would be refused everywhere.
        if !listed(&self.tokens.public_keys, &ring.current.kid) {
            return Err(KeyError::Unlisted {
                kid: ring.current.kid,
            });
        }
        let signer = TokenSigner::new(
            &ring.current,
            &self.tokens.issuer,
            &self.tokens.audience,
            self.ttl_seconds,
        )
        .map_err(|_| KeyError::Invalid)?;
        let idempotency_pepper = evently_shared::idempotency::fingerprint(&[
            b"evently signup idempotency pepper",
            ring.current.private_key.as_bytes(),
        ])
        .into_bytes();
        Ok(Signing {
            signer,
            idempotency_pepper,
        })
    }
}

fn listed(public_keys: &[PublicKey], kid: &str) -> bool {
    public_keys.iter().any(|key| key.kid == kid)
}

#[cfg(test)]
mod tests {
    use evently_shared::domain::UserId;
    use evently_shared::fakes::InMemoryVault;
    use evently_shared::tokens::{KeyRing, TokenVerifier};

    use super::*;

    fn config_for(ring: &KeyRing) -> TokenConfig {
        TokenConfig {
            public_keys: ring.public_keys(),
            issuer: "https://auth.evently.test".into(),
            audience: "evently-api".into(),
        }
    }

    /// Keys whose vault holds `stored`, for verifiers that list `listed`'s public keys.
    fn keys_holding(stored: &KeyRing, listed: &KeyRing) -> SigningKeys<InMemoryVault> {
        SigningKeys::new(
            InMemoryVault::holding(serde_json::to_string(stored).unwrap()),
            config_for(listed),
            900,
        )
    }

    #[tokio::test]
    async fn the_key_is_read_once_and_signs_tokens_the_verifier_accepts() {
        let ring = KeyRing::generate();
        let keys = keys_holding(&ring, &ring);

        let first = keys.get().await.unwrap();
        let token = first
            .signer
            .issue(&UserId::generate(), chrono::Utc::now().timestamp());
        keys.get().await.unwrap();

        assert_eq!(keys.vault.reads(), 1);
        let verifier = TokenVerifier::new(&config_for(&ring)).unwrap();
        assert!(verifier.verify(&token.token).is_ok());
    }

    #[tokio::test]
    async fn a_failed_read_is_tried_again_by_the_next_caller() {
        let ring = KeyRing::generate();
        let keys = keys_holding(&ring, &ring);
        keys.vault.set_down(true);

        let during = keys.get().await.map(|_| ());
        keys.vault.set_down(false);
        let after = keys.get().await.map(|_| ());

        assert!(matches!(during, Err(KeyError::Vault(_))), "{during:?}");
        assert!(after.is_ok(), "{after:?}");
        assert_eq!(keys.vault.reads(), 2);
    }

    #[tokio::test]
    async fn a_key_the_verifiers_do_not_list_is_refused_by_its_kid() {
        let ring = KeyRing::generate();
        let other = KeyRing::generate();
        let keys = keys_holding(&ring, &other);

        let error = keys.get().await.map(|_| ()).unwrap_err();

        assert!(
            error.to_string().contains(&ring.current.kid),
            "{error}: should name {}",
            ring.current.kid
        );
    }

    #[tokio::test]
    async fn an_empty_or_foreign_secret_is_refused_without_echoing_it() {
        let ring = KeyRing::generate();
        let empty = SigningKeys::new(InMemoryVault::default(), config_for(&ring), 900);
        let foreign = SigningKeys::new(
            InMemoryVault::holding("Xq9!random-initial-secret"),
            config_for(&ring),
            900,
        );

        let empty = empty.get().await.map(|_| ()).unwrap_err();
        let foreign = foreign.get().await.map(|_| ()).unwrap_err();

        assert!(matches!(empty, KeyError::Empty), "{empty:?}");
        assert!(matches!(foreign, KeyError::Invalid), "{foreign:?}");
        assert!(!foreign.to_string().contains("Xq9!"));
    }
}
