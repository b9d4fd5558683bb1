//! The store crate's one error type.

use thiserror::Error;

/// What can go wrong in the table store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store URL or options cannot work.
    #[error("store configuration: {0}")]
    Config(String),
    /// Another writer committed past what this worker holds for a partition: this worker
    /// lost it (a zombie) and must stop without writing.
    #[error(
        "fenced: table {table} partition {partition} holds offset {found}, this worker expected {expected}"
    )]
    Fenced {
        /// Table.
        table: &'static str,
        /// Kafka partition.
        partition: i32,
        /// Offset this worker believed the table held.
        expected: i64,
        /// Offset the table holds.
        found: i64,
    },
    /// The table holds less than a worker already wrote: the store was replaced or rolled back.
    #[error(
        "table {table} partition {partition} holds offset {found}, behind {expected} that this worker committed"
    )]
    Behind {
        /// Table.
        table: &'static str,
        /// Kafka partition.
        partition: i32,
        /// Offset committed earlier.
        expected: i64,
        /// Offset the table holds.
        found: i64,
    },
    /// The events topic has another partition count than the store was built with: a
    /// dossier's versions would land in another partition's state and count twice.
    #[error(
        "partition_count_changed: the store was built from {recorded} partitions of the events topic, which now has {found}; re-partitioning needs a new store replayed from the topic (README: Re-partitioning)"
    )]
    PartitionCount {
        /// Partition count the store recorded.
        recorded: i32,
        /// Partition count of the topic now.
        found: i32,
    },
    /// Commits kept conflicting with other writers.
    #[error("table {table}: gave up after {attempts} conflicting commits")]
    Contended {
        /// Table.
        table: &'static str,
        /// Attempts made.
        attempts: usize,
    },
    /// A Delta Lake operation failed (storage, log, conflict).
    #[error("table {table}: {source}")]
    Delta {
        /// Table.
        table: &'static str,
        /// The cause.
        source: deltalake::DeltaTableError,
    },
    /// A query over a table failed.
    #[error("table {table} query: {source}")]
    Query {
        /// Table.
        table: &'static str,
        /// The cause.
        source: datafusion::error::DataFusionError,
    },
    /// An `as_of` before the history the store keeps.
    #[error("as_of before the kept history, which starts at {history_from}")]
    BeforeHistory {
        /// The earliest moment answerable (RFC 3339).
        history_from: String,
    },
    /// Encoding or decoding rows failed.
    #[error(transparent)]
    Window(#[from] dvc_pulse_window::WindowError),
}

impl StoreError {
    pub(crate) fn delta(table: &'static str) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        move |source| StoreError::Delta { table, source }
    }

    pub(crate) fn query(
        table: &'static str,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        move |source| StoreError::Query { table, source }
    }

    /// True for [`StoreError::Fenced`].
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}
