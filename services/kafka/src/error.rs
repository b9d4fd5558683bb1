//! The Kafka crate's one error type.

/// Errors of the transactional sink.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
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
    /// A bug: a task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}
