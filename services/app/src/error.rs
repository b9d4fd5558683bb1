//! The crate's one error type.

/// Errors of the run functions.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration could not be read or is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// Reference data could not be loaded.
    #[error(transparent)]
    Model(#[from] dvc_pulse_model::ModelError),
    /// Ingest failure.
    #[error(transparent)]
    Ingest(#[from] dvc_pulse_ingest::IngestError),
    /// The Kafka client (sink) failed.
    #[error(transparent)]
    Kafka(#[from] dvc_pulse_kafka::KafkaClientError),
    /// The stream worker failed.
    #[error(transparent)]
    Worker(#[from] dvc_pulse_worker::WorkerError),
    /// The window core failed.
    #[error(transparent)]
    Window(#[from] dvc_pulse_window::WindowError),
    /// A report could not be built or written.
    #[error(transparent)]
    Report(#[from] dvc_pulse_report::ReportError),
    /// The embedded broker failed.
    #[error("embedded broker: {0}")]
    Broker(String),
    /// A long run stopped part-way; the message says what was committed.
    #[error("{0}")]
    Interrupted(String),
    /// A background task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A worker's answer could not be read.
    #[error("unreadable answer: {0}")]
    Answer(String),
    /// HTTP client or server failure.
    #[error("http: {0}")]
    Http(String),
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file or address.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Waits for an HTTP server task listening on `addr` to end, and says how it ended.
pub(crate) async fn server_ended(
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    addr: std::net::SocketAddr,
) -> Result<(), AppError> {
    task.await?.map_err(|source| AppError::Io {
        path: addr.to_string(),
        source,
    })
}
