//! `lambda_sdk_config` reads the process environment, so its cases run in order in this one
//! test, alone in its own test binary (no other test can see the variables change).

use evently_shared::aws::lambda_sdk_config;
use evently_shared::config::ConfigError;

const VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
];

fn set(name: &str, value: &str) {
    // SAFETY: this binary runs one test on one thread; nothing else reads the environment.
    unsafe { std::env::set_var(name, value) }
}

#[test]
fn the_lambda_configuration_comes_from_lambdas_own_variables_and_names_what_is_missing() {
    for name in VARIABLES {
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var(name) }
    }

    assert_eq!(
        lambda_sdk_config().unwrap_err(),
        ConfigError::Missing("AWS_REGION")
    );

    set("AWS_REGION", "eu-central-1");
    assert_eq!(
        lambda_sdk_config().unwrap_err(),
        ConfigError::Missing("AWS_ACCESS_KEY_ID")
    );

    set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    set("AWS_SECRET_ACCESS_KEY", "example-secret");
    let config = lambda_sdk_config().unwrap();
    assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-central-1"));
    assert_eq!(config.endpoint_url(), None);
    assert_eq!(
        (config.use_fips(), config.use_dual_stack()),
        (Some(false), Some(false))
    );
    assert!(config.credentials_provider().is_some());
    let timeouts = config.timeout_config().expect("timeouts are set");
    assert_eq!(
        (
            timeouts.operation_attempt_timeout(),
            timeouts.operation_timeout()
        ),
        (
            Some(std::time::Duration::from_millis(1500)),
            Some(std::time::Duration::from_secs(4))
        ),
        "the SDK's defaults would wait on a silent peer until the Lambda timeout"
    );
    assert_eq!(
        config
            .stalled_stream_protection()
            .map(|guard| guard.is_enabled()),
        Some(false),
        "the attempt timeout ends a stalled body first; the guard only cost CPU"
    );

    set("AWS_ENDPOINT_URL", "http://127.0.0.1:4566");
    set("AWS_USE_DUALSTACK_ENDPOINT", "true");
    let config = lambda_sdk_config().unwrap();
    assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
    assert_eq!(config.use_dual_stack(), Some(true));

    set("AWS_USE_FIPS_ENDPOINT", "maybe");
    assert!(matches!(
        lambda_sdk_config().unwrap_err(),
        ConfigError::Invalid {
            name: "AWS_USE_FIPS_ENDPOINT",
            ..
        }
    ));
}
