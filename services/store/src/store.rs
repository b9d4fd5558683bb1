//! The store: three Delta tables under one URL, committed in a fixed order.
//!
//! - `changes` (partitioned by `ingest_day`): one row per version read;
//! - `contributions` (partitioned by `month`): signed bucket deltas, the windows' source;
//! - `state` (partitioned by `partition`): dossier entries, newest row per key wins.
//!
//! A worker commits `changes`, then `contributions`, then `state`, each with the Kafka
//! offsets it covers as transaction ids. A crash between them leaves the state behind the
//! others; the replay from the state's offset emits into each table only what it lacks
//! ([`dvc_pulse_window::outbox`]), so every message takes effect once in every table.

use crate::error::StoreError;
use crate::table::{FileActions, Location, Spec, Table};
use crate::versions::{CommitMeta, Versions, earliest_version};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use deltalake::protocol::{DeltaOperation, OutputMode};
use dvc_pulse_window::PartitionState;
use dvc_pulse_window::batch::CONTRIBUTIONS_SCHEMA;
use dvc_pulse_window::changes::ChangeLog;
use dvc_pulse_window::outbox::{Batches, Committed};
use dvc_pulse_window::persist::{CHANGES_SCHEMA, STATE_SCHEMA};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use url::Url;

/// One table of a commit: the table, how to read and set the offset it holds in a
/// partition's [`Committed`], and which of a partition's batches it takes.
type TableStep<'a> = (
    &'a Mutex<Table>,
    fn(&Committed) -> i64,
    fn(&mut Committed, i64),
    fn(&Batches) -> &RecordBatch,
);
/// Where and how the store keeps its tables.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A directory, `file:///dir`, `memory://` (tests) or `s3://bucket/prefix`.
    pub url: String,
    /// Versions and the changes table are kept this many days (`as_of`, diffs).
    pub history_days: u32,
    /// Prefix of the transaction ids: `<group>/<topic>`.
    pub app_prefix: String,
    /// Memory the window and diff queries may take together (bytes; `None`: no limit).
    /// The store's own reads (restore, compaction) are not limited by it.
    pub query_memory: Option<usize>,
}

/// One partition's commit: its output since the last commit and what the tables hold.
#[derive(Debug)]
pub struct PartitionCommit {
    /// Kafka partition.
    pub partition: i32,
    /// Next offset to apply: everything before it is in the output or already committed.
    pub next_offset: i64,
    /// The partition's clock at `next_offset` (ms), kept with the state.
    pub clock_ms: i64,
    /// What each table holds for the partition now.
    pub expected: Committed,
    /// Rows to add.
    pub batches: Batches,
}

/// A window source: the contributions table as of a version, with what it reflects.
pub struct View {
    /// A session with `buckets` registered (the contributions table at `version`).
    pub ctx: SessionContext,
    /// The version.
    pub version: i64,
    /// Its metadata (`at`, newest event, partitions).
    pub meta: CommitMeta,
    /// Offset reflected per partition.
    pub offsets: Vec<(i32, i64)>,
    /// The earliest answerable moment (ms).
    pub history_from: i64,
}

/// What a maintenance round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// Partitions compacted (months of contributions, days of changes).
    pub compacted: usize,
    /// Days of changes removed by retention.
    pub expired: usize,
    /// Files deleted by vacuum.
    pub vacuumed: usize,
}

/// The three tables.
pub struct Store {
    opts: StoreOptions,
    changes: Mutex<Table>,
    contributions: Mutex<Table>,
    state: Mutex<Table>,
    versions: Mutex<Versions>,
    views: Mutex<Vec<(i64, Arc<Table>)>>,
    /// The earliest version in the log, and when it was listed (listing reads the
    /// whole log directory: at most once a minute).
    earliest: Mutex<Option<(std::time::Instant, i64)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.opts.url)
            .finish()
    }
}

/// Table specs, in commit order.
fn specs() -> [Spec; 3] {
    [
        Spec {
            name: "changes",
            schema: CHANGES_SCHEMA.clone(),
            partition_by: &["ingest_day"],
        },
        Spec {
            name: "contributions",
            schema: CONTRIBUTIONS_SCHEMA.clone(),
            partition_by: &["month"],
        },
        Spec {
            name: "state",
            schema: STATE_SCHEMA.clone(),
            partition_by: &["partition"],
        },
    ]
}

fn locations(url: &str) -> Result<Vec<Location>, StoreError> {
    let bad = |e: &dyn std::fmt::Display| StoreError::Config(format!("{url}: {e}"));
    let (base, backend): (Url, Option<Arc<dyn deltalake::ObjectStore>>) = if url == "memory://" {
        let store: Arc<dyn deltalake::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        (Url::parse("memory:///").map_err(|e| bad(&e))?, Some(store))
    } else if url.starts_with("s3://") {
        crate::s3::register()?;
        (
            Url::parse(&format!("{}/", url.trim_end_matches('/'))).map_err(|e| bad(&e))?,
            None,
        )
    } else {
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir).map_err(|e| bad(&e))?;
        let abs = std::fs::canonicalize(dir).map_err(|e| bad(&e))?;
        (
            Url::from_directory_path(&abs).map_err(|_| bad(&"not an absolute path"))?,
            None,
        )
    };
    let options: HashMap<String, String> = if url.starts_with("s3://") {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .collect()
    } else {
        HashMap::new()
    };
    specs()
        .iter()
        .map(|s| {
            if base.scheme() == "file"
                && let Ok(dir) = base.to_file_path()
            {
                std::fs::create_dir_all(dir.join(s.name)).map_err(|e| bad(&e))?;
            }
            Ok(Location {
                url: base.join(&format!("{}/", s.name)).map_err(|e| bad(&e))?,
                backend: backend.clone(),
                options: options.clone(),
            })
        })
        .collect()
}

/// Picks the columns of `schema` from `b` by name, cast to the schema's types (the
/// provider returns partition columns last, and sometimes dictionary-encoded).
pub(crate) fn conform(b: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, StoreError> {
    let err = |d: String| {
        StoreError::Window(dvc_pulse_window::WindowError::Corrupt {
            what: "table rows".into(),
            detail: d,
        })
    };
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let c = b
                .column_by_name(f.name())
                .ok_or_else(|| err(format!("no column {}", f.name())))?;
            cast(c, f.data_type()).map_err(|e| err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(e.to_string()))
}

fn quoted_columns(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The versions `t` holds for each transaction id, looked up side by side.
async fn txns(t: &Table, ids: &[String]) -> Result<Vec<i64>, StoreError> {
    futures::future::try_join_all(ids.iter().map(|id| t.txn(id))).await
}

/// `state` rows (conformed to [`STATE_SCHEMA`]) grouped by the partitions asked
/// (distinct), in their order. The table is partitioned by `partition`, so a batch is
/// usually one partition's; a mixed one is filtered per partition.
fn split_by_partition(
    rows: &[RecordBatch],
    partitions: &[i32],
) -> Result<Vec<Vec<RecordBatch>>, StoreError> {
    use datafusion::arrow::array::{Int32Array, as_primitive_array};
    use datafusion::arrow::compute::{filter_record_batch, kernels::cmp::eq};
    use datafusion::arrow::datatypes::Int32Type;
    let arrow = |e| StoreError::query("state")(datafusion::error::DataFusionError::from(e));
    let index: HashMap<i32, usize> = partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i))
        .collect();
    let mut out = vec![Vec::new(); partitions.len()];
    for b in rows {
        let b = conform(b, &STATE_SCHEMA)?;
        let column: &Int32Array =
            as_primitive_array::<Int32Type>(b.column_by_name("partition").expect("conformed"));
        let mut seen: Vec<i32> = column.values().to_vec();
        seen.sort_unstable();
        seen.dedup();
        for p in seen {
            let Some(&i) = index.get(&p) else { continue };
            if every_row_is(column, p) {
                out[i].push(b.clone());
            } else {
                let mask = eq(column, &Int32Array::new_scalar(p)).map_err(arrow)?;
                out[i].push(filter_record_batch(&b, &mask).map_err(arrow)?);
            }
        }
    }
    Ok(out)
}

/// Whether every row of `column` is `p` (the `partition` column is never null).
fn every_row_is(column: &datafusion::arrow::array::Int32Array, p: i32) -> bool {
    column.values().iter().all(|v| *v == p)
}

async fn collect(
    ctx: &SessionContext,
    table: &'static str,
    sql: &str,
) -> Result<Vec<RecordBatch>, StoreError> {
    ctx.sql(sql)
        .await
        .map_err(StoreError::query(table))?
        .collect()
        .await
        .map_err(StoreError::query(table))
}

impl Store {
    /// Opens (creating when absent) the three tables under `opts.url`.
    pub async fn open(opts: StoreOptions) -> Result<Store, StoreError> {
        let retention = format!("interval {} days", opts.history_days.max(1));
        let deleted = format!("interval {} days", opts.history_days);
        let config: HashMap<String, Option<String>> = [
            ("delta.logRetentionDuration", Some(retention)),
            ("delta.deletedFileRetentionDuration", Some(deleted)),
            ("delta.checkpointInterval", Some("100".to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
        if let Some(bytes) = opts.query_memory {
            runtime = runtime.with_memory_limit(bytes, 1.0);
        }
        let runtime = Arc::new(
            runtime
                .build()
                .map_err(|e| StoreError::Config(format!("query runtime: {e}")))?,
        );
        let mut tables = Vec::new();
        for (loc, spec) in locations(&opts.url)?.into_iter().zip(specs()) {
            tables.push(Table::open(loc, &spec, &config, runtime.clone()).await?);
        }
        let mut t = tables.into_iter();
        let (changes, contributions, state) = (
            t.next().expect("three"),
            t.next().expect("three"),
            t.next().expect("three"),
        );
        Ok(Store {
            opts,
            changes: Mutex::new(changes),
            contributions: Mutex::new(contributions),
            state: Mutex::new(state),
            versions: Mutex::new(Versions::default()),
            views: Mutex::new(Vec::new()),
            earliest: Mutex::new(None),
        })
    }

    pub(crate) fn changes_table(&self) -> &Mutex<Table> {
        &self.changes
    }

    pub(crate) fn contributions_table(&self) -> &Mutex<Table> {
        &self.contributions
    }

    pub(crate) fn state_table(&self) -> &Mutex<Table> {
        &self.state
    }

    /// The options it was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The transaction id of a partition.
    pub fn app_id(&self, partition: i32) -> String {
        format!("{}/{partition}", self.opts.app_prefix)
    }

    /// The transaction id (in the `state` table) whose version is a partition's clock.
    fn clock_id(&self, partition: i32) -> String {
        format!("{}/{partition}/clock", self.opts.app_prefix)
    }

    /// The transaction id (in the `state` table) whose version is the events topic's
    /// partition count.
    fn partitions_id(&self) -> String {
        format!("{}/partitions", self.opts.app_prefix)
    }

    /// Records the events topic's partition count `n` the first time, and refuses
    /// another count afterwards ([`StoreError::PartitionCount`]).
    pub async fn bind_partitions(&self, n: i32) -> Result<(), StoreError> {
        let id = self.partitions_id();
        let mut t = self.state.lock().await;
        t.refresh().await?;
        let mut recorded = t.txn(&id).await?;
        if recorded == 0 {
            t.commit(
                FileActions::default(),
                &[],
                &[(id.clone(), n as i64)],
                CommitMeta::default(),
                DeltaOperation::StreamingUpdate {
                    output_mode: OutputMode::Append,
                    query_id: id.clone(),
                    epoch_id: n as i64,
                },
            )
            .await?;
            t.refresh().await?;
            recorded = t.txn(&id).await?;
        }
        if recorded != n as i64 {
            return Err(StoreError::PartitionCount {
                recorded: recorded as i32,
                found: n,
            });
        }
        Ok(())
    }

    /// The events topic's partition count the store recorded (0: none yet).
    pub async fn recorded_partitions(&self) -> Result<i32, StoreError> {
        let mut t = self.state.lock().await;
        t.refresh().await?;
        Ok(t.txn(&self.partitions_id()).await? as i32)
    }

    /// The offsets `table` holds for each of `partitions`, from one refresh; the
    /// lookups (a log replay each) run side by side.
    async fn txns_of(
        &self,
        table: &Mutex<Table>,
        partitions: &[i32],
    ) -> Result<Vec<i64>, StoreError> {
        let mut t = table.lock().await;
        t.refresh().await?;
        let ids: Vec<String> = partitions.iter().map(|p| self.app_id(*p)).collect();
        txns(&t, &ids).await
    }

    /// The offsets each table holds for a partition.
    pub async fn committed(&self, partition: i32) -> Result<Committed, StoreError> {
        let mut all = self.committed_all(&[partition]).await?;
        Ok(all.pop().expect("one partition asked, one answered"))
    }

    /// [`Store::committed`] of several partitions, in their order.
    pub async fn committed_all(&self, partitions: &[i32]) -> Result<Vec<Committed>, StoreError> {
        let changes = self.txns_of(&self.changes, partitions).await?;
        let contributions = self.txns_of(&self.contributions, partitions).await?;
        let state = self.txns_of(&self.state, partitions).await?;
        Ok((0..partitions.len())
            .map(|i| Committed {
                changes: changes[i],
                contributions: contributions[i],
                state: state[i],
            })
            .collect())
    }

    /// A partition's state as the `state` table holds it, and what each table holds.
    /// The state's offset is the next one to apply.
    pub async fn load_partition(
        &self,
        partition: i32,
    ) -> Result<(PartitionState, Committed), StoreError> {
        let mut all = self.load_partitions(&[partition]).await?;
        Ok(all.pop().expect("one partition asked, one answered"))
    }

    /// [`Store::load_partition`] of several distinct partitions, in their order: one refresh of
    /// each table and one scan of `state` for all of them (a worker loads every
    /// partition the group assigns it at once).
    pub async fn load_partitions(
        &self,
        partitions: &[i32],
    ) -> Result<Vec<(PartitionState, Committed)>, StoreError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, offsets, clocks) = {
            let mut t = self.state.lock().await;
            t.refresh().await?;
            let apps: Vec<String> = partitions.iter().map(|p| self.app_id(*p)).collect();
            let clocks: Vec<String> = partitions.iter().map(|p| self.clock_id(*p)).collect();
            let (offsets, clocks) = (txns(&t, &apps).await?, txns(&t, &clocks).await?);
            let ctx = t.session("state").await?;
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            let sql = format!(
                "SELECT {} FROM state WHERE \"partition\" IN ({})",
                quoted_columns(&STATE_SCHEMA),
                list.join(", ")
            );
            (collect(&ctx, "state", &sql).await?, offsets, clocks)
        };
        let mut by_partition = split_by_partition(&rows, partitions)?;
        let committed = self.committed_all(partitions).await?;
        let mut loaded = Vec::with_capacity(partitions.len());
        for (i, mut c) in committed.into_iter().enumerate() {
            let batches = std::mem::take(&mut by_partition[i]);
            let state = PartitionState::from_state_rows(&batches, offsets[i], clocks[i])?;
            c.state = offsets[i];
            loaded.push((state, c));
        }
        Ok(loaded)
    }

    /// Commits the partitions' output to the three tables, in order, each fenced on the
    /// offsets it is expected to hold. Returns the version of `contributions` reached and
    /// what every partition's tables hold now.
    pub async fn commit(
        &self,
        parts: &[PartitionCommit],
        meta: CommitMeta,
    ) -> Result<Vec<Committed>, StoreError> {
        let mut now: Vec<Committed> = parts.iter().map(|p| p.expected).collect();
        let tables: [TableStep; 3] = [
            (
                &self.changes,
                |c| c.changes,
                |c, v| c.changes = v,
                |b| &b.changes,
            ),
            (
                &self.contributions,
                |c| c.contributions,
                |c, v| c.contributions = v,
                |b| &b.contributions,
            ),
            (&self.state, |c| c.state, |c, v| c.state = v, |b| &b.state),
        ];
        for (table, get, set, rows) in tables {
            let moving: Vec<usize> = (0..parts.len())
                .filter(|&i| parts[i].next_offset > get(&now[i]))
                .collect();
            if moving.is_empty() {
                continue;
            }
            let held: Vec<i64> = moving.iter().map(|&i| get(&now[i])).collect();
            self.commit_table(table, parts, &moving, &held, rows, meta)
                .await?;
            for &i in &moving {
                set(&mut now[i], parts[i].next_offset);
            }
        }
        Ok(now)
    }

    /// Appends the `moving` partitions' rows to one table in one commit, fenced on the
    /// offsets the table `held` for them; the state table also records their clocks.
    async fn commit_table(
        &self,
        table: &Mutex<Table>,
        parts: &[PartitionCommit],
        moving: &[usize],
        held: &[i64],
        rows: fn(&Batches) -> &RecordBatch,
        meta: CommitMeta,
    ) -> Result<(), StoreError> {
        let fences: Vec<(String, i32, i64)> = moving
            .iter()
            .zip(held)
            .map(|(&i, &h)| (self.app_id(parts[i].partition), parts[i].partition, h))
            .collect();
        let mut txns: Vec<(String, i64)> = moving
            .iter()
            .map(|&i| (self.app_id(parts[i].partition), parts[i].next_offset))
            .collect();
        if std::ptr::eq(table, &self.state) {
            txns.extend(
                moving
                    .iter()
                    .map(|&i| (self.clock_id(parts[i].partition), parts[i].clock_ms)),
            );
        }
        let mut t = table.lock().await;
        let batches = moving.iter().map(|&i| rows(&parts[i].batches).clone());
        let adds = t.write(batches.collect()).await?;
        let epoch = moving
            .iter()
            .map(|&i| parts[i].next_offset)
            .max()
            .unwrap_or(0);
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: self.opts.app_prefix.clone(),
            epoch_id: epoch,
        };
        let actions = FileActions {
            adds,
            removes: Vec::new(),
        };
        t.commit(actions, &fences, &txns, meta, operation).await?;
        Ok(())
    }

    /// Replaces every `state` row of `partition` by `rows` (its whole state as of
    /// `offset`, which the table must hold): restore then reads one row per dossier.
    pub async fn compact_state(
        &self,
        partition: i32,
        rows: RecordBatch,
        offset: i64,
    ) -> Result<(), StoreError> {
        let mut t = self.state.lock().await;
        t.refresh().await?;
        let value = partition.to_string();
        let removes = t
            .files()
            .await?
            .iter()
            .filter(|f| f.partition_values_map().get("partition") == Some(&Some(value.clone())))
            .map(|f| f.remove_action(false))
            .collect();
        let adds = t.write(vec![rows]).await?;
        let app = self.app_id(partition);
        t.commit(
            FileActions { adds, removes },
            &[(app.clone(), partition, offset)],
            &[(app, offset)],
            CommitMeta::default(),
            DeltaOperation::Optimize {
                predicate: Some(format!("partition = {partition}")),
                target_size: 0,
            },
        )
        .await?;
        Ok(())
    }

    /// Number of `state` files of a partition.
    pub async fn state_files(&self, partition: i32) -> Result<usize, StoreError> {
        let mut t = self.state.lock().await;
        t.refresh().await?;
        let value = Some(partition.to_string());
        Ok(t.files()
            .await?
            .iter()
            .filter(|f| f.partition_values_map().get("partition") == Some(&value))
            .count())
    }

    /// The contributions table as of `as_of_ms` (default: the newest version), ready to
    /// query; `partitions` is how many to report offsets for (0: what the table says).
    pub async fn view(&self, as_of_ms: Option<i64>, partitions: i32) -> Result<View, StoreError> {
        let (latest, history_from, version) = {
            let mut t = self.contributions.lock().await;
            t.refresh().await?;
            let latest = t.version();
            let mut versions = self.versions.lock().await;
            let earliest = self.earliest(&t).await?;
            let first_at = versions.meta(&t.table, earliest).await?.at;
            let retention_start =
                chrono::Utc::now().timestamp_millis() - self.opts.history_days as i64 * 86_400_000;
            // A log that still starts at the creation answers any moment before it (empty).
            let whole = earliest == 0 && first_at >= retention_start;
            let history_from = if whole {
                0
            } else {
                first_at.max(retention_start)
            };
            let version = match as_of_ms {
                None => latest,
                Some(at) if at < history_from => {
                    return Err(StoreError::BeforeHistory {
                        history_from: crate::format_ms(history_from),
                    });
                }
                Some(at) => versions
                    .resolve(&t.table, earliest, latest, at)
                    .await?
                    .unwrap_or(earliest),
            };
            (latest, history_from, version)
        };
        let table = self.table_at(version, latest).await?;
        let meta = self
            .versions
            .lock()
            .await
            .meta(&table.table, version)
            .await?;
        let n = if partitions > 0 {
            partitions
        } else {
            meta.partitions
        };
        let mut offsets = Vec::with_capacity(n.max(0) as usize);
        for p in 0..n {
            offsets.push((p, table.txn(&self.app_id(p)).await?));
        }
        let ctx = table.query_session("buckets").await?;
        Ok(View {
            ctx,
            version,
            meta,
            offsets,
            history_from,
        })
    }

    /// The earliest version of the contributions log (listed at most once a minute).
    async fn earliest(&self, t: &Table) -> Result<i64, StoreError> {
        let mut cached = self.earliest.lock().await;
        if let Some((at, v)) = *cached
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(v);
        }
        let v = earliest_version(&t.table).await?;
        *cached = Some((std::time::Instant::now(), v));
        Ok(v)
    }

    /// A loaded snapshot of `contributions` at `version` (cached: a few recent ones).
    async fn table_at(&self, version: i64, latest: i64) -> Result<Arc<Table>, StoreError> {
        let mut views = self.views.lock().await;
        if let Some((_, t)) = views.iter().find(|(v, _)| *v == version) {
            return Ok(t.clone());
        }
        let t = {
            let current = self.contributions.lock().await;
            if version == latest && current.version() == latest {
                Arc::new(current.clone_loaded())
            } else {
                Arc::new(current.at_version(version).await?)
            }
        };
        views.retain(|(v, _)| *v >= latest - 1000);
        if views.len() >= 4 {
            views.remove(0);
        }
        views.push((version, t.clone()));
        Ok(t)
    }

    /// The versions read from each `(partition, from, to)` offset range (`from`
    /// inclusive, `to` exclusive), from the changes table.
    pub async fn changes(&self, ranges: &[(i32, i64, i64)]) -> Result<ChangeLog, StoreError> {
        let mut log = ChangeLog::default();
        let conds: Vec<String> = ranges
            .iter()
            .filter(|(_, a, b)| a < b)
            .map(|(p, a, b)| {
                format!("(\"partition\" = {p} AND \"offset\" >= {a} AND \"offset\" < {b})")
            })
            .collect();
        if conds.is_empty() {
            return Ok(log);
        }
        let batches = {
            let mut t = self.changes.lock().await;
            t.refresh().await?;
            let ctx = t.query_session("changes").await?;
            let sql = format!(
                "SELECT {} FROM changes WHERE {}",
                quoted_columns(&CHANGES_SCHEMA),
                conds.join(" OR ")
            );
            collect(&ctx, "changes", &sql).await?
        };
        for b in &batches {
            log.extend_from(&conform(b, &CHANGES_SCHEMA)?)?;
        }
        Ok(log)
    }
}
