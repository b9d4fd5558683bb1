//! A worker's shared state: the partitions it owns (dossier state, buckets for the
//! gauges, and what it owes the store), the table store, and the window queries, which
//! read the store (every partition, committed data) so any worker answers the same.

use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use dvc_pulse_model::Reference;
use dvc_pulse_model::event::{Clock, format_ts, ict};
use dvc_pulse_store::{Store, StoreError, StoreOptions, View};
use dvc_pulse_window::changes::{ChangeItem, format_ms};
use dvc_pulse_window::outbox::{Committed, Outbox};
use dvc_pulse_window::{
    Counts, Dims, PartitionState, SeriesTable, WindowError, WindowQuery, WindowTable, series_in,
    window_in,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// A partition this worker owns.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    pub(crate) state: PartitionState,
    /// What the partition owes the store since the last commit.
    pub(crate) outbox: Outbox,
    /// What each table holds for the partition.
    pub(crate) committed: Committed,
    /// State rows written since the partition's state was last compacted.
    pub(crate) state_rows: usize,
    /// Buckets batch of generation `.0`, reused until the state changes.
    cache: Option<(u64, RecordBatch)>,
    /// Position checked against the consumer's once since loading.
    pub(crate) seeked: bool,
    /// Where the last seek went, until the first message after it.
    pub(crate) sought_to: Option<i64>,
}

impl Owned {
    fn buckets(&mut self) -> RecordBatch {
        let g = self.state.generation;
        if self.cache.as_ref().is_none_or(|(cg, _)| *cg != g) {
            self.cache = Some((g, self.state.buckets_batch()));
        }
        self.cache.as_ref().expect("just set").1.clone()
    }

    pub(crate) fn new(state: PartitionState, committed: Committed) -> Self {
        Owned {
            state,
            committed,
            ..Default::default()
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
}

/// What an answer reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsOf {
    /// The moment the answer is as of: the store's version at that moment. Pass it back
    /// as `as_of` to get the same answer again, from any worker or `serve`.
    pub at: Option<String>,
    /// The store version (of the contributions table) answered from.
    pub version: i64,
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

/// One worker: config, reference tables, the table store, metrics and owned partitions.
pub struct Worker {
    /// Configuration.
    pub cfg: WorkerConfig,
    /// Events topic.
    pub topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Dimension tables.
    pub dims: Dims,
    /// The table store.
    pub store: Arc<Store>,
    /// Counters.
    pub metrics: Metrics,
    /// The clock ("today" for the horizon and default windows, `computed_at`).
    pub clock: Clock,
    /// This worker's id (names its dead-letter producer).
    pub id: String,
    /// Reference data.
    pub reference: Reference,
    /// Window gauges, refreshed by [`crate::window_metrics::WindowMetrics::refresh`].
    pub window_metrics: crate::window_metrics::WindowMetrics,
    partitions: AtomicI32,
    /// The consume loop is running and committing (false for a query-only server).
    ready: AtomicBool,
    /// Whether this worker consumes at all (false for `serve`).
    consumes: bool,
    pub(crate) owned: Mutex<BTreeMap<i32, Owned>>,
    pub(crate) assigned: Mutex<std::collections::BTreeSet<i32>>,
    /// Procedure codes outside the catalogue → the first name read with them (at most
    /// [`UNMAPPED_NAMES`]), for `/v1/procedures/unmapped`.
    pub(crate) unmapped_names: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .finish()
    }
}

/// Most names of unmapped procedure codes a worker remembers.
pub const UNMAPPED_NAMES: usize = 10_000;

/// The shortest horizon: evicted dossiers must lie outside the gauges' 30-day window.
pub const MIN_HORIZON_DAYS: i32 = 31;

impl Worker {
    /// A worker with nothing loaded yet; opens (or creates) the store. `consumes` is
    /// false for a query-only server.
    pub async fn open(
        cfg: WorkerConfig,
        topic: &str,
        dead_letter_topic: &str,
        partitions: i32,
        reference: &Reference,
        clock: Clock,
        consumes: bool,
    ) -> Result<Self, WorkerError> {
        if cfg.horizon_days < MIN_HORIZON_DAYS {
            return Err(WorkerError::Config(format!(
                "worker.horizon_days is {}: it must be at least {MIN_HORIZON_DAYS}, since the window gauges cover 30 days of the dossiers held",
                cfg.horizon_days
            )));
        }
        let store = Store::open(StoreOptions {
            url: cfg.store_url.clone(),
            history_days: cfg.history_days,
            app_prefix: format!("{}/{topic}", cfg.group_id),
            query_memory: Some(cfg.query_memory),
        })
        .await?;
        // A query-only server reports offsets for the partitions the store was built from.
        let recorded = store.recorded_partitions().await?;
        let partitions = if !consumes && recorded > 0 {
            recorded
        } else {
            partitions
        };
        let id = format!("w{:016x}", rand_id());
        Ok(Worker {
            cfg,
            topic: topic.into(),
            dead_letter_topic: dead_letter_topic.into(),
            dims: Dims::new(reference),
            store: Arc::new(store),
            metrics: Metrics::new(),
            clock,
            id,
            reference: reference.clone(),
            window_metrics: Default::default(),
            partitions: AtomicI32::new(partitions),
            ready: AtomicBool::new(!consumes),
            consumes,
            owned: Mutex::new(BTreeMap::new()),
            assigned: Mutex::new(Default::default()),
            unmapped_names: Mutex::new(BTreeMap::new()),
        })
    }

    /// Remembers the name read with a procedure code the catalogue does not map.
    pub(crate) fn note_procedure(&self, code: &str, name: Option<&str>) {
        let Some(name) = name else { return };
        if self.reference.services.service_for(code).is_some() {
            return;
        }
        let mut names = self.unmapped_names.lock().expect("names lock");
        if names.len() < UNMAPPED_NAMES && !names.contains_key(code) {
            names.insert(code.to_string(), name.to_string());
        }
    }

    /// The name read with an unmapped procedure code, if this process read one.
    pub fn procedure_name(&self, code: &str) -> Option<String> {
        self.unmapped_names
            .lock()
            .expect("names lock")
            .get(code)
            .cloned()
    }

    /// Number of partitions of the events topic.
    pub fn partitions(&self) -> i32 {
        self.partitions.load(Ordering::Relaxed)
    }

    pub(crate) fn set_partitions(&self, n: i32) {
        self.partitions.store(n, Ordering::Relaxed);
    }

    /// Whether the worker is ready: its consume loop runs (or it only serves queries).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Whether this worker consumes (false for `serve`).
    pub fn consumes(&self) -> bool {
        self.consumes
    }

    /// Marks the consume loop running, or stopped: a stopped worker drops its partitions
    /// (no gauges for data it no longer keeps up to date) and answers 503 on `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        if !ready {
            self.owned.lock().expect("owned lock").clear();
            self.metrics.partitions_owned.set(0);
        }
    }

    /// The partitions whose state is loaded here (loaded when assigned).
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

    /// The live buckets of the partitions loaded here (cached per state generation): the
    /// window gauges' source, so each worker exports exactly the partitions it owns.
    pub fn owned_buckets(&self) -> Vec<RecordBatch> {
        let mut owned = self.owned.lock().expect("owned lock");
        owned.values_mut().map(Owned::buckets).collect()
    }

    /// The store's contributions as of `as_of_ms` (default: the newest version), and
    /// what that reflects.
    async fn view(&self, as_of_ms: Option<i64>) -> Result<(View, AsOf), WorkerError> {
        let partitions = if self.consumes { self.partitions() } else { 0 };
        let view = self
            .store
            .view(as_of_ms, partitions)
            .await
            .map_err(|e| match e {
                StoreError::BeforeHistory { history_from } => {
                    WorkerError::Window(WindowError::InvalidQuery {
                        code: "as_of_before_history",
                        detail: format!(
                            "history is kept from {history_from} (worker.history_days = {})",
                            self.cfg.history_days
                        ),
                    })
                }
                other => WorkerError::Store(other),
            })?;
        let as_of = AsOf {
            at: Some(format_ms(view.meta.at)),
            version: view.version,
            history_from: Some(format_ms(view.history_from)),
            newest_event: event_time(view.meta.newest_event_us),
            computed_at: format_ts(&(self.clock)().with_timezone(&ict())),
            partitions: view
                .offsets
                .iter()
                .map(|(p, o)| PartitionAsOf {
                    partition: *p,
                    offset: *o,
                })
                .collect(),
        };
        Ok((view, as_of))
    }

    /// A window over every partition, from the store as of `as_of_ms` (default: its
    /// newest version).
    pub async fn snapshot(
        &self,
        q: &WindowQuery,
        as_of_ms: Option<i64>,
    ) -> Result<Snapshot, WorkerError> {
        let (view, as_of) = self.view(as_of_ms).await?;
        let table = window_in(&view.ctx, &self.dims, q).await?;
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

    /// What changed in window `q` between the store's versions at `a_ms` and `b_ms`
    /// (default: the newest): the rows that differ and the versions read in between.
    pub async fn diff(
        &self,
        q: &WindowQuery,
        a_ms: i64,
        b_ms: Option<i64>,
    ) -> Result<Diff, WorkerError> {
        let a = self.snapshot(q, Some(a_ms)).await?;
        let b = self.snapshot(q, b_ms).await?;
        let offsets = |s: &Snapshot| -> BTreeMap<i32, i64> {
            s.as_of
                .partitions
                .iter()
                .map(|p| (p.partition, p.offset))
                .collect()
        };
        let (oa, ob) = (offsets(&a), offsets(&b));
        let ranges: Vec<(i32, i64, i64)> = ob
            .iter()
            .map(|(p, to)| (*p, oa.get(p).copied().unwrap_or(0), *to))
            .collect();
        let log = self.store.changes(&ranges).await?;
        let under = q.locality.as_deref().map(|l| self.dims.under(l));
        let changes = log.items(a_ms, q, under.as_ref());
        Ok(Diff::new(a, b, changes))
    }

    /// Rolling 30-day windows ending on each day of `q.from..=q.to`, over every partition.
    pub async fn series(
        &self,
        q: &WindowQuery,
        as_of_ms: Option<i64>,
    ) -> Result<Series, WorkerError> {
        let (view, as_of) = self.view(as_of_ms).await?;
        let table = series_in(&view.ctx, &self.dims, q).await?;
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
    /// Number of changes by reason (all of them, not only this page's).
    pub reasons: BTreeMap<&'static str, usize>,
    /// Changes in all; `changes` is the page `offset..offset + limit` of them.
    pub changes_total: usize,
    /// The `offset` of the next page, when there is one.
    pub next_offset: Option<usize>,
}

impl Diff {
    /// Keeps the page `offset..offset + limit` of `changes`.
    pub fn page(mut self, offset: usize, limit: usize) -> Diff {
        let total = self.changes.len();
        self.changes = self.changes.into_iter().skip(offset).take(limit).collect();
        self.changes_total = total;
        self.next_offset = (offset + limit < total).then_some(offset + limit);
        self
    }
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
            changes_total: changes.len(),
            changes,
            reasons,
            next_offset: None,
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
