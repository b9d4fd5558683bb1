//! Kafka client settings and topic names (sections `[kafka]` and `[topics]` of the layered
//! configuration), and the one function that turns them into a librdkafka client config.

use dvc_pulse_model::settings::Secret;
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
    /// Passed to librdkafka as they are: `security.protocol`, `sasl.mechanism`, `ssl.*`, ...
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secret (`sasl.password`,
    /// `ssl.key.password`, ...): passed like `properties`, never printed or logged.
    pub secrets: BTreeMap<String, Secret>,
    /// Prefix of the producers' `transactional.id`s; unique per gateway instance.
    pub transactional_id_prefix: String,
    /// Producers in the pool; each carries one request's transaction at a time.
    pub producers: usize,
    /// How long a batch may wait for the broker before it is aborted (HTTP 503).
    #[serde(with = "dvc_pulse_model::settings::duration")]
    pub batch_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            properties: BTreeMap::new(),
            secrets: BTreeMap::new(),
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

/// librdkafka's sensitive properties: they belong under `kafka.secrets`.
pub const SENSITIVE_PROPERTIES: [&str; 7] = [
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "ssl.certificate.pem",
];

impl KafkaConfig {
    /// Refuses a sensitive librdkafka property given in plain `properties`, where it
    /// would be printed with the configuration.
    pub fn check(&self) -> Result<(), String> {
        match self
            .properties
            .keys()
            .find(|k| SENSITIVE_PROPERTIES.contains(&k.as_str()))
        {
            Some(k) => Err(format!(
                "kafka.properties.{k:?} is a secret: set it under kafka.secrets instead"
            )),
            None => Ok(()),
        }
    }
}

/// A librdkafka client configuration: the bootstrap servers, the settings of the
/// client's `role`, then every pass-through property and secret of `kafka` (TLS, SASL,
/// tuning), which an operator can therefore override.
pub fn client_config(kafka: &KafkaConfig, role: &[(&str, &str)]) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &kafka.bootstrap_servers);
    let properties = kafka
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let secrets = kafka.secrets.iter().map(|(k, v)| (k.as_str(), v.expose()));
    for (k, v) in role.iter().copied().chain(properties).chain(secrets) {
        cc.set(k, v);
    }
    cc
}
