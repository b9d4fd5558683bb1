//! The crate's one error type, for failures that are not about a single bad record.

/// Errors loading or using reference data.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A reference CSV could not be read or parsed.
    #[error("reference file {path}: line {line}: {message}")]
    Reference {
        /// The file (or `embedded:<name>` for built-in data).
        path: String,
        /// 1-based line number, 0 when unknown.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// I/O while reading a reference file.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
