//! A partition's dossier table as an Arrow batch and back: what checkpoints store.
//! Buckets are not read back; they are rebuilt from the dossiers, so they cannot drift.

use crate::error::RollupError;
use crate::fact::Days;
use crate::history::{Change, History, Revision};
use crate::state::{Entry, Interner, NO_AGENCY, PartitionState};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};
use std::sync::{Arc, LazyLock};

fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

/// The columns of an [`Entry`], names prefixed (`""`, `new_`, `old_`).
fn entry_fields(prefix: &str) -> Vec<Field> {
    let f = |n: &str, t: DataType, null: bool| Field::new(format!("{prefix}{n}"), t, null);
    vec![
        f("updated_us", DataType::Int64, false),
        f("content", DataType::UInt64, false),
        f("status", DataType::UInt8, false),
        f("channel", DataType::UInt8, false),
        f("on_time", DataType::Boolean, false),
        f("received", DataType::Int32, false),
        f("finished", DataType::Int32, false),
        f("closed", DataType::Int32, false),
        f("due", DataType::Int32, false),
        f("procedure_code", dict(), false),
        f("locality_code", dict(), false),
        f("agency", dict(), true),
    ]
}

/// Schema of a checkpointed dossier table.
pub static DOSSIERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("key_hi", DataType::UInt64, false),
        Field::new("key_lo", DataType::UInt64, false),
    ];
    fields.extend(entry_fields(""));
    Arc::new(Schema::new(fields))
});

/// Schema of a checkpointed history: one row per revision; `old_*` repeats `new_*` when
/// `has_old` is false.
pub static HISTORY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("at_ms", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("dossier_id", DataType::Utf8, false),
        Field::new("change", DataType::UInt8, false),
        Field::new("has_old", DataType::Boolean, false),
    ];
    fields.extend(entry_fields("new_"));
    fields.extend(entry_fields("old_"));
    Arc::new(Schema::new(fields))
});

fn dictionary(keys: Vec<Option<u32>>, names: &Interner) -> Result<ArrayRef, RollupError> {
    let values = StringArray::from_iter_values(names.names().iter().map(|s| &**s));
    let a = DictionaryArray::<UInt32Type>::try_new(UInt32Array::from(keys), Arc::new(values))?;
    Ok(Arc::new(a))
}

fn corrupt(what: &str, detail: &str) -> RollupError {
    RollupError::Corrupt {
        what: what.into(),
        detail: detail.into(),
    }
}

impl PartitionState {
    /// The 12 columns of `es`, in [`entry_fields`] order.
    fn entry_columns(&self, es: &[&Entry]) -> Result<Vec<ArrayRef>, RollupError> {
        let m = |f: &dyn Fn(&Entry) -> i32| Int32Array::from_iter_values(es.iter().map(|e| f(e)));
        Ok(vec![
            Arc::new(Int64Array::from_iter_values(
                es.iter().map(|e| e.updated_us),
            )),
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|e| e.content))),
            Arc::new(UInt8Array::from_iter_values(es.iter().map(|e| e.status))),
            Arc::new(UInt8Array::from_iter_values(
                es.iter().map(|e| e.days.channel),
            )),
            Arc::new(BooleanArray::from(
                es.iter().map(|e| e.days.on_time).collect::<Vec<_>>(),
            )),
            Arc::new(m(&|e| e.days.received)),
            Arc::new(m(&|e| e.days.finished)),
            Arc::new(m(&|e| e.days.closed)),
            Arc::new(m(&|e| e.days.due)),
            dictionary(
                es.iter().map(|e| Some(e.procedure)).collect(),
                &self.procedures,
            )?,
            dictionary(
                es.iter().map(|e| Some(e.locality)).collect(),
                &self.localities,
            )?,
            dictionary(
                es.iter()
                    .map(|e| (e.agency != NO_AGENCY).then_some(e.agency))
                    .collect(),
                &self.agencies,
            )?,
        ])
    }

    /// Reads the 12 entry columns starting at column `first`, interning their strings.
    fn read_entries(
        &mut self,
        b: &RecordBatch,
        first: usize,
        what: &str,
    ) -> Result<Vec<Entry>, RollupError> {
        let c = |i: usize| b.column(first + i);
        let updated = c(0).as_primitive::<Int64Type>();
        let content = c(1).as_primitive::<UInt64Type>();
        let (status, channel) = (
            c(2).as_primitive::<UInt8Type>(),
            c(3).as_primitive::<UInt8Type>(),
        );
        let on_time = c(4).as_boolean();
        let i32c = |i: usize| c(i).as_primitive::<Int32Type>();
        let (rec, fin, clo, due) = (i32c(5), i32c(6), i32c(7), i32c(8));
        // Re-intern through the dictionaries: ids may differ from the writer's.
        let remap = |col: usize, interner: &mut Interner| -> Result<Vec<u32>, RollupError> {
            let d = c(col).as_dictionary::<UInt32Type>();
            let values = d.values().as_string::<i32>();
            let ids: Vec<u32> = (0..values.len())
                .map(|i| interner.id(values.value(i)))
                .collect();
            d.keys()
                .iter()
                .map(|k| match k {
                    Some(k) => ids
                        .get(k as usize)
                        .copied()
                        .ok_or_else(|| corrupt(what, "dictionary key out of range")),
                    None => Ok(NO_AGENCY),
                })
                .collect()
        };
        let procs = remap(9, &mut self.procedures)?;
        let locs = remap(10, &mut self.localities)?;
        let ags = remap(11, &mut self.agencies)?;
        (0..b.num_rows())
            .map(|i| {
                if channel.value(i) > 2 || !(1..=10).contains(&status.value(i)) {
                    return Err(corrupt(what, "status or channel out of range"));
                }
                Ok(Entry {
                    updated_us: updated.value(i),
                    content: content.value(i),
                    procedure: procs[i],
                    locality: locs[i],
                    agency: ags[i],
                    days: Days {
                        received: rec.value(i),
                        finished: fin.value(i),
                        closed: clo.value(i),
                        due: due.value(i),
                        channel: channel.value(i),
                        on_time: on_time.value(i),
                    },
                    status: status.value(i),
                })
            })
            .collect()
    }

    /// The dossier table as one batch (unordered).
    pub fn dossiers_batch(&self) -> Result<RecordBatch, RollupError> {
        let (keys, es): (Vec<&[u64; 2]>, Vec<&Entry>) = self.dossiers.iter().unzip();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(keys.iter().map(|k| k[0]))),
            Arc::new(UInt64Array::from_iter_values(keys.iter().map(|k| k[1]))),
        ];
        cols.extend(self.entry_columns(&es)?);
        Ok(RecordBatch::try_new(DOSSIERS_SCHEMA.clone(), cols)?)
    }

    /// The history as one batch, in order.
    pub fn history_batch(&self) -> Result<RecordBatch, RollupError> {
        let rs: Vec<&Revision> = self.history.revisions().collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rs.iter().map(|r| r.at_ms))),
            Arc::new(Int64Array::from_iter_values(rs.iter().map(|r| r.offset))),
            Arc::new(StringArray::from_iter_values(
                rs.iter().map(|r| &*r.dossier_id),
            )),
            Arc::new(UInt8Array::from_iter_values(
                rs.iter().map(|r| r.change as u8),
            )),
            Arc::new(BooleanArray::from(
                rs.iter().map(|r| r.old.is_some()).collect::<Vec<_>>(),
            )),
        ];
        let new: Vec<&Entry> = rs.iter().map(|r| &r.new).collect();
        let old: Vec<&Entry> = rs
            .iter()
            .map(|r| r.old.as_ref().unwrap_or(&r.new))
            .collect();
        cols.extend(self.entry_columns(&new)?);
        cols.extend(self.entry_columns(&old)?);
        Ok(RecordBatch::try_new(HISTORY_SCHEMA.clone(), cols)?)
    }

    /// Restores the history from checkpointed batches (after [`PartitionState::from_dossiers`]).
    pub fn restore_history(
        &mut self,
        batches: &[RecordBatch],
        retention_ms: i64,
        floor_ms: i64,
    ) -> Result<(), RollupError> {
        let mut h = History::new(retention_ms);
        for b in batches {
            if b.schema().fields() != HISTORY_SCHEMA.fields() {
                return Err(corrupt("history", "unexpected schema"));
            }
            let new = self.read_entries(b, 5, "history")?;
            let old = self.read_entries(b, 17, "history")?;
            let at = b.column(0).as_primitive::<Int64Type>();
            let offset = b.column(1).as_primitive::<Int64Type>();
            let id = b.column(2).as_string::<i32>();
            let change = b.column(3).as_primitive::<UInt8Type>();
            let has_old = b.column(4).as_boolean();
            for (i, (new, old)) in new.into_iter().zip(old).enumerate() {
                let change = Change::from_u8(change.value(i))
                    .ok_or_else(|| corrupt("history", "unknown change"))?;
                h.push(Revision {
                    at_ms: at.value(i),
                    offset: offset.value(i),
                    dossier_id: id.value(i).into(),
                    change,
                    old: has_old.value(i).then_some(old),
                    new,
                });
            }
        }
        h.floor_ms = h.floor_ms.max(floor_ms);
        self.history = h;
        Ok(())
    }

    /// Rebuilds a state (dossiers and buckets) from checkpointed dossier batches.
    pub fn from_dossiers(
        batches: &[RecordBatch],
        next_offset: i64,
        newest_event_us: i64,
    ) -> Result<PartitionState, RollupError> {
        let mut s = PartitionState {
            next_offset,
            newest_event_us,
            ..PartitionState::default()
        };
        for b in batches {
            if b.schema().fields() != DOSSIERS_SCHEMA.fields() {
                return Err(corrupt("dossier table", "unexpected schema"));
            }
            let es = s.read_entries(b, 2, "dossier table")?;
            let hi = b.column(0).as_primitive::<UInt64Type>();
            let lo = b.column(1).as_primitive::<UInt64Type>();
            for (i, e) in es.into_iter().enumerate() {
                s.insert_entry([hi.value(i), lo.value(i)], e);
            }
        }
        Ok(s)
    }
}
