//! A partition's persisted forms as Arrow batches with Delta Lake column types (no
//! dictionaries, no unsigned integers), and back:
//! - the `state` table: one row per dossier entry written, with the offset of the version
//!   it reflects; restoring keeps the newest row per key, and rebuilds the buckets from
//!   the entries so they cannot drift. An evicted dossier is written as a tombstone row
//!   (status 0, every other entry column zero or empty), which restoring drops;
//! - the `changes` table: one row per version read, with the entries before and after.

use crate::changes::{Change, ChangeLog, Revision};
use crate::error::WindowError;
use crate::fact::{Days, day_date};
use crate::state::{Entry, Key, Names, PartitionState};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Date32Array, Int32Array, Int64Array,
    PrimitiveBuilder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int16Type, Int32Type, Int64Type, Schema, SchemaRef,
};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The columns of an [`Entry`], names prefixed (`""`, `new_`, `old_`).
fn entry_fields(prefix: &str, nullable: bool) -> Vec<Field> {
    let f = |n: &str, t: DataType, null: bool| Field::new(format!("{prefix}{n}"), t, null);
    vec![
        f("updated_us", DataType::Int64, nullable),
        f("content", DataType::Int64, nullable),
        f("status", DataType::Int16, nullable),
        f("channel", DataType::Int16, nullable),
        f("on_time", DataType::Boolean, nullable),
        f("received", DataType::Int32, nullable),
        f("finished", DataType::Int32, nullable),
        f("closed", DataType::Int32, nullable),
        f("due", DataType::Int32, nullable),
        f("procedure_code", DataType::Utf8, nullable),
        f("locality_code", DataType::Utf8, nullable),
        f("agency", DataType::Utf8, true),
    ]
}

/// Status of a tombstone row in the `state` table (an evicted dossier).
const TOMBSTONE: i16 = 0;

/// Number of columns of an entry.
const ENTRY_COLUMNS: usize = 12;

/// Schema of the `state` table (partitioned by `partition`).
pub static STATE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("key_hi", DataType::Int64, false),
        Field::new("key_lo", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
    ];
    fields.extend(entry_fields("", false));
    Arc::new(Schema::new(fields))
});

/// Schema of the `changes` table (partitioned by `ingest_day`, the ICT day of the
/// ingestion time, so retention drops whole partitions). `old_*` are null without an
/// entry held before.
pub static CHANGES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("ingest_day", DataType::Date32, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("ingested_at_ms", DataType::Int64, false),
        Field::new("dossier_id", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
    ];
    fields.extend(entry_fields("new_", false));
    fields.extend(entry_fields("old_", true));
    Arc::new(Schema::new(fields))
});

fn corrupt(what: &str, detail: &str) -> WindowError {
    WindowError::Corrupt {
        what: what.into(),
        detail: detail.into(),
    }
}

/// How an absent entry is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Absent {
    /// A null row (`old_*` of a new dossier).
    Null,
    /// A tombstone: status 0, numbers zero, texts empty, agency null.
    Tombstone,
}

/// The entry columns of `es`, in [`entry_fields`] order: built straight into Arrow
/// buffers, names copied from the interners (no value allocated per row).
fn entry_columns(names: &Names, es: &[Option<&Entry>], absent: Absent) -> Vec<ArrayRef> {
    let fill = absent == Absent::Tombstone;
    fn col<T: ArrowPrimitiveType>(
        es: &[Option<&Entry>],
        fill: bool,
        f: impl Fn(&Entry) -> T::Native,
    ) -> ArrayRef {
        let mut b = PrimitiveBuilder::<T>::with_capacity(es.len());
        for e in es {
            match e {
                Some(e) => b.append_value(f(e)),
                None if fill => b.append_value(T::Native::default()),
                None => b.append_null(),
            }
        }
        Arc::new(b.finish())
    }
    fn text<'n>(
        es: &[Option<&Entry>],
        blank: bool,
        f: impl Fn(&Entry) -> Option<&'n str>,
    ) -> ArrayRef {
        let mut b = StringBuilder::with_capacity(es.len(), es.len() * 8);
        for e in es {
            match e {
                Some(e) => b.append_option(f(e)),
                None if blank => b.append_value(""),
                None => b.append_null(),
            }
        }
        Arc::new(b.finish())
    }
    let mut on_time = BooleanBuilder::with_capacity(es.len());
    for e in es {
        on_time.append_option(e.map(|e| e.days.on_time).or(fill.then_some(false)));
    }
    vec![
        col::<Int64Type>(es, fill, |e| e.updated_us),
        col::<Int64Type>(es, fill, |e| e.content as i64),
        col::<Int16Type>(es, fill, |e| e.status as i16),
        col::<Int16Type>(es, fill, |e| e.days.channel as i16),
        Arc::new(on_time.finish()),
        col::<Int32Type>(es, fill, |e| e.days.received),
        col::<Int32Type>(es, fill, |e| e.days.finished),
        col::<Int32Type>(es, fill, |e| e.days.closed),
        col::<Int32Type>(es, fill, |e| e.days.due),
        text(es, fill, |e| Some(names.of(e).0)),
        text(es, fill, |e| Some(names.of(e).1)),
        text(es, false, |e| names.of(e).2),
    ]
}

/// Reads the entry columns starting at column `first` (`None` for null rows), interning
/// their names in `names`.
fn read_entries(
    names: &mut Names,
    b: &RecordBatch,
    first: usize,
    what: &str,
) -> Result<Vec<Option<Entry>>, WindowError> {
    let c = |i: usize| b.column(first + i);
    let updated = c(0).as_primitive::<Int64Type>();
    let content = c(1).as_primitive::<Int64Type>();
    let (status, channel) = (
        c(2).as_primitive::<Int16Type>(),
        c(3).as_primitive::<Int16Type>(),
    );
    let on_time: &BooleanArray = c(4).as_boolean();
    let i32c = |i: usize| c(i).as_primitive::<Int32Type>();
    let (rec, fin, clo, due) = (i32c(5), i32c(6), i32c(7), i32c(8));
    let (proc_, loc, agency) = (
        c(9).as_string::<i32>(),
        c(10).as_string::<i32>(),
        c(11).as_string::<i32>(),
    );
    (0..b.num_rows())
        .map(|i| {
            if updated.is_null(i) || status.value(i) == TOMBSTONE {
                return Ok(None);
            }
            if !(0..=2).contains(&channel.value(i)) || !(1..=10).contains(&status.value(i)) {
                return Err(corrupt(what, "status or channel out of range"));
            }
            let ag = (!agency.is_null(i)).then(|| agency.value(i));
            let (procedure, locality, agency) = names.ids(proc_.value(i), loc.value(i), ag);
            Ok(Some(Entry {
                updated_us: updated.value(i),
                content: content.value(i) as u64,
                procedure,
                locality,
                agency,
                days: Days {
                    received: rec.value(i),
                    finished: fin.value(i),
                    closed: clo.value(i),
                    due: due.value(i),
                    channel: channel.value(i) as u8,
                    on_time: on_time.value(i),
                },
                status: status.value(i) as u8,
            }))
        })
        .collect()
}

fn check_schema(b: &RecordBatch, schema: &SchemaRef, what: &str) -> Result<(), WindowError> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect::<Vec<_>>()
    };
    if names(&b.schema()) != names(schema) {
        return Err(corrupt(what, "unexpected schema"));
    }
    Ok(())
}

impl PartitionState {
    /// The `state` rows of the dossiers `keys` (with the offset of the version each
    /// reflects), as held now: a tombstone for a key no longer held (evicted).
    pub fn state_batch(
        &self,
        partition: i32,
        keys: &[(Key, i64)],
    ) -> Result<RecordBatch, WindowError> {
        let held: Vec<Option<Entry>> = keys.iter().map(|(k, _)| self.entry(k)).collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![partition; keys.len()])),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|(k, _)| k[0] as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|(k, _)| k[1] as i64),
            )),
            Arc::new(Int64Array::from_iter_values(keys.iter().map(|(_, o)| *o))),
        ];
        let es: Vec<Option<&Entry>> = held.iter().map(Option::as_ref).collect();
        cols.extend(entry_columns(&self.names, &es, Absent::Tombstone));
        Ok(RecordBatch::try_new(STATE_SCHEMA.clone(), cols)?)
    }

    /// Every dossier held, as `state` rows stamped with `offset` (a compaction).
    pub fn full_state_batch(
        &self,
        partition: i32,
        offset: i64,
    ) -> Result<RecordBatch, WindowError> {
        let keys: Vec<(Key, i64)> = self.entries().map(|(k, _)| (k, offset)).collect();
        self.state_batch(partition, &keys)
    }

    /// Rebuilds a state (dossiers and buckets) from `state` rows, keeping the newest row
    /// (highest offset) of each key and dropping keys whose newest row is a tombstone;
    /// `next_offset` is the next offset to apply, `clock_ms` the partition's clock then.
    pub fn from_state_rows(
        batches: &[RecordBatch],
        next_offset: i64,
        clock_ms: i64,
    ) -> Result<PartitionState, WindowError> {
        let mut s = PartitionState {
            next_offset,
            clock_ms,
            ..PartitionState::default()
        };
        let mut newest: HashMap<Key, (i64, Option<Entry>)> = HashMap::new();
        for b in batches {
            check_schema(b, &STATE_SCHEMA, "state table")?;
            let es = read_entries(&mut s.names, b, 4, "state table")?;
            let hi = b.column(1).as_primitive::<Int64Type>();
            let lo = b.column(2).as_primitive::<Int64Type>();
            let off = b.column(3).as_primitive::<Int64Type>();
            for (i, mut e) in es.into_iter().enumerate() {
                // Keys and content hashes as the state keeps them (rows written before
                // they were narrowed carry more bits).
                let key = [hi.value(i) as u64, lo.value(i) as u64 & !0xffff_ffff];
                if let Some(e) = e.as_mut() {
                    e.content &= 0xffff_ffff;
                }
                match newest.get(&key) {
                    Some((o, _)) if *o >= off.value(i) => {}
                    _ => {
                        newest.insert(key, (off.value(i), e));
                    }
                }
            }
        }
        s.dossiers.reserve(newest.len());
        for (key, (_, e)) in newest {
            if let Some(e) = e {
                s.newest_event_us = s.newest_event_us.max(e.updated_us);
                s.insert_entry(key, e);
            }
        }
        Ok(s)
    }

    /// The `changes` rows of `revisions`, read from `partition`.
    pub fn changes_batch(
        &self,
        partition: i32,
        revisions: &[Revision],
    ) -> Result<RecordBatch, WindowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from_iter_values(
                revisions
                    .iter()
                    .map(|r| crate::fact::ict_day_us(r.at_ms.saturating_mul(1000))),
            )),
            Arc::new(Int32Array::from(vec![partition; revisions.len()])),
            Arc::new(Int64Array::from_iter_values(
                revisions.iter().map(|r| r.offset),
            )),
            Arc::new(Int64Array::from_iter_values(
                revisions.iter().map(|r| r.at_ms),
            )),
            Arc::new(StringArray::from_iter_values(
                revisions.iter().map(|r| &*r.dossier_id),
            )),
            Arc::new(StringArray::from_iter_values(
                revisions.iter().map(|r| r.change.name()),
            )),
        ];
        let new: Vec<Option<&Entry>> = revisions.iter().map(|r| Some(&r.new)).collect();
        let old: Vec<Option<&Entry>> = revisions.iter().map(|r| r.old.as_ref()).collect();
        cols.extend(entry_columns(&self.names, &new, Absent::Null));
        cols.extend(entry_columns(&self.names, &old, Absent::Null));
        Ok(RecordBatch::try_new(CHANGES_SCHEMA.clone(), cols)?)
    }
}

impl ChangeLog {
    /// Adds `changes` rows read back from the store.
    pub fn extend_from(&mut self, b: &RecordBatch) -> Result<(), WindowError> {
        check_schema(b, &CHANGES_SCHEMA, "changes table")?;
        let first_old = 6 + ENTRY_COLUMNS;
        let new = read_entries(&mut self.names, b, 6, "changes table")?;
        let old = read_entries(&mut self.names, b, first_old, "changes table")?;
        let partition = b.column(1).as_primitive::<Int32Type>();
        let offset = b.column(2).as_primitive::<Int64Type>();
        let at = b.column(3).as_primitive::<Int64Type>();
        let id = b.column(4).as_string::<i32>();
        let change = b.column(5).as_string::<i32>();
        for (i, (new, old)) in new.into_iter().zip(old).enumerate() {
            let change = Change::from_name(change.value(i))
                .ok_or_else(|| corrupt("changes table", "unknown change"))?;
            let new = new.ok_or_else(|| corrupt("changes table", "null entry"))?;
            self.revisions.push((
                partition.value(i),
                Revision {
                    at_ms: at.value(i),
                    offset: offset.value(i),
                    dossier_id: id.value(i).into(),
                    change,
                    old,
                    new,
                },
            ));
        }
        Ok(())
    }
}

/// The calendar day of a Date32 value, for partition names.
pub fn day_name(day: i32) -> String {
    day_date(day).format("%Y-%m-%d").to_string()
}
