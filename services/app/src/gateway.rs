//! `dvc-pulse ingest`: the HTTP gateway on a listener, with graceful shutdown.

use crate::config::Config;
use crate::error::AppError;
use chrono::Utc;
use dvc_pulse_ingest::KafkaSink;
use dvc_pulse_ingest::gateway::{Clock, Gateway, router};
use dvc_pulse_model::{Reference, Validator};
use rdkafka::producer::{BaseProducer, Producer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A gateway serving on `addr` until [`RunningGateway::stop`].
pub struct RunningGateway {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), std::io::Error>>,
}

impl RunningGateway {
    /// Stops accepting, finishes in-flight requests, and returns.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        crate::error::server_ended(self.task, self.addr).await
    }
}

/// The validator the configuration describes.
pub fn validator(cfg: &Config) -> Result<Validator, AppError> {
    Ok(Validator::new(
        Arc::new(Reference::load(&cfg.reference)?),
        cfg.ingest.validation.clone(),
    ))
}

/// Binds `cfg.ingest.listen` and serves the gateway. `clock` defaults to the system clock.
pub async fn start(cfg: &Config, clock: Option<Clock>) -> Result<RunningGateway, AppError> {
    if cfg.ingest.token_sha256.is_empty() && !cfg.ingest.allow_anonymous {
        tracing::warn!(
            "no ingest.token_sha256 configured: every POST will get 401 (see `dvc-pulse hash-token`)"
        );
    }
    let sink = KafkaSink::new(cfg.kafka.clone(), cfg.topics.clone())?;
    let probe: BaseProducer = dvc_pulse_kafka::client_config(&cfg.kafka, &[])
        .create()
        .map_err(|e| AppError::Config(format!("kafka client: {e}")))?;
    let topic = cfg.topics.events.clone();
    let gw = Gateway {
        metrics: Default::default(),
        config: cfg.ingest.clone(),
        validator: validator(cfg)?,
        sink,
        clock: clock.unwrap_or_else(|| Arc::new(Utc::now)),
        ready: Arc::new(move || {
            probe
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .is_ok_and(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
        }),
    };
    let listener = tokio::net::TcpListener::bind(cfg.ingest.listen)
        .await
        .map_err(|source| AppError::Io {
            path: cfg.ingest.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Io {
        path: cfg.ingest.listen.to_string(),
        source,
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(Arc::new(gw));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "ingest gateway listening");
    Ok(RunningGateway {
        addr,
        stop: Some(stop),
        task,
    })
}
