//! The run functions behind each `dvc-pulse` subcommand, with what they share: layered
//! configuration and telemetry. The binary only parses arguments and calls these; tests
//! call the same functions. The embedded broker, the simulator and the demo live in
//! `dvc-pulse-devkit`.
//!
//! Modules: [`commands`] (one function per command), [`config`], [`telemetry`],
//! [`gateway`], [`import`], [`node`] (a worker process: start, serve, maintain),
//! [`snapshot`].

pub mod commands;
pub mod config;
pub mod error;
pub mod gateway;
pub mod import;
pub mod node;
pub mod snapshot;
pub mod telemetry;

pub use config::Config;
pub use error::AppError;

/// The process allocator of every binary built on this crate (the command, its tests
/// and benchmarks): jemalloc. It keeps freed pages for reuse where glibc's malloc hands
/// large buffers back to the kernel and faults them in again: the worker encodes a
/// commit's Parquet into fresh buffers many times a second, and the file snapshot
/// allocates a block of lines per 512 KiB read. Measured with the worker and snapshot
/// benchmarks (README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
