//! Memory of the dossier state, measured: resident bytes per dossier (growth of the
//! process's RSS) for `DVC_PULSE_BENCH_DOSSIERS` dossiers (default 10M) in one partition,
//! against the 48-byte aim and against the previous layout (a `HashMap` of 16-byte keys
//! to 48-byte entries) filled with the same keys in the same run. Also: apply rate,
//! eviction of a year, and restore size.
//!
//! `cargo bench -p dvc-pulse-window --bench state`

use chrono::{Duration, NaiveDate, TimeZone};
use dvc_pulse_model::event::ict;
use dvc_pulse_model::{Channel, DossierEvent, Status};
use dvc_pulse_window::PartitionState;
use dvc_pulse_window::dossiers::DossierTable;
use dvc_pulse_window::fact::day_number;
use dvc_pulse_window::state::Entry;
use std::collections::HashMap;
use std::time::Instant;

/// Resident memory of this process (bytes), from /proc. The tables' large blocks are
/// mapped on their own by the allocator, so growth and release show here at once.
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Dossier `i`: one of 24 services x 300 communes x 3 agencies, received over a year,
/// two in three finished.
fn event(i: u64) -> DossierEvent {
    let day0 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let t0 = ict()
        .from_local_datetime(&day0.and_hms_opt(7, 0, 0).unwrap())
        .unwrap();
    let received = t0 + Duration::minutes((i % 525_600) as i64);
    let done = i % 3 != 0;
    DossierEvent {
        dossier_id: format!("000.00.{:02}.H{:02}-240101-{i:08}", i % 50, i % 63),
        procedure_code: format!("1.00{:04}", i % 24),
        procedure_name: None,
        locality_code: format!("{:05}", 22_000 + (i / 7) % 300),
        agency: Some(["UBND xã", "Công an xã", "Bộ phận một cửa"][(i % 3) as usize].into()),
        channel: Channel::ALL[(i % 3) as usize],
        status: if done {
            Status::Processed
        } else {
            Status::Processing
        },
        received_at: Some(received),
        due_at: Some(received + Duration::days(10)),
        finished_at: done.then(|| received + Duration::days((i % 14) as i64)),
        updated_at: received + Duration::days(14),
        event_id: None,
        source: None,
    }
}

fn main() {
    let n: u64 = std::env::var("DVC_PULSE_BENCH_DOSSIERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let today = day_number(NaiveDate::from_ymd_opt(2025, 1, 20).unwrap());
    println!("dossier state, {n} dossiers in one partition (release, RSS growth)");

    let before = rss();
    let started = Instant::now();
    let mut s = PartitionState::default();
    for i in 0..n {
        s.apply(&event(i), i & 0xffff_ffff, today, 400);
    }
    let secs = started.elapsed().as_secs_f64();
    let grown = (rss() - before) as f64;
    println!(
        "  state: {:.0} versions/s applied; RSS +{:.0} MB, {:.1} B a dossier with its {} daily buckets",
        n as f64 / secs,
        grown / 1e6,
        grown / n as f64,
        s.bucket_count()
    );
    let entries: Vec<([u64; 2], Entry)> = s.entries().collect();
    let started = Instant::now();
    let gone = s.evict(today + 365, 31);
    println!(
        "  eviction a year on: {} of {n} dossiers in {:.2} s; {} still open are held",
        gone.len(),
        started.elapsed().as_secs_f64(),
        s.dossier_count()
    );
    drop(s);

    // The dossier table alone, and the previous layout with the same entries.
    let before = rss();
    let mut table = DossierTable::default();
    for (k, e) in &entries {
        table.insert(k, e, e.procedure);
    }
    let packed = (rss() - before) as f64 / n as f64;
    assert_eq!(table.len() as u64, n);
    drop(table);
    let before = rss();
    let mut old: HashMap<[u64; 2], Entry> = HashMap::new();
    for (k, e) in &entries {
        old.insert(*k, *e);
    }
    let previous = (rss() - before) as f64 / n as f64;
    assert_eq!(old.len() as u64, n);
    println!(
        "  dossier table: {packed:.1} B a dossier: {:.2}x the 48 B aim; previous layout (HashMap of 16 B keys to {} B entries) {previous:.1} B: now {:.2}x of it",
        packed / 48.0,
        size_of::<Entry>(),
        packed / previous
    );
}
