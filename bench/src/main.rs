//! `evently-bench cold-start`: how long each function takes from `exec` to its first
//! `GET /2018-06-01/runtime/invocation/next`, and how much memory it has touched by then.
//!
//! Each release binary is started as Lambda would start it, against a minimal Runtime API
//! served here on 127.0.0.1, with its real initialisation: the environment of the deployed
//! function (read from the Lambda API of the local stack, or AWS), SDK clients, and key
//! material. The first `next` is the end of init: the harness notes the time, reads the
//! process's peak RSS (`VmHWM`) and kills it. auth-api starts reading its key ring from Secrets
//! Manager as its runtime starts polling; in its second row the harness answers that read and
//! waits for it before the kill, and prints when it answered.
//! A `lambda_runtime` hello-world is measured the same way, in the same run, as the floor.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod startup_path;

const FUNCTIONS: [&str; 9] = [
    "events-api",
    "outbox-relay",
    "read-model-updater",
    "auth-api",
    "welcome-email",
    "jwt-keys",
    "analytics",
    "notifications",
    "search-index",
];
const FLOOR: &str = "evently-hello";

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Exec-to-first-`next` time and peak RSS of every function and of the floor.
    ColdStart {
        /// Starts per function.
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// The cargo profile whose binaries to start (from target/<profile>).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Build them first (`cargo build --profile <profile> --locked`).
        #[arg(long)]
        build: bool,
        /// The deployed stack whose function environments to use.
        #[arg(long, env = "STACK_NAME", default_value = "Evently")]
        stack: String,
    },
    /// Trace what every function runs before its first `next` (callgrind) and write the
    /// linker script that packs that code together.
    StartupPath {
        /// A profile that keeps the symbol table (from target/<profile>).
        #[arg(long, default_value = "release-syms")]
        profile: String,
        /// Build them first (`cargo build --profile <profile> --locked`).
        #[arg(long)]
        build: bool,
        /// The deployed stack whose function environments to use.
        #[arg(long, env = "STACK_NAME", default_value = "Evently")]
        stack: String,
        /// Where to write the linker script.
        #[arg(long, default_value = "functions/startup-path.ld")]
        out: std::path::PathBuf,
    },
}

/// One start: milliseconds to the first `next`, and peak RSS in KiB at that moment.
#[derive(Debug, Clone, Copy)]
struct Start {
    millis: f64,
    /// Milliseconds to the key ring's answer, when the harness answers it (see
    /// [`secrets_manager_stub`]), before or after the first `next`.
    key_millis: Option<f64>,
    peak_rss_kib: u64,
    /// The part of the resident set that is the process's own memory (heap, stacks), not
    /// pages of its binary and libraries.
    anon_kib: u64,
}

/// Serves the Runtime API's `next` by noting when it is asked for and never answering: the
/// function is killed before it would get an event.
fn runtime_api() -> (String, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address").to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("a socket clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            if request_line.starts_with("GET /2018-06-01/runtime/invocation/next") {
                let _ = tx.send(Instant::now());
                held.push(stream);
            } else {
                // An init error report, or anything else: acknowledge and move on.
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    });
    (address, rx)
}

/// Answers Secrets Manager's `GetSecretValue` on 127.0.0.1 with `answer` (the JSON body),
/// at once, and sends the moment it answered: the extra `auth-api` row measures the function
/// with its key read, its real SDK call over HTTP included, without the time the emulator
/// (or, on AWS, the network and the service) takes to answer. Any other operation gets a 400.
fn secrets_manager_stub(answer: String) -> (String, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = format!("http://{}", listener.local_addr().expect("its address"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            // One request per start; the connection stays open until the function is killed,
            // as a service's would.
            match answer_one(&stream, &answer) {
                Ok(true) => {
                    let _ = tx.send(Instant::now());
                    held.push(stream);
                }
                Ok(false) => held.push(stream),
                Err(_) => {}
            }
        }
    });
    (address, rx)
}

/// Answers one request; true if it was the secret's.
fn answer_one(stream: &TcpStream, answer: &str) -> std::io::Result<bool> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let (mut length, mut target) = (0, String::new());
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-amz-target" => target = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    std::io::Read::read_exact(&mut reader, &mut vec![0; length])?;
    let secret = target == "secretsmanager.GetSecretValue";
    let (status, body) = if secret {
        ("200 OK", answer)
    } else {
        (
            "400 Bad Request",
            r#"{"__type":"UnknownOperationException"}"#,
        )
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    Ok(secret)
}

/// The `GetSecretValue` answer for `secret_id`, as the service sent it, for the stub.
async fn get_secret_value_answer(
    sdk: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<String, String> {
    let output = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "{secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    Ok(serde_json::json!({
        "ARN": output.arn(),
        "Name": output.name(),
        "VersionId": output.version_id(),
        "SecretString": output.secret_string(),
        "VersionStages": output.version_stages(),
    })
    .to_string())
}

/// A `/proc/<pid>/status` figure in KiB (`VmHWM`, `RssAnon`), 0 if unreadable.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| {
                    l.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with(':'))
                })
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// `command` set up as Lambda starts a function: only the function's environment and the
/// Runtime API's address; its output is not wanted.
fn as_lambda<'c>(
    command: &'c mut Command,
    environment: &HashMap<String, String>,
    runtime_api: &str,
) -> &'c mut Command {
    command
        .env_clear()
        .envs(environment)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// One start of `binary`. With `key_answers` (the stub's), it also waits for the function to
/// read its key ring, after the first `next` if need be, before it is killed.
fn start_once(
    binary: &Path,
    environment: &HashMap<String, String>,
    key_answers: Option<&mpsc::Receiver<Instant>>,
) -> Result<Start, String> {
    let (address, next) = runtime_api();
    // An answer to an earlier start that was killed first is not this start's.
    if let Some(answers) = key_answers {
        answers.try_iter().for_each(drop);
    }
    let started = Instant::now();
    let mut child = as_lambda(&mut Command::new(binary), environment, &address)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let since_start = |at: Instant| at.duration_since(started).as_secs_f64() * 1000.0;
    let outcome = match next.recv_timeout(Duration::from_secs(10)) {
        Ok(at) => {
            let peak_rss_kib = status_kib(child.id(), "VmHWM");
            let anon_kib = status_kib(child.id(), "RssAnon");
            match key_answers.map(|answers| answers.recv_timeout(Duration::from_secs(10))) {
                Some(Err(_)) => Err(format!(
                    "{} never read its key ring (within 10 s of its first next)",
                    binary.display()
                )),
                key => Ok(Start {
                    millis: since_start(at),
                    key_millis: key.and_then(Result::ok).map(since_start),
                    peak_rss_kib,
                    anon_kib,
                }),
            }
        }
        Err(_) => Err(format!(
            "{} never asked for an event (init failed or took over 10 s)",
            binary.display()
        )),
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What Lambda sets for every function, plus the deployed function's own variables.
async fn environment_of(
    lambda: &aws_sdk_lambda::Client,
    stack: &str,
    function: &str,
) -> Result<HashMap<String, String>, String> {
    let mut environment: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "PATH" || k == "HOME")
        .collect();
    let name = format!("{stack}-{function}");
    if function != FLOOR {
        let config = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .map_err(|e| format!("{name}: {}", aws_sdk_lambda::error::DisplayErrorContext(e)))?;
        if let Some(variables) = config.environment().and_then(|e| e.variables()) {
            environment.extend(variables.clone());
        }
    }
    environment.extend([
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            "/aws/lambda/bench".into(),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "bench".into()),
        ("LOG_LEVEL".into(), "info".into()),
    ]);
    Ok(environment)
}

/// `cargo build --profile <profile>` of `packages`, in one invocation: one feature resolution.
/// The functions are built together, as `make build-arm64` builds them for AWS; the floor is
/// built alone, so that it stays a minimal hello-world instead of taking on the features the
/// functions enable in shared crates (tokio, hyper, serde), which made it 0.6 MiB larger.
/// `packed: false` links them without `functions/startup-path.ld`.
fn cargo_build(profile: &str, packages: &[&str], packed: bool) -> Result<(), String> {
    let mut cargo = Command::new("cargo");
    cargo.args(["build", "--profile", profile, "--locked"]);
    if !packed {
        cargo.env("EVENTLY_NO_STARTUP_PATH", "1");
    }
    for package in packages {
        cargo.args(["-p", package]);
    }
    let status = cargo.status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build --profile {profile} failed"));
    }
    Ok(())
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

async fn startup_path(profile: &str, build: bool, stack: &str, out: &Path) -> Result<(), String> {
    if build {
        // Traced from a packed build, the packed functions would be missing from the new script:
        // callgrind attributes the code of a section ahead of `.text` to no object.
        cargo_build(profile, &FUNCTIONS, false)?;
    }
    let lambda = aws_sdk_lambda::Client::new(&sdk_config().await);
    let traces = std::env::temp_dir().join(format!("evently-startup-path-{}", std::process::id()));
    std::fs::create_dir_all(&traces).map_err(|e| e.to_string())?;
    let mut globs = std::collections::BTreeSet::new();
    for function in FUNCTIONS {
        let environment = environment_of(&lambda, stack, function).await?;
        let binary = Path::new("target").join(profile).join(function);
        let found = startup_path::trace(&binary, &environment, &traces)?;
        println!(
            "{function:<20} {:>5} functions before the first next",
            found.len()
        );
        globs.extend(found);
    }
    let _ = std::fs::remove_dir_all(&traces);
    std::fs::write(out, startup_path::linker_script(&globs, &FUNCTIONS))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{} patterns written to {}", globs.len(), out.display());
    Ok(())
}

async fn cold_start(runs: usize, profile: &str, build: bool, stack: &str) -> Result<(), String> {
    let bin_dir = Path::new("target").join(profile);
    if build {
        cargo_build(profile, &[FLOOR], true)?;
        cargo_build(profile, &FUNCTIONS, true)?;
    }
    let sdk = sdk_config().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    println!(
        "cold start: exec to the first GET /runtime/invocation/next, {runs} starts each, {}",
        bin_dir.display()
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "function", "p50 ms", "p99 ms", "max ms", "peak RSS", "x floor", "RSS x", "anon", "binary"
    );
    let floor_binary = bin_dir.join(FLOOR);
    let floor_environment = environment_of(&lambda, stack, FLOOR).await?;
    let floor = (floor_binary.as_path(), &floor_environment);
    let measured = measure(&floor_binary, &floor_environment, runs)?;
    print_row(FLOOR, &measured, &measured, &floor_binary);
    for function in FUNCTIONS {
        let binary = bin_dir.join(function);
        let environment = environment_of(&lambda, stack, function).await?;
        let (measured, beside) = measure_beside(&binary, &environment, runs, floor, None)?;
        print_row(function, &measured, &beside, &binary);
        if let Some(secret_id) = environment
            .get(KEY_SECRET_VARIABLE)
            .filter(|_| READS_KEY_RING_AT_START.contains(&function))
        {
            let (stub, answers) =
                secrets_manager_stub(get_secret_value_answer(&sdk, secret_id).await?);
            let mut environment = environment.clone();
            environment.insert("AWS_ENDPOINT_URL".into(), stub);
            let (measured, beside) =
                measure_beside(&binary, &environment, runs, floor, Some(&answers))?;
            print_row(&format!("{function}*"), &measured, &beside, &binary);
            if let Some(key) = &measured.key {
                println!(
                    "{:<20} key ring answered {:.2} ms after exec (p50), after the first next \
                     in {} of {runs} starts",
                    format!("{function}*"),
                    key.p50,
                    key.after_next
                );
            }
        }
    }
    println!(
        "x floor, RSS x: against the floor started alternately with the function, start for \
         start, so that both see the same moments of the machine"
    );
    println!(
        "* the key ring's GetSecretValue answered at once by the harness: the function without \
         the service's time to answer (its SDK call over HTTP included); the harness waits for \
         that answer before it kills the function, also when it comes after the first next"
    );
    Ok(())
}

/// The functions that read the key ring at start (jwt-keys has the variable too, but reads
/// the secret only when it rotates the key), and the variable naming the secret. auth-api reads
/// it once its runtime waits for the first event (functions/auth-api/src/keys.rs).
const READS_KEY_RING_AT_START: [&str; 1] = ["auth-api"];
const KEY_SECRET_VARIABLE: &str = "JWT_KEY_SECRET_ID";

/// The figures of one function's starts.
struct Measured {
    p50: f64,
    p99: f64,
    max: f64,
    rss_p50: f64,
    anon_p50: f64,
    /// When the harness answered the key ring (see [`Start::key_millis`]).
    key: Option<KeyRead>,
}

struct KeyRead {
    p50: f64,
    /// Starts whose key ring was answered after their first `next`.
    after_next: usize,
}

/// `runs` starts of `binary`, after one uncounted start to warm the page cache.
fn measure(
    binary: &Path,
    environment: &HashMap<String, String>,
    runs: usize,
) -> Result<Measured, String> {
    Ok(figures(&starts(binary, environment, runs, None, None)?.0))
}

/// [`measure`], with as many starts of the `floor` (binary, environment) alternating with
/// them; the second figures are the floor's.
fn measure_beside(
    binary: &Path,
    environment: &HashMap<String, String>,
    runs: usize,
    floor: (&Path, &HashMap<String, String>),
    key_answers: Option<&mpsc::Receiver<Instant>>,
) -> Result<(Measured, Measured), String> {
    let (starts, floor_starts) = starts(binary, environment, runs, Some(floor), key_answers)?;
    Ok((figures(&starts), figures(&floor_starts)))
}

type Starts = (Vec<Start>, Vec<Start>);

fn starts(
    binary: &Path,
    environment: &HashMap<String, String>,
    runs: usize,
    floor: Option<(&Path, &HashMap<String, String>)>,
    key_answers: Option<&mpsc::Receiver<Instant>>,
) -> Result<Starts, String> {
    start_once(binary, environment, key_answers)?;
    let (mut starts, mut floor_starts) = (Vec::with_capacity(runs), Vec::new());
    for _ in 0..runs {
        if let Some((floor, environment)) = floor {
            floor_starts.push(start_once(floor, environment, None)?);
        }
        starts.push(start_once(binary, environment, key_answers)?);
    }
    Ok((starts, floor_starts))
}

fn figures(starts: &[Start]) -> Measured {
    let millis = sorted(starts.iter().map(|s| s.millis));
    let mib = |kib: u64| kib as f64 / 1024.0;
    Measured {
        p50: percentile(&millis, 50.0),
        p99: percentile(&millis, 99.0),
        max: millis[millis.len() - 1],
        rss_p50: percentile(&sorted(starts.iter().map(|s| mib(s.peak_rss_kib))), 50.0),
        anon_p50: percentile(&sorted(starts.iter().map(|s| mib(s.anon_kib))), 50.0),
        key: starts
            .iter()
            .all(|s| s.key_millis.is_some())
            .then(|| KeyRead {
                p50: percentile(&sorted(starts.iter().filter_map(|s| s.key_millis)), 50.0),
                after_next: starts
                    .iter()
                    .filter(|s| s.key_millis.is_some_and(|key| key > s.millis))
                    .count(),
            }),
    }
}

/// One table row, its ratios against `floor`.
fn print_row(label: &str, m: &Measured, floor: &Measured, binary: &Path) {
    let (time_ratio, rss_ratio) = (m.p50 / floor.p50, m.rss_p50 / floor.rss_p50);
    // Most of the RSS is the binary's own pages (the kernel maps file pages around each
    // fault), so its size is printed beside it.
    let binary_mib = std::fs::metadata(binary)
        .map(|meta| meta.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!(
        "{label:<20} {:>8.2} {:>8.2} {:>8.2} {:>6.1} MiB {time_ratio:>8.2}x {rss_ratio:>8.2}x {:>6.1} MiB {binary_mib:>6.1} MiB",
        m.p50, m.p99, m.max, m.rss_p50, m.anon_p50,
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Bench::ColdStart {
            runs,
            profile,
            build,
            stack,
        } => cold_start(runs.max(1), &profile, build, &stack).await,
        Bench::StartupPath {
            profile,
            build,
            stack,
            out,
        } => startup_path(&profile, build, &stack, &out).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();

        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn the_runtime_api_notes_the_first_next_and_holds_it() {
        let (address, next) = runtime_api();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();

        stream
            .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();

        assert!(next.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    fn call(address: &str, target: &str) -> String {
        let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: {target}\r\ncontent-length: 2\r\n\r\n{{}}"
        )
        .unwrap();
        // The stub keeps the connection open: read the head, then exactly the body.
        let mut reader = BufReader::new(stream);
        let (mut answer, mut length) = (String::new(), 0);
        while !answer.ends_with("\r\n\r\n") {
            let at = answer.len();
            reader.read_line(&mut answer).unwrap();
            if let Some(value) = answer[at..].strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        answer + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn the_secrets_stub_answers_get_secret_value_and_notes_when() {
        let (address, answered) = secrets_manager_stub(r#"{"SecretString":"ring"}"#.into());

        let secret = call(&address, "secretsmanager.GetSecretValue");
        let other = call(&address, "secretsmanager.ListSecrets");

        assert!(secret.starts_with("HTTP/1.1 200"), "{secret}");
        assert!(secret.ends_with(r#"{"SecretString":"ring"}"#), "{secret}");
        assert!(other.starts_with("HTTP/1.1 400"), "{other}");
        assert_eq!(
            answered.try_iter().count(),
            1,
            "only the secret's answer is noted"
        );
    }
}
