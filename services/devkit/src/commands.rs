//! The development commands, one function each: `demo`, `broker` and `simulate`; and the
//! embedded broker that `ingest` and `worker` start when no cluster is configured.

use crate::SimConfig;
use crate::broker::EmbeddedBroker;
use crate::demo::DemoOptions;
use crate::simulate::{Options, Target, TruthWindow};
use chrono::NaiveDate;
use dvc_pulse_app::{AppError, Config};
use std::future::Future;
use std::path::PathBuf;

/// Arguments of `dvc-pulse demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Localities to simulate (commune, district or province codes).
    #[arg(long, default_value = "56", value_delimiter = ',')]
    pub localities: Vec<String>,
    /// Volume multiplier on the calibrated rates.
    #[arg(long, default_value_t = 0.3)]
    pub scale: f64,
}

/// `dvc-pulse demo`: everything on this machine until `stop` resolves.
pub async fn demo(
    cfg: Config,
    args: &DemoArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let opts = DemoOptions {
        localities: args.localities.clone(),
        scale: args.scale,
        ..Default::default()
    };
    crate::demo::run(cfg, opts, stop).await
}

/// Arguments of `dvc-pulse broker`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Write the bootstrap address to this file too (for scripts).
    #[arg(long)]
    pub bootstrap_file: Option<PathBuf>,
}

/// `dvc-pulse broker`: the embedded broker with the configured topics until `stop` resolves.
pub async fn broker(
    cfg: &Config,
    args: &BrokerArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let broker = EmbeddedBroker::for_config(cfg)?;
    println!("{}", broker.bootstrap_servers());
    if let Some(f) = &args.bootstrap_file {
        std::fs::write(f, broker.bootstrap_servers()).map_err(|source| AppError::Io {
            path: f.display().to_string(),
            source,
        })?;
    }
    tracing::info!(bootstrap = broker.bootstrap_servers(), events = %cfg.topics.events,
        dead_letter = %cfg.topics.dead_letter, "embedded broker running; Ctrl-C stops it");
    stop.await;
    Ok(())
}

/// Without `kafka.bootstrap_servers`, starts an embedded broker and points `cfg` at it,
/// announced loudly; the caller keeps the broker alive as long as it needs it.
pub fn embedded_if_unset(cfg: &mut Config) -> Result<Option<EmbeddedBroker>, AppError> {
    if !cfg.kafka.bootstrap_servers.is_empty() {
        return Ok(None);
    }
    let b = EmbeddedBroker::for_config(cfg)?;
    cfg.kafka.bootstrap_servers = b.bootstrap_servers().to_string();
    tracing::warn!(bootstrap = %cfg.kafka.bootstrap_servers,
        "kafka.bootstrap_servers unset: using an embedded broker (its data lives in this process only)");
    Ok(Some(b))
}

/// Arguments of `dvc-pulse simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Write NDJSON here.
    #[arg(long, conflicts_with_all = ["gateway", "kafka"])]
    pub out: Option<PathBuf>,
    /// Post to this gateway base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Bearer token for --gateway.
    #[arg(long, env = "DVC_PULSE_TOKEN")]
    pub token: Option<String>,
    /// Publish to Kafka (kafka.bootstrap_servers) through gateway validation.
    #[arg(long)]
    pub kafka: bool,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First day of receptions (YYYY-MM-DD).
    #[arg(long, default_value = "2024-06-05")]
    pub start: NaiveDate,
    /// Days of receptions.
    #[arg(long, default_value_t = 31)]
    pub days: u32,
    /// Localities (commune, district or province codes).
    #[arg(long, default_value = "582", value_delimiter = ',')]
    pub localities: Vec<String>,
    /// Volume multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Share of versions redelivered byte for byte.
    #[arg(long, default_value_t = 0.05)]
    pub duplicate_rate: f64,
    /// Share of dossiers whose versions arrive out of order.
    #[arg(long, default_value_t = 0.10)]
    pub out_of_order_rate: f64,
    /// Share of dossiers that arrive late.
    #[arg(long, default_value_t = 0.05)]
    pub late_rate: f64,
    /// Longest lateness in days.
    #[arg(long, default_value_t = 60)]
    pub late_max_days: i64,
    /// Share of dossiers corrected later.
    #[arg(long, default_value_t = 0.02)]
    pub correction_rate: f64,
    /// Malformed records per dossier.
    #[arg(long, default_value_t = 0.01)]
    pub malformed_rate: f64,
    /// Share of versions sent as DVCQG records (with personal data to be dropped).
    #[arg(long, default_value_t = 0.2)]
    pub dvcqg_rate: f64,
    /// With --out: write OUT.truth.json for the window FROM:TO (YYYY-MM-DD:YYYY-MM-DD).
    #[arg(long)]
    pub truth: Option<String>,
    /// Locality filter of the truth window.
    #[arg(long)]
    pub truth_locality: Option<String>,
}

impl SimulateArgs {
    fn target(&self) -> Result<Target, AppError> {
        match (&self.out, &self.gateway, self.kafka) {
            (Some(p), _, _) => Ok(Target::File(p.clone())),
            (None, Some(url), _) => Ok(Target::Gateway {
                url: url.clone(),
                token: self.token.clone(),
            }),
            (None, None, true) => Ok(Target::Kafka),
            (None, None, false) => Err(AppError::Config(
                "choose one of --out FILE, --gateway URL or --kafka".into(),
            )),
        }
    }

    fn truth(&self) -> Result<Option<TruthWindow>, AppError> {
        let Some(w) = &self.truth else {
            return Ok(None);
        };
        let bad = || {
            AppError::Config(format!(
                "--truth {w:?}: use FROM:TO (YYYY-MM-DD:YYYY-MM-DD)"
            ))
        };
        let (a, b) = w.split_once(':').ok_or_else(bad)?;
        Ok(Some(TruthWindow {
            from: a.parse().map_err(|_| bad())?,
            to: b.parse().map_err(|_| bad())?,
            locality: self.truth_locality.clone(),
        }))
    }

    fn sim(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            start: self.start,
            days: self.days,
            localities: self.localities.clone(),
            scale: self.scale,
            duplicate_rate: self.duplicate_rate,
            out_of_order_rate: self.out_of_order_rate,
            late_rate: self.late_rate,
            late_max_days: self.late_max_days,
            correction_rate: self.correction_rate,
            malformed_rate: self.malformed_rate,
            dvcqg_rate: self.dvcqg_rate,
        }
    }
}

/// `dvc-pulse simulate`: generates the traffic and sends it where `args` says.
pub async fn simulate(cfg: &Config, args: &SimulateArgs) -> Result<(), AppError> {
    let opts = Options {
        sim: args.sim(),
        target: args.target()?,
        batch: 500,
        realtime: false,
        truth: args.truth()?,
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let r = crate::simulate::run(cfg, &opts, rx).await?;
    eprintln!(
        "sent {} records for {} dossiers ({} malformed on purpose)",
        r.sent, r.dossiers, r.malformed
    );
    Ok(())
}
