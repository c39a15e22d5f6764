//! `evently-admin`: operator commands for an Evently deployment.
//!
//! Talks to whatever the AWS SDK's configuration points at: your AWS credentials and region,
//! or the local emulator when `AWS_ENDPOINT_URL` is set. Table names come from flags or from a
//! CDK outputs file (`infra/outputs.local.json` after `make up`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use evently_shared::app::rebuild::{Progress, rebuild_read_model};
use evently_shared::aws::{DynamoEventStore, DynamoReadModel, DynamoSearchIndex, sdk_config};

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
    fn resolve(&self) -> Result<(String, String), String> {
        if let (Some(events), Some(read_model)) = (&self.events_table, &self.read_model_table) {
            return Ok((events.clone(), read_model.clone()));
        }
        let raw = std::fs::read_to_string(&self.outputs).map_err(|e| {
            format!(
                "{}: {e} (pass --events-table and --read-model-table instead)",
                self.outputs.display()
            )
        })?;
        let all: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", self.outputs.display()))?;
        let output = |key: &str| {
            all[&self.stack][key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no output {key} for stack {}", self.stack))
        };
        Ok((
            self.events_table
                .clone()
                .map_or_else(|| output("EventsTableName"), Ok)?,
            self.read_model_table
                .clone()
                .map_or_else(|| output("ReadModelTableName"), Ok)?,
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
