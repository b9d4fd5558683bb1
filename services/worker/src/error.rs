//! The worker crate's one error type.

use thiserror::Error;

/// What can go wrong in a worker.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The configuration cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// A Kafka client operation failed.
    #[error("kafka {operation}: {source}")]
    Kafka {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// The table store failed, or fenced this worker off.
    #[error(transparent)]
    Store(#[from] dvc_pulse_store::StoreError),
    /// The window core failed.
    #[error(transparent)]
    Window(#[from] dvc_pulse_window::WindowError),
    /// Publishing dead letters failed.
    #[error(transparent)]
    Sink(#[from] dvc_pulse_kafka::KafkaClientError),
    /// A task the worker runs beside its loop panicked or was cancelled.
    #[error("{task} task: {detail}")]
    Task {
        /// Which task.
        task: &'static str,
        /// What its join said.
        detail: String,
    },
    /// Binding or serving HTTP failed.
    #[error("http {addr}: {source}")]
    Http {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl WorkerError {
    /// True when a query ran out of the memory `worker.query_memory` allows.
    pub fn is_resources_exhausted(&self) -> bool {
        use datafusion::error::DataFusionError;
        let engine = match self {
            WorkerError::Store(dvc_pulse_store::StoreError::Query { source, .. }) => source,
            WorkerError::Window(dvc_pulse_window::WindowError::Engine(e)) => e,
            _ => return false,
        };
        matches!(engine.find_root(), DataFusionError::ResourcesExhausted(_))
    }
}
