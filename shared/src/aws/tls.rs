//! The HTTPS client every SDK client shares, and the roots it trusts.
//!
//! The SDK's default client loads the whole system trust store when a client is built: on
//! Debian and Amazon Linux that is a bundle of about 150 certificates read and parsed twice
//! (the bundle file and the hashed directory), the largest single cost of a cold start
//! measured in BENCHMARKS.md. Every AWS endpoint these functions call presents a chain to
//! Amazon Trust Services, whose five roots (Amazon Root CA 1-4 and the Starfield Services
//! G2 cross-sign) are embedded here instead. The system store is added back when an
//! `AWS_ENDPOINT_URL*` variable names an `https://` endpoint (LocalStack over TLS, a proxy),
//! whose certificate may come from any CA, or when `EVENTLY_TRUST_SYSTEM_ROOTS=true`.

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// The Amazon Trust Services roots, PEM, with their subjects and SHA-256 fingerprints.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("../../certs/amazon-trust-services.pem");

/// Which roots an HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedRoots {
    /// Amazon Trust Services only: every AWS service endpoint.
    AmazonOnly,
    /// Amazon Trust Services and the operating system's store.
    AmazonAndSystem,
}

impl TrustedRoots {
    /// Decides from environment variables (name, value).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let wants_system = vars.into_iter().any(|(name, value)| {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            (name.starts_with("AWS_ENDPOINT_URL")
                && value
                    .get(..8)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://")))
                || (name == "EVENTLY_TRUST_SYSTEM_ROOTS" && value.eq_ignore_ascii_case("true"))
        });
        if wants_system {
            Self::AmazonAndSystem
        } else {
            Self::AmazonOnly
        }
    }

    /// Decides from this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }
}

/// An HTTPS client (rustls on aws-lc, as the SDK's default) trusting `roots`.
pub fn https_client(roots: TrustedRoots) -> SharedHttpClient {
    let store = TrustStore::empty()
        .with_native_roots(roots == TrustedRoots::AmazonAndSystem)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("a trust store without extra server names is always valid");
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn pem_bodies(pem: &str) -> Vec<Vec<u8>> {
        pem.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|rest| {
                let body: String = rest
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_embedded_roots_are_exactly_the_five_amazon_trust_services_roots() {
        let fingerprints: Vec<String> = pem_bodies(AMAZON_TRUST_SERVICES_ROOTS)
            .iter()
            .map(|der| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();

        // Published at https://www.amazontrust.com/repository/ (and in Mozilla's CA list).
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
    }

    #[test]
    fn aws_endpoints_need_only_the_amazon_roots() {
        let roots = TrustedRoots::from_vars([("AWS_REGION", "eu-west-1"), ("HOME", "/root")]);

        assert_eq!(roots, TrustedRoots::AmazonOnly);
    }

    #[test]
    fn a_plain_http_emulator_endpoint_needs_no_system_roots() {
        let roots = TrustedRoots::from_vars([("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")]);

        assert_eq!(roots, TrustedRoots::AmazonOnly);
    }

    #[test]
    fn an_https_endpoint_override_adds_the_system_roots() {
        for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"] {
            let roots =
                TrustedRoots::from_vars([(name, "HTTPS://localhost.localstack.cloud:4566")]);

            assert_eq!(roots, TrustedRoots::AmazonAndSystem, "{name}");
        }
    }

    #[test]
    fn the_system_roots_can_be_asked_for_explicitly() {
        let on = TrustedRoots::from_vars([("EVENTLY_TRUST_SYSTEM_ROOTS", "true")]);
        let off = TrustedRoots::from_vars([("EVENTLY_TRUST_SYSTEM_ROOTS", "no")]);

        assert_eq!(
            (on, off),
            (TrustedRoots::AmazonAndSystem, TrustedRoots::AmazonOnly)
        );
    }

    #[tokio::test]
    async fn a_request_builds_its_tls_connector_from_the_embedded_roots() {
        // The connector, and with it the parsed trust store, is built when a request is
        // dispatched; an unparsable embedded certificate panics there. Port 1 refuses the
        // connection, so the request then fails as a dispatch (connect) error.
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST",
                "test-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url("https://127.0.0.1:1")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(https_client(TrustedRoots::AmazonOnly))
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&config);

        let error = client.list_tables().send().await.unwrap_err();

        assert!(
            matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
            "{error:?}"
        );
    }
}
