//! Structured JSON logs. Every line carries the fields of the spans it was logged in, so the
//! correlation id recorded on a request or message span appears on every line of that hop.
//!
//! The lines are the shape of `tracing_subscriber`'s JSON format with flattened event fields
//! and a span list (`{"timestamp", "level", <fields>, "spans": [{<fields>, "name"}]}`), written
//! by [`JsonLine`]: that format parses every span's stored fields back into a JSON tree for
//! every line, which was 18 % of a consumer message's CPU in a batch (BENCHMARKS.md, "Log lines
//! without re-parsing"). Here the stored fields, JSON already, are copied as they are.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(format!(
        "aws_smithy_runtime=warn,aws_config=warn,hyper=warn,{directives}"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The functions' log format at `directives`, written to `writer`: tests read their lines
/// from it.
pub fn json_lines<W>(directives: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLine)
        .with_env_filter(filter(directives))
        .with_writer(writer)
        .finish()
}

/// One log line as a JSON object. Span fields are stored by [`JsonFields`] as a JSON object
/// when the span is made (and merged when one is recorded later), so a line copies them.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(level_name(*event.metadata().level()))?;
        writer.write_char('"')?;
        let mut fields = EventFields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = ctx.event_scope() {
            writer.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    writer.write_char(',')?;
                }
                let extensions = span.extensions();
                let stored = extensions
                    .get::<FormattedFields<JsonFields>>()
                    .map_or("", |f| f.fields.as_str());
                // `{"a":1,"b":2}` or empty: its members, then the span's name.
                let members = stored
                    .trim()
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or("")
                    .trim();
                writer.write_char('{')?;
                if !members.is_empty() {
                    writer.write_str(members)?;
                    writer.write_char(',')?;
                }
                writer.write_str("\"name\":")?;
                write_json_string(&mut writer, span.name())?;
                writer.write_char('}')?;
            }
            writer.write_char(']')?;
        }
        writer.write_str("}\n")
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// `2026-11-30T07:16:47.063443Z`: RFC 3339 in UTC with microseconds, as before.
fn write_timestamp(out: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
    use chrono::{Datelike, Timelike};
    let at: chrono::DateTime<chrono::Utc> = now.into();
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.timestamp_subsec_micros().min(999_999),
    )
}

/// `value` as a JSON string: quoted, with `"`, `\` and control characters escaped.
fn write_json_string(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.write_str(&value[plain..at])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        plain = at + 1;
    }
    out.write_str(&value[plain..])?;
    out.write_char('"')
}

/// Writes an event's fields as members of the line's object, as `tracing_serde` does: text
/// and numbers as such, everything else by its `Debug` (a `%` field by its `Display`).
struct EventFields<'a, W> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> EventFields<'_, W> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                write_json_string(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl<W: fmt::Write> Visit for EventFields<'_, W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Most values are short: format once into a buffer, then escape.
        let mut text = String::with_capacity(64);
        let formatted = write!(text, "{value:?}");
        self.member(field, |out| {
            formatted?;
            write_json_string(out, &text)
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| write_json_string(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes one: JSON has no NaN or infinity.
        self.member(field, |out| {
            if value.is_finite() {
                write!(out, "{value:?}")
            } else {
                out.write_str("null")
            }
        });
    }
}

/// What a subscriber under test wrote, shared with the test that reads it back as JSON lines.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Captured {
    /// Each line written, parsed.
    pub(crate) fn json(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The same events, logged under `subscriber`.
    fn log_under(subscriber: impl Subscriber + Send + Sync + 'static) {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(plain = "top level", "no span");
            let span = tracing::info_span!(
                "message",
                correlation_id = "c-1",
                message_id = "m \"1\"",
                receive_count = 2u64,
                subject = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("subject", "recorded later");
            let inner = tracing::info_span!("inner");
            let _inner = inner.enter();
            let error = std::io::Error::other("disk\nfull");
            tracing::warn!(
                text = "tab\there, quote \" and \\ backslash, bell \u{7}, é",
                count = -3i64,
                big = u64::MAX,
                ok = true,
                ratio = 0.25f64,
                nothing = f64::NAN,
                shown = %"display",
                debugged = ?vec![1, 2],
                %error,
                "message with {} {}",
                "formatted",
                "arguments"
            );
        });
    }

    fn without_timestamps(mut lines: Vec<Value>) -> Vec<Value> {
        for line in &mut lines {
            line.as_object_mut().unwrap().remove("timestamp");
        }
        lines
    }

    #[test]
    fn a_line_says_what_tracing_subscribers_own_json_format_says() {
        let (ours, theirs) = (Captured::default(), Captured::default());
        let writer = ours.clone();
        log_under(json_lines("info", move || writer.clone()));
        let writer = theirs.clone();
        log_under(
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter("info"))
                .with_current_span(false)
                .with_span_list(true)
                .flatten_event(true)
                .with_target(false)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );

        let (ours, theirs) = (
            without_timestamps(ours.json()),
            without_timestamps(theirs.json()),
        );

        assert_eq!(ours.len(), 2);
        assert_eq!(ours, theirs);
        assert_eq!(ours[1]["spans"][0]["subject"], "recorded later");
        assert_eq!(
            ours[1]["text"],
            "tab\there, quote \" and \\ backslash, bell \u{7}, é"
        );
        assert!(ours[0].get("spans").is_none(), "no span, no list");
    }

    #[test]
    fn a_timestamp_is_rfc_3339_in_utc_with_microseconds() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_022_857_244_017);
        let mut text = String::new();

        write_timestamp(&mut text, at).unwrap();

        assert_eq!(text, "2026-11-30T07:14:17.244017Z");
    }
}
