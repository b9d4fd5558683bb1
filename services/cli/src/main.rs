//! `dvc-pulse`: one binary, many subcommands. Parses arguments, loads configuration,
//! starts telemetry and calls the library's run functions; nothing more.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dvc_pulse_app::simulate::{Options, Target, TruthWindow};
use dvc_pulse_app::{Config, EmbeddedBroker, telemetry};
use std::io::{IsTerminal, Write};
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
    Demo {
        /// Localities to simulate (commune, district or province codes).
        #[arg(long, default_value = "56", value_delimiter = ',')]
        localities: Vec<String>,
        /// Volume multiplier on the calibrated rates.
        #[arg(long, default_value_t = 0.3)]
        scale: f64,
    },
    /// Run the embedded Kafka-protocol broker (librdkafka's mock cluster) until Ctrl-C.
    Broker {
        /// Write the bootstrap address to this file too (for scripts).
        #[arg(long)]
        bootstrap_file: Option<PathBuf>,
    },
    /// Run the HTTP ingest gateway (POST /v1/dossiers).
    Ingest,
    /// Import NDJSON, a JSON array or CSV through the same validation as the gateway.
    Import {
        /// The file.
        file: PathBuf,
        /// Records per Kafka transaction.
        #[arg(long, default_value_t = 2000)]
        batch: usize,
        /// Skip records before this index (resume after an interrupted import).
        #[arg(long, default_value_t = 0)]
        skip_before: usize,
    },
    /// Generate realistic, messy portal traffic (deterministic with --seed).
    Simulate {
        /// Write NDJSON here.
        #[arg(long, conflicts_with_all = ["gateway", "kafka"])]
        out: Option<PathBuf>,
        /// Post to this gateway base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        gateway: Option<String>,
        /// Bearer token for --gateway.
        #[arg(long, env = "DVC_PULSE_TOKEN")]
        token: Option<String>,
        /// Publish to Kafka (kafka.bootstrap_servers) through gateway validation.
        #[arg(long)]
        kafka: bool,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First day of receptions (YYYY-MM-DD).
        #[arg(long, default_value = "2024-06-05")]
        start: chrono::NaiveDate,
        /// Days of receptions.
        #[arg(long, default_value_t = 31)]
        days: u32,
        /// Localities (commune, district or province codes).
        #[arg(long, default_value = "582", value_delimiter = ',')]
        localities: Vec<String>,
        /// Volume multiplier.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Share of versions redelivered byte for byte.
        #[arg(long, default_value_t = 0.05)]
        duplicate_rate: f64,
        /// Share of dossiers whose versions arrive out of order.
        #[arg(long, default_value_t = 0.10)]
        out_of_order_rate: f64,
        /// Share of dossiers that arrive late.
        #[arg(long, default_value_t = 0.05)]
        late_rate: f64,
        /// Longest lateness in days.
        #[arg(long, default_value_t = 60)]
        late_max_days: i64,
        /// Share of dossiers corrected later.
        #[arg(long, default_value_t = 0.02)]
        correction_rate: f64,
        /// Malformed records per dossier.
        #[arg(long, default_value_t = 0.01)]
        malformed_rate: f64,
        /// Share of versions sent as DVCQG records (with personal data to be dropped).
        #[arg(long, default_value_t = 0.2)]
        dvcqg_rate: f64,
        /// With --out: write OUT.truth.json for the window FROM:TO (YYYY-MM-DD:YYYY-MM-DD).
        #[arg(long)]
        truth: Option<String>,
        /// Locality filter of the truth window.
        #[arg(long)]
        truth_locality: Option<String>,
    },
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
    /// Compute a window straight from an export of events (NDJSON, JSON array or CSV).
    Snapshot {
        /// An export of events (NDJSON or DVCQG JSON) to compute the window from.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        input: Option<PathBuf>,
        /// A running worker to ask instead, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        url: Option<String>,
        /// The window as known at this moment (RFC 3339, or a day: its end); needs --url.
        #[arg(long, requires = "url")]
        as_of: Option<String>,
        /// table, annex (online reception) or processing.
        #[arg(long, default_value = "table")]
        layout: String,
        /// CSV header: keys (machine names) or vi (Vietnamese titles).
        #[arg(long, default_value = "keys")]
        header: String,
        /// Annex services: ids separated by commas, A..B for a catalogue range.
        #[arg(long)]
        services: Option<String>,
        /// Annex programme when --services is absent: DA06 or QD422.
        #[arg(long)]
        programme: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// First day, YYYY-MM-DD (default: --to minus 29 days).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, YYYY-MM-DD (default: today in Asia/Ho_Chi_Minh).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Groupings, comma-separated: procedure, service, locality, commune, district,
        /// province, province_legacy, agency.
        #[arg(long, default_value = "service")]
        group_by: String,
        /// Only this unit and everything under it.
        #[arg(long)]
        locality: Option<String>,
        /// json, csv, xlsx or parquet.
        #[arg(long, default_value = "json")]
        format: String,
        /// Ignore versions older than this many days before today, as a worker does.
        #[arg(long, conflicts_with = "url")]
        horizon_days: Option<i32>,
    },
    /// What changed in a window between two moments, and why, from a running worker.
    Diff {
        /// The worker, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        url: String,
        /// First day, YYYY-MM-DD (default: --to minus 29 days).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, YYYY-MM-DD (default: today).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Groupings, comma-separated.
        #[arg(long, default_value = "service")]
        group_by: String,
        /// Only this unit and everything under it.
        #[arg(long)]
        locality: Option<String>,
        /// The earlier moment (a snapshot's as_of.at).
        #[arg(long)]
        as_of_a: String,
        /// The later moment (default: now).
        #[arg(long)]
        as_of_b: Option<String>,
    },
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
    telemetry::init(&cfg.log);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(run(cfg, cli.command))
}

/// Ctrl-C or SIGTERM (what `docker stop` and supervisors send).
async fn ctrl_c() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(mut cfg: Config, command: Command) -> Result<()> {
    match command {
        Command::Demo { localities, scale } => {
            let opts = dvc_pulse_app::demo::DemoOptions {
                localities,
                scale,
                ..Default::default()
            };
            dvc_pulse_app::demo::run(cfg, opts, ctrl_c()).await?;
        }
        Command::Worker => {
            let _broker = embedded_if_unset(&mut cfg)?;
            let mut w = dvc_pulse_app::worker::start(&cfg, None).await?;
            println!("worker API on http://{}/v1/windows", w.addr);
            // A consume loop that ends on its own failed (store unwritable, fenced):
            // exit non-zero so that the supervisor restarts the worker.
            tokio::select! {
                _ = ctrl_c() => w.stop().await?,
                failed = w.failed() => {
                    w.abort();
                    anyhow::bail!("worker stopped: {failed}");
                }
            }
        }
        Command::Serve => {
            let w = dvc_pulse_app::worker::serve(&cfg, None).await?;
            println!("query API on http://{}/v1/windows", w.addr);
            ctrl_c().await;
            w.stop().await?;
        }
        Command::Maintain { min_files } => {
            let m = dvc_pulse_app::worker::maintain(&cfg, min_files).await?;
            println!(
                "{}",
                serde_json::json!({"compacted": m.compacted, "expired_days": m.expired, "vacuumed_files": m.vacuumed})
            );
        }
        Command::Snapshot {
            input,
            url,
            as_of,
            layout,
            header,
            services,
            programme,
            output,
            from,
            to,
            group_by,
            locality,
            format,
            horizon_days,
        } => {
            let opts = dvc_pulse_worker::export::ReportOptions::parse(
                Some(&layout),
                Some(&header),
                Some(&format),
                services.clone(),
                programme.clone(),
            )?;
            let binary = matches!(format.as_str(), "xlsx" | "parquet");
            anyhow::ensure!(
                output.is_some() || !binary || !std::io::stdout().is_terminal(),
                "--format {format} writes a binary file: give --output FILE"
            );
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")?,
            );
            let body = if let Some(url) = url {
                let mut params: Vec<(&str, String)> = vec![
                    ("group_by", group_by),
                    ("format", format),
                    ("layout", layout),
                    ("header", header),
                ];
                let opt = [
                    ("from", from.map(|d| d.to_string())),
                    ("to", to.map(|d| d.to_string())),
                    ("locality", locality),
                    ("as_of", as_of),
                    ("services", services),
                    ("programme", programme),
                ];
                params.extend(opt.into_iter().filter_map(|(k, v)| Some((k, v?))));
                let (_, body) = dvc_pulse_app::snapshot::from_url(
                    &url,
                    "/v1/windows",
                    &params,
                    |read, total| {
                        bar.set_length(total.unwrap_or(read));
                        bar.set_position(read);
                    },
                )
                .await?;
                body
            } else {
                let input = input.expect("clap requires --input or --url");
                let now = chrono::Utc::now();
                let to = to.unwrap_or_else(|| {
                    now.with_timezone(&dvc_pulse_model::event::ict())
                        .date_naive()
                });
                let group_by = if opts.layout == dvc_pulse_rollup::report::Layout::Table {
                    group_by
                } else {
                    "service".into()
                };
                let q = dvc_pulse_rollup::WindowQuery {
                    from: from.unwrap_or(to - chrono::Duration::days(29)),
                    to,
                    group_by: dvc_pulse_rollup::GroupKey::parse_list(&group_by)?,
                    locality,
                };
                let s = dvc_pulse_app::snapshot::from_file(
                    &cfg,
                    &input,
                    &q,
                    now,
                    horizon_days,
                    |read, total| {
                        bar.set_length(total);
                        bar.set_position(read);
                    },
                )
                .await?;
                eprintln!("{}", serde_json::to_string(&s.input)?);
                let reference = dvc_pulse_model::Reference::load(&cfg.reference)?;
                let meta = serde_json::json!({ "input": s.input });
                dvc_pulse_worker::export::render(&s.table, meta, &opts, &reference)?.body
            };
            bar.finish_and_clear();
            match output {
                Some(path) => std::fs::write(&path, &body)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(&body)?,
            }
        }
        Command::Diff {
            url,
            from,
            to,
            group_by,
            locality,
            as_of_a,
            as_of_b,
        } => {
            let opt = [
                ("from", from.map(|d| d.to_string())),
                ("to", to.map(|d| d.to_string())),
                ("locality", locality),
                ("as_of_b", as_of_b),
            ];
            let mut params = vec![("group_by", group_by), ("as_of_a", as_of_a)];
            params.extend(opt.into_iter().filter_map(|(k, v)| Some((k, v?))));
            let (_, body) =
                dvc_pulse_app::snapshot::from_url(&url, "/v1/windows/diff", &params, |_, _| {})
                    .await?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Broker { bootstrap_file } => {
            let broker = EmbeddedBroker::for_config(&cfg)?;
            println!("{}", broker.bootstrap_servers());
            if let Some(f) = bootstrap_file {
                std::fs::write(&f, broker.bootstrap_servers())
                    .with_context(|| format!("writing {}", f.display()))?;
            }
            tracing::info!(bootstrap = broker.bootstrap_servers(), events = %cfg.topics.events, dead_letter = %cfg.topics.dead_letter, "embedded broker running; Ctrl-C stops it");
            ctrl_c().await;
        }
        Command::Ingest => {
            let _broker = embedded_if_unset(&mut cfg)?;
            let gw = dvc_pulse_app::gateway::start(&cfg, None).await?;
            println!("ingest gateway on http://{}", gw.addr);
            ctrl_c().await;
            gw.stop().await?;
        }
        Command::Import {
            file,
            batch,
            skip_before,
        } => {
            anyhow::ensure!(
                !cfg.kafka.bootstrap_servers.is_empty(),
                "set kafka.bootstrap_servers (or DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS)"
            );
            let opts = dvc_pulse_ingest::import::ImportOptions {
                batch_size: batch,
                skip_before,
            };
            let s = dvc_pulse_app::import::run(&cfg, &file, &opts, true).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Simulate {
            out,
            gateway,
            token,
            kafka,
            seed,
            start,
            days,
            localities,
            scale,
            duplicate_rate,
            out_of_order_rate,
            late_rate,
            late_max_days,
            correction_rate,
            malformed_rate,
            dvcqg_rate,
            truth,
            truth_locality,
        } => {
            let target = match (out, gateway, kafka) {
                (Some(p), _, _) => Target::File(p),
                (None, Some(url), _) => Target::Gateway { url, token },
                (None, None, true) => Target::Kafka,
                (None, None, false) => {
                    anyhow::bail!("choose one of --out FILE, --gateway URL or --kafka")
                }
            };
            let truth = truth
                .map(|w| -> Result<TruthWindow> {
                    let (a, b) = w.split_once(':').context("--truth takes FROM:TO")?;
                    Ok(TruthWindow {
                        from: a.parse()?,
                        to: b.parse()?,
                        locality: truth_locality,
                    })
                })
                .transpose()?;
            let sim = dvc_pulse_sim::SimConfig {
                seed,
                start,
                days,
                localities,
                scale,
                duplicate_rate,
                out_of_order_rate,
                late_rate,
                late_max_days,
                correction_rate,
                malformed_rate,
                dvcqg_rate,
            };
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let r = dvc_pulse_app::simulate::run(
                &cfg,
                &Options {
                    sim,
                    target,
                    batch: 500,
                    realtime: false,
                    truth,
                },
                rx,
            )
            .await?;
            eprintln!(
                "sent {} records for {} dossiers ({} malformed on purpose)",
                r.sent, r.dossiers, r.malformed
            );
        }
        Command::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            println!("{}", dvc_pulse_model::auth::hash_token(&token))
        }
        Command::Config => println!("{}", cfg.to_json_redacted()),
    }
    Ok(())
}

/// `ingest` without a configured cluster runs on an embedded broker, announced loudly.
fn embedded_if_unset(cfg: &mut Config) -> Result<Option<EmbeddedBroker>> {
    if !cfg.kafka.bootstrap_servers.is_empty() {
        return Ok(None);
    }
    let b = EmbeddedBroker::for_config(cfg)?;
    cfg.kafka.bootstrap_servers = b.bootstrap_servers().to_string();
    tracing::warn!(bootstrap = %cfg.kafka.bootstrap_servers, "kafka.bootstrap_servers unset: using an embedded broker");
    Ok(Some(b))
}
