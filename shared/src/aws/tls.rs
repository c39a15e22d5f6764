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
//!
//! The SDK's client also builds a whole TLS connector (trust store parsed from PEM, rustls
//! configuration) for every SDK client at construction, meant to load certificates early, and
//! drops it; the first request then builds the one it uses. [`https_client`] skips the throwaway
//! builds ([`OneConnectorBuild`]): in auth-api they were 13 % of the instructions before its
//! first `next` (BENCHMARKS.md, "Cold start").

use aws_sdk_dynamodb::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};

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
    SharedHttpClient::new(OneConnectorBuild(
        Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    ))
}

/// An HTTP client that leaves out the check the SDK's client makes at every SDK client's
/// construction: building a connector and dropping it. Requests get their connectors from the
/// wrapped client unchanged, built on the first request and cached there.
///
/// The SDK builds that connector so that the certificates are loaded during initialisation
/// rather than on the first request, but it ignores the result and caches nothing
/// (aws-smithy-http-client 1.5), so the first request builds its own anyway: each SDK client
/// paid for a connector it never used. The embedded roots are checked by this module's tests.
#[derive(Debug)]
pub struct OneConnectorBuild<C>(pub C);

impl<C: HttpClient> HttpClient for OneConnectorBuild<C> {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
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

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    #[derive(Debug, Default)]
    struct Counts {
        checks: AtomicUsize,
        builds: AtomicUsize,
    }

    /// A plain-HTTP SDK client, with its construction checks and connector builds counted.
    #[derive(Debug)]
    struct Counted(SharedHttpClient, Arc<Counts>);

    impl Counted {
        fn new() -> (Self, Arc<Counts>) {
            let counts = Arc::new(Counts::default());
            (Self(Builder::new().build_http(), counts.clone()), counts)
        }
    }

    impl HttpClient for Counted {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.1.builds.fetch_add(1, SeqCst);
            self.0.http_connector(settings, components)
        }

        fn validate_base_client_config(
            &self,
            components: &aws_sdk_dynamodb::config::RuntimeComponentsBuilder,
            cfg: &aws_sdk_dynamodb::config::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.1.checks.fetch_add(1, SeqCst);
            self.0.validate_base_client_config(components, cfg)
        }
    }

    fn sdk_config_with(http: SharedHttpClient) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("AKIDTEST", "test", None, None, "test"),
            ))
            .endpoint_url("http://127.0.0.1:1")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(http)
            .build()
    }

    #[tokio::test]
    async fn sdk_clients_are_built_without_building_a_connector_each() {
        let (client, counts) = Counted::new();
        let sdk = sdk_config_with(SharedHttpClient::new(OneConnectorBuild(client)));

        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let _sns = aws_sdk_sns::Client::new(&sdk);
        let _secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let before_a_request = counts.builds.load(SeqCst);
        let _refused = dynamo.list_tables().send().await.unwrap_err();

        assert_eq!(
            (
                counts.checks.load(SeqCst),
                before_a_request,
                counts.builds.load(SeqCst),
            ),
            (0, 0, 1),
            "(construction checks, connectors before a request, connectors after one)"
        );
    }

    #[tokio::test]
    async fn without_the_wrapper_every_sdk_client_is_checked() {
        // The cost the wrapper removes is real: the same construction checks three times.
        let (client, counts) = Counted::new();
        let sdk = sdk_config_with(SharedHttpClient::new(client));

        let _dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let _sns = aws_sdk_sns::Client::new(&sdk);
        let _secrets = aws_sdk_secretsmanager::Client::new(&sdk);

        assert_eq!(counts.checks.load(SeqCst), 3);
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
