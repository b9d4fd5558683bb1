//! `dvc-pulse worker` processes SIGKILLed at random moments while consuming 200k messages
//! (each one some time after the group assigned it the partitions: while it loads them,
//! consumes or commits): after recovery, the windows equal the batch computation over the
//! same messages.

use chrono::{Duration as Days, Utc};
use dvc_pulse_devkit::fixture::{Fixture, canonical_stream, counts_only, oracle, produce};
use dvc_pulse_model::event::ict;
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::Value;
mod common;

use common::{FAST_GROUP, get, lines_with, spawn_worker};
use std::process::Child;
use std::time::{Duration, Instant};

fn spawn(f: &Fixture, store: &std::path::Path, log: &std::path::Path) -> (Child, u16) {
    // Dead members must leave the group quickly, or a restarted worker waits for them: a
    // member killed mid-rebalance is only dropped after the rebalance timeout, which is
    // max.poll.interval.ms (5 minutes by default). The session is as short as the embedded
    // broker allows (see FAST_GROUP).
    spawn_worker(
        f,
        store,
        log,
        FAST_GROUP,
        &[
            ("DVC_PULSE__WORKER__COMMIT_INTERVAL", "250ms"),
            ("DVC_PULSE__WORKER__COMMIT_EVERY_EVENTS", "7919"),
        ],
    )
}

/// The log's last lines, but for the partition loads (24 a start).
fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<_> = text
        .lines()
        .filter(|l| !l.contains("partition loaded"))
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// How many times the group assigned partitions to a worker of the log.
fn assignments(log: &std::path::Path) -> usize {
    lines_with(log, "consumer: assigned").len()
}

/// Waits until the group assigns the worker its partitions (an assignment after the
/// first `seen`).
fn wait_assigned(child: &mut Child, log: &std::path::Path, seen: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while assignments(log) <= seen {
        let exited = child.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "no assignment in 90 s (exited: {exited:?}):\n{}",
            log_tail(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic pauses between 0.2 s and 3.2 s (xorshift; no clock, no entropy).
fn pauses(mut x: u64) -> impl Iterator<Item = Duration> {
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(200 + x % 3000)
    })
}

#[test]
fn sigkilled_worker_recovers_exact_windows() {
    // The mock cluster keeps about 5 MB per partition: 24 partitions hold 200k messages.
    let f = Fixture::new(24);
    let today = Utc::now().with_timezone(&ict()).date_naive();
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 11,
        start: today - Days::days(45),
        days: 40,
        localities: vec!["58".into()],
        scale: 2.2,
        ..Default::default()
    };
    let mut messages = canonical_stream(&sim, Utc::now());
    messages.truncate(200_000);
    assert_eq!(
        messages.len(),
        200_000,
        "the simulation yields enough messages"
    );
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, log) = (dir.path().join("ckpt"), dir.path().join("worker.log"));
    let chunks: Vec<_> = messages.chunks(20_000).collect();
    let mut kills = 0;
    for (chunk, pause) in chunks.iter().zip(pauses(0x5eed)) {
        produce(
            &f.config.kafka.bootstrap_servers,
            &f.config.topics.events,
            chunk,
        );
        let seen = assignments(&log);
        let (mut child, _) = spawn(&f, &ckpt, &log);
        wait_assigned(&mut child, &log, seen);
        std::thread::sleep(pause);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    assert_eq!(kills, 10);
    // The killed workers committed part of the stream: recovery resumes from the store.
    let before: i64 = committed(&f, &ckpt).iter().map(|c| c.contributions).sum();
    assert!(before > 0, "the killed workers committed nothing");
    // Recovery: a last worker catches up from the store.
    let (mut child, port) = spawn(&f, &ckpt, &log);
    let queries = [
        WindowQuery {
            from: today - Days::days(44),
            to: today,
            group_by: vec![GroupKey::Service],
            locality: None,
        },
        WindowQuery::rolling(
            today - Days::days(10),
            vec![GroupKey::District, GroupKey::Procedure],
            Some("58".into()),
        ),
        WindowQuery::rolling(
            today - Days::days(30),
            vec![GroupKey::Commune],
            Some("582".into()),
        ),
    ];
    let expected: Vec<Value> = queries
        .iter()
        .map(|q| counts_only(&serde_json::to_value(oracle(&messages, q)).unwrap()))
        .collect();
    let url = |q: &WindowQuery| {
        let g: Vec<_> = q.group_by.iter().map(|k| k.name()).collect();
        format!(
            "http://127.0.0.1:{port}/v1/windows?from={}&to={}&group_by={}&locality={}",
            q.from,
            q.to,
            g.join(","),
            q.locality.clone().unwrap_or_default()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = vec![None; queries.len()];
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        last = queries
            .iter()
            .map(|q| get(&url(q)).map(|(_, v)| counts_only(&v)))
            .collect::<Vec<_>>();
        if last
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.as_ref() == Some(b))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let health = get(&format!("http://127.0.0.1:{port}/healthz"));
    let exited = child.try_wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let differ: Vec<String> = last
        .iter()
        .zip(&expected)
        .enumerate()
        .filter(|(_, (a, b))| a.as_ref() != Some(b))
        .map(|(i, (a, b))| {
            let got = a.as_ref().map(|v| &v["totals"]);
            format!("query {i}: worker totals {got:?}, expected {}", b["totals"])
        })
        .collect();
    // The summary comes first: a CI log keeps the start of a long message.
    assert!(
        differ.is_empty(),
        "after recovery (worker exited: {exited:?}):\n{}\nworker log:\n{}\nanswers: {last:?}",
        differ.join("\n"),
        log_tail(&log)
    );
    assert!(expected[0]["totals"]["total"].as_i64().unwrap() > 50_000);
    assert!(health.is_some());
    // Progress survived the kills: the store holds every partition up to its end, in all
    // three tables.
    let mut total = 0;
    for (p, c) in committed(&f, &ckpt).into_iter().enumerate() {
        assert!(c.state > 0, "partition {p}: {c:?}");
        assert_eq!(c.changes, c.contributions, "partition {p}: {c:?}");
        total += c.contributions;
    }
    assert!(total >= 200_000, "{total} offsets committed");
}

/// What the store holds for each of the 24 partitions.
fn committed(f: &Fixture, store: &std::path::Path) -> Vec<dvc_pulse_window::outbox::Committed> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(dvc_pulse_store::Store::open(
            dvc_pulse_store::StoreOptions {
                query_memory: None,
                url: store.display().to_string(),
                history_days: 92,
                app_prefix: format!("{}/{}", f.config.worker.group_id, f.config.topics.events),
            },
        ))
        .unwrap();
    rt.block_on(store.committed_all(&(0..24).collect::<Vec<_>>()))
        .unwrap()
}
