//! Warm CPU per request and per message (`make bench-warm`): the timed part parses the Lambda
//! event from its fixture and runs the handler; the SDK's HTTP layer answers from the
//! scenario's recording.
//!
//! Two groups: `warm` keeps one SDK client and its adapters across iterations, as a warm
//! Lambda instance does (the recorded responses replayed in a loop); `fresh-client` builds a
//! new client on a `StaticReplayClient` for every iteration (outside the timing), so each call
//! is that client's first, which is what the first event after a cold start pays. Before
//! timing, one run on a `StaticReplayClient` must succeed and send exactly the recorded
//! operations, so a stale recording fails loudly instead of timing an error path.

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::test_util::StaticReplayClient;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evently_shared::domain::{Password, UserId};
use evently_shared::fakes::test_keys;
use evently_shared::password::PasswordHasher;
use evently_shared::tokens::TokenConfig;
use evently_warm::{Recording, Replayer, Resources, Scenario, Wired, recordings_dir, sdk_config};

// The same allocator as the functions whose handlers run here (their main.rs): the figures are
// theirs only if the allocations cost what they cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENDPOINT: &str = "http://127.0.0.1:4566";

fn on_static_replay(recording: &Recording, tokens: &TokenConfig) -> (Wired, StaticReplayClient) {
    let client = StaticReplayClient::new(recording.events());
    let sdk = sdk_config(SharedHttpClient::new(client.clone()), ENDPOINT);
    (Wired::new(&sdk, &Resources::replayed(), tokens), client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn handlers(c: &mut Criterion) {
    let runtime = runtime();
    let (signer, tokens) = test_keys("https://auth.evently.test", "evently-api");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let token = signer
        .issue(&UserId::parse("sub", "bench-user").expect("an id"), now)
        .token;

    let mut scenarios = Vec::new();
    for scenario in Scenario::ALL {
        let path = recordings_dir().join(format!("{}.json", scenario.name()));
        let recording = Recording::load(&path).unwrap_or_else(|e| panic!("{e} (make record-warm)"));
        let input = scenario.input(&token);
        let (check, client) = on_static_replay(&recording, &tokens);
        runtime
            .block_on(scenario.run(&check, &input))
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name()));
        recording
            .check(client.actual_requests())
            .unwrap_or_else(|e| panic!("{}: {e} (make record-warm)", scenario.name()));
        scenarios.push((scenario, recording, input));
    }

    let mut warm = c.benchmark_group("warm");
    for (scenario, recording, input) in &scenarios {
        let sdk = sdk_config(SharedHttpClient::new(Replayer::new(recording)), ENDPOINT);
        let wired = Wired::new(&sdk, &Resources::replayed(), &tokens);
        warm.bench_function(scenario.name(), |b| {
            b.to_async(&runtime).iter(|| async {
                let outcome = scenario.run(&wired, input).await;
                assert!(outcome.is_ok(), "{}: {outcome:?}", scenario.name());
            })
        });
    }
    warm.finish();

    let mut fresh = c.benchmark_group("fresh-client");
    for (scenario, recording, input) in &scenarios {
        fresh.bench_function(scenario.name(), |b| {
            b.to_async(&runtime).iter_batched(
                || on_static_replay(recording, &tokens),
                |(wired, client)| async move {
                    let outcome = scenario.run(&wired, input).await;
                    (outcome, wired, client)
                },
                BatchSize::SmallInput,
            )
        });
    }
    fresh.finish();
}

/// Login's one CPU-bound step, for sizing auth-api's memory (BENCHMARKS.md): Argon2id at the
/// OWASP parameters (19 MiB, 2 passes, 1 lane) on one core.
fn password(c: &mut Criterion) {
    let runtime = runtime();
    let password = || Password::new_for("correct horse battery staple", None).expect("valid");
    let hasher = PasswordHasher::default();
    let stored = runtime.block_on(hasher.hash(password())).expect("a hash");
    assert!(runtime.block_on(hasher.verify(password(), Some(stored.clone()))));

    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("auth-api-argon2id-verify", |b| {
        b.to_async(&runtime)
            .iter(|| hasher.verify(password(), Some(stored.clone())))
    });
    group.finish();
}

criterion_group!(benches, handlers, password);
criterion_main!(benches);
