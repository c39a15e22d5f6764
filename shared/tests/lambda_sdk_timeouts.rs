//! A function's AWS call to a peer that goes silent ends in a timeout error, after a retry on a
//! new connection, instead of waiting for the Lambda timeout: whether the peer never answers or
//! stops halfway through the body (the functions' clients have no stalled-stream protection;
//! their attempt timeout is what ends a stalled body).
//!
//! `lambda_sdk_config` reads the process environment, so this is the only test in its binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use evently_shared::aws::{lambda_sdk_config, lambda_timeouts};

/// What the peer sends on each connection before it goes silent.
#[derive(Clone, Copy)]
enum Silence {
    /// Nothing at all.
    FromTheStart,
    /// A 200's head, announcing 100 bytes of body, and the first 9 of them.
    HalfwayThroughTheBody,
}

/// A peer on 127.0.0.1 that accepts every connection and then never sends another byte.
/// Dropping it stops its thread and closes what it holds.
struct SilentPeer {
    address: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentPeer {
    fn start(silence: Silence) -> Self {
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
                    let Ok(mut stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if let Silence::HalfwayThroughTheBody = silence {
                        // The request (a few hundred bytes) arrives in one read.
                        let _ = stream.read(&mut [0; 8192]);
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\n\
                              Content-Type: application/x-amz-json-1.0\r\n\
                              Content-Length: 100\r\n\r\n\
                              {\"Item\":{",
                        );
                    }
                    // Kept open, and no more is sent.
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
async fn a_call_to_a_peer_gone_silent_times_out_after_a_retry_instead_of_hanging() {
    set("AWS_REGION", "us-east-1");
    set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    set("AWS_SECRET_ACCESS_KEY", "example-secret");
    let operation_timeout = lambda_timeouts().operation_timeout().unwrap();
    let attempt_timeout = lambda_timeouts().operation_attempt_timeout().unwrap();

    for (case, silence) in [
        ("from the start", Silence::FromTheStart),
        ("halfway through the body", Silence::HalfwayThroughTheBody),
    ] {
        let peer = SilentPeer::start(silence);
        set("AWS_ENDPOINT_URL", &format!("http://{}", peer.address));
        let dynamo = aws_sdk_dynamodb::Client::new(&lambda_sdk_config().unwrap());

        let started = Instant::now();
        let outcome = tokio::time::timeout(
            operation_timeout * 4,
            dynamo.get_item().table_name("events").send(),
        )
        .await;
        let waited = started.elapsed();

        let Ok(answered) = outcome else {
            panic!("silent {case}: still waiting after {waited:?}, the call has no timeout");
        };
        let error = answered.expect_err("a silent peer cannot answer");
        assert!(
            matches!(error, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)),
            "silent {case}: {error:?}"
        );
        let accepted = peer.accepted.load(Ordering::SeqCst);
        assert!(
            accepted >= 2,
            "silent {case}: the stuck attempt was not retried on a new connection \
             ({accepted} accepted in {waited:?})"
        );
        assert!(
            waited >= attempt_timeout,
            "silent {case}: gave up after {waited:?}, before a single attempt's timeout"
        );
    }
}
