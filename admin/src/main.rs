//! `evently-admin`: operator commands for an Evently deployment.
//!
//! - `dlq list | peek | redrive | purge`: dead-letter queues, found from the queues' redrive
//!   policies (see [`dlq`]);
//! - `rebuild-read-model`: re-project the read model and search index from the events table.
//!
//! Talks to whatever the AWS SDK's configuration points at: your AWS credentials and region,
//! or the local emulator when `AWS_ENDPOINT_URL` is set. Table names come from flags or from a
//! CDK outputs file (`infra/outputs.local.json` after `make up`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod dlq;
mod outbox;
use evently_shared::app::rebuild::{Progress, rebuild_read_model};
use evently_shared::aws::{
    DynamoEventStore, DynamoReadModel, DynamoSearchIndex, SnsPublisher, sdk_config,
};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Re-project every event from the events table into the read model and the search
    /// index. Safe while traffic flows: entries already newer than the events table are left
    /// alone.
    RebuildReadModel(Tables),
    /// Publish again every outbox envelope written since a point in time (the recovery path
    /// when the stream relay missed envelopes). Consumers are idempotent: envelopes that did
    /// get through are harmless to repeat.
    ReplayOutbox {
        #[command(flatten)]
        tables: Tables,
        /// RFC 3339 time: replay envelopes created at or after it.
        #[arg(long)]
        since: String,
        /// Domain-event topic (overrides the outputs file).
        #[arg(long)]
        topic_arn: Option<String>,
    },
    /// Dead-letter queues: depth, contents, redrive, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Args)]
struct Stack {
    /// Only queues whose names start with this (CDK names them `<stack>-...`).
    #[arg(long, env = "STACK_NAME", default_value = "Evently")]
    stack: String,
}

impl Stack {
    fn prefix(&self) -> String {
        format!("{}-", self.stack)
    }
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every dead-letter queue with its depth and the queue it drains back to.
    List {
        #[command(flatten)]
        stack: Stack,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show up to --max messages with their decoded envelopes; they stay in the queue.
    Peek {
        #[command(flatten)]
        stack: Stack,
        /// Dead-letter queue name or URL.
        queue: String,
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Move every message back to the source queue, to be processed again.
    Redrive {
        #[command(flatten)]
        stack: Stack,
        /// Dead-letter queue name or URL.
        queue: String,
        /// Receive, send and delete batch by batch even where SQS offers StartMessageMoveTask.
        #[arg(long)]
        manual: bool,
        /// Batch-by-batch mode: seconds a batch stays hidden while it is moved; an
        /// interrupted batch reappears in the DLQ after this.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i32).range(1..=43_200))]
        visibility_seconds: i32,
    },
    /// Delete every message in the queue. Refused unless --confirm repeats the queue name.
    Purge {
        #[command(flatten)]
        stack: Stack,
        /// Dead-letter queue name or URL.
        queue: String,
        /// The queue's name again, to show this is the queue you mean to empty.
        #[arg(long)]
        confirm: Option<String>,
    },
}

#[derive(Args)]
struct Tables {
    /// CDK outputs file to read table names from.
    #[arg(long, default_value = "infra/outputs.local.json")]
    outputs: PathBuf,
    /// Stack whose outputs to use.
    #[arg(long, env = "STACK_NAME", default_value = "Evently")]
    stack: String,
    /// Events table (overrides the outputs file).
    #[arg(long)]
    events_table: Option<String>,
    /// Read-model table (overrides the outputs file).
    #[arg(long)]
    read_model_table: Option<String>,
}

impl Tables {
    /// One value of the stack's outputs file.
    fn output(&self, key: &str) -> Result<String, String> {
        let raw = std::fs::read_to_string(&self.outputs)
            .map_err(|e| format!("{}: {e}", self.outputs.display()))?;
        let all: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", self.outputs.display()))?;
        all[&self.stack][key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no output {key} for stack {}", self.stack))
    }

    fn resolve(&self) -> Result<(String, String), String> {
        let or_output = |given: &Option<String>, key: &str| {
            given.clone().map_or_else(
                || {
                    self.output(key)
                        .map_err(|e| format!("{e} (or pass --events-table and --read-model-table)"))
                },
                Ok,
            )
        };
        Ok((
            or_output(&self.events_table, "EventsTableName")?,
            or_output(&self.read_model_table, "ReadModelTableName")?,
        ))
    }
}

fn show(progress: &Progress) {
    eprint!(
        "\rpages {:>5}  events {:>8}  written {:>8}  already current {:>8}  indexed {:>8}",
        progress.pages,
        progress.scanned,
        progress.written,
        progress.already_current,
        progress.indexed
    );
    let _ = std::io::stderr().flush();
}

fn show_move(moved: u64, total: u64) {
    eprint!("\rmoved {moved:>8} of ~{total}");
    let _ = std::io::stderr().flush();
}

async fn run_dlq(command: DlqCommand) -> Result<ExitCode, dlq::Error> {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    match command {
        DlqCommand::List { stack, json } => {
            let queues = dlq::list(&sqs, &stack.prefix()).await?;
            if json {
                let rows: Vec<serde_json::Value> = queues
                    .iter()
                    .map(|q| {
                        serde_json::json!({
                            "name": q.name,
                            "url": q.url,
                            "depth": q.depth,
                            "in_flight": q.in_flight,
                            "source": match &q.kind {
                                dlq::Kind::DeadLetter { source } => Some(source),
                                dlq::Kind::FailureDestination => None,
                            },
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<60} {:>7} {:>9}  drains to",
                    "queue", "depth", "in flight"
                );
                for q in &queues {
                    let source = match &q.kind {
                        dlq::Kind::DeadLetter { source } => source.as_str(),
                        dlq::Kind::FailureDestination => {
                            "(stream failure records: no source queue)"
                        }
                    };
                    println!("{:<60} {:>7} {:>9}  {source}", q.name, q.depth, q.in_flight);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Peek { stack, queue, max } => {
            let queue = dlq::find(&sqs, &stack.prefix(), &queue).await?;
            for message in dlq::peek(&sqs, &queue, max).await? {
                println!("{message}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Redrive {
            stack,
            queue,
            manual,
            visibility_seconds,
        } => {
            let queue = dlq::find(&sqs, &stack.prefix(), &queue).await?;
            eprintln!("redriving {} (~{} messages)", queue.name, queue.depth);
            let options = dlq::RedriveOptions {
                manual,
                visibility_seconds,
            };
            let done = dlq::redrive(&sqs, &queue, options, show_move).await?;
            eprintln!();
            println!(
                "done: {} messages moved back{}",
                done.moved,
                if done.by_move_task {
                    " by an SQS message move task"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Purge {
            stack,
            queue,
            confirm,
        } => {
            let queue = dlq::find(&sqs, &stack.prefix(), &queue).await?;
            if confirm.as_deref() != Some(queue.name.as_str()) {
                eprintln!(
                    "refusing to purge {} ({} messages): repeat its name with --confirm {}",
                    queue.name, queue.depth, queue.name
                );
                return Ok(ExitCode::from(2));
            }
            dlq::purge(&sqs, &queue).await?;
            println!("purged {} (~{} messages deleted)", queue.name, queue.depth);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn replay_outbox(
    tables: Tables,
    since: &str,
    topic_arn: Option<String>,
) -> Result<ExitCode, dlq::Error> {
    let Ok(since) = chrono::DateTime::parse_from_rfc3339(since) else {
        eprintln!("error: --since must be an RFC 3339 time, e.g. 2026-11-28T16:00:00Z");
        return Ok(ExitCode::from(2));
    };
    let since_ms = u64::try_from(since.timestamp_millis()).map_err(|_| "--since is before 1970")?;
    let (events, _) = tables.resolve()?;
    let topic = match topic_arn {
        Some(topic) => topic,
        None => tables.output("EventsTopicArn")?,
    };
    let sdk = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let publisher = SnsPublisher::new(aws_sdk_sns::Client::new(&sdk), &topic);
    eprintln!("replaying outbox envelopes of {events} created since {since} to {topic}");
    let done = outbox::replay(&dynamo, &events, &publisher, since_ms, |p| {
        eprint!(
            "\rpages {:>5}  found {:>8}  published {:>8}",
            p.scanned_pages, p.found, p.published
        );
        let _ = std::io::stderr().flush();
    })
    .await?;
    eprintln!();
    println!(
        "done: {} envelopes found, {} published ({} pages scanned)",
        done.found, done.published, done.scanned_pages
    );
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ReplayOutbox {
            tables,
            since,
            topic_arn,
        } => match replay_outbox(tables, &since, topic_arn).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("\nerror: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Dlq(command) => match run_dlq(command).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("\nerror: {error}");
                ExitCode::FAILURE
            }
        },
        Command::RebuildReadModel(tables) => {
            let (events, read_model) = match tables.resolve() {
                Ok(names) => names,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
            let source = DynamoEventStore::new(dynamo.clone(), &events);
            let target = DynamoReadModel::new(dynamo.clone(), &read_model);
            let search = DynamoSearchIndex::new(dynamo, &read_model);
            eprintln!("rebuilding {read_model} (read model and search index) from {events}");
            match rebuild_read_model(&source, &target, &search, show).await {
                Ok(done) => {
                    eprintln!();
                    println!(
                        "done: {} events, {} written, {} already current, {} indexed",
                        done.scanned, done.written, done.already_current, done.indexed
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("\nerror: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
