//! A partition's dossier table as an Arrow batch and back: what checkpoints store.
//! Buckets are not read back; they are rebuilt from the dossiers, so they cannot drift.

use crate::error::RollupError;
use crate::fact::Days;
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

/// Schema of a checkpointed dossier table.
pub static DOSSIERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("key_hi", DataType::UInt64, false),
        Field::new("key_lo", DataType::UInt64, false),
        Field::new("updated_us", DataType::Int64, false),
        Field::new("content", DataType::UInt64, false),
        Field::new("status", DataType::UInt8, false),
        Field::new("channel", DataType::UInt8, false),
        Field::new("on_time", DataType::Boolean, false),
        Field::new("received", DataType::Int32, false),
        Field::new("finished", DataType::Int32, false),
        Field::new("closed", DataType::Int32, false),
        Field::new("due", DataType::Int32, false),
        Field::new("procedure_code", dict(), false),
        Field::new("locality_code", dict(), false),
        Field::new("agency", dict(), true),
    ]))
});

fn dictionary(keys: Vec<Option<u32>>, names: &Interner) -> Result<ArrayRef, RollupError> {
    let values = StringArray::from_iter_values(names.names().iter().map(|s| &**s));
    let a = DictionaryArray::<UInt32Type>::try_new(UInt32Array::from(keys), Arc::new(values))?;
    Ok(Arc::new(a))
}

impl PartitionState {
    /// The dossier table as one batch (unordered).
    pub fn dossiers_batch(&self) -> Result<RecordBatch, RollupError> {
        let es: Vec<(&[u64; 2], &Entry)> = self.dossiers.iter().collect();
        let m =
            |f: &dyn Fn(&Entry) -> i32| Int32Array::from_iter_values(es.iter().map(|(_, e)| f(e)));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|(k, _)| k[0]))),
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|(k, _)| k[1]))),
            Arc::new(Int64Array::from_iter_values(
                es.iter().map(|(_, e)| e.updated_us),
            )),
            Arc::new(UInt64Array::from_iter_values(
                es.iter().map(|(_, e)| e.content),
            )),
            Arc::new(UInt8Array::from_iter_values(
                es.iter().map(|(_, e)| e.status),
            )),
            Arc::new(UInt8Array::from_iter_values(
                es.iter().map(|(_, e)| e.days.channel),
            )),
            Arc::new(BooleanArray::from(
                es.iter().map(|(_, e)| e.days.on_time).collect::<Vec<_>>(),
            )),
            Arc::new(m(&|e| e.days.received)),
            Arc::new(m(&|e| e.days.finished)),
            Arc::new(m(&|e| e.days.closed)),
            Arc::new(m(&|e| e.days.due)),
            dictionary(
                es.iter().map(|(_, e)| Some(e.procedure)).collect(),
                &self.procedures,
            )?,
            dictionary(
                es.iter().map(|(_, e)| Some(e.locality)).collect(),
                &self.localities,
            )?,
            dictionary(
                es.iter()
                    .map(|(_, e)| (e.agency != NO_AGENCY).then_some(e.agency))
                    .collect(),
                &self.agencies,
            )?,
        ];
        Ok(RecordBatch::try_new(DOSSIERS_SCHEMA.clone(), cols)?)
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
            let corrupt = |detail: &str| RollupError::Corrupt {
                what: "dossier table".into(),
                detail: detail.into(),
            };
            if b.schema().fields() != DOSSIERS_SCHEMA.fields() {
                return Err(corrupt("unexpected schema"));
            }
            let u64c = |i: usize| b.column(i).as_primitive::<UInt64Type>();
            let i32c = |i: usize| b.column(i).as_primitive::<Int32Type>();
            let (hi, lo, content) = (u64c(0), u64c(1), u64c(3));
            let updated = b.column(2).as_primitive::<Int64Type>();
            let (status, channel) = (
                b.column(4).as_primitive::<UInt8Type>(),
                b.column(5).as_primitive::<UInt8Type>(),
            );
            let on_time = b.column(6).as_boolean();
            let (rec, fin, clo, due) = (i32c(7), i32c(8), i32c(9), i32c(10));
            // Re-intern through the dictionaries: ids may differ from the writer's.
            let remap = |col: usize, interner: &mut Interner| -> Result<Vec<u32>, RollupError> {
                let d = b.column(col).as_dictionary::<UInt32Type>();
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
                            .ok_or_else(|| corrupt("dictionary key out of range")),
                        None => Ok(NO_AGENCY),
                    })
                    .collect()
            };
            let procs = remap(11, &mut s.procedures)?;
            let locs = remap(12, &mut s.localities)?;
            let ags = remap(13, &mut s.agencies)?;
            for i in 0..b.num_rows() {
                if channel.value(i) > 2 || !(1..=10).contains(&status.value(i)) {
                    return Err(corrupt("status or channel out of range"));
                }
                let e = Entry {
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
                };
                s.insert_entry([hi.value(i), lo.value(i)], e);
            }
        }
        Ok(s)
    }
}
