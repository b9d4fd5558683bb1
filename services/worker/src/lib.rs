//! The dvc-pulse stream worker: consumes `dossier-events` in a consumer group, keeps each
//! owned partition's state (see `dvc-pulse-window`), commits its output to the table
//! store (`dvc-pulse-store`) with the offsets it covers, and serves window snapshots over
//! every partition from the store.
//!
//! Modules: [`config`], [`worker`] (shared state and snapshots), [`consumer`] (the
//! consume loop and commits), [`api`] (HTTP and the built-in page), [`metrics`] (pipeline counters), [`window_metrics`] (window gauges).

pub mod api;
pub mod config;
pub mod consumer;
mod decode;
pub mod error;
pub mod metrics;
pub mod window_metrics;
pub mod worker;

pub use config::WorkerConfig;
pub use error::WorkerError;
pub use worker::{Snapshot, Worker};
