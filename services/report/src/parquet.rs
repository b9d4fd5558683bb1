//! Parquet output for analysts: one typed column per report column, no "Tổng" row.

use crate::ReportError;
use crate::layout::{Cell, Kind, Report};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use std::sync::Arc;

/// The report's rows as an Arrow batch (keys as column names).
pub fn to_batch(r: &Report) -> Result<RecordBatch, ReportError> {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (i, c) in r.columns.iter().enumerate() {
        let cells = r.rows.iter().map(|row| &row[i]);
        let (t, a): (DataType, ArrayRef) = match c.kind {
            Kind::Int => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(cells.map(|v| match v {
                    Cell::Int(x) => Some(*x),
                    _ => None,
                }))),
            ),
            Kind::Float => (
                DataType::Float64,
                Arc::new(Float64Array::from_iter(cells.map(|v| match v {
                    Cell::Float(x) => *x,
                    _ => None,
                }))),
            ),
            Kind::Text => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(cells.map(|v| match v {
                    Cell::Text(s) => Some(s.clone()),
                    _ => None,
                }))),
            ),
        };
        fields.push(Field::new(c.key, t, true));
        cols.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| ReportError::Export {
        format: "parquet",
        detail: e.to_string(),
    })
}

/// The report as a Parquet file.
pub fn to_parquet(r: &Report) -> Result<Vec<u8>, ReportError> {
    let batch = to_batch(r)?;
    let e = |e: datafusion::parquet::errors::ParquetError| ReportError::Export {
        format: "parquet",
        detail: e.to_string(),
    };
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), None).map_err(e)?;
    w.write(&batch).map_err(e)?;
    w.into_inner().map_err(e)
}
