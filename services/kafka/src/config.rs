//! Kafka client settings and topic names (sections `[kafka]` and `[topics]` of the layered
//! configuration), and the one function that turns them into a librdkafka client config.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// A librdkafka client configuration: the bootstrap servers, the settings of the
/// client's `role`, then every pass-through property of `kafka` (TLS, SASL, tuning), which
/// an operator can therefore override.
pub fn client_config(kafka: &KafkaConfig, role: &[(&str, &str)]) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (k, v) in role.iter().copied().chain(
        kafka
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        cc.set(k, v);
    }
    cc
}
