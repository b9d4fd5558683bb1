//! `dvc-pulse simulate`: realistic traffic to an NDJSON file, the gateway, or Kafka.

use crate::{Delivery, SimConfig, simulate, window_truth};
use chrono::{NaiveDate, Utc};
use dvc_pulse_app::AppError;
use dvc_pulse_app::Config;
use dvc_pulse_ingest::{KafkaSink, pipeline};
use dvc_pulse_model::Reference;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Where simulated records go.
#[derive(Debug, Clone)]
pub enum Target {
    /// An NDJSON file, in arrival order.
    File(PathBuf),
    /// The gateway's `POST /v1/dossiers`, as NDJSON batches.
    Gateway {
        /// Base URL, e.g. `http://127.0.0.1:8080`.
        url: String,
        /// Bearer token.
        token: Option<String>,
    },
    /// Straight into Kafka through the same validation as the gateway.
    Kafka,
}

/// A ground-truth window to write beside a file.
#[derive(Debug, Clone)]
pub struct TruthWindow {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Locality filter.
    pub locality: Option<String>,
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to simulate.
    pub sim: SimConfig,
    /// Where to.
    pub target: Target,
    /// Records per request or transaction.
    pub batch: usize,
    /// Send records whose arrival time is still ahead only when it comes (demo mode).
    pub realtime: bool,
    /// Write `<file>.truth.json` for this window (file target).
    pub truth: Option<TruthWindow>,
}

/// What a simulation sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Records sent.
    pub sent: usize,
    /// Records made malformed on purpose.
    pub malformed: usize,
    /// Distinct dossiers.
    pub dossiers: usize,
}

/// Runs the simulator until done or until `stop` turns true.
pub async fn run(
    cfg: &Config,
    opts: &Options,
    mut stop: watch::Receiver<bool>,
) -> Result<Sent, AppError> {
    let reference = Reference::load(&cfg.reference)?;
    let sim = simulate(&opts.sim, &reference);
    let mut report = Sent {
        dossiers: sim.truth.len(),
        malformed: sim.deliveries.iter().filter(|d| !d.valid).count(),
        sent: 0,
    };
    if let Target::File(path) = &opts.target {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| io(path, source))?,
        );
        for d in &sim.deliveries {
            out.write_all(&d.bytes)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|source| io(path, source))?;
        }
        out.flush().map_err(|source| io(path, source))?;
        report.sent = sim.deliveries.len();
        if let Some(w) = &opts.truth {
            let table = window_truth(&sim.truth, w.from, w.to, w.locality.as_deref(), &reference);
            let tp = truth_path(path);
            std::fs::write(&tp, serde_json::to_vec_pretty(&table).expect("json"))
                .map_err(|source| io(&tp, source))?;
        }
        return Ok(report);
    }
    let sender = Sender::new(cfg, &opts.target)?;
    let mut pending: &[Delivery] = &sim.deliveries;
    while !pending.is_empty() {
        if *stop.borrow() {
            break;
        }
        let now = Utc::now();
        let due = if opts.realtime {
            pending.iter().take_while(|d| d.at <= now).count()
        } else {
            pending.len()
        };
        if due == 0 {
            let wait = (pending[0].at - now)
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let n = due.min(opts.batch.max(1));
        sender.send(&pending[..n], &mut stop).await?;
        report.sent += n;
        pending = &pending[n..];
    }
    Ok(report)
}

/// `x.ndjson` → `x.truth.json`.
pub fn truth_path(path: &std::path::Path) -> PathBuf {
    path.with_extension("truth.json")
}

fn io(path: &std::path::Path, source: std::io::Error) -> AppError {
    AppError::Io {
        path: path.display().to_string(),
        source,
    }
}

enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
    },
    Kafka {
        sink: KafkaSink,
        validator: dvc_pulse_model::Validator,
    },
}

impl Sender {
    fn new(cfg: &Config, target: &Target) -> Result<Self, AppError> {
        Ok(match target {
            Target::Gateway { url, token } => Sender::Http {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .map_err(|e| AppError::Http(e.to_string()))?,
                url: format!("{}/v1/dossiers", url.trim_end_matches('/')),
                token: token.clone(),
            },
            Target::Kafka => Sender::Kafka {
                sink: KafkaSink::new(cfg.kafka.clone(), cfg.topics.clone())?,
                validator: dvc_pulse_app::gateway::validator(cfg)?,
            },
            Target::File(_) => unreachable!("files are written directly"),
        })
    }

    /// Sends one batch, retrying (as a well-behaved portal would) while the gateway
    /// answers 503 or cannot be reached: the gateway's transactions make retries safe.
    async fn send(
        &self,
        batch: &[Delivery],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), AppError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let outcome = match self {
                Sender::Http { client, url, token } => {
                    let body: Vec<u8> = batch
                        .iter()
                        .flat_map(|d| d.bytes.iter().copied().chain([b'\n']))
                        .collect();
                    let mut req = client
                        .post(url)
                        .header("content-type", "application/x-ndjson")
                        .body(body);
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                            Err(format!("gateway answered {}", r.status()))
                        }
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            return Err(AppError::Http(format!(
                                "gateway answered {status}: {text}"
                            )));
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Sender::Kafka { sink, validator } => {
                    let records = batch.iter().enumerate().map(|(i, d)| (i, d.bytes.clone()));
                    let outcome = pipeline::process(validator, records, "simulate", Utc::now());
                    sink.publish(outcome.messages)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(why) => {
                    tracing::warn!(error = %why, retry_in = ?backoff, "batch not accepted; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    if *stop.borrow() {
                        return Err(AppError::Interrupted(
                            "stopped while retrying a batch".into(),
                        ));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
