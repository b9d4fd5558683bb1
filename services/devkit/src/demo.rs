//! `dvc-pulse demo`: the whole pipeline on one machine with no external service: the
//! embedded broker, the gateway, the simulator posting to it, a worker keeping the
//! windows and serving snapshots, and a live tally of both topics and the 30-day window.

use crate::SimConfig;
use crate::broker::EmbeddedBroker;
use crate::simulate::{self, Options, Target};
use chrono::{Duration as Days, Utc};
use dvc_pulse_app::AppError;
use dvc_pulse_app::Config;
use dvc_pulse_model::event::ict;
use dvc_pulse_window::Measure;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated localities.
    pub localities: Vec<String>,
    /// Volume multiplier.
    pub scale: f64,
    /// Seconds between tallies.
    pub every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            localities: vec!["56".into()],
            scale: 0.3,
            every: Duration::from_secs(5),
        }
    }
}

/// Runs until `shutdown` completes (Ctrl-C in the binary).
pub async fn run(
    mut cfg: Config,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let broker = EmbeddedBroker::for_config(&cfg)?;
    cfg.kafka.bootstrap_servers = broker.bootstrap_servers().to_string();
    let token = format!(
        "demo-{:x}",
        std::process::id() as u64 ^ Utc::now().timestamp_micros() as u64
    );
    cfg.ingest.token_sha256 = vec![dvc_pulse_ingest::gateway::hash_token(&token)];
    let gateway = dvc_pulse_app::gateway::start(&cfg, None).await?;
    let url = format!("http://{}", gateway.addr);
    let checkpoints = std::env::temp_dir().join(format!("dvc-pulse-demo-{}", std::process::id()));
    cfg.worker.store_url = checkpoints.display().to_string();
    let worker = dvc_pulse_app::node::start(&cfg, None).await?;
    let api = format!("http://{}", worker.addr);
    banner(&cfg, &url, &api, &token, &opts.localities);

    let (stop_tx, stop_rx) = watch::channel(false);
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let sim_opts = Options {
        sim: SimConfig {
            seed: 1,
            start: today - Days::days(30),
            days: 31,
            localities: opts.localities.clone(),
            scale: opts.scale,
            ..SimConfig::default()
        },
        target: Target::Gateway {
            url: url.clone(),
            token: Some(token),
        },
        batch: 500,
        realtime: true,
        truth: None,
    };
    let sim_cfg = cfg.clone();
    let sim_stop = stop_rx.clone();
    let sim = tokio::spawn(async move { simulate::run(&sim_cfg, &sim_opts, sim_stop).await });
    let tally = tokio::spawn(tally(
        cfg.clone(),
        opts.every,
        stop_rx,
        worker.worker.clone(),
    ));

    shutdown.await;
    println!("\nstopping…");
    let _ = stop_tx.send(true);
    match sim.await {
        Ok(Ok(r)) => println!(
            "simulator sent {} records for {} dossiers ({} malformed on purpose)",
            r.sent, r.dossiers, r.malformed
        ),
        Ok(Err(e)) => println!("simulator stopped: {e}"),
        Err(e) => println!("simulator task failed: {e}"),
    }
    let _ = tally.await;
    gateway.stop().await?;
    worker.stop().await?;
    let _ = std::fs::remove_dir_all(&checkpoints);
    drop(broker);
    Ok(())
}

/// What the demo runs and where, printed once at the start.
fn banner(cfg: &Config, url: &str, api: &str, token: &str, localities: &[String]) {
    println!("dvc-pulse demo: everything embedded, nothing external.");
    println!(
        "  Kafka bootstrap  {}   (try: kcat -C -b {} -t {} -o beginning -e)",
        cfg.kafka.bootstrap_servers, cfg.kafka.bootstrap_servers, cfg.topics.events
    );
    println!("  Ingest gateway   {url}/v1/dossiers   (Authorization: Bearer {token})");
    println!("  Health           {url}/healthz  {url}/readyz");
    let first = localities.first().cloned().unwrap_or_default();
    println!("  Web page         {api}/   (bảng phụ lục, biểu đồ, tải CSV/XLSX)");
    println!("  Snapshot API     {api}/v1/windows?group_by=service&locality={first}");
    println!("                   {api}/v1/windows?group_by=province,service&format=csv");
    println!("  Annex (XLSX)     {api}/v1/windows?layout=annex&locality={first}&format=xlsx");
    println!(
        "  Diff             {api}/v1/windows/diff?locality={first}&as_of_a=<a snapshot's as_of.at>"
    );
    println!("  Daily series     {api}/v1/windows/daily?group_by=service&locality={first}");
    println!("  Metrics          {api}/metrics (worker)   {url}/metrics (gateway)");
    println!(
        "Simulating the last 30 days of {:?} with realistic mess; Ctrl-C to stop.\n",
        localities
    );
}

/// Reads both topics (committed data only) and prints what arrived.
async fn tally(
    cfg: Config,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    worker: std::sync::Arc<dvc_pulse_worker::Worker>,
) {
    let group = format!("dvc-pulse-demo-tally-{}", std::process::id());
    let role = [
        ("group.id", group.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
        ("isolation.level", "read_committed"),
    ];
    let consumer: StreamConsumer = match dvc_pulse_kafka::client_config(&cfg.kafka, &role).create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("tally: {e}"),
    };
    if let Err(e) = consumer.subscribe(&[&cfg.topics.events, &cfg.topics.dead_letter]) {
        return eprintln!("tally: {e}");
    }
    let (mut events, mut dossiers, mut reasons) =
        (0u64, HashSet::new(), BTreeMap::<String, u64>::new());
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) if m.topic() == cfg.topics.events => {
                    events += 1;
                    if let Some(k) = m.key() { dossiers.insert(k.to_vec()); }
                }
                Ok(m) => {
                    let reason = m.headers().and_then(|h| {
                        use rdkafka::message::Headers;
                        h.iter().find(|x| x.key == "reason").and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
                    });
                    *reasons.entry(reason.unwrap_or_else(|| "?".into())).or_default() += 1;
                }
                Err(e) => tracing::warn!(error = %e, "tally consumer"),
            },
            _ = tick.tick() => {
                let dlq: u64 = reasons.values().sum();
                let detail: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("{}: {events} events, {} dossiers | {}: {dlq} rejected ({})",
                    cfg.topics.events, dossiers.len(), cfg.topics.dead_letter, detail.join(", "));
                let today = Utc::now().with_timezone(&ict()).date_naive();
                let q = dvc_pulse_window::WindowQuery::rolling(today, vec![], None);
                match worker.snapshot(&q, None).await {
                    Ok(s) => println!("  30-day window to {today}: {} received, {} online ({}), {} pending",
                        s.table.totals.get(Measure::Total), s.table.totals.get(Measure::Online),
                        s.table.totals.online_rate().map_or("-".into(), |r| format!("{r:.2}%")),
                        s.table.totals.get(Measure::Pending)),
                    Err(e) => println!("  window: {e}"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}
