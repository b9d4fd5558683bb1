//! The window core of dvc-pulse: dossier state (latest version wins), daily buckets per
//! (procedure, locality, agency, day) and windows over them as DataFusion SQL.
//!
//! Pure and clock-free: "today" is always an argument. Modules: [`fact`] (what a
//! dossier contributes, and the definitions), [`measure`] (the one table of a window's
//! measures), [`state`] (one partition's state),
//! [`dossiers`] (its packed dossier table),
//! [`dims`] (reference tables the SQL joins), [`query`] (window SQL and its result),
//! [`batch`] (Arrow batches in and out, and the query paths), [`latest`] (the latest
//! version of each dossier, folded from an export), [`persist`] (the
//! state and changes rows the store keeps), [`changes`] (versions read, and what changed
//! a window), [`outbox`] (what a partition owes the store). Report layouts and
//! writers live in `dvc-pulse-report`.

pub mod batch;
pub mod changes;
pub mod dims;
pub mod dossiers;
pub mod error;
pub mod fact;
pub mod latest;
pub mod measure;
pub mod outbox;
pub mod persist;
pub mod query;
pub mod state;

pub use batch::{
    EventsBuilder, series_from_buckets, series_in, window_from_buckets, window_from_events,
    window_from_latest, window_in,
};
pub use dims::Dims;
pub use error::WindowError;
pub use fact::Counter;
pub use latest::{BlockFold, LatestVersions};
pub use measure::{Counts, MEASURES, Measure};
pub use query::{GroupKey, SeriesPoint, SeriesTable, WindowQuery, WindowRow, WindowTable};
pub use state::{Applied, Outcome, PartitionState, content_hash, dossier_key};
