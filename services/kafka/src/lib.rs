//! Kafka plumbing shared by the gateway, the importer and the worker: client
//! configuration (one function), the transactional sink that writes accepted events and
//! dead letters atomically, dead-letter records, and the build-info metric.
//!
//! Modules: [`config`], [`sink`], [`dlq`], [`metrics`], [`error`].

pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod sink;

pub use config::{KafkaConfig, TopicsConfig, client_config};
pub use error::KafkaClientError;
pub use sink::KafkaSink;
