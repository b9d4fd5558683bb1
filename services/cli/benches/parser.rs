//! Parser throughput, MB/s on one core, printed (never asserted), each next to its
//! ceiling: `serde_json`'s plain typed parse of the same bytes into a struct of the same
//! fields, with no validation. Three inputs from the simulator:
//! - canonical events, as the worker reads them from the topic;
//! - portal records in the canonical shape (mixed date formats, NFD names);
//! - DVCQG sync records (numbers for codes and dates, personal data to skip).
//!
//! `cargo bench -p dvc-pulse --bench parser`

use chrono::{Duration as Days, Utc};
use dvc_pulse_model::event::ict;
use dvc_pulse_model::{Reference, Validator};
use serde::Deserialize;
use serde_json::Value;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const PASSES: usize = 5;

/// The contract's fields, typed as plainly as serde_json allows.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Canonical {
    dossier_id: String,
    procedure_code: String,
    procedure_name: Option<String>,
    locality_code: String,
    agency: Option<String>,
    channel: String,
    status: String,
    received_at: Option<String>,
    due_at: Option<String>,
    finished_at: Option<String>,
    updated_at: String,
    event_id: Option<String>,
    source: Option<String>,
}

/// The DVCQG fields the adapter maps; codes and dates come as text or numbers.
#[derive(Deserialize)]
#[allow(non_snake_case, dead_code)]
struct Dvcqg {
    MaHoSo: Value,
    MaTTHC: Value,
    TenTTHC: Option<String>,
    KenhThucHien: Option<Value>,
    NgayTiepNhan: Option<Value>,
    NgayHenTra: Option<Value>,
    NgayKetThucXuLy: Option<Value>,
    TrangThaiHoSo: Value,
    DonViXuLy: Option<String>,
    MaDiaBan: Option<String>,
    NgayCapNhat: Option<Value>,
}

fn main() {
    let now = Utc::now();
    let today = now.with_timezone(&ict()).date_naive();
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 11,
        start: today - Days::days(60),
        days: 50,
        localities: vec!["58".into()],
        scale: 1.5,
        malformed_rate: 0.0,
        ..Default::default()
    };
    let reference = Reference::embedded();
    let deliveries: Vec<Vec<u8>> = dvc_pulse_devkit::simulate(&sim, &reference)
        .deliveries
        .into_iter()
        .map(|d| d.bytes)
        .collect();
    let (dvcqg, portal): (Vec<_>, Vec<_>) = deliveries
        .into_iter()
        .partition(|b| b.windows(8).any(|w| w == b"\"MaHoSo\""));
    let events = dvc_pulse_devkit::fixture::canonical_stream(&sim, now)
        .into_iter()
        .map(|(_, b)| b)
        .collect::<Vec<_>>();
    let v = Validator::new(Arc::new(reference), Default::default());
    println!("parser, MB/s on one core, best of {PASSES} passes (ceiling: serde_json typed parse)");
    row("canonical events", &events, &v, now, |b| {
        serde_json::from_slice::<Canonical>(b).is_ok()
    });
    row("portal records (canonical shape)", &portal, &v, now, |b| {
        serde_json::from_slice::<Canonical>(b).is_ok()
    });
    row("DVCQG records", &dvcqg, &v, now, |b| {
        serde_json::from_slice::<Dvcqg>(b).is_ok()
    });
}

fn row(
    name: &str,
    records: &[Vec<u8>],
    v: &Validator,
    now: chrono::DateTime<Utc>,
    ceiling: impl Fn(&[u8]) -> bool,
) {
    let bytes: usize = records.iter().map(Vec::len).sum();
    let accepted = records
        .iter()
        .filter(|r| v.parse_record(r, now).is_ok())
        .count();
    let typed = records.iter().filter(|r| ceiling(r)).count();
    let ours = best(|| {
        for r in records {
            black_box(v.parse_record(black_box(r), now).is_ok());
        }
    });
    let theirs = best(|| {
        for r in records {
            black_box(ceiling(black_box(r)));
        }
    });
    let mbs = |secs: f64| bytes as f64 / 1e6 / secs;
    println!(
        "  {name}: {} records, {:.1} MB ({accepted} accepted; {typed} read by the ceiling)\n    \
         dvc-pulse {:.0} MB/s, serde_json typed {:.0} MB/s: {:.0}% of the ceiling",
        records.len(),
        bytes as f64 / 1e6,
        mbs(ours),
        mbs(theirs),
        100.0 * theirs / ours,
    );
}

fn best(mut pass: impl FnMut()) -> f64 {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
