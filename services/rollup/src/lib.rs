//! The window core of dvc-pulse: dossier state (latest version wins), daily buckets per
//! (procedure, locality, agency, day) and windows over them as DataFusion SQL.
//!
//! Pure and clock-free: "today" is always an argument. Modules: [`fact`] (what a
//! dossier contributes, and the definitions), [`state`] (one partition's state),
//! [`dims`] (reference tables the SQL joins), [`query`] (window SQL and its result),
//! [`batch`] (Arrow batches in and out, and the two query paths), [`persist`] (the
//! dossier table of a checkpoint), [`history`] (revisions by ingestion time, for windows
//! as of a moment), [`report`] (report layouts and formats).

pub mod batch;
pub mod dims;
pub mod error;
pub mod fact;
pub mod history;
pub mod persist;
pub mod query;
pub mod report;
pub mod state;

pub use batch::{EventsBuilder, series_from_buckets, window_from_buckets, window_from_events};
pub use dims::Dims;
pub use error::RollupError;
pub use query::{Counts, GroupKey, SeriesPoint, SeriesTable, WindowQuery, WindowRow, WindowTable};
pub use state::{Outcome, PartitionState, content_hash, dossier_key};
