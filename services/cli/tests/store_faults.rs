//! `dvc-pulse worker` processes against the table store's failure modes:
//! - a zombie: frozen (SIGSTOP) past its session while another worker takes its partitions
//!   and commits, then resumed (SIGCONT): it commits nothing and exits non-zero;
//! - an unwritable store mid-stream: `/readyz` turns 503 and the process exits non-zero;
//!   restarted on the store made writable again, the windows are exact;
//! - ten graceful restarts (SIGTERM: last commit, exit 0), then a vacuum: the store holds
//!   no more data files than 1.2× what one restart left, and the windows stay exact.

use chrono::{Duration as Days, Utc};
use dvc_pulse_devkit::fixture::{Fixture, canonical_stream, counts_only, oracle, produce};
use dvc_pulse_model::event::ict;
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::Value;
use std::path::Path;
mod common;

use common::{SESSION_6S, get, spawn_worker, tail, wait_exit};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn spawn(f: &Fixture, store: &Path, log: &Path) -> (Child, u16) {
    spawn_worker(
        f,
        store,
        log,
        SESSION_6S,
        &[("DVC_PULSE__WORKER__COMMIT_INTERVAL", "300ms")],
    )
}

fn query(today: chrono::NaiveDate) -> WindowQuery {
    WindowQuery {
        from: today - Days::days(44),
        to: today,
        group_by: vec![GroupKey::Service],
        locality: None,
    }
}

fn window_url(port: u16, q: &WindowQuery) -> String {
    format!(
        "http://127.0.0.1:{port}/v1/windows?from={}&to={}&group_by=service",
        q.from, q.to
    )
}

/// Polls the worker on `port` until its window equals `expected` (or the deadline).
fn wait_exact(port: u16, q: &WindowQuery, expected: &Value, secs: u64) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        last = get(&window_url(port, q)).map(|(_, v)| counts_only(&v));
        if last.as_ref() == Some(expected) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    last
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig}");
}

fn messages(seed: u64) -> Vec<(String, Vec<u8>)> {
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let sim = dvc_pulse_devkit::SimConfig {
        seed,
        start: today - Days::days(40),
        days: 35,
        localities: vec!["58".into()],
        scale: 0.6,
        ..Default::default()
    };
    let mut m = canonical_stream(&sim, Utc::now());
    m.truncate(30_000);
    m
}

#[test]
fn a_zombie_worker_is_fenced_and_exits_non_zero() {
    let f = Fixture::new(6);
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let all = messages(21);
    let (first, second) = all.split_at(all.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = (dir.path().join("store"), dir.path().join("workers.log"));
    produce(
        &f.config.kafka.bootstrap_servers,
        &f.config.topics.events,
        first,
    );
    let (mut a, pa) = spawn(&f, &store, &log);
    let q = query(today);
    let expected_first = counts_only(&serde_json::to_value(oracle(first, &q)).unwrap());
    assert_eq!(
        wait_exact(pa, &q, &expected_first, 120).as_ref(),
        Some(&expected_first),
        "{}",
        tail(&log)
    );
    // Freeze A past its session; B takes every partition and commits the rest.
    signal(&a, "STOP");
    let (mut b, pb) = spawn(&f, &store, &log);
    produce(
        &f.config.kafka.bootstrap_servers,
        &f.config.topics.events,
        second,
    );
    let expected = counts_only(&serde_json::to_value(oracle(&all, &q)).unwrap());
    let got = wait_exact(pb, &q, &expected, 120);
    assert_eq!(got.as_ref(), Some(&expected), "B caught up alone");
    // A wakes up: it must find itself fenced, write nothing and exit non-zero.
    signal(&a, "CONT");
    let status = wait_exit(&mut a, 60);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "A exits non-zero: {status:?}\n{}",
        tail(&log)
    );
    assert!(text.contains("fenced"), "A says why:\n{}", tail(&log));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        wait_exact(pb, &q, &expected, 10).as_ref(),
        Some(&expected),
        "windows stay exact"
    );
    b.kill().unwrap();
    b.wait().unwrap();
}

#[test]
fn an_unwritable_store_fails_fast_and_recovers_exactly() {
    let f = Fixture::new(4);
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let all = messages(33);
    let (first, second) = all.split_at(all.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = (dir.path().join("store"), dir.path().join("worker.log"));
    produce(
        &f.config.kafka.bootstrap_servers,
        &f.config.topics.events,
        first,
    );
    let (mut w, port) = spawn(&f, &store, &log);
    let q = query(today);
    let expected_first = counts_only(&serde_json::to_value(oracle(first, &q)).unwrap());
    assert_eq!(
        wait_exact(port, &q, &expected_first, 120).as_ref(),
        Some(&expected_first),
        "{}",
        tail(&log)
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/readyz")).map(|r| r.0),
        Some(200)
    );
    // The store goes away (a file where its directory was: every write fails, root or not).
    let aside = dir.path().join("store.aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    produce(
        &f.config.kafka.bootstrap_servers,
        &f.config.topics.events,
        second,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_503 = false;
    while Instant::now() < deadline {
        match get(&format!("http://127.0.0.1:{port}/readyz")) {
            Some((503, _)) => saw_503 = true,
            None if w.try_wait().unwrap().is_some() => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = wait_exit(&mut w, 30);
    assert!(
        status.is_some_and(|s| !s.success()),
        "exits non-zero: {status:?}\n{}",
        tail(&log)
    );
    assert!(saw_503 || status.is_some(), "not ready, then gone");
    // Writable again: a restarted worker gets every window exact.
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    let (mut w, port) = spawn(&f, &store, &log);
    let expected = counts_only(&serde_json::to_value(oracle(&all, &q)).unwrap());
    let got = wait_exact(port, &q, &expected, 120);
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(got.as_ref(), Some(&expected), "{}", tail(&log));
}

/// Data files of the store (Parquet outside the Delta logs).
fn data_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        if p.ends_with("_delta_log") {
                            0
                        } else {
                            data_files(&p)
                        }
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "parquet"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn ten_restarts_and_a_vacuum_leave_no_files_behind() {
    let f = Fixture::new(4);
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let all = messages(45);
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = (dir.path().join("store"), dir.path().join("worker.log"));
    let q = query(today);
    let chunk = all.len().div_ceil(10);
    let mut after_one = 0;
    for i in 0..10 {
        let upto = ((i + 1) * chunk).min(all.len());
        produce(
            &f.config.kafka.bootstrap_servers,
            &f.config.topics.events,
            &all[i * chunk..upto],
        );
        let (mut w, port) = spawn(&f, &store, &log);
        let expected = counts_only(&serde_json::to_value(oracle(&all[..upto], &q)).unwrap());
        let got = wait_exact(port, &q, &expected, 120);
        signal(&w, "TERM");
        let status = wait_exit(&mut w, 60);
        assert_eq!(got.as_ref(), Some(&expected), "restart {i}: {}", tail(&log));
        assert!(
            status.is_some_and(|s| s.success()),
            "SIGTERM exits 0: {status:?}\n{}",
            tail(&log)
        );
        if i == 0 {
            after_one = data_files(&store);
        }
    }
    let before = data_files(&store);
    let c = &f.config;
    let out = Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
        .arg("maintain")
        .env("DVC_PULSE__TOPICS__EVENTS", &c.topics.events)
        .env("DVC_PULSE__WORKER__GROUP_ID", &c.worker.group_id)
        .env("DVC_PULSE__WORKER__STORE_URL", &store)
        .env("DVC_PULSE__WORKER__HISTORY_DAYS", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_ten = data_files(&store);
    assert!(
        after_ten as f64 <= 1.2 * after_one as f64,
        "{after_ten} data files after ten restarts and a vacuum (from {before}), {after_one} after one; {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Nothing the windows need went with them.
    let (mut w, port) = spawn(&f, &store, &log);
    let expected = counts_only(&serde_json::to_value(oracle(&all, &q)).unwrap());
    let got = wait_exact(port, &q, &expected, 120);
    w.kill().unwrap();
    w.wait().unwrap();
    assert_eq!(got.as_ref(), Some(&expected), "{}", tail(&log));
}
