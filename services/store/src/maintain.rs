//! Keeping the store small: compaction, retention and vacuum. Any worker may run it;
//! concurrent rounds are safe.
//!
//! - **Compaction** folds the files of one partition value (a month of contributions,
//!   a day of changes) into one: contributions summed by key with all-zero rows dropped,
//!   changes concatenated. A window then reads rows in proportion to days × groups, not to
//!   commits. The commit removes exactly the files it read (`data_change = false`), so
//!   files appended meanwhile stay; it carries the transaction id `compact/<table>/<value>`,
//!   so two compactions of the same value never both land (which would count twice).
//! - **Retention** removes the days of changes older than `history_days`.
//! - **Vacuum** deletes the files no version within `history_days` refers to.

use crate::error::StoreError;
use crate::store::{Maintenance, Store};
use crate::table::{FileActions, Table};
use crate::versions::CommitMeta;
use datafusion::arrow::datatypes::SchemaRef;
use deltalake::protocol::DeltaOperation;
use dvc_pulse_window::Counter;
use dvc_pulse_window::batch::CONTRIBUTIONS_SCHEMA;
use dvc_pulse_window::persist::CHANGES_SCHEMA;
use std::collections::BTreeMap;
use tokio::sync::Mutex;

/// Files of one partition value that make compaction worth it.
pub const COMPACT_FILES: usize = 16;

/// How partition values of one table are compacted.
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// Sum the measures by bucket key (contributions).
    Sum,
    /// Keep every row (changes).
    Concat,
}

impl Store {
    /// One maintenance round: compaction where a partition value has many files,
    /// retention of changes, vacuum of all three tables. `today` is the ICT day (Date32).
    pub async fn maintain(&self, today: i32, min_files: usize) -> Result<Maintenance, StoreError> {
        let mut m = Maintenance::default();
        m.compacted += self
            .compact(self.contributions_table(), "month", Fold::Sum, min_files)
            .await?;
        m.compacted += self
            .compact(self.changes_table(), "ingest_day", Fold::Concat, min_files)
            .await?;
        m.expired += self.expire_changes(today).await?;
        m.compacted += self.compact_states(min_files).await?;
        for t in [
            self.changes_table(),
            self.contributions_table(),
            self.state_table(),
        ] {
            m.vacuumed += self.vacuum(t).await?;
        }
        Ok(m)
    }

    /// Compacts every value of `column` with at least `min_files` files.
    async fn compact(
        &self,
        table: &Mutex<Table>,
        column: &str,
        fold: Fold,
        min_files: usize,
    ) -> Result<usize, StoreError> {
        let values: Vec<String> = {
            let mut t = table.lock().await;
            t.refresh().await?;
            let mut count: BTreeMap<String, usize> = BTreeMap::new();
            for f in t.files().await? {
                if let Some(Some(v)) = f.partition_values_map().get(column) {
                    *count.entry(v.clone()).or_default() += 1;
                }
            }
            count
                .into_iter()
                .filter(|(_, n)| *n >= min_files.max(2))
                .map(|(v, _)| v)
                .collect()
        };
        let mut done = 0;
        for v in values {
            match self.compact_value(table, column, &v, fold).await {
                Ok(()) => done += 1,
                // Another worker compacted or expired it meanwhile.
                Err(e) if e.is_fenced() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    async fn compact_value(
        &self,
        table: &Mutex<Table>,
        column: &str,
        value: &str,
        fold: Fold,
    ) -> Result<(), StoreError> {
        let mut t = table.lock().await;
        t.refresh().await?;
        let app = format!("compact/{}/{value}", t.name);
        let current = t.txn(&app).await?;
        let files: Vec<_> = t
            .files()
            .await?
            .into_iter()
            .filter(|f| f.partition_values_map().get(column) == Some(&Some(value.to_string())))
            .collect();
        if files.len() < 2 {
            return Ok(());
        }
        // Read exactly these files: the snapshot they were listed from.
        let ctx = t.session("t").await?;
        let (sql, schema): (String, SchemaRef) = match fold {
            Fold::Sum => {
                let sums: Vec<String> = Counter::ALL
                    .iter()
                    .map(|m| format!("SUM({0}) AS {0}", m.column()))
                    .collect();
                let nonzero: Vec<String> = Counter::ALL
                    .iter()
                    .map(|m| format!("SUM({}) <> 0", m.column()))
                    .collect();
                (
                    format!(
                        "SELECT day, procedure_code, locality_code, agency, {}, month FROM t \
                         WHERE month = '{value}' GROUP BY day, procedure_code, locality_code, agency, month \
                         HAVING {}",
                        sums.join(", "),
                        nonzero.join(" OR ")
                    ),
                    CONTRIBUTIONS_SCHEMA.clone(),
                )
            }
            Fold::Concat => (
                format!("SELECT * FROM t WHERE CAST(ingest_day AS VARCHAR) = '{value}'"),
                CHANGES_SCHEMA.clone(),
            ),
        };
        let rows = ctx
            .sql(&sql)
            .await
            .map_err(StoreError::query(t.name))?
            .collect()
            .await
            .map_err(StoreError::query(t.name))?;
        let rows = rows
            .iter()
            .map(|b| crate::store::conform(b, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        let adds = t.write(rows).await?;
        let removes = files.iter().map(|f| f.remove_action(false)).collect();
        t.commit(
            FileActions { adds, removes },
            &[(app.clone(), 0, current)],
            &[(app, current + 1)],
            CommitMeta::default(),
            DeltaOperation::Optimize {
                predicate: Some(format!("{column} = '{value}'")),
                target_size: 0,
            },
        )
        .await?;
        tracing::debug!(table = t.name, value, files = files.len(), "compacted");
        Ok(())
    }

    /// Rewrites the `state` rows of every partition with at least `min_files` files as
    /// one row per dossier. Safe beside the partition's owner: the rewrite is fenced on
    /// the offset it read, so a commit by the owner meanwhile makes it skip.
    async fn compact_states(&self, min_files: usize) -> Result<usize, StoreError> {
        let partitions: BTreeMap<i32, usize> = {
            let mut t = self.state_table().lock().await;
            t.refresh().await?;
            let mut count = BTreeMap::new();
            for f in t.files().await? {
                if let Some(Some(p)) = f.partition_values_map().get("partition")
                    && let Ok(p) = p.parse::<i32>()
                {
                    *count.entry(p).or_default() += 1;
                }
            }
            count
        };
        let mut done = 0;
        for (p, files) in partitions {
            if files < min_files.max(2) {
                continue;
            }
            let (state, committed) = self.load_partition(p).await?;
            let rows = state.full_state_batch(p, committed.state)?;
            match self.compact_state(p, rows, committed.state).await {
                Ok(()) => done += 1,
                Err(e) if e.is_fenced() || matches!(e, StoreError::Behind { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Removes the days of changes before `today - history_days`.
    async fn expire_changes(&self, today: i32) -> Result<usize, StoreError> {
        let cutoff =
            dvc_pulse_window::persist::day_name(today - self.options().history_days as i32);
        let mut t = self.changes_table().lock().await;
        t.refresh().await?;
        let mut by_day: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for f in t.files().await? {
            if let Some(Some(d)) = f.partition_values_map().get("ingest_day")
                && *d < cutoff
            {
                by_day.entry(d.clone()).or_default().push(f);
            }
        }
        let days = by_day.len();
        for (day, files) in by_day {
            let app = format!("compact/changes/{day}");
            let current = t.txn(&app).await?;
            let removes = files.iter().map(|f| f.remove_action(true)).collect();
            let result = t
                .commit(
                    FileActions {
                        adds: Vec::new(),
                        removes,
                    },
                    &[(app.clone(), 0, current)],
                    &[(app, current + 1)],
                    CommitMeta::default(),
                    DeltaOperation::Delete {
                        predicate: Some(format!("ingest_day = '{day}'")),
                    },
                )
                .await;
            match result {
                Ok(_) => {}
                Err(e) if e.is_fenced() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(days)
    }

    /// Deletes files removed from the table more than `history_days` ago.
    async fn vacuum(&self, table: &Mutex<Table>) -> Result<usize, StoreError> {
        let mut t = table.lock().await;
        t.refresh().await?;
        let latest = crate::versions::read_meta(&t.table, t.version()).await?;
        let retention = chrono::Duration::days(self.options().history_days as i64);
        let props = deltalake::kernel::transaction::CommitProperties::default().with_metadata([(
            crate::versions::META_KEY.to_string(),
            serde_json::to_value(latest).expect("serialises"),
        )]);
        let (table_after, metrics) = t
            .table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_commit_properties(props)
            .await
            .map_err(crate::StoreError::delta(t.name))?;
        t.table = table_after;
        Ok(metrics.files_deleted.len())
    }
}
