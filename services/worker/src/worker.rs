//! A worker's shared state: the partitions it owns (live), the checkpoints of the
//! others (read on demand), and the window queries over all of them.

use crate::checkpoint::CheckpointStore;
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use dvc_pulse_ingest::gateway::Clock;
use dvc_pulse_model::Reference;
use dvc_pulse_model::event::{format_ts, ict};
use dvc_pulse_rollup::{
    Dims, PartitionState, SeriesTable, WindowQuery, WindowTable, series_from_buckets,
    window_from_buckets,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// A partition this worker owns.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    pub(crate) state: PartitionState,
    /// Buckets batch of generation `.0`, reused until the state changes.
    cache: Option<(u64, RecordBatch)>,
    /// Position checked against the consumer's once since loading.
    pub(crate) seeked: bool,
    /// Where the last seek went, until the first message after it.
    pub(crate) sought_to: Option<i64>,
    /// Generation last checkpointed.
    pub(crate) checkpointed: u64,
}

impl Owned {
    fn buckets(&mut self) -> RecordBatch {
        let g = self.state.generation;
        if self.cache.as_ref().is_none_or(|(cg, _)| *cg != g) {
            self.cache = Some((g, self.state.buckets_batch()));
        }
        self.cache.as_ref().expect("just set").1.clone()
    }

    pub(crate) fn new(state: PartitionState) -> Self {
        let g = state.generation;
        Owned {
            state,
            cache: None,
            seeked: false,
            sought_to: None,
            checkpointed: g,
        }
    }
}

/// Where one partition's part of an answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionAsOf {
    /// Partition.
    pub partition: i32,
    /// Next offset reflected: every message before it is counted.
    pub offset: i64,
    /// `live` (owned by this worker), `checkpoint` (another worker's last checkpoint) or `empty`.
    pub source: &'static str,
    /// Newest `updated_at` reflected in this partition.
    pub newest_event: Option<String>,
}

/// What an answer reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsOf {
    /// Newest `updated_at` reflected in any partition.
    pub newest_event: Option<String>,
    /// When the answer was computed.
    pub computed_at: String,
    /// Per partition.
    pub partitions: Vec<PartitionAsOf>,
}

/// A window with what it reflects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The window table.
    #[serde(flatten)]
    pub table: WindowTable,
    /// What it reflects.
    pub as_of: AsOf,
}

/// A rolling series with what it reflects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The series.
    #[serde(flatten)]
    pub table: SeriesTable,
    /// What it reflects.
    pub as_of: AsOf,
}

fn event_time(us: i64) -> Option<String> {
    (us > 0).then(|| {
        let t = DateTime::<Utc>::from_timestamp_micros(us).expect("valid micros");
        format_ts(&t.with_timezone(&ict()))
    })
}

/// One worker: config, reference tables, checkpoint store, metrics and owned partitions.
pub struct Worker {
    /// Configuration.
    pub cfg: WorkerConfig,
    /// Events topic.
    pub topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Dimension tables.
    pub dims: Dims,
    /// Checkpoints.
    pub store: CheckpointStore,
    /// Counters.
    pub metrics: Metrics,
    /// The clock ("today" for the horizon, `computed_at`).
    pub clock: Clock,
    /// This worker's id (names its checkpoint files and dead-letter producer).
    pub id: String,
    /// Reference data.
    pub reference: Reference,
    /// Window gauges, refreshed by [`crate::window_metrics::WindowMetrics::refresh`].
    pub window_metrics: crate::window_metrics::WindowMetrics,
    partitions: AtomicI32,
    pub(crate) owned: Mutex<BTreeMap<i32, Owned>>,
    pub(crate) assigned: Mutex<std::collections::BTreeSet<i32>>,
    remote: tokio::sync::Mutex<HashMap<i32, (String, Vec<RecordBatch>)>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .finish()
    }
}

impl Worker {
    /// A worker with nothing loaded yet.
    pub fn new(
        cfg: WorkerConfig,
        topic: &str,
        dead_letter_topic: &str,
        partitions: i32,
        reference: &Reference,
        clock: Clock,
    ) -> Result<Self, WorkerError> {
        let store = CheckpointStore::open(&cfg.checkpoint_url)?;
        let id = format!("w{:016x}", rand_id());
        Ok(Worker {
            cfg,
            topic: topic.into(),
            dead_letter_topic: dead_letter_topic.into(),
            dims: Dims::new(reference),
            store,
            metrics: Metrics::new(),
            clock,
            id,
            reference: reference.clone(),
            window_metrics: Default::default(),
            partitions: AtomicI32::new(partitions),
            owned: Mutex::new(BTreeMap::new()),
            assigned: Mutex::new(Default::default()),
            remote: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Number of partitions of the events topic.
    pub fn partitions(&self) -> i32 {
        self.partitions.load(Ordering::Relaxed)
    }

    pub(crate) fn set_partitions(&self, n: i32) {
        self.partitions.store(n, Ordering::Relaxed);
    }

    /// The partitions whose state is loaded here (assigned and seen since).
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.owned
            .lock()
            .expect("owned lock")
            .keys()
            .copied()
            .collect()
    }

    /// The partitions the group assigned to this worker.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.assigned
            .lock()
            .expect("assigned lock")
            .iter()
            .copied()
            .collect()
    }

    /// The live buckets of the partitions loaded here (cached per state generation).
    pub fn owned_buckets(&self) -> Vec<RecordBatch> {
        let mut owned = self.owned.lock().expect("owned lock");
        owned.values_mut().map(Owned::buckets).collect()
    }

    /// The buckets of every partition: owned ones live, the others from their last checkpoint.
    async fn gather(&self) -> Result<(Vec<RecordBatch>, AsOf), WorkerError> {
        let mut batches = Vec::new();
        let mut parts = BTreeMap::new();
        {
            let mut owned = self.owned.lock().expect("owned lock");
            for (p, o) in owned.iter_mut() {
                batches.push(o.buckets());
                parts.insert(
                    *p,
                    PartitionAsOf {
                        partition: *p,
                        offset: o.state.next_offset,
                        source: "live",
                        newest_event: event_time(o.state.newest_event_us),
                    },
                );
            }
        }
        let mut remote = self.remote.lock().await;
        for p in 0..self.partitions() {
            if parts.contains_key(&p) {
                continue;
            }
            let Some(m) = self.store.manifest(&self.topic, p).await? else {
                parts.insert(
                    p,
                    PartitionAsOf {
                        partition: p,
                        offset: 0,
                        source: "empty",
                        newest_event: None,
                    },
                );
                continue;
            };
            if remote.get(&p).is_none_or(|(f, _)| *f != m.buckets_file) {
                remote.insert(p, (m.buckets_file.clone(), self.store.buckets(&m).await?));
            }
            batches.extend(remote[&p].1.iter().cloned());
            parts.insert(
                p,
                PartitionAsOf {
                    partition: p,
                    offset: m.next_offset,
                    source: "checkpoint",
                    newest_event: event_time(m.newest_event_us),
                },
            );
        }
        drop(remote);
        let newest = parts
            .values()
            .filter_map(|p| p.newest_event.clone())
            .max_by(|a, b| {
                let t = |s: &str| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .ok()
                };
                t(a).cmp(&t(b))
            });
        let as_of = AsOf {
            newest_event: newest,
            computed_at: format_ts(&(self.clock)().with_timezone(&ict())),
            partitions: parts.into_values().collect(),
        };
        Ok((batches, as_of))
    }

    /// A window over every partition: owned ones live, the others as of their last checkpoint.
    pub async fn snapshot(&self, q: &WindowQuery) -> Result<Snapshot, WorkerError> {
        let (batches, as_of) = self.gather().await?;
        let table = window_from_buckets(&self.dims, batches, q).await?;
        Ok(Snapshot { table, as_of })
    }

    /// Rolling 30-day windows ending on each day of `q.from..=q.to`, over every partition.
    pub async fn series(&self, q: &WindowQuery) -> Result<Series, WorkerError> {
        let (batches, as_of) = self.gather().await?;
        let table = series_from_buckets(&self.dims, batches, q).await?;
        Ok(Series { table, as_of })
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
