//! Dimension tables the window SQL joins: places (every locality code with its commune,
//! district and provinces in both unit sets), ancestry (what a locality filter selects)
//! and services (procedure code or service id → catalogue service).

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use dvc_pulse_model::Reference;
use dvc_pulse_model::reference::{Level, Programme, Unit};
use std::sync::Arc;

/// The three dimension batches, built once from the reference data.
#[derive(Debug, Clone)]
pub struct Dims {
    /// `places`: one row per locality code (codes deduplicated).
    pub places: RecordBatch,
    /// `ancestry`: (code, ancestor) pairs; a filter on `ancestor` selects `code`.
    pub ancestry: RecordBatch,
    /// `services`: one row per procedure code or id of the catalogue (the catalogue
    /// refuses a code twice).
    pub services: RecordBatch,
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn col(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

impl Dims {
    /// Every locality code a filter on `code` selects (itself and every unit under it).
    pub fn under(&self, code: &str) -> std::collections::HashSet<String> {
        use datafusion::arrow::array::AsArray;
        let codes = self.ancestry.column(0).as_string::<i32>();
        let ancestors = self.ancestry.column(1).as_string::<i32>();
        (0..self.ancestry.num_rows())
            .filter(|&i| ancestors.value(i) == code)
            .map(|i| codes.value(i).to_string())
            .collect()
    }

    /// Builds the dimension batches.
    pub fn new(reference: &Reference) -> Self {
        let l = &reference.localities;
        let codes = l.codes();
        // Builders appended from the reference's own strings: nothing is copied per cell.
        let mut cols: Vec<StringBuilder> = (0..11).map(|_| StringBuilder::new()).collect();
        let (mut anc_code, mut anc_of) = (StringBuilder::new(), StringBuilder::new());
        for c in &codes {
            // A code of both sets is read as a current unit first: that is what portals send now.
            let own = l.current.get(c).or_else(|| l.legacy.get(c));
            let legacy = l.legacy.lineage(c);
            let at = |lv: Level| legacy.iter().copied().find(|u| u.level == lv);
            let commune = own.filter(|u| u.level == Level::Commune);
            let province = l.current_province(c);
            let row = [
                Some(*c),
                name(own),
                code(commune),
                name(commune),
                code(at(Level::District)),
                name(at(Level::District)),
                code(province),
                name(province),
                code(at(Level::Province)),
                name(at(Level::Province)),
                own.map(|u| level_name(u.level)),
            ];
            for (b, x) in cols.iter_mut().zip(row) {
                b.append_option(x);
            }
            for a in l.ancestors(c) {
                anc_code.append_value(c);
                anc_of.append_value(a);
            }
        }
        let names = [
            "place_code",
            "locality_name",
            "commune_code",
            "commune_name",
            "district_code",
            "district_name",
            "province_code",
            "province_name",
            "province_legacy_code",
            "province_legacy_name",
            "locality_level",
        ];
        let schema = Schema::new(names.iter().map(|n| utf8(n)).collect::<Vec<_>>());
        let cols = cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let places = RecordBatch::try_new(Arc::new(schema), cols).expect("places columns match");
        let ancestry = RecordBatch::try_new(
            Arc::new(Schema::new(vec![utf8("anc_code"), utf8("ancestor")])),
            vec![Arc::new(anc_code.finish()), Arc::new(anc_of.finish())],
        )
        .expect("ancestry columns match");
        Dims {
            places,
            ancestry,
            services: services_batch(reference),
        }
    }
}

fn name(u: Option<&Unit>) -> Option<&str> {
    u.map(|u| u.name.as_str())
}

fn code(u: Option<&Unit>) -> Option<&str> {
    u.map(|u| u.code.as_str())
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Province => "province",
        Level::District => "district",
        Level::Commune => "commune",
    }
}

fn services_batch(reference: &Reference) -> RecordBatch {
    let mut rows: Vec<(String, usize)> = Vec::new();
    let services = reference.services.services();
    for (i, s) in services.iter().enumerate() {
        for c in s.procedure_codes.iter().chain(std::iter::once(&s.id)) {
            rows.push((c.clone(), i));
        }
    }
    let pick = |f: &dyn Fn(usize) -> String| col(rows.iter().map(|(_, i)| Some(f(*i))).collect());
    let schema = Schema::new(vec![
        utf8("svc_code"),
        utf8("catalogue_id"),
        utf8("catalogue_name"),
        utf8("catalogue_short_name"),
        utf8("programme"),
        utf8("service_agency"),
        Field::new("connected_dvcqg", DataType::Boolean, true),
        Field::new("service_order", DataType::Int32, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        col(rows.iter().map(|(c, _)| Some(c.clone())).collect()),
        pick(&|i| services[i].id.clone()),
        pick(&|i| services[i].name_vi.clone()),
        pick(&|i| services[i].short_name_vi.clone()),
        pick(&|i| match services[i].programme {
            Programme::Da06 => "DA06".into(),
            Programme::Qd422 => "QD422".into(),
        }),
        pick(&|i| services[i].agency.clone()),
        Arc::new(BooleanArray::from(
            rows.iter()
                .map(|(_, i)| Some(services[*i].connected_dvcqg))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter()
                .map(|(_, i)| Some(*i as i32))
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("services columns match")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    /// The window SQL leaves out a join no grouping key reads: that changes no count
    /// only while every code has one row.
    #[test]
    fn every_code_has_one_row() {
        let dims = Dims::new(&Reference::embedded());
        for (table, batch) in [("places", &dims.places), ("services", &dims.services)] {
            let codes = batch.column(0).as_string::<i32>();
            let distinct: std::collections::HashSet<_> = codes.iter().collect();
            assert!(batch.num_rows() > 30, "{table} has rows");
            assert_eq!(distinct.len(), batch.num_rows(), "{table}: a code twice");
        }
    }
}
