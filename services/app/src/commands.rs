//! One function per production command, with its arguments. The binary parses the
//! command line into these and calls them; the `demo`, `broker` and `simulate` commands
//! live in `dvc-pulse-devkit`.

use crate::config::Config;
use crate::error::AppError;
use crate::snapshot::{from_file_with, from_url};
use chrono::NaiveDate;
use dvc_pulse_ingest::import::ImportOptions;
use dvc_pulse_model::Reference;
use dvc_pulse_report::{Layout, ReportOptions};
use dvc_pulse_window::{GroupKey, WindowQuery};
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and supervisors send).
pub async fn shutdown_signal() {
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

/// `dvc-pulse ingest`: the HTTP gateway until `stop` resolves.
pub async fn ingest(cfg: &Config, stop: impl Future<Output = ()>) -> Result<(), AppError> {
    let gw = crate::gateway::start(cfg, None).await?;
    println!("ingest gateway on http://{}", gw.addr);
    stop.await;
    gw.stop().await
}

/// Arguments of `dvc-pulse import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The file.
    pub file: PathBuf,
    /// Records per Kafka transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Skip records before this index (resume after an interrupted import).
    #[arg(long, default_value_t = 0)]
    pub skip_before: usize,
}

/// `dvc-pulse import`: a file through the gateway's validation into Kafka; prints the summary.
pub async fn import(cfg: &Config, args: &ImportArgs) -> Result<(), AppError> {
    if cfg.kafka.bootstrap_servers.is_empty() {
        return Err(AppError::Config(
            "set kafka.bootstrap_servers (or DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS)".into(),
        ));
    }
    let opts = ImportOptions {
        batch_size: args.batch,
        skip_before: args.skip_before,
    };
    let s = crate::import::run(cfg, &args.file, &opts, true).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&s).expect("summary serialises")
    );
    Ok(())
}

/// `dvc-pulse worker`: consumes and serves until `stop` resolves. A consume loop that
/// ends on its own failed (store unwritable, fenced): that is an error, so that the
/// supervisor restarts the worker.
pub async fn worker(cfg: &Config, stop: impl Future<Output = ()>) -> Result<(), AppError> {
    let mut w = crate::node::start(cfg, None).await?;
    println!("worker API on http://{}/v1/windows", w.addr);
    tokio::select! {
        _ = stop => w.stop().await,
        failed = w.failed() => {
            w.abort();
            Err(AppError::Interrupted(format!("worker stopped: {failed}")))
        }
    }
}

/// `dvc-pulse serve`: the query API over the table store alone, until `stop` resolves.
pub async fn serve(cfg: &Config, stop: impl Future<Output = ()>) -> Result<(), AppError> {
    let w = crate::node::serve(cfg, None).await?;
    println!("query API on http://{}/v1/windows", w.addr);
    stop.await;
    w.stop().await
}

/// `dvc-pulse maintain`: compacts, expires and vacuums once; prints what was done.
pub async fn maintain(cfg: &Config, min_files: usize) -> Result<(), AppError> {
    let m = crate::node::maintain(cfg, min_files).await?;
    let out = serde_json::json!({
        "compacted": m.compacted, "expired_days": m.expired, "vacuumed_files": m.vacuumed,
    });
    println!("{out}");
    Ok(())
}

/// The window every snapshot and diff names: days, grouping, locality.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// First day, YYYY-MM-DD (default: --to minus 29 days).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today in Asia/Ho_Chi_Minh).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Groupings, comma-separated: procedure, service, locality, commune, district,
    /// province, province_legacy, agency.
    #[arg(long, default_value = "service")]
    pub group_by: String,
    /// Only this unit and everything under it.
    #[arg(long)]
    pub locality: Option<String>,
}

impl WindowArgs {
    /// The query parameters of the worker API, absent options left out.
    fn params(&self) -> Vec<(&'static str, String)> {
        let optional = [
            ("from", self.from.map(|d| d.to_string())),
            ("to", self.to.map(|d| d.to_string())),
            ("locality", self.locality.clone()),
        ];
        let mut p = vec![("group_by", self.group_by.clone())];
        p.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
        p
    }
}

/// Arguments of `dvc-pulse snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// An export of events (NDJSON or DVCQG JSON) to compute the window from.
    #[arg(long, conflicts_with = "url", required_unless_present = "url")]
    pub input: Option<PathBuf>,
    /// A running worker to ask instead, e.g. http://127.0.0.1:8081.
    #[arg(long)]
    pub url: Option<String>,
    /// The window as known at this moment (RFC 3339, or a day: its end); needs --url.
    #[arg(long, requires = "url")]
    pub as_of: Option<String>,
    /// table, annex (online reception) or processing.
    #[arg(long, default_value = "table")]
    pub layout: String,
    /// CSV header: keys (machine names) or vi (Vietnamese titles).
    #[arg(long, default_value = "keys")]
    pub header: String,
    /// Annex services: ids separated by commas, A..B for a catalogue range.
    #[arg(long)]
    pub services: Option<String>,
    /// Annex programme when --services is absent: DA06 or QD422.
    #[arg(long)]
    pub programme: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The window.
    #[command(flatten)]
    pub window: WindowArgs,
    /// json, csv, xlsx or parquet.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Ignore versions older than this many days before today, as a worker does.
    #[arg(long, conflicts_with = "url")]
    pub horizon_days: Option<i32>,
}

/// `dvc-pulse snapshot`: a window from an export file or a running worker, in a report
/// layout and format, to `--output` or standard output; a progress bar on standard error.
pub async fn snapshot(cfg: &Config, a: &SnapshotArgs) -> Result<(), AppError> {
    let opts = ReportOptions::parse(
        Some(&a.layout),
        Some(&a.header),
        Some(&a.format),
        a.services.clone(),
        a.programme.clone(),
    )?;
    let binary = matches!(a.format.as_str(), "xlsx" | "parquet");
    if a.output.is_none() && binary && std::io::stdout().is_terminal() {
        return Err(AppError::Config(format!(
            "--format {} writes a binary file: give --output FILE",
            a.format
        )));
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")
            .expect("valid template"),
    );
    let progress = |read: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(read);
    };
    let body = match (&a.url, &a.input) {
        (Some(url), _) => snapshot_from_worker(url, a, progress).await?,
        (None, Some(input)) => snapshot_from_file(cfg, input, a, &opts, progress).await?,
        (None, None) => return Err(AppError::Config("give --input FILE or --url URL".into())),
    };
    bar.finish_and_clear();
    write_output(a.output.as_deref(), &body)
}

async fn snapshot_from_worker(
    url: &str,
    a: &SnapshotArgs,
    progress: impl Fn(u64, u64),
) -> Result<Vec<u8>, AppError> {
    let mut params = a.window.params();
    params.extend([
        ("format", a.format.clone()),
        ("layout", a.layout.clone()),
        ("header", a.header.clone()),
    ]);
    let optional = [
        ("as_of", a.as_of.clone()),
        ("services", a.services.clone()),
        ("programme", a.programme.clone()),
    ];
    params.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    let (_, body) = from_url(url, "/v1/windows", &params, |read, total| {
        progress(read, total.unwrap_or(read))
    })
    .await?;
    Ok(body)
}

async fn snapshot_from_file(
    cfg: &Config,
    input: &Path,
    a: &SnapshotArgs,
    opts: &ReportOptions,
    progress: impl Fn(u64, u64),
) -> Result<Vec<u8>, AppError> {
    let now = chrono::Utc::now();
    let to = a.window.to.unwrap_or_else(|| {
        now.with_timezone(&dvc_pulse_model::event::ict())
            .date_naive()
    });
    // The annex layouts are per service whatever the grouping asked.
    let group_by = match opts.layout {
        Layout::Table => a.window.group_by.as_str(),
        _ => "service",
    };
    let q = WindowQuery {
        from: a.window.from.unwrap_or(to - chrono::Duration::days(29)),
        to,
        group_by: GroupKey::parse_list(group_by)?,
        locality: a.window.locality.clone(),
    };
    let reference = Arc::new(Reference::load(&cfg.reference)?);
    let s = from_file_with(
        cfg,
        reference.clone(),
        input,
        &q,
        now,
        a.horizon_days,
        progress,
    )
    .await?;
    eprintln!(
        "{}",
        serde_json::to_string(&s.input).expect("summary serialises")
    );
    let meta = serde_json::json!({ "input": s.input });
    Ok(dvc_pulse_report::render(&s.table, meta, opts, &reference)?.body)
}

fn write_output(path: Option<&Path>, body: &[u8]) -> Result<(), AppError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| AppError::Io { path, source }
    };
    match path {
        Some(p) => std::fs::write(p, body).map_err(io(p)),
        None => std::io::stdout()
            .write_all(body)
            .map_err(io(Path::new("<stdout>"))),
    }
}

/// Arguments of `dvc-pulse diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The worker, e.g. http://127.0.0.1:8081.
    #[arg(long)]
    pub url: String,
    /// The window.
    #[command(flatten)]
    pub window: WindowArgs,
    /// The earlier moment (a snapshot's as_of.at).
    #[arg(long)]
    pub as_of_a: String,
    /// The later moment (default: now).
    #[arg(long)]
    pub as_of_b: Option<String>,
}

/// `dvc-pulse diff`: what changed in a window between two moments, from a running worker.
pub async fn diff(a: &DiffArgs) -> Result<(), AppError> {
    let mut params = a.window.params();
    params.push(("as_of_a", a.as_of_a.clone()));
    if let Some(b) = &a.as_of_b {
        params.push(("as_of_b", b.clone()));
    }
    let (_, body) = from_url(&a.url, "/v1/windows/diff", &params, |_, _| {}).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| AppError::Answer(e.to_string()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&v).expect("json serialises")
    );
    Ok(())
}

/// `dvc-pulse hash-token`: the SHA-256 of a token, read from standard input when absent
/// (keeps it out of the shell history and the process list).
pub fn hash_token(token: Option<String>) -> Result<(), AppError> {
    let token = match token {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|source| AppError::Io {
                    path: "<stdin>".into(),
                    source,
                })?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    println!("{}", dvc_pulse_model::auth::hash_token(&token));
    Ok(())
}
