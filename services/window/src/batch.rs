//! Arrow batches in and out of the window core: event versions (the batch path), the
//! daily buckets of partition states (the streaming path), and the queries over each.

use crate::dims::Dims;
use crate::error::WindowError;
use crate::fact::Counter;
use crate::query::{self, Source, WindowQuery, WindowTable};
use crate::state::{BucketCounts, BucketKey, FastMap, NO_AGENCY, PartitionState};
use datafusion::arrow::array::{
    ArrayRef, AsArray, Date32Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use dvc_pulse_model::DossierEvent;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock};

/// Schema of the `events` table: one row per version as received.
pub static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("dossier_id", DataType::Utf8, false),
        Field::new("procedure_code", DataType::Utf8, false),
        Field::new("locality_code", DataType::Utf8, false),
        Field::new("agency", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, false),
        Field::new("status", DataType::UInt8, false),
        Field::new("received_at", ts(), true),
        Field::new("due_at", ts(), true),
        Field::new("finished_at", ts(), true),
        Field::new("updated_at", ts(), false),
        Field::new("seq", DataType::UInt64, false),
    ]))
});

/// Builds the `events` table from parsed versions; `seq` numbers them in the order
/// pushed, across batches (the order a partition would have read them in).
#[derive(Default)]
pub struct EventsBuilder {
    id: StringBuilder,
    procedure: StringBuilder,
    locality: StringBuilder,
    agency: StringBuilder,
    channel: StringBuilder,
    status: UInt8Builder,
    received: TimestampMicrosecondBuilder,
    due: TimestampMicrosecondBuilder,
    finished: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    seq: UInt64Builder,
    rows: usize,
    pushed: u64,
}

impl EventsBuilder {
    /// Adds one version. (No content hash: the batch query never needs one, as the
    /// latest version is picked by `updated_at`, status and input order.)
    pub fn push(&mut self, e: &DossierEvent) {
        let us = |t: &Option<dvc_pulse_model::event::Timestamp>| t.map(|t| t.timestamp_micros());
        self.id.append_value(&e.dossier_id);
        self.procedure.append_value(&e.procedure_code);
        self.locality.append_value(&e.locality_code);
        self.agency.append_option(e.agency.as_deref());
        self.channel.append_value(e.channel.as_str());
        self.status.append_value(e.status.portal_number());
        self.received.append_option(us(&e.received_at));
        self.due.append_option(us(&e.due_at));
        self.finished.append_option(us(&e.finished_at));
        self.updated.append_value(e.updated_at.timestamp_micros());
        self.seq.append_value(self.pushed);
        self.pushed += 1;
        self.rows += 1;
    }

    /// Rows pushed since the last [`EventsBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch of everything pushed; the builder starts over.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.procedure.finish()),
            Arc::new(self.locality.finish()),
            Arc::new(self.agency.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.received.finish()),
            Arc::new(self.due.finish()),
            Arc::new(self.finished.finish()),
            Arc::new(self.updated.finish()),
            Arc::new(self.seq.finish()),
        ];
        RecordBatch::try_new(EVENTS_SCHEMA.clone(), cols).expect("events columns match")
    }
}

/// The latest version of each dossier, folded in input order by the rule the batch SQL
/// applies (`ROW_NUMBER` over `updated_at`, status, input order): a later `updated_at`
/// wins, then a later status, then the later in input order. With a horizon, a dossier
/// becomes known with its first version whose day is on or after `cutoff` (Date32); its
/// earlier versions are dropped, as the worker refuses them.
///
/// Contiguous runs of the input can be folded apart, on any thread, into [`BlockFold`]s
/// and merged here in input order: the result is the same as pushing every version.
/// Each dossier id is hashed once, where its version is parsed; the hash travels with it.
#[derive(Debug, Clone)]
pub struct LatestVersions {
    cutoff: i32,
    hasher: RandomState,
    latest: HashTable<(u64, DossierEvent)>,
}

/// What decides between two versions of a dossier; the later in input order wins ties.
fn rank(e: &DossierEvent) -> (i64, u8) {
    (e.updated_at.timestamp_micros(), e.status.portal_number())
}

/// The day a version counts for against the horizon: its received day once received,
/// else its update day (the SQL's `COALESCE(r, updated day)`).
fn horizon_day(e: &DossierEvent) -> i32 {
    let received = e.received_at.filter(|_| e.status.is_received());
    crate::fact::ict_day_us(received.unwrap_or(e.updated_at).timestamp_micros())
}

impl LatestVersions {
    /// An empty fold; `i32::MIN` for no horizon.
    pub fn new(cutoff: i32) -> Self {
        Self {
            cutoff,
            hasher: RandomState::new(),
            latest: HashTable::new(),
        }
    }

    /// Folds in the next version (in input order).
    pub fn push(&mut self, e: DossierEvent) {
        let h = self.hasher.hash_one(&e.dossier_id);
        match self
            .latest
            .find_mut(h, |(_, b)| b.dossier_id == e.dossier_id)
        {
            Some((_, best)) if rank(&e) >= rank(best) => *best = e,
            Some(_) => {}
            None if horizon_day(&e) >= self.cutoff => {
                self.latest.insert_unique(h, (h, e), |x| x.0);
            }
            None => {}
        }
    }

    /// An empty fold of a run of the input, under the same horizon and hashing.
    pub fn block(&self) -> BlockFold {
        BlockFold {
            cutoff: self.cutoff,
            hasher: self.hasher.clone(),
            runs: HashTable::new(),
        }
    }

    /// Folds in the next run of the input: a dossier already known takes the run's best
    /// version if it ranks at least as high; a new one starts from the run's first
    /// version inside the horizon.
    pub fn merge(&mut self, block: BlockFold) {
        for (h, part) in block.runs {
            let id = &part.all.dossier_id;
            match self.latest.find_mut(h, |(_, b)| b.dossier_id == *id) {
                Some((_, best)) if rank(&part.all) >= rank(best) => *best = part.all,
                Some(_) => {}
                None => {
                    let first = match part.after {
                        After::None => continue,
                        After::SameAsAll => part.all,
                        After::Own(e) => *e,
                    };
                    self.latest.insert_unique(h, (h, first), |x| x.0);
                }
            }
        }
    }

    /// Dossiers known so far.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when no dossier is known.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The latest versions as `events` batches (for [`window_from_latest`]).
    pub fn into_batches(self) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut b = EventsBuilder::default();
        for (_, e) in &self.latest {
            b.push(e);
            if b.len() == 65_536 {
                out.push(b.finish());
            }
        }
        out.push(b.finish());
        out
    }
}

/// The fold of one contiguous run of the input, for [`LatestVersions::merge`]: per
/// dossier, the best version of the run, and the best from its first version inside the
/// horizon on (what counts when the dossier was not known before the run).
#[derive(Debug, Clone)]
pub struct BlockFold {
    cutoff: i32,
    hasher: RandomState,
    runs: HashTable<(u64, Partial)>,
}

#[derive(Debug, Clone)]
struct Partial {
    all: DossierEvent,
    after: After,
}

/// The best version from the run's first one inside the horizon on.
#[derive(Debug, Clone)]
enum After {
    /// No version of the run is inside the horizon yet.
    None,
    /// The run's best version overall.
    SameAsAll,
    /// A version ranked below the best overall (which came before the horizon's first).
    Own(Box<DossierEvent>),
}

impl BlockFold {
    /// Room for `n` dossiers without growing.
    pub fn reserve(&mut self, n: usize) {
        self.runs.reserve(n, |x| x.0);
    }

    /// Folds in the run's next version.
    pub fn push(&mut self, e: DossierEvent) {
        let inside = horizon_day(&e) >= self.cutoff;
        let h = self.hasher.hash_one(&e.dossier_id);
        let found = self
            .runs
            .find_mut(h, |(_, p)| p.all.dossier_id == e.dossier_id);
        let Some((_, p)) = found else {
            let after = if inside {
                After::SameAsAll
            } else {
                After::None
            };
            self.runs
                .insert_unique(h, (h, Partial { all: e, after }), |x| x.0);
            return;
        };
        if rank(&e) >= rank(&p.all) {
            // The best overall; and the best from the horizon's first on, once there is one.
            if inside || !matches!(p.after, After::None) {
                p.after = After::SameAsAll;
            }
            p.all = e;
            return;
        }
        match &p.after {
            After::None if inside => p.after = After::Own(Box::new(e)),
            After::Own(a) if rank(&e) >= rank(a) => p.after = After::Own(Box::new(e)),
            _ => {}
        }
    }

    /// Dossiers seen in the run.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// True when the run held no version.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// Schema of the `buckets` table (and of bucket checkpoints).
pub static BUCKETS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("day", DataType::Date32, false),
        Field::new("procedure_code", DataType::Utf8, false),
        Field::new("locality_code", DataType::Utf8, false),
        Field::new("agency", DataType::Utf8, true),
    ];
    fields.extend(
        Counter::ALL
            .iter()
            .map(|m| Field::new(m.column(), DataType::Int64, false)),
    );
    Arc::new(Schema::new(fields))
});

/// Schema of the store's `contributions` table: the buckets' columns and `month`
/// (`YYYY-MM` of `day`, the partition column).
pub static CONTRIBUTIONS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = BUCKETS_SCHEMA
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("month", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
});

impl PartitionState {
    /// The daily buckets as one Arrow batch, sorted by day.
    pub fn buckets_batch(&self) -> RecordBatch {
        self.rows_batch(self.buckets.iter().collect())
    }

    /// Bucket deltas as `contributions` rows (the buckets' columns and `month`).
    pub fn contributions_batch(&self, deltas: &FastMap<BucketKey, BucketCounts>) -> RecordBatch {
        let rows = self.rows_batch(deltas.iter().collect());
        let days = rows
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        let month = StringArray::from_iter_values(
            days.values()
                .iter()
                .map(|d| crate::fact::day_date(*d).format("%Y-%m").to_string()),
        );
        let mut cols = rows.columns().to_vec();
        cols.push(Arc::new(month));
        RecordBatch::try_new(CONTRIBUTIONS_SCHEMA.clone(), cols)
            .expect("contribution columns match")
    }

    fn rows_batch(&self, mut keys: Vec<(&BucketKey, &BucketCounts)>) -> RecordBatch {
        // By day and names, not ids: the same buckets give the same batch whatever the
        // order their names were first seen in.
        let n = &self.names;
        keys.sort_unstable_by(|(a, _), (b, _)| {
            let key = |k: &BucketKey| {
                let agency = (k.3 != crate::state::NO_AGENCY).then(|| n.agencies.name(k.3));
                (k.0, n.procedures.name(k.1), n.localities.name(k.2), agency)
            };
            key(a).cmp(&key(b))
        });
        let n = keys.len();
        let mut day = Date32Builder::with_capacity(n);
        let mut proc_ = StringBuilder::new();
        let mut loc = StringBuilder::new();
        let mut agency = StringBuilder::new();
        let mut ms: Vec<Int64Builder> = Counter::ALL
            .iter()
            .map(|_| Int64Builder::with_capacity(n))
            .collect();
        for ((d, p, l, a), counts) in keys {
            day.append_value(*d);
            proc_.append_value(self.names.procedures.name(*p));
            loc.append_value(self.names.localities.name(*l));
            agency.append_option((*a != NO_AGENCY).then(|| self.names.agencies.name(*a)));
            for (b, c) in ms.iter_mut().zip(counts) {
                b.append_value(*c);
            }
        }
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(day.finish()),
            Arc::new(proc_.finish()),
            Arc::new(loc.finish()),
            Arc::new(agency.finish()),
        ];
        cols.extend(ms.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        RecordBatch::try_new(BUCKETS_SCHEMA.clone(), cols).expect("bucket columns match")
    }
}

/// A window over daily bucket batches (the streaming path).
pub async fn window_from_buckets(
    dims: &Dims,
    buckets: Vec<RecordBatch>,
    q: &WindowQuery,
) -> Result<WindowTable, WindowError> {
    q.validate(dims)?;
    let ctx = query::context(dims, "buckets", BUCKETS_SCHEMA.clone(), buckets)?;
    query::run(&ctx, Source::Buckets, q).await
}

/// Rolling 30-day windows ending on each day of `q.from..=q.to`, over daily bucket batches.
pub async fn series_from_buckets(
    dims: &Dims,
    buckets: Vec<RecordBatch>,
    q: &WindowQuery,
) -> Result<query::SeriesTable, WindowError> {
    q.validate(dims)?;
    let ctx = query::context(dims, "buckets", BUCKETS_SCHEMA.clone(), buckets)?;
    ctx.register_batch("calendar", calendar(q)?)?;
    query::run_series(&ctx, q).await
}

/// A window over table `buckets` of `ctx` (any provider with the bucket columns, such as
/// the store's `contributions` table).
pub async fn window_in(
    ctx: &datafusion::prelude::SessionContext,
    dims: &Dims,
    q: &WindowQuery,
) -> Result<WindowTable, WindowError> {
    q.validate(dims)?;
    query::register_dims(ctx, dims)?;
    query::run(ctx, Source::Buckets, q).await
}

/// Rolling 30-day windows ending on each day of `q.from..=q.to`, over table `buckets` of `ctx`.
pub async fn series_in(
    ctx: &datafusion::prelude::SessionContext,
    dims: &Dims,
    q: &WindowQuery,
) -> Result<query::SeriesTable, WindowError> {
    q.validate(dims)?;
    query::register_dims(ctx, dims)?;
    ctx.register_batch("calendar", calendar(q)?)?;
    query::run_series(ctx, q).await
}

fn calendar(q: &WindowQuery) -> Result<RecordBatch, WindowError> {
    let first = crate::fact::day_number(q.from) - 29;
    let days: Vec<i32> = (first..=crate::fact::day_number(q.to)).collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "day",
            DataType::Date32,
            false,
        )])),
        vec![Arc::new(datafusion::arrow::array::Date32Array::from(days))],
    )?)
}

/// A window straight from event versions (the batch path): the latest version of each
/// dossier is picked in SQL; versions whose day is before `cutoff` (Date32) are ignored.
pub async fn window_from_events(
    dims: &Dims,
    events: Vec<RecordBatch>,
    q: &WindowQuery,
    cutoff: i32,
) -> Result<WindowTable, WindowError> {
    q.validate(dims)?;
    let ctx = query::context(dims, "events", EVENTS_SCHEMA.clone(), events)?;
    query::run(&ctx, Source::Events { cutoff }, q).await
}

/// A window over the latest version of each dossier (from [`LatestVersions`]): the
/// batch path without the SQL's per-dossier ranking.
pub async fn window_from_latest(
    dims: &Dims,
    latest: Vec<RecordBatch>,
    q: &WindowQuery,
) -> Result<WindowTable, WindowError> {
    q.validate(dims)?;
    let ctx = query::context(dims, "events", EVENTS_SCHEMA.clone(), latest)?;
    query::run(&ctx, Source::Latest, q).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use dvc_pulse_model::{Channel, Status};

    fn version(
        id: &str,
        status: Status,
        received_day: Option<i64>,
        updated_day: i64,
    ) -> DossierEvent {
        let t0 = dvc_pulse_model::event::ict()
            .with_ymd_and_hms(2024, 6, 1, 9, 0, 0)
            .unwrap();
        let day = |d: i64| t0 + chrono::Duration::days(d);
        DossierEvent {
            dossier_id: id.into(),
            procedure_code: "1.001193".into(),
            procedure_name: None,
            locality_code: "22738".into(),
            agency: None,
            channel: Channel::Online,
            status,
            received_at: received_day.map(day),
            due_at: None,
            finished_at: None,
            updated_at: day(updated_day),
            event_id: None,
            source: None,
        }
    }

    fn sorted(l: LatestVersions) -> Vec<DossierEvent> {
        let mut v: Vec<_> = l.latest.into_iter().map(|(_, e)| e).collect();
        v.sort_by(|a, b| a.dossier_id.cmp(&b.dossier_id));
        v
    }

    /// Pushing every version, and folding runs apart then merging them, agree, for every
    /// way of cutting the input, when a dossier's best version lies before the horizon.
    #[test]
    fn runs_merged_in_order_equal_one_fold() {
        let cutoff = crate::fact::day_number(chrono::NaiveDate::from_ymd_opt(2024, 6, 10).unwrap());
        let input = [
            // Filed before the horizon, updated late: the best rank, but outside.
            version("A", Status::New, None, 8),
            // Received inside the horizon with an earlier update: what counts.
            version("A", Status::Received, Some(10), 7),
            version("A", Status::Processing, Some(10), 7),
            version("B", Status::Received, Some(2), 3),
            version("B", Status::Processing, Some(12), 12),
            version("C", Status::Received, Some(12), 12),
            version("C", Status::Received, Some(12), 12),
        ];
        let mut one = LatestVersions::new(cutoff);
        input.iter().for_each(|e| one.push(e.clone()));
        let want = sorted(one);
        assert_eq!(want.len(), 3);
        assert_eq!(
            want[0].status,
            Status::Processing,
            "A from its first version inside"
        );
        for run in 1..=input.len() {
            for skip in 0..run {
                let mut merged = LatestVersions::new(cutoff);
                let (head, tail) = input.split_at(skip);
                for part in std::iter::once(head).chain(tail.chunks(run)) {
                    let mut b = merged.block();
                    part.iter().for_each(|e| b.push(e.clone()));
                    merged.merge(b);
                }
                assert_eq!(sorted(merged), want, "runs of {run} after {skip}");
            }
        }
    }
}
