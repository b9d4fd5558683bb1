//! Getting dossier events into Kafka: the HTTP gateway, the bulk importer, and the
//! transactional sink they share, which writes accepted events to `dossier-events` and
//! rejected ones (reason and redacted payload) to the dead-letter topic, atomically.
//!
//! Modules: [`config`], [`pipeline`] (records → messages), [`gateway`] (HTTP), [`import`]
//! (files), [`metrics`] (gateway counters); the sink and dead letters are
//! `dvc-pulse-kafka`'s, re-exported as [`sink`] and [`dlq`].

pub mod config;
pub mod error;
pub mod gateway;
pub mod import;
pub mod metrics;
pub mod pipeline;

pub use config::{IngestConfig, KafkaConfig, TopicsConfig};
pub use dvc_pulse_kafka::{dlq, sink};
pub use error::IngestError;
pub use sink::KafkaSink;
