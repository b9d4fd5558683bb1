//! `dvc-pulse worker` processes SIGKILLed at random moments while consuming 200k messages:
//! after recovery, the windows equal the batch computation over the same messages.

use chrono::{Duration as Days, Utc};
use dvc_pulse_devkit::fixture::{Fixture, canonical_stream, counts_only, oracle, produce};
use dvc_pulse_model::event::ict;
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::Value;
mod common;

use common::{FAST_GROUP, free_port, get, spawn_worker};
use std::process::Child;
use std::time::{Duration, Instant};

fn spawn(f: &Fixture, port: u16, store: &std::path::Path, log: &std::path::Path) -> Child {
    // Dead members must leave the group quickly, or a restarted worker waits for them: a
    // member killed mid-rebalance is only dropped after the rebalance timeout, which is
    // max.poll.interval.ms (5 minutes by default).
    spawn_worker(
        f,
        port,
        store,
        log,
        FAST_GROUP,
        &[
            ("DVC_PULSE__WORKER__COMMIT_INTERVAL", "250ms"),
            ("DVC_PULSE__WORKER__COMMIT_EVERY_EVENTS", "7919"),
        ],
    )
}

/// Deterministic pauses between 1 s and 4 s (xorshift; no clock, no entropy).
fn pauses(mut x: u64) -> impl Iterator<Item = Duration> {
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(1000 + x % 3000)
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
    let port = free_port();
    let chunks: Vec<_> = messages.chunks(20_000).collect();
    let mut kills = 0;
    for (chunk, pause) in chunks.iter().zip(pauses(0x5eed)) {
        produce(
            &f.config.kafka.bootstrap_servers,
            &f.config.topics.events,
            chunk,
        );
        let mut child = spawn(&f, port, &ckpt, &log);
        std::thread::sleep(pause);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    assert_eq!(kills, 10);
    // Recovery: a last worker catches up from the store.
    let mut child = spawn(&f, port, &ckpt, &log);
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
    let mut last = Vec::new();
    while Instant::now() < deadline {
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
    child.kill().unwrap();
    child.wait().unwrap();
    for (i, (a, b)) in last.iter().zip(&expected).enumerate() {
        if a.as_ref() != Some(b) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<_> = tail.lines().rev().take(20).collect();
            panic!(
                "query {i} after recovery differs\nworker: {a:?}\nexpected: {b}\nlog tail: {tail:#?}"
            );
        }
    }
    assert!(expected[0]["totals"]["total"].as_i64().unwrap() > 50_000);
    assert!(health.is_some());
    // Progress survived the kills: the store holds every partition up to its end, in all
    // three tables.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt
        .block_on(dvc_pulse_store::Store::open(
            dvc_pulse_store::StoreOptions {
                query_memory: None,
                url: ckpt.display().to_string(),
                history_days: 92,
                app_prefix: format!("{}/{}", f.config.worker.group_id, f.config.topics.events),
            },
        ))
        .unwrap();
    let mut total = 0;
    for p in 0..24 {
        let c = rt.block_on(store.committed(p)).unwrap();
        assert!(c.state > 0, "partition {p}: {c:?}");
        assert_eq!(c.changes, c.contributions, "partition {p}: {c:?}");
        total += c.contributions;
    }
    assert!(total >= 200_000, "{total} offsets committed");
}
