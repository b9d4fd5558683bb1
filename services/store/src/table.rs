//! One Delta table: open or create, refresh, the Kafka offsets its transaction ids hold,
//! and commits that are fenced on those ids.
//!
//! Every commit of a worker carries one application transaction per Kafka partition
//! (`app_id` = `<group>/<topic>/<partition>`, `version` = the next offset). Before a
//! commit, and again after any conflict, each id's version in the newest snapshot must
//! equal what the worker expects; a newer one means another worker took the partition
//! and committed (this one is fenced). Commits are retried here, not inside delta-rs, so
//! the fence is checked again and the commit's `at` is recomputed on every attempt.

use crate::error::StoreError;
use crate::versions::{CommitMeta, META_KEY};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// How many times a conflicting commit is retried.
const ATTEMPTS: usize = 20;

/// Where a table lives.
#[derive(Clone)]
pub struct Location {
    /// The table's URL.
    pub url: Url,
    /// A shared object store for `memory://` stores (tests), `None` to let delta-rs open it.
    pub backend: Option<Arc<dyn ObjectStore>>,
    /// Options for the object store (S3 credentials and such).
    pub options: HashMap<String, String>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl Location {
    /// An unloaded handle on the table.
    pub fn builder(&self) -> Result<DeltaTableBuilder, DeltaTableError> {
        let mut b = DeltaTableBuilder::from_url(self.url.clone())?
            .with_storage_options(self.options.clone());
        if let Some(store) = &self.backend {
            b = b.with_storage_backend(store.clone(), self.url.clone());
        }
        Ok(b)
    }
}

/// What a table is made of.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name, in errors and logs.
    pub name: &'static str,
    /// Columns.
    pub schema: SchemaRef,
    /// Partition columns.
    pub partition_by: &'static [&'static str],
}

/// A Delta table with its newest loaded snapshot.
pub struct Table {
    /// Name.
    pub name: &'static str,
    /// The delta-rs handle (snapshot loaded).
    pub table: DeltaTable,
    location: Location,
    /// Query runtime (the shared memory pool of query sessions).
    runtime: Arc<RuntimeEnv>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("name", &self.name).finish()
    }
}

/// A file to add or remove in a commit.
#[derive(Debug, Default)]
pub struct FileActions {
    /// Files written.
    pub adds: Vec<Add>,
    /// Files no longer part of the table.
    pub removes: Vec<Remove>,
}

impl Table {
    /// Opens the table, creating it (empty) when absent; `config` are its Delta properties.
    pub async fn open(
        location: Location,
        spec: &Spec,
        config: &HashMap<String, Option<String>>,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<Table, StoreError> {
        let e = || StoreError::delta(spec.name);
        let mut table = location.builder().map_err(e())?.build().map_err(e())?;
        // Listed first: loading an absent table makes the Delta kernel log an ERROR
        // ("No files in log segment") on every first start.
        let exists = table.verify_deltatable_existence().await.map_err(e())?;
        let loaded = if exists {
            table.load().await
        } else {
            Err(DeltaTableError::NotATable(spec.name.into()))
        };
        match loaded {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                table = create(table, &location, spec, config).await?
            }
            Err(other) => return Err(e()(other)),
        }
        Ok(Table {
            name: spec.name,
            table,
            location,
            runtime,
        })
    }

    /// The table's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Loads the newest version.
    pub async fn refresh(&mut self) -> Result<(), StoreError> {
        self.table
            .update_incremental(None)
            .await
            .map_err(StoreError::delta(self.name))
    }

    /// The loaded version.
    pub fn version(&self) -> i64 {
        self.table.version().unwrap_or(0) as i64
    }

    /// The offset an application transaction id holds in the loaded snapshot (0 when none).
    pub async fn txn(&self, app_id: &str) -> Result<i64, StoreError> {
        let snapshot = self
            .table
            .snapshot()
            .map_err(StoreError::delta(self.name))?;
        Ok(snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(StoreError::delta(self.name))?
            .unwrap_or(0))
    }

    /// Writes `batches` as data files of the table (uncommitted until [`Table::commit`]).
    pub async fn write(&self, batches: Vec<RecordBatch>) -> Result<Vec<Add>, StoreError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(Vec::new());
        }
        let mut w =
            RecordBatchWriter::for_table(&self.table).map_err(StoreError::delta(self.name))?;
        for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
            w.write(b).await.map_err(StoreError::delta(self.name))?;
        }
        w.flush().await.map_err(StoreError::delta(self.name))
    }

    /// Checks that every `(app_id, expected)` holds `expected` in the loaded snapshot.
    async fn check_fences(&self, fences: &[(String, i32, i64)]) -> Result<(), StoreError> {
        for (app, partition, expected) in fences {
            let found = self.txn(app).await?;
            if found > *expected {
                return Err(StoreError::Fenced {
                    table: self.name,
                    partition: *partition,
                    expected: *expected,
                    found,
                });
            }
            if found < *expected {
                return Err(StoreError::Behind {
                    table: self.name,
                    partition: *partition,
                    expected: *expected,
                    found,
                });
            }
        }
        Ok(())
    }

    /// Commits `files` with application transactions `txns` (`app_id`, new offset), after
    /// checking `fences` (`app_id`, partition, expected offset) against the newest
    /// snapshot; `meta` is merged into the commit's metadata, whose `at` is made later
    /// than the previous version's. Returns the new version.
    pub async fn commit(
        &mut self,
        files: FileActions,
        fences: &[(String, i32, i64)],
        txns: &[(String, i64)],
        meta: CommitMeta,
        operation: DeltaOperation,
    ) -> Result<i64, StoreError> {
        let mut actions: Vec<Action> = files.adds.into_iter().map(Action::Add).collect();
        actions.extend(files.removes.into_iter().map(Action::Remove));
        for attempt in 0..ATTEMPTS {
            self.refresh().await?;
            self.check_fences(fences).await?;
            let previous = crate::versions::read_meta(&self.table, self.version()).await?;
            let meta = meta.after(&previous);
            let props = CommitProperties::default()
                .with_application_transactions(
                    txns.iter()
                        .map(|(app, v)| Transaction::new_with_last_update(app, *v, Some(meta.at)))
                        .collect(),
                )
                .with_metadata([(
                    META_KEY.to_string(),
                    serde_json::to_value(meta).expect("serialises"),
                )])
                .with_max_retries(0);
            let snapshot = self
                .table
                .snapshot()
                .map_err(StoreError::delta(self.name))?;
            let result = CommitBuilder::from(props)
                .with_actions(actions.clone())
                .build(
                    Some(snapshot as &dyn TableReference),
                    self.table.log_store(),
                    operation.clone(),
                )
                .await;
            match result {
                Ok(done) => return Ok(done.version() as i64),
                Err(e) if is_conflict(&e) => {
                    tracing::debug!(table = self.name, attempt, error = %e, "commit conflict; retrying");
                    continue;
                }
                Err(e) => {
                    return Err(StoreError::Delta {
                        table: self.name,
                        source: e,
                    });
                }
            }
        }
        Err(StoreError::Contended {
            table: self.name,
            attempts: ATTEMPTS,
        })
    }

    /// The live files of the loaded snapshot, with their partition values.
    pub async fn files(&self) -> Result<Vec<deltalake::kernel::LogicalFileView>, StoreError> {
        self.table
            .get_active_add_actions_by_predicate(None)
            .try_collect()
            .await
            .map_err(StoreError::delta(self.name))
    }

    /// A session with this table's loaded snapshot registered as `name`, for the store's
    /// own work (restore, compaction): no memory limit.
    pub async fn session(&self, name: &str) -> Result<SessionContext, StoreError> {
        let ctx = SessionContext::new();
        self.register(&ctx, name).await?;
        Ok(ctx)
    }

    /// A session for answering queries: within the shared memory pool
    /// (`StoreOptions::query_memory`).
    pub async fn query_session(&self, name: &str) -> Result<SessionContext, StoreError> {
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), self.runtime.clone());
        self.register(&ctx, name).await?;
        Ok(ctx)
    }

    /// Registers the loaded snapshot in `ctx` as `name`.
    pub async fn register(&self, ctx: &SessionContext, name: &str) -> Result<(), StoreError> {
        self.table
            .update_datafusion_session(&ctx.state())
            .map_err(StoreError::delta(self.name))?;
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(StoreError::query(self.name))?;
        ctx.register_table(name, provider)
            .map_err(StoreError::query(self.name))?;
        Ok(())
    }

    /// A copy of this handle, with the same loaded snapshot.
    pub fn clone_loaded(&self) -> Table {
        Table {
            name: self.name,
            table: self.table.clone(),
            location: self.location.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// A handle on version `version` of the same table.
    pub async fn at_version(&self, version: i64) -> Result<Table, StoreError> {
        let mut table = self
            .location
            .builder()
            .map_err(StoreError::delta(self.name))?
            .with_version(version as u64)
            .build()
            .map_err(StoreError::delta(self.name))?;
        table
            .load_version(version as u64)
            .await
            .map_err(StoreError::delta(self.name))?;
        Ok(Table {
            name: self.name,
            table,
            location: self.location.clone(),
            runtime: self.runtime.clone(),
        })
    }
}

/// Whether a commit failed because another writer took the version.
fn is_conflict(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    match e {
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source } => matches!(
            source,
            TransactionError::VersionAlreadyExists(_)
                | TransactionError::CommitConflict(_)
                | TransactionError::MaxCommitAttempts(_)
        ),
        _ => false,
    }
}

/// Creates the absent table `spec` at `location` (`table` is its unloaded handle); when
/// another worker created it first, loads theirs.
async fn create(
    table: DeltaTable,
    location: &Location,
    spec: &Spec,
    config: &HashMap<String, Option<String>>,
) -> Result<DeltaTable, StoreError> {
    use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
    let e = || StoreError::delta(spec.name);
    let schema = StructType::try_from_arrow(spec.schema.as_ref()).map_err(|x| e()(x.into()))?;
    let created = table
        .create()
        .with_table_name(spec.name)
        .with_columns(schema.fields().cloned())
        .with_partition_columns(spec.partition_by.iter().copied())
        .with_configuration(config.clone())
        .await;
    match created {
        Ok(t) => Ok(t),
        Err(_) => {
            let mut t = location.builder().map_err(e())?.build().map_err(e())?;
            t.load().await.map_err(e())?;
            Ok(t)
        }
    }
}
