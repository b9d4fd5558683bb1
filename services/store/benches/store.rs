//! Table-store figures, release build, printed (never asserted):
//! - the worker's path (state, outbox, commits of all three tables) over a stream of 1M
//!   dossiers and 4M versions: peak RSS with `history_days = 92` next to `history_days = 0`
//!   (each in its own process; aim within 1.2x), and bytes written per commit next to the
//!   dossiers that commit changed;
//! - recovery of a partition of 1M dossiers from the `state` table (aim ≤ 5 s);
//! - a 30-day window grouped by province × service over a contributions table of at least
//!   40M rows (aim ≤ 200 ms).
//!
//! `cargo bench -p dvc-pulse-store --bench store` (add `-- quick` for a smaller run).

use chrono::{Duration as Days, NaiveDate, TimeZone};
use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray};
use dvc_pulse_model::event::ict;
use dvc_pulse_model::reference::Level;
use dvc_pulse_model::{Channel, DossierEvent, Reference, Status};
use dvc_pulse_store::{CommitMeta, PartitionCommit, Store, StoreOptions};
use dvc_pulse_window::batch::CONTRIBUTIONS_SCHEMA;
use dvc_pulse_window::fact::day_number;
use dvc_pulse_window::outbox::{Committed, Outbox};
use dvc_pulse_window::{
    Counter, Dims, GroupKey, PartitionState, WindowQuery, content_hash, window_in,
};
use std::sync::Arc;
use std::time::Instant;

const PARTITIONS: i32 = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "quick");
    let scale = if quick { 10 } else { 1 };
    if let Some(i) = args.iter().position(|a| a == "--stream") {
        let days: u32 = args[i + 1].parse().unwrap();
        return stream(days, 1_000_000 / scale);
    }
    println!(
        "table store (release, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let peak = |days: u32| -> u64 {
        let out = std::process::Command::new(&args[0])
            .args(["--bench", "--stream", &days.to_string()])
            .args(quick.then_some("quick"))
            .output()
            .expect("the bench runs itself");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{text}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find_map(|l| l.strip_prefix("peak_rss_kb "))
            .and_then(|v| v.trim().parse().ok())
            .expect("peak printed")
    };
    let with = peak(92);
    let without = peak(0);
    println!(
        "peak RSS: history_days = 92 {:.0} MB, history_days = 0 {:.0} MB: {:.2}x (aim ≤ 1.2x)",
        with as f64 / 1024.0,
        without as f64 / 1024.0,
        with as f64 / without as f64
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(recovery(1_000_000 / scale as u64));
    rt.block_on(window_latency(40_000_000 / scale as usize));
}

fn dossier(i: u64, version: u32, base: NaiveDate) -> DossierEvent {
    let received = ict()
        .from_local_datetime(
            &(base + Days::days((i % 120) as i64))
                .and_hms_opt(8 + (i % 9) as u32, 0, 0)
                .unwrap(),
        )
        .unwrap();
    let finished = (version >= 3).then(|| received + Days::days(3));
    DossierEvent {
        dossier_id: format!("HS-{i:010}"),
        procedure_code: ["1.001193", "1.004222", "2.000908", "1.010123"][(i % 4) as usize].into(),
        procedure_name: None,
        event_id: None,
        source: None,
        locality_code: ["22738", "22741", "22744", "26734", "25630"][(i % 5) as usize].into(),
        agency: Some("UBND".into()),
        channel: if i % 3 == 0 {
            Channel::InPerson
        } else {
            Channel::Online
        },
        status: if finished.is_some() {
            Status::Processed
        } else {
            Status::Processing
        },
        received_at: Some(received.fixed_offset()),
        due_at: Some((received + Days::days(5)).fixed_offset()),
        finished_at: finished.map(|t| t.fixed_offset()),
        updated_at: (received + chrono::Duration::hours(version as i64)).fixed_offset(),
    }
}

async fn open(dir: &std::path::Path, history_days: u32) -> Store {
    Store::open(StoreOptions {
        query_memory: None,
        url: dir.display().to_string(),
        history_days,
        app_prefix: "bench/events".into(),
    })
    .await
    .unwrap()
}

fn rss_peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The worker's path without Kafka: `dossiers` dossiers, four versions each (in rounds),
/// through partition states and outboxes, committed every 200k versions.
fn stream(history_days: u32, dossiers: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(open(dir.path(), history_days));
    let base = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let today = day_number(base + Days::days(150));
    let mut parts: Vec<(PartitionState, Outbox, Committed)> =
        (0..PARTITIONS).map(|_| Default::default()).collect();
    let (mut versions, mut commits, mut bytes, mut changed) = (0u64, 0u32, 0u64, 0usize);
    let mut commit_lines = Vec::new();
    let started = Instant::now();
    for version in 0..4u32 {
        for i in 0..dossiers {
            let e = dossier(i, version, base);
            let p = (i % PARTITIONS as u64) as usize;
            let (s, out, c) = &mut parts[p];
            let off = s.next_offset;
            let bytes_e = e.to_canonical_json();
            let applied = s.apply_full(&e, content_hash(&bytes_e), today, 400);
            out.record(
                c,
                off,
                1_780_000_000_000 + versions as i64,
                &e.dossier_id,
                &applied,
            );
            s.next_offset = off + 1;
            versions += 1;
            if versions % 200_000 == 0 {
                let before = dir_size(dir.path());
                let (n, state_rows) = rt.block_on(commit(&store, &mut parts));
                let written = dir_size(dir.path()) - before;
                commits += 1;
                bytes += written;
                changed += state_rows;
                let _ = n;
                commit_lines.push((state_rows, written));
            }
        }
    }
    let elapsed = started.elapsed();
    let live: usize = parts.iter().map(|(s, _, _)| s.dossier_count()).sum();
    println!(
        "stream, history_days = {history_days}: {versions} versions of {live} dossiers in {:.1} s ({:.0} versions/s with commits), {commits} commits",
        elapsed.as_secs_f64(),
        versions as f64 / elapsed.as_secs_f64()
    );
    for (rows, written) in commit_lines.iter().step_by((commit_lines.len() / 4).max(1)) {
        println!(
            "  a commit changing {rows} dossiers wrote {:.1} MB ({:.0} bytes per changed dossier, all three tables)",
            *written as f64 / 1e6,
            *written as f64 / (*rows).max(1) as f64
        );
    }
    println!(
        "  on average {:.0} bytes written per changed dossier; store {:.0} MB for {live} dossiers",
        bytes as f64 / changed.max(1) as f64,
        dir_size(dir.path()) as f64 / 1e6
    );
    println!("peak_rss_kb {}", rss_peak_kb());
}

async fn commit(
    store: &Store,
    parts: &mut [(PartitionState, Outbox, Committed)],
) -> (usize, usize) {
    let mut commits = Vec::new();
    for (p, (s, out, c)) in parts.iter_mut().enumerate() {
        commits.push(PartitionCommit {
            clock_ms: 0,
            partition: p as i32,
            next_offset: s.next_offset,
            expected: *c,
            batches: out.take(s, p as i32).unwrap(),
        });
    }
    let rows: usize = commits.iter().map(|c| c.batches.state.num_rows()).sum();
    let meta = CommitMeta {
        partitions: PARTITIONS,
        ..Default::default()
    };
    let now = store.commit(&commits, meta).await.unwrap();
    for ((_, _, c), n) in parts.iter_mut().zip(now) {
        *c = n;
    }
    (commits.len(), rows)
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn recovery(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 92).await;
    let base = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let mut s = PartitionState::default();
    for i in 0..n {
        let e = dossier(i, 1, base);
        s.apply(
            &e,
            content_hash(e.dossier_id.as_bytes()),
            day_number(base) + 150,
            400,
        );
    }
    s.next_offset = n as i64;
    let part = PartitionCommit {
        clock_ms: 0,
        partition: 0,
        next_offset: n as i64,
        expected: Committed::default(),
        batches: dvc_pulse_window::outbox::Batches {
            changes: s.changes_batch(0, &[]).unwrap(),
            contributions: s.contributions_batch(&Default::default()),
            state: s.full_state_batch(0, n as i64).unwrap(),
        },
    };
    store.commit(&[part], CommitMeta::default()).await.unwrap();
    let started = Instant::now();
    let (back, _) = store.load_partition(0).await.unwrap();
    let load = started.elapsed();
    assert_eq!(back.dossier_count(), n as usize);
    println!(
        "recovery of a partition of {n} dossiers from the state table ({:.0} MB): {:.2} s (aim ≤ 5 s)",
        dir_size(&dir.path().join("state")) as f64 / 1e6,
        load.as_secs_f64()
    );
}

/// Synthetic contributions over every commune of the reference and the catalogue's
/// procedure codes, one row per (day, procedure, commune), written and compacted, then a
/// 30-day window grouped by province × service.
async fn window_latency(rows: usize) {
    let reference = Reference::embedded();
    let l = &reference.localities;
    let communes: Vec<String> = l
        .codes()
        .into_iter()
        .filter(|c| l.current.get(c).is_some_and(|u| u.level == Level::Commune))
        .map(str::to_string)
        .collect();
    let procedures: Vec<String> = reference
        .services
        .services()
        .iter()
        .flat_map(|s| s.procedure_codes.iter().cloned().chain([s.id.clone()]))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 92).await;
    let per_day = communes.len() * procedures.len();
    let days = rows.div_ceil(per_day);
    let last = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let first = last - Days::days(days as i64 - 1);
    let started = Instant::now();
    let mut written = 0usize;
    let mut batch_days = Vec::new();
    for d in 0..days {
        batch_days.push(first + Days::days(d as i64));
        if batch_days.len() == 4 || d + 1 == days {
            let b = synthetic(&batch_days, &communes, &procedures);
            written += b.num_rows();
            let part = PartitionCommit {
                clock_ms: 0,
                partition: 0,
                next_offset: written as i64,
                expected: Committed {
                    changes: written as i64,
                    contributions: (written - b.num_rows()) as i64,
                    state: written as i64,
                },
                batches: dvc_pulse_window::outbox::Batches {
                    changes: PartitionState::default().changes_batch(0, &[]).unwrap(),
                    contributions: b,
                    state: PartitionState::default().state_batch(0, &[]).unwrap(),
                },
            };
            store.commit(&[part], CommitMeta::default()).await.unwrap();
            batch_days.clear();
        }
    }
    store.maintain(day_number(last), 2).await.unwrap();
    println!(
        "window latency over {written} contribution rows ({days} days × {} communes × {} procedure codes), written and compacted in {:.0} s",
        communes.len(),
        procedures.len(),
        started.elapsed().as_secs_f64()
    );
    let dims = Dims::new(&reference);
    let q = WindowQuery::rolling(last, vec![GroupKey::Province, GroupKey::Service], None);
    let mut times = Vec::new();
    let mut groups = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let view = store.view(None, 1).await.unwrap();
        let t = window_in(&view.ctx, &dims, &q).await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        groups = t.rows.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  30-day window by province × service ({groups} rows): median {:.0} ms, best {:.0} ms (aim ≤ 200 ms)",
        times[2], times[0]
    );
}

fn synthetic(days: &[NaiveDate], communes: &[String], procedures: &[String]) -> RecordBatch {
    let n = days.len() * communes.len() * procedures.len();
    let mut day = Vec::with_capacity(n);
    let mut proc_ = Vec::with_capacity(n);
    let mut loc = Vec::with_capacity(n);
    let mut month = Vec::with_capacity(n);
    for d in days {
        let m = d.format("%Y-%m").to_string();
        for c in communes {
            for p in procedures {
                day.push(day_number(*d));
                proc_.push(p.as_str());
                loc.push(c.as_str());
                month.push(m.clone());
            }
        }
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(day)),
        Arc::new(StringArray::from(proc_)),
        Arc::new(StringArray::from(loc)),
        Arc::new(StringArray::from(vec![Some("UBND"); n])),
    ];
    for (k, _) in Counter::ALL.iter().enumerate() {
        cols.push(Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| ((i + k) % 3) as i64),
        )));
    }
    cols.push(Arc::new(StringArray::from(month)));
    RecordBatch::try_new(CONTRIBUTIONS_SCHEMA.clone(), cols).unwrap()
}
