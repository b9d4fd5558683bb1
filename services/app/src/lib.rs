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
