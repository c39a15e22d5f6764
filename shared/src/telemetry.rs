//! Structured JSON logs. Every line carries the fields of the spans it was logged in, so the
//! correlation id recorded on a request or message span appears on every line of that hop.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the JSON subscriber, writing to stdout. The level comes from `LOG_LEVEL` (or
/// `RUST_LOG`), default `info`; the AWS SDK's own chatter is held at `warn` unless asked for
/// explicitly.
pub fn init() {
    let directives = std::env::var("LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    tracing::subscriber::set_global_default(json_lines(&directives, std::io::stdout))
        .expect("the log subscriber is installed once, first thing in main");
}

/// The functions' log format at `directives`, written to `writer`: tests read their lines
/// from it.
pub fn json_lines<W>(directives: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(format!(
        "aws_smithy_runtime=warn,aws_config=warn,hyper=warn,{directives}"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .finish()
}
