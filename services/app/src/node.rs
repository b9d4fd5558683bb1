//! A worker node, the process around the worker crate: `dvc-pulse worker` (the consume
//! loop, store maintenance and the snapshot API, with graceful shutdown) and `dvc-pulse
//! serve` (the same API over the store alone).

use crate::config::Config;
use crate::error::AppError;
use chrono::Utc;
use dvc_pulse_ingest::gateway::Clock;
use dvc_pulse_model::Reference;
use dvc_pulse_worker::{Worker, WorkerError, api, consumer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A worker consuming and serving until [`RunningWorker::stop`].
pub struct RunningWorker {
    /// The API's bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The worker (state, metrics), for tests and the demo.
    pub worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    consume: Option<JoinHandle<Result<(), WorkerError>>>,
    serve: JoinHandle<Result<(), std::io::Error>>,
    refresh: JoinHandle<()>,
    maintain: Option<JoinHandle<()>>,
}

impl RunningWorker {
    /// Stops consuming (after a last checkpoint) and serving.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.stop.send(true);
        if let Some(consume) = self.consume {
            consume.await??;
        }
        if let Some(m) = self.maintain {
            let _ = m.await;
        }
        let _ = self.refresh.await;
        crate::error::server_ended(self.serve, self.addr).await
    }

    /// Ends the worker the way a crash would: no last checkpoint, no goodbye.
    pub fn abort(self) {
        if let Some(c) = &self.consume {
            c.abort();
        }
        if let Some(m) = &self.maintain {
            m.abort();
        }
        self.serve.abort();
        self.refresh.abort();
    }

    /// True once the consume loop has ended (it only ends on its own after an error).
    pub fn consume_ended(&self) -> bool {
        self.consume.as_ref().is_some_and(|c| c.is_finished())
    }

    /// Resolves when the consume loop has ended on its own (an error: the store failed or
    /// fenced this worker off), with why; never for a query-only server.
    pub async fn failed(&mut self) -> String {
        let Some(consume) = self.consume.as_mut() else {
            return std::future::pending().await;
        };
        let why = match consume.await {
            Ok(Ok(())) => "the consume loop ended".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.consume = None;
        why
    }
}

/// Starts a worker as `cfg` describes. `clock` defaults to the system clock.
pub async fn start(cfg: &Config, clock: Option<Clock>) -> Result<RunningWorker, AppError> {
    if cfg.kafka.bootstrap_servers.is_empty() {
        return Err(AppError::Config(
            "set kafka.bootstrap_servers (or DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS)".into(),
        ));
    }
    launch(cfg, clock, true).await
}

/// Starts a query-only server over the store (`dvc-pulse serve`): no Kafka.
pub async fn serve(cfg: &Config, clock: Option<Clock>) -> Result<RunningWorker, AppError> {
    launch(cfg, clock, false).await
}

/// One maintenance round over the store (`dvc-pulse maintain`), compacting every
/// partition value with at least `min_files` files.
pub async fn maintain(
    cfg: &Config,
    min_files: usize,
) -> Result<dvc_pulse_store::Maintenance, AppError> {
    let w = open(cfg, Arc::new(Utc::now), false).await?;
    Ok(w.store
        .maintain(today(&w), min_files)
        .await
        .map_err(WorkerError::from)?)
}

fn today(w: &Worker) -> i32 {
    dvc_pulse_window::fact::day_number(
        (w.clock)()
            .with_timezone(&dvc_pulse_model::event::ict())
            .date_naive(),
    )
}

async fn open(cfg: &Config, clock: Clock, consumes: bool) -> Result<Worker, AppError> {
    let reference = Reference::load(&cfg.reference)?;
    Ok(Worker::open(
        cfg.worker.clone(),
        &cfg.topics.events,
        &cfg.topics.dead_letter,
        cfg.topics.partitions,
        &reference,
        clock,
        consumes,
    )
    .await?)
}

async fn launch(
    cfg: &Config,
    clock: Option<Clock>,
    consumes: bool,
) -> Result<RunningWorker, AppError> {
    let worker = Arc::new(open(cfg, clock.unwrap_or_else(|| Arc::new(Utc::now)), consumes).await?);
    let io = |source| AppError::Io {
        path: cfg.worker.listen.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(cfg.worker.listen)
        .await
        .map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let (stop, stopped) = watch::channel(false);
    let consume = consumes.then(|| spawn_consume(&worker, cfg, stopped.clone()));
    let maintain = consumes.then(|| spawn_maintain(&worker, stopped.clone()));
    let refresh = spawn_refresh(&worker, stopped.clone());
    let mut rx = stopped;
    let app = api::router(worker.clone());
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, worker = %worker.id, "worker API listening");
    Ok(RunningWorker {
        addr,
        worker,
        stop,
        consume,
        serve,
        refresh,
        maintain,
    })
}

/// The consume loop; the worker stops being ready when it ends.
fn spawn_consume(
    worker: &Arc<Worker>,
    cfg: &Config,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Result<(), WorkerError>> {
    let (w, kafka, topics) = (worker.clone(), cfg.kafka.clone(), cfg.topics.clone());
    tokio::spawn(async move {
        let r = consumer::run(w.clone(), &kafka, &topics, stopped).await;
        w.set_ready(false);
        if let Err(e) = &r {
            tracing::error!(error = %e, "consume loop stopped");
        }
        r
    })
}

/// Store maintenance every `worker.maintenance_interval`.
fn spawn_maintain(worker: &Arc<Worker>, mut stopped: watch::Receiver<bool>) -> JoinHandle<()> {
    let w = worker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(w.cfg.maintenance_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match w.store.maintain(today(&w), dvc_pulse_store::maintain::COMPACT_FILES).await {
                        Ok(m) => tracing::info!(compacted = m.compacted, expired = m.expired, vacuumed = m.vacuumed, "store maintained"),
                        Err(e) => tracing::warn!(error = %e, "store maintenance"),
                    }
                }
                _ = async { let _ = stopped.wait_for(|s| *s).await; } => break,
            }
        }
    })
}

/// The window gauges, recomputed every `worker.metrics.refresh`.
fn spawn_refresh(worker: &Arc<Worker>, mut stopped: watch::Receiver<bool>) -> JoinHandle<()> {
    let w = worker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(w.cfg.metrics.refresh);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = w.window_metrics.refresh(&w, &w.reference).await {
                        tracing::warn!(error = %e, "window metrics not refreshed");
                    }
                }
                _ = async { let _ = stopped.wait_for(|s| *s).await; } => break,
            }
        }
    })
}
