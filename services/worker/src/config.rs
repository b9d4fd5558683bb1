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
    /// Where checkpoints go: a directory, `file:///abs/dir`, `memory://` (tests), or
    /// `s3://bucket/prefix` (needs the `s3` build feature; credentials from AWS_* env).
    pub checkpoint_url: String,
    /// Checkpoint at least this often while there is new input.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Also checkpoint after this many applied events.
    pub checkpoint_every_events: u64,
    /// Versions whose day is more than this many days before today go to the dead-letter topic.
    pub horizon_days: i32,
    /// Revisions are kept this many days (by ingestion time) so windows can be asked
    /// `as_of` a moment within them. Costs about 150 bytes per version read.
    pub history_days: u32,
    /// Window gauges on `/metrics`.
    pub metrics: crate::window_metrics::WindowMetricsConfig,
}

impl WorkerConfig {
    /// [`WorkerConfig::history_days`] in milliseconds.
    pub fn history_ms(&self) -> i64 {
        self.history_days as i64 * 86_400_000
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            group_id: "dvc-pulse-workers".into(),
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            checkpoint_url: "data/checkpoints".into(),
            checkpoint_interval: Duration::from_secs(5),
            checkpoint_every_events: 200_000,
            horizon_days: 400,
            history_days: 92,
            metrics: Default::default(),
        }
    }
}
