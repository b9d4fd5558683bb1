//! `dvc-pulse worker`: the consume loop and the snapshot API, with graceful shutdown.

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
    consume: JoinHandle<Result<(), WorkerError>>,
    serve: JoinHandle<Result<(), std::io::Error>>,
    refresh: JoinHandle<()>,
}

impl RunningWorker {
    /// Stops consuming (after a last checkpoint) and serving.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.stop.send(true);
        self.consume
            .await
            .map_err(|e| AppError::Http(e.to_string()))??;
        let _ = self.refresh.await;
        self.serve
            .await
            .map_err(|e| AppError::Http(e.to_string()))?
            .map_err(|source| AppError::Io {
                path: self.addr.to_string(),
                source,
            })
    }

    /// Ends the worker the way a crash would: no last checkpoint, no goodbye.
    pub fn abort(self) {
        self.consume.abort();
        self.serve.abort();
        self.refresh.abort();
    }

    /// True once the consume loop has ended (it only ends on its own after an error).
    pub fn consume_ended(&self) -> bool {
        self.consume.is_finished()
    }
}

/// Starts a worker as `cfg` describes. `clock` defaults to the system clock.
pub async fn start(cfg: &Config, clock: Option<Clock>) -> Result<RunningWorker, AppError> {
    if cfg.kafka.bootstrap_servers.is_empty() {
        return Err(AppError::Config(
            "set kafka.bootstrap_servers (or DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS)".into(),
        ));
    }
    let reference = Reference::load(&cfg.reference)?;
    let worker = Arc::new(Worker::new(
        cfg.worker.clone(),
        &cfg.topics.events,
        &cfg.topics.dead_letter,
        cfg.topics.partitions,
        &reference,
        clock.unwrap_or_else(|| Arc::new(Utc::now)),
    )?);
    let listener = tokio::net::TcpListener::bind(cfg.worker.listen)
        .await
        .map_err(|source| AppError::Io {
            path: cfg.worker.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Io {
        path: cfg.worker.listen.to_string(),
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let (w, kafka, topics, rx) = (
        worker.clone(),
        cfg.kafka.clone(),
        cfg.topics.clone(),
        stopped.clone(),
    );
    let consume = tokio::spawn(async move {
        let r = consumer::run(w, &kafka, &topics, rx).await;
        if let Err(e) = &r {
            tracing::error!(error = %e, "consume loop stopped");
        }
        r
    });
    let (w, mut rx) = (worker.clone(), stopped.clone());
    let refresh = tokio::spawn(async move {
        let mut tick = tokio::time::interval(w.cfg.metrics.refresh);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = w.window_metrics.refresh(&w, &w.reference).await {
                        tracing::warn!(error = %e, "window metrics not refreshed");
                    }
                }
                _ = async { let _ = rx.wait_for(|s| *s).await; } => break,
            }
        }
    });
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
    })
}
