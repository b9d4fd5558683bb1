//! `dvc-pulse`: one binary, many subcommands. Parses arguments, loads configuration,
//! starts telemetry and calls one library function per command; nothing more.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dvc_pulse_app::commands::{self as app, DiffArgs, ImportArgs, SnapshotArgs, shutdown_signal};
use dvc_pulse_app::{Config, telemetry};
use dvc_pulse_devkit::commands::{self as dev, BrokerArgs, DemoArgs, SimulateArgs};
use std::path::PathBuf;

/// Live online-rate analytics for Vietnamese public-service dossiers.
///
/// Configuration: built-in defaults, then --config FILE (TOML), then environment
/// variables DVC_PULSE__SECTION__KEY (e.g. DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS).
#[derive(Parser)]
#[command(name = "dvc-pulse", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "DVC_PULSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything on this machine, nothing external: broker, gateway, simulator, live tally.
    Demo(DemoArgs),
    /// Run the embedded Kafka-protocol broker (librdkafka's mock cluster) until Ctrl-C.
    Broker(BrokerArgs),
    /// Run the HTTP ingest gateway (POST /v1/dossiers).
    Ingest,
    /// Import NDJSON, a JSON array or CSV through the same validation as the gateway.
    Import(ImportArgs),
    /// Generate realistic, messy portal traffic (deterministic with --seed).
    Simulate(Box<SimulateArgs>),
    /// Run a stream worker: consume dossier-events, commit to the table store, serve /v1/windows.
    Worker,
    /// Serve /v1/windows, the page and diffs from the table store only (no Kafka).
    Serve,
    /// Compact, expire and vacuum the table store once, and print what was done.
    Maintain {
        /// Compact every partition value with at least this many files (workers use 16).
        #[arg(long, default_value_t = 2)]
        min_files: usize,
    },
    /// Compute a window straight from an export of events (NDJSON, JSON array or CSV),
    /// or ask a running worker.
    Snapshot(Box<SnapshotArgs>),
    /// What changed in a window between two moments, and why, from a running worker.
    Diff(DiffArgs),
    /// Print the SHA-256 of a token, for ingest.token_sha256 and worker.read_token_sha256.
    HashToken {
        /// The token; read from standard input when absent (keeps it out of the shell
        /// history and the process list).
        token: Option<String>,
    },
    /// Print the effective configuration (secrets masked).
    Config,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    match &cli.command {
        // The demo's terminal is its live tally: logs go to a file it names.
        Command::Demo(_) => telemetry::init_to_file(&cfg.log, &demo_log()),
        _ => telemetry::init(&cfg.log),
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(run(cfg, cli.command))
}

/// Where the demo writes its logs.
fn demo_log() -> PathBuf {
    std::env::temp_dir().join("dvc-pulse-demo.log")
}

async fn run(mut cfg: Config, command: Command) -> Result<()> {
    match command {
        Command::Demo(a) => {
            println!("logs: {}", demo_log().display());
            dev::demo(cfg, &a, shutdown_signal()).await?
        }
        Command::Broker(a) => dev::broker(&cfg, &a, shutdown_signal()).await?,
        Command::Ingest => {
            let _broker = dev::embedded_if_unset(&mut cfg)?;
            app::ingest(&cfg, shutdown_signal()).await?
        }
        Command::Import(a) => app::import(&cfg, &a).await?,
        Command::Simulate(a) => dev::simulate(&cfg, &a).await?,
        Command::Worker => {
            let _broker = dev::embedded_if_unset(&mut cfg)?;
            app::worker(&cfg, shutdown_signal()).await?
        }
        Command::Serve => app::serve(&cfg, shutdown_signal()).await?,
        Command::Maintain { min_files } => app::maintain(&cfg, min_files).await?,
        Command::Snapshot(a) => app::snapshot(&cfg, &a).await?,
        Command::Diff(a) => app::diff(&a).await?,
        Command::HashToken { token } => app::hash_token(token)?,
        Command::Config => println!("{}", cfg.to_json_redacted()),
    }
    Ok(())
}
