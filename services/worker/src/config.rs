//! Worker configuration (the `[worker]` section).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// How a worker consumes, checkpoints and serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Kafka consumer group; workers of one group share the partitions.
    pub group_id: String,
    /// Snapshot API and `/metrics` address.
    pub listen: SocketAddr,
    /// The table store (one per group): a directory, `file:///abs/dir`, `memory://`
    /// (tests), or `s3://bucket/prefix` (needs the `s3` build feature; AWS_* env).
    pub store_url: String,
    /// Commit to the store at least this often while there is new input.
    #[serde(with = "dvc_pulse_model::settings::duration")]
    pub commit_interval: Duration,
    /// Also commit after this many messages.
    pub commit_every_events: u64,
    /// Run compaction, retention and vacuum this often.
    #[serde(with = "dvc_pulse_model::settings::duration")]
    pub maintenance_interval: Duration,
    /// Versions whose day is more than this many days before today go to the dead-letter topic.
    pub horizon_days: i32,
    /// Store versions and the changes table are kept this many days, so windows can be
    /// asked `as_of` a moment within them and diffed.
    pub history_days: u32,
    /// SHA-256 (hex) of the tokens that may read the `/v1/` API (`dvc-pulse hash-token`);
    /// empty: the API is open (keep it on a private network then).
    pub read_token_sha256: Vec<String>,
    /// Longest window `/v1/windows` answers, in days.
    pub max_window_days: i64,
    /// Longest range of `/v1/windows/daily`, in days.
    pub max_series_days: i64,
    /// Memory all window queries of this process may take together (bytes); a query
    /// over it answers 503 `query_too_large` instead of taking the worker down.
    pub query_memory: usize,
    /// Window gauges on `/metrics`.
    pub metrics: crate::window_metrics::WindowMetricsConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            group_id: "dvc-pulse-workers".into(),
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            store_url: "data/store".into(),
            commit_interval: Duration::from_secs(5),
            commit_every_events: 200_000,
            maintenance_interval: Duration::from_secs(300),
            horizon_days: 400,
            history_days: 92,
            read_token_sha256: Vec::new(),
            max_window_days: 1100,
            max_series_days: 400,
            query_memory: 1 << 30,
            metrics: Default::default(),
        }
    }
}
