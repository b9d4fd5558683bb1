//! The crate's one error type.

/// Errors of the ingest side.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Kafka refused or could not take a batch; nothing of it is visible to readers.
    #[error("kafka: {operation}: {source}")]
    Kafka {
        /// What was being done (init, produce, commit, ...).
        operation: &'static str,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker did not confirm a batch in time; the batch was aborted.
    #[error("kafka did not confirm the batch within {0:?}")]
    Timeout(std::time::Duration),
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
