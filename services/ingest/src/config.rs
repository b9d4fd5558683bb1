//! Configuration of the Kafka client, topics and gateway (one section each of the
//! layered configuration assembled by `dvc-pulse-app`).

use dvc_pulse_model::ValidatorConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Kafka client settings shared by every component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; empty means "start the embedded broker" where a command can.
    pub bootstrap_servers: String,
    /// Passed to librdkafka as they are: `security.protocol`, `sasl.*`, `ssl.*`, ...
    pub properties: BTreeMap<String, String>,
    /// Prefix of the producers' `transactional.id`s; unique per gateway instance.
    pub transactional_id_prefix: String,
    /// Producers in the pool; each carries one request's transaction at a time.
    pub producers: usize,
    /// How long a batch may wait for the broker before it is aborted (HTTP 503).
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            properties: BTreeMap::new(),
            transactional_id_prefix: "dvc-pulse-ingest".into(),
            producers: 4,
            batch_timeout: Duration::from_secs(10),
        }
    }
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Accepted canonical events, keyed by `dossier_id`.
    pub events: String,
    /// Rejected records with their reason.
    pub dead_letter: String,
    /// Partitions when the embedded broker creates the topics.
    pub partitions: i32,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            events: "dossier-events".into(),
            dead_letter: "dossier-events-dlq".into(),
            partitions: 6,
        }
    }
}

/// The HTTP gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body; larger ones get 413.
    pub body_limit_bytes: usize,
    /// SHA-256 (hex) of the accepted bearer tokens; `dvc-pulse hash-token` makes one.
    pub token_sha256: Vec<String>,
    /// Accept requests without a token. Off by default; for local demos only.
    pub allow_anonymous: bool,
    /// Record validation.
    pub validation: ValidatorConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            body_limit_bytes: 8 * 1024 * 1024,
            token_sha256: Vec::new(),
            allow_anonymous: false,
            validation: ValidatorConfig::default(),
        }
    }
}
