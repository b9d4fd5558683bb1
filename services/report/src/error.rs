//! The report crate's one error type.

use thiserror::Error;

/// What can go wrong building or writing a report.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The caller asked for something invalid (unknown layout, format or service).
    #[error("{code}: {detail}")]
    Invalid {
        /// Stable machine code, e.g. `invalid_layout`.
        code: &'static str,
        /// Human-readable detail.
        detail: String,
    },
    /// Writing an output file (XLSX, Parquet) failed.
    #[error("writing {format}: {detail}")]
    Export {
        /// Output format.
        format: &'static str,
        /// What failed.
        detail: String,
    },
}

impl ReportError {
    pub(crate) fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        ReportError::Invalid {
            code,
            detail: detail.into(),
        }
    }
}
