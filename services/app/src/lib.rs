//! The run functions behind each `dvc-pulse` subcommand, with what they share: layered
//! configuration, telemetry and the embedded Kafka-protocol broker. The binary only
//! parses arguments and calls these; tests call the same functions.
//!
//! Modules: [`config`], [`telemetry`], [`broker`], [`gateway`], [`simulate`], [`import`],
//! [`demo`], [`worker`], [`snapshot`].

pub mod broker;
pub mod config;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod import;
pub mod simulate;
pub mod snapshot;
pub mod telemetry;
pub mod worker;

pub use broker::EmbeddedBroker;
pub use config::Config;
pub use error::AppError;
