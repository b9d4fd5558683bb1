//! The window crate's one error type.

use thiserror::Error;

/// What can go wrong in the window core and its queries.
#[derive(Debug, Error)]
pub enum WindowError {
    /// The caller asked for something invalid (bad window, unknown grouping).
    #[error("{code}: {detail}")]
    InvalidQuery {
        /// Stable machine code, e.g. `invalid_group_by`.
        code: &'static str,
        /// Human-readable detail.
        detail: String,
    },
    /// DataFusion or Arrow failed: a bug or resource exhaustion, never the caller's input.
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// Arrow failed building or reading a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A checkpoint or state file does not hold what it should.
    #[error("corrupt state in {what}: {detail}")]
    Corrupt {
        /// Which file or batch.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl WindowError {
    pub(crate) fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        WindowError::InvalidQuery {
            code,
            detail: detail.into(),
        }
    }
}
