//! The worker's versioned table store: Delta Lake tables (through delta-rs) of window
//! contributions, changes and dossier state under one URL, committed with the Kafka
//! offsets they cover as transaction ids, fenced against zombie writers, compacted,
//! expired and vacuumed; read with DataFusion for windows, `as_of` and diffs.
//!
//! Modules: [`store`] (the three tables, commits, views), [`table`] (one Delta table and
//! its fenced commit), [`versions`] (the moment of each version, for `as_of`),
//! [`maintain`] (compaction, retention, vacuum), [`error`].

pub mod error;
pub mod maintain;
mod s3;
pub mod store;
pub mod table;
pub mod versions;

pub use error::StoreError;
pub use store::{Maintenance, PartitionCommit, Store, StoreOptions, View};
pub use versions::CommitMeta;

/// Formats a moment in ms as the APIs write times (RFC 3339 in +07:00, ms precision).
pub fn format_ms(ms: i64) -> String {
    dvc_pulse_window::changes::format_ms(ms)
}
