//! A function's AWS call to a peer that accepts the connection and never answers ends in a
//! timeout error, after a retry on a new connection, instead of waiting for the Lambda timeout.
//! `lambda_sdk_config` reads the process environment, so this is the only test in its binary.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use evently_shared::aws::{lambda_sdk_config, lambda_timeouts};

/// A peer on 127.0.0.1 that accepts every connection and never answers.
/// Dropping it stops its thread and closes what it holds.
struct SilentPeer {
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentPeer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("a bound address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    // Kept open and never answered; the kernel takes the request.
                    held.push(stream);
                }
            }
        });
        Self {
            address,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn set(name: &str, value: &str) {
    // SAFETY: this binary runs one test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(name, value) }
}

#[tokio::test]
async fn a_call_to_a_silent_peer_times_out_after_a_retry_instead_of_hanging() {
    let peer = SilentPeer::start();
    set("AWS_REGION", "us-east-1");
    set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    set("AWS_SECRET_ACCESS_KEY", "example-secret");
    set("AWS_ENDPOINT_URL", &format!("http://{}", peer.address));
    let config = lambda_sdk_config().unwrap();
    let operation_timeout = lambda_timeouts().operation_timeout().unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&config);

    let started = Instant::now();
    let outcome = tokio::time::timeout(
        operation_timeout * 4,
        dynamo.get_item().table_name("events").send(),
    )
    .await;
    let waited = started.elapsed();

    let Ok(answered) = outcome else {
        panic!("still waiting after {waited:?}: the call has no timeout");
    };
    let error = answered.expect_err("a silent peer cannot answer");
    assert!(
        matches!(error, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)),
        "{error:?}"
    );
    assert!(
        peer.accepted.load(Ordering::SeqCst) >= 2,
        "the stuck attempt was not retried on a new connection ({} accepted in {waited:?})",
        peer.accepted.load(Ordering::SeqCst)
    );
    assert!(
        waited >= lambda_timeouts().operation_attempt_timeout().unwrap(),
        "gave up after {waited:?}, before a single attempt's timeout"
    );
}
