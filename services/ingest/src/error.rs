//! The crate's one error type.

/// Errors of the ingest side.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Kafka refused, timed out or could not take a batch; nothing of it is visible.
    #[error(transparent)]
    Kafka(#[from] dvc_pulse_kafka::KafkaClientError),
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading an import file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bug: a task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}
