//! Configuration of the gateway (a section of the layered configuration assembled by
//! `dvc-pulse-app`); the Kafka client and topics are `dvc-pulse-kafka`'s.

use dvc_pulse_model::ValidatorConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

pub use dvc_pulse_kafka::config::{KafkaConfig, TopicsConfig};

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
