//! A worker's shared state: the partitions it owns (live), the checkpoints of the
//! others (read on demand), and the window queries over all of them.

use crate::checkpoint::CheckpointStore;
use crate::checkpoint::Manifest;
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use dvc_pulse_ingest::gateway::Clock;
use dvc_pulse_model::Reference;
use dvc_pulse_model::event::{format_ts, ict};
use dvc_pulse_rollup::history::{ChangeItem, format_ms};
use dvc_pulse_rollup::{
    Counts, Dims, PartitionState, RollupError, SeriesTable, WindowQuery, WindowTable,
    series_from_buckets, window_from_buckets,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
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
    /// The moment the answer is as of: every version ingested (Kafka timestamp) by then
    /// and read, none after. Pass it back as `as_of` to get the same answer again.
    pub at: Option<String>,
    /// The earliest `as_of` the kept history can answer.
    pub history_from: Option<String>,
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
    /// Names the snapshot: the same window, locality and `as_of` always get the same id.
    pub id: String,
    /// SHA-256 of the rows and totals: equal digests, equal tables.
    pub digest: String,
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
    /// Other workers' partitions with their history, loaded for `as_of` answers.
    remote_states: tokio::sync::Mutex<HashMap<i32, (String, Arc<PartitionState>)>>,
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
            remote_states: tokio::sync::Mutex::new(HashMap::new()),
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

    /// A partition of another worker, with its history, as of its last checkpoint.
    async fn remote_state(&self, p: i32, m: &Manifest) -> Result<Arc<PartitionState>, WorkerError> {
        let mut cache = self.remote_states.lock().await;
        if let Some((f, s)) = cache.get(&p)
            && *f == m.dossiers_file
        {
            return Ok(s.clone());
        }
        let (s, _) = self
            .store
            .load(&self.topic, p, self.cfg.history_ms())
            .await?;
        let s = Arc::new(s);
        cache.insert(p, (m.dossiers_file.clone(), s.clone()));
        Ok(s)
    }

    /// The buckets of every partition (owned ones live, the others from their last
    /// checkpoint), taken back to ingestion time `as_of_ms` when given.
    async fn gather(&self, as_of_ms: Option<i64>) -> Result<(Vec<RecordBatch>, AsOf), WorkerError> {
        let mut batches = Vec::new();
        let mut parts = BTreeMap::new();
        let (mut floor, mut last) = (0i64, 0i64);
        {
            let mut owned = self.owned.lock().expect("owned lock");
            for (p, o) in owned.iter_mut() {
                floor = floor.max(o.state.history.floor_ms);
                last = last.max(o.state.history.last_ms);
                batches.push(o.buckets());
                if let Some(t) = as_of_ms {
                    batches.extend(o.state.undo_batch(t));
                }
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
            floor = floor.max(m.history_floor_ms);
            last = last.max(m.history_last_ms);
            if let Some(t) = as_of_ms.filter(|&t| t < m.history_last_ms) {
                batches.extend(self.remote_state(p, &m).await?.undo_batch(t));
            }
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
        if let Some(t) = as_of_ms
            && t < floor
        {
            return Err(WorkerError::Rollup(RollupError::InvalidQuery {
                code: "as_of_before_history",
                detail: format!(
                    "history is kept from {} (worker.history_days = {})",
                    format_ms(floor),
                    self.cfg.history_days
                ),
            }));
        }
        let at = as_of_ms.or((last > 0).then_some(last));
        let as_of = AsOf {
            at: at.map(format_ms),
            history_from: (last > 0).then(|| format_ms(floor)),
            newest_event: newest,
            computed_at: format_ts(&(self.clock)().with_timezone(&ict())),
            partitions: parts.into_values().collect(),
        };
        Ok((batches, as_of))
    }

    /// A window over every partition (owned ones live, the others as of their last
    /// checkpoint), as of ingestion time `as_of_ms` when given.
    pub async fn snapshot(
        &self,
        q: &WindowQuery,
        as_of_ms: Option<i64>,
    ) -> Result<Snapshot, WorkerError> {
        let (batches, as_of) = self.gather(as_of_ms).await?;
        let table = window_from_buckets(&self.dims, batches, q).await?;
        let id = {
            let key = format!(
                "{}|{}|{}|{}|{}",
                q.from,
                q.to,
                q.group_by
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(","),
                q.locality.as_deref().unwrap_or(""),
                as_of.at.as_deref().unwrap_or("")
            );
            format!(
                "snap-{}",
                &hex::encode(Sha256::digest(key.as_bytes()))[..16]
            )
        };
        let digest = {
            let body = serde_json::to_vec(&(&table.rows, &table.totals)).expect("serialises");
            hex::encode(Sha256::digest(&body))
        };
        Ok(Snapshot {
            id,
            digest,
            table,
            as_of,
        })
    }

    /// What changed in window `q` between ingestion times `a_ms` and `b_ms` (default:
    /// everything read): the rows that differ and the versions read in between.
    pub async fn diff(
        &self,
        q: &WindowQuery,
        a_ms: i64,
        b_ms: Option<i64>,
    ) -> Result<Diff, WorkerError> {
        let a = self.snapshot(q, Some(a_ms)).await?;
        let b = self.snapshot(q, b_ms).await?;
        let b_at = b_ms.unwrap_or(i64::MAX);
        let under = q.locality.as_deref().map(|l| self.dims.under(l));
        let mut changes = Vec::new();
        {
            let owned = self.owned.lock().expect("owned lock");
            for (p, o) in owned.iter() {
                changes.extend(o.state.changes_between(*p, a_ms, b_at, q, under.as_ref()));
            }
        }
        let owned: std::collections::BTreeSet<i32> = self.owned_partitions().into_iter().collect();
        for p in (0..self.partitions()).filter(|p| !owned.contains(p)) {
            if let Some(m) = self.store.manifest(&self.topic, p).await?
                && a_ms < m.history_last_ms
            {
                let s = self.remote_state(p, &m).await?;
                changes.extend(s.changes_between(p, a_ms, b_at, q, under.as_ref()));
            }
        }
        changes.sort_by(|x, y| {
            (&x.ingested_at, x.partition, x.offset).cmp(&(&y.ingested_at, y.partition, y.offset))
        });
        Ok(Diff::new(a, b, changes))
    }

    /// Rolling 30-day windows ending on each day of `q.from..=q.to`, over every partition.
    pub async fn series(
        &self,
        q: &WindowQuery,
        as_of_ms: Option<i64>,
    ) -> Result<Series, WorkerError> {
        let (batches, as_of) = self.gather(as_of_ms).await?;
        let table = series_from_buckets(&self.dims, batches, q).await?;
        Ok(Series { table, as_of })
    }
}

/// What changed in a window between two moments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// First day of the window.
    pub from: chrono::NaiveDate,
    /// Last day of the window.
    pub to: chrono::NaiveDate,
    /// Locality filter.
    pub locality: Option<String>,
    /// The earlier snapshot's id and moment.
    pub a: DiffSide,
    /// The later snapshot's id and moment.
    pub b: DiffSide,
    /// Rows whose counts differ, with both.
    pub rows: Vec<RowChange>,
    /// Totals before and after.
    pub totals: (Counts, Counts),
    /// Versions read in between that bear on the window, oldest first.
    pub changes: Vec<ChangeItem>,
    /// Number of changes by reason.
    pub reasons: BTreeMap<&'static str, usize>,
}

/// One side of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffSide {
    /// Snapshot id.
    pub id: String,
    /// Its `as_of` moment.
    pub as_of: Option<String>,
    /// Its digest.
    pub digest: String,
}

/// A row of a window whose counts changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowChange {
    /// Group key columns.
    pub keys: serde_json::Map<String, serde_json::Value>,
    /// Counts at the earlier moment (zero when the row was absent).
    pub before: Counts,
    /// Counts at the later moment.
    pub after: Counts,
}

impl Diff {
    fn new(a: Snapshot, b: Snapshot, changes: Vec<ChangeItem>) -> Diff {
        let keyed = |s: &Snapshot| -> BTreeMap<String, (serde_json::Map<String, serde_json::Value>, Counts)> {
            s.table
                .rows
                .iter()
                .map(|r| {
                    let keys: serde_json::Map<_, _> =
                        r.keys.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                    (serde_json::Value::Object(keys.clone()).to_string(), (keys, r.counts))
                })
                .collect()
        };
        let (ka, kb) = (keyed(&a), keyed(&b));
        let mut rows = Vec::new();
        for k in ka.keys().chain(kb.keys().filter(|k| !ka.contains_key(*k))) {
            let before = ka.get(k).map(|x| x.1).unwrap_or_default();
            let after = kb.get(k).map(|x| x.1).unwrap_or_default();
            if before != after {
                let keys = ka.get(k).or(kb.get(k)).expect("in one of them").0.clone();
                rows.push(RowChange {
                    keys,
                    before,
                    after,
                });
            }
        }
        let mut reasons = BTreeMap::new();
        for c in &changes {
            *reasons.entry(c.reason).or_default() += 1;
        }
        let side = |s: &Snapshot| DiffSide {
            id: s.id.clone(),
            as_of: s.as_of.at.clone(),
            digest: s.digest.clone(),
        };
        Diff {
            from: a.table.from,
            to: a.table.to,
            locality: a.table.locality.clone(),
            a: side(&a),
            b: side(&b),
            totals: (a.table.totals, b.table.totals),
            rows,
            changes,
            reasons,
        }
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
