//! Getting dossier events into Kafka: the HTTP gateway, the bulk importer, and the
//! transactional sink they share, which writes accepted events to `dossier-events` and
//! rejected ones (reason and redacted payload) to the dead-letter topic, atomically.
//!
//! Modules: [`config`], [`sink`] (Kafka transactions), [`dlq`] (dead-letter records),
//! [`pipeline`] (records → messages), [`gateway`] (HTTP), [`import`] (files), [`metrics`]
//! (gateway counters).

pub mod config;
pub mod dlq;
pub mod error;
pub mod gateway;
pub mod import;
pub mod metrics;
pub mod pipeline;
pub mod sink;

pub use config::{IngestConfig, KafkaConfig, TopicsConfig};
pub use error::IngestError;
pub use sink::KafkaSink;
