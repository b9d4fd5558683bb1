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

/// A window over the latest version of each dossier (from [`crate::LatestVersions`]): the
/// batch path without the SQL's per-dossier ranking.
pub async fn window_from_latest(
    dims: &Dims,
    latest: crate::LatestVersions,
    q: &WindowQuery,
) -> Result<WindowTable, WindowError> {
    q.validate(dims)?;
    let (from, to) = (
        crate::fact::day_number(q.from),
        crate::fact::day_number(q.to),
    );
    let latest = latest.into_batches(from, to);
    let ctx = query::context(dims, "events", crate::latest::LATEST_SCHEMA.clone(), latest)?;
    query::run(&ctx, Source::Latest, q).await
}
