//! Pipeline counters of a worker, in Prometheus naming: `dvc_pulse_worker_*`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Label key for a lateness band.
pub const LABEL_BAND: &str = "band";
/// Label key for a reason code.
pub const LABEL_REASON: &str = "reason";
/// Label key for a partition.
pub const LABEL_PARTITION: &str = "partition";

/// Lateness bands, in days since the day a version counts for: a bounded label set.
pub const LATENESS_BANDS: [(i32, &str); 5] = [
    (1, "0-1d"),
    (7, "1-7d"),
    (30, "7-30d"),
    (90, "30-90d"),
    (i32::MAX, "90d+"),
];

/// The index in [`LATENESS_BANDS`] of a lateness in days.
pub fn band(days: i32) -> usize {
    LATENESS_BANDS
        .iter()
        .position(|(max, _)| days < *max)
        .unwrap_or(LATENESS_BANDS.len() - 1)
}

/// Every counter a worker exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry they live in.
    pub registry: Registry,
    /// Messages consumed from the events topic.
    pub consumed: IntCounter,
    /// Versions applied (new dossier or newer version).
    pub applied: IntCounter,
    /// Byte-identical redeliveries.
    pub duplicates: IntCounter,
    /// Versions older than the one held.
    pub stale: IntCounter,
    /// Older versions retracted by a newer one.
    pub retractions: IntCounter,
    /// Applied versions by lateness band, one handle per band of [`LATENESS_BANDS`]
    /// (resolved once: the hot path never looks a label up).
    pub late: [IntCounter; LATENESS_BANDS.len()],
    /// Versions beyond the horizon (dead-lettered).
    pub beyond_horizon: IntCounter,
    /// Messages on the events topic that are not valid events (dead-lettered).
    pub invalid: IntCounterVec,
    /// Dossiers evicted (all their days beyond the horizon).
    pub evicted: IntCounter,
    /// Messages replayed after a restart and skipped (already in the store).
    pub replayed: IntCounter,
    /// Times a partition resumed past the store's offset (data gone from Kafka).
    pub offset_gaps: IntCounter,
    /// Time to commit to the store (all three tables, every owned partition).
    pub commit_seconds: Histogram,
    /// Checkpoints written.
    pub commits: IntCounter,
    /// Consumer lag per partition, from the client's statistics.
    pub lag: IntGaugeVec,
    /// Partitions this worker owns.
    pub partitions_owned: IntGauge,
    /// Live dossiers held.
    pub dossiers: IntGauge,
    /// Newest `updated_at` reflected, seconds since the epoch.
    pub newest_event_seconds: IntGauge,
    /// Now minus the newest `updated_at` reflected, at the last gauge refresh.
    pub freshness_seconds: IntGauge,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    // Long only because it lists every metric once, each with its help text.
    pub fn new() -> Self {
        let registry = Registry::new();
        let o = |name: &str, help: &str| {
            Opts::new(name, help)
                .namespace("dvc_pulse")
                .subsystem("worker")
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(o(name, help)).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(o(name, help), &[label]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(o(name, help)).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "store_commit_duration_seconds",
                "Time to commit the owned partitions' output to the table store.",
            )
            .namespace("dvc_pulse")
            .subsystem("worker")
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit_seconds.clone()))
            .expect("unique metric");
        let lag = IntGaugeVec::new(
            o(
                "consumer_lag_messages",
                "Messages not yet consumed, per partition.",
            ),
            &[LABEL_PARTITION],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(dvc_pulse_kafka::metrics::build_info()))
            .expect("unique metric");
        Metrics {
            consumed: counter(
                "consumed_messages_total",
                "Messages consumed from the events topic.",
            ),
            applied: counter(
                "applied_versions_total",
                "Versions applied: a new dossier or a newer version.",
            ),
            duplicates: counter(
                "duplicate_versions_total",
                "Byte-identical redeliveries, ignored.",
            ),
            stale: counter(
                "stale_versions_total",
                "Versions older than the one held, ignored.",
            ),
            retractions: counter(
                "retracted_versions_total",
                "Older versions retracted by a newer one.",
            ),
            late: {
                let vec = counter_vec(
                    "late_versions_total",
                    "Applied versions by lateness band (days after the day they count for).",
                    LABEL_BAND,
                );
                LATENESS_BANDS.map(|(_, b)| vec.with_label_values(&[b]))
            },
            beyond_horizon: counter(
                "beyond_horizon_versions_total",
                "Versions older than the horizon, dead-lettered.",
            ),
            evicted: counter(
                "evicted_dossiers_total",
                "Dossiers evicted from the state: every day they count for is beyond the horizon.",
            ),
            invalid: counter_vec(
                "invalid_messages_total",
                "Messages on the events topic that are not valid events, dead-lettered.",
                LABEL_REASON,
            ),
            replayed: counter(
                "replayed_messages_total",
                "Messages replayed after a restart or rebalance and skipped.",
            ),
            offset_gaps: counter(
                "offset_gaps_total",
                "Times a partition resumed past the store's offset: messages gone from Kafka.",
            ),
            commit_seconds,
            commits: counter("store_commits_total", "Commits to the table store."),
            lag,
            partitions_owned: gauge("partitions_owned", "Partitions this worker owns."),
            dossiers: gauge("dossiers", "Live dossiers held by this worker."),
            newest_event_seconds: gauge(
                "newest_event_timestamp_seconds",
                "Newest updated_at reflected in this worker's windows.",
            ),
            freshness_seconds: gauge(
                "window_freshness_seconds",
                "Now minus the newest updated_at reflected in this worker's windows, at the last refresh.",
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
