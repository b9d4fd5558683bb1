//! Layered configuration: built-in defaults, then a TOML file, then environment variables
//! `DVC_PULSE__SECTION__KEY` (for example `DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS`).

use crate::error::AppError;
use dvc_pulse_ingest::{IngestConfig, KafkaConfig, TopicsConfig};
use dvc_pulse_model::reference::ReferencePaths;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: String,
    /// A `tracing` filter, e.g. `info` or `dvc_pulse_ingest=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka client.
    pub kafka: KafkaConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// HTTP gateway.
    pub ingest: IngestConfig,
    /// Stream worker.
    pub worker: dvc_pulse_worker::WorkerConfig,
    /// Operator-edited reference files (built-in copies where unset).
    pub reference: ReferencePaths,
    /// Logging.
    pub log: LogConfig,
}

impl Config {
    /// Defaults ← `file` (if given) ← `DVC_PULSE__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, AppError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(AppError::Config(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let cfg: Config = fig
            .merge(Env::prefixed("DVC_PULSE__").split("__"))
            .extract()
            .map_err(|e| AppError::Config(e.to_string()))?;
        cfg.kafka.check().map_err(AppError::Config)?;
        Ok(cfg)
    }

    /// The configuration as JSON; secrets (typed [`dvc_pulse_model::settings::Secret`])
    /// print as `***`.
    pub fn to_json_redacted(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail::expect_with takes closures that return figment's own Result"
)]
mod tests {
    use super::*;

    #[test]
    fn env_beats_file_beats_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dvc.toml",
                r#"
                [kafka]
                bootstrap_servers = "file:9092"
                producers = 2
                [kafka.properties]
                "security.protocol" = "SASL_SSL"
                [topics]
                events = "from-file"
                [ingest.validation]
                future_tolerance = "5m"
                "#,
            )?;
            jail.set_env("DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS", "env:9092");
            let c = Config::load(Some(Path::new("dvc.toml"))).expect("loads");
            assert_eq!(c.kafka.bootstrap_servers, "env:9092", "env wins over file");
            assert_eq!(c.kafka.producers, 2, "file wins over defaults");
            assert_eq!(c.topics.events, "from-file");
            assert_eq!(
                c.topics.dead_letter, "dossier-events-dlq",
                "defaults fill the rest"
            );
            assert_eq!(
                c.ingest.validation.future_tolerance,
                std::time::Duration::from_secs(300)
            );
            assert_eq!(
                c.kafka
                    .properties
                    .get("security.protocol")
                    .map(String::as_str),
                Some("SASL_SSL")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_not_silence() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("dvc.toml", "[kafka]\nbootstrap_server = \"typo:9092\"\n")?;
            let err = Config::load(Some(Path::new("dvc.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("bootstrap_server"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_masked_when_printed() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dvc.toml",
                "[kafka.secrets]\n\"sasl.password\" = \"hunter2\"\n",
            )?;
            let c = Config::load(Some(Path::new("dvc.toml"))).expect("loads");
            let secret = c.kafka.secrets.get("sasl.password").expect("read");
            assert_eq!(secret.expose(), "hunter2");
            let cc = dvc_pulse_kafka::client_config(&c.kafka, &[]);
            assert_eq!(
                cc.get("sasl.password"),
                Some("hunter2"),
                "the client gets it"
            );
            let out = c.to_json_redacted();
            assert!(!out.contains("hunter2") && out.contains("***"), "{out}");
            assert!(!format!("{c:?}").contains("hunter2"), "not in Debug either");
            Ok(())
        });
    }

    #[test]
    fn a_secret_in_plain_properties_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dvc.toml",
                "[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n",
            )?;
            let err = Config::load(Some(Path::new("dvc.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("kafka.secrets"), "{err}");
            Ok(())
        });
    }
}
