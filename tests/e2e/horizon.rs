//! The worker's day comes from the messages: a replay a year later gives the same
//! windows, and a store built from one partition count refuses a topic with another.

use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use dvc_pulse_app::node::RunningWorker;
use dvc_pulse_devkit::EmbeddedBroker;
use dvc_pulse_devkit::fixture::{
    Fixture, canonical_stream, counts_only, oracle, produce, produce_at,
};
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits until the store holds `n` messages of the events topic (every partition's
/// `state` and `contributions` offsets summed), or fails after a minute.
async fn caught_up(w: &RunningWorker, partitions: i32, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (mut state, mut contributions) = (0, 0);
        for p in 0..partitions {
            let c = w.worker.store.committed(p).await.unwrap();
            (state, contributions) = (state + c.state, contributions + c.contributions);
        }
        if state == n && contributions == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "store holds {state}/{contributions} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn url(q: &WindowQuery) -> String {
    let g: Vec<_> = q.group_by.iter().map(|k| k.name()).collect();
    format!(
        "from={}&to={}&group_by={}&locality={}",
        q.from,
        q.to,
        g.join(","),
        q.locality.clone().unwrap_or_default()
    )
}

async fn window(w: &RunningWorker, q: &WindowQuery) -> Value {
    reqwest::get(format!("http://{}/v1/windows?{}", w.addr, url(q)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn queries(first: NaiveDate, last: NaiveDate) -> Vec<WindowQuery> {
    let mut out = Vec::new();
    let mut end = first + Days::days(5);
    while end <= last + Days::days(10) {
        for group_by in [
            vec![GroupKey::Service],
            vec![GroupKey::Commune, GroupKey::Procedure],
        ] {
            out.push(WindowQuery::rolling(end, group_by, None));
        }
        end += Days::days(7);
    }
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn metrics(w: &RunningWorker) -> String {
    reqwest::get(format!("http://{}/metrics", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_a_year_later_gives_identical_windows() {
    let start = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 11,
        start,
        days: 70,
        ..Default::default()
    };
    let read_at: DateTime<Utc> = "2024-05-12T03:00:00Z".parse().unwrap();
    let messages = canonical_stream(&sim, read_at);
    // Each message reaches Kafka an hour after its update: the partitions' clocks run
    // through the seventy days, evicting dossiers settled more than 31 days before.
    let stamp = |bytes: &[u8]| {
        let e: dvc_pulse_model::DossierEvent = serde_json::from_slice(bytes).unwrap();
        Some(e.updated_at.timestamp_millis() + 3_600_000)
    };
    let mut digests = Vec::new();
    let mut counters = Vec::new();
    // The mock cluster keeps about 5 MB a partition: twelve hold the 70 days.
    let partitions = 12;
    for wall in [read_at, read_at + Days::days(365)] {
        let mut f = Fixture::new(partitions);
        f.config.worker.horizon_days = 31;
        let (b, t) = (
            f.config.kafka.bootstrap_servers.clone(),
            f.config.topics.events.clone(),
        );
        let sent = messages.clone();
        tokio::task::spawn_blocking(move || produce_at(&b, &t, &sent, stamp))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let w = f
            .worker(&dir.path().join("store"), Some(Arc::new(move || wall)))
            .await;
        caught_up(&w, partitions, messages.len() as i64).await;
        let mut ds = Vec::new();
        for q in queries(start, start + Days::days(70)) {
            let v = window(&w, &q).await;
            ds.push((
                q.to,
                v["digest"].as_str().unwrap().to_string(),
                v["totals"]["total"].clone(),
            ));
        }
        digests.push(ds);
        let m = metrics(&w).await;
        assert_eq!(
            metric(&m, "dvc_pulse_worker_offset_gaps_total"),
            0.0,
            "Kafka kept every message"
        );
        counters.push(
            [
                "dvc_pulse_worker_evicted_dossiers_total",
                "dvc_pulse_worker_beyond_horizon_versions_total",
                "dvc_pulse_worker_applied_versions_total",
            ]
            .map(|n| metric(&m, n)),
        );
        w.stop().await.unwrap();
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(counters[0], counters[1]);
    assert!(
        counters[0][0] > 100.0,
        "dossiers were evicted: {:?}",
        counters[0]
    );
    assert!(
        digests[0]
            .iter()
            .filter(|(_, _, t)| t.as_i64() > Some(0))
            .count()
            > 10,
        "the windows have dossiers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_six_partitions_refuses_a_topic_of_eight() {
    let f = Fixture::new(6);
    let today = Utc::now()
        .with_timezone(&dvc_pulse_model::event::ict())
        .date_naive();
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 3,
        start: today - Days::days(20),
        days: 15,
        ..Default::default()
    };
    let messages = canonical_stream(&sim, Utc::now());
    let (b, t) = (
        f.config.kafka.bootstrap_servers.clone(),
        f.config.topics.events.clone(),
    );
    let sent = messages.clone();
    tokio::task::spawn_blocking(move || produce(&b, &t, &sent))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let a = f.worker(&store, None).await;
    caught_up(&a, 6, messages.len() as i64).await;
    let q = WindowQuery {
        from: today - Days::days(25),
        to: today,
        group_by: vec![GroupKey::Service],
        locality: None,
    };
    let before = window(&a, &q).await;
    a.stop().await.unwrap();
    let expected = counts_only(&serde_json::to_value(oracle(&messages, &q)).unwrap());
    assert_eq!(counts_only(&before), expected);

    // The same topic with eight partitions (the mock cluster cannot add partitions to a
    // topic, so a second one stands in), where producers now key the same dossiers to
    // other partitions.
    let grown = EmbeddedBroker::start(&[
        (&f.config.topics.events, 8),
        (&f.config.topics.dead_letter, 1),
    ])
    .unwrap();
    let mut cfg = f.config.clone();
    cfg.kafka.bootstrap_servers = grown.bootstrap_servers().to_string();
    cfg.worker.store_url = store.display().to_string();
    let (b, t) = (
        cfg.kafka.bootstrap_servers.clone(),
        cfg.topics.events.clone(),
    );
    tokio::task::spawn_blocking(move || produce(&b, &t, &messages))
        .await
        .unwrap();
    let mut refused = dvc_pulse_app::node::start(&cfg, None).await.unwrap();
    let why = tokio::time::timeout(Duration::from_secs(60), refused.failed())
        .await
        .expect("the worker stops");
    assert!(
        why.contains("partition_count_changed") && why.contains("6") && why.contains("8"),
        "{why}"
    );
    assert!(!refused.worker.is_ready());
    let ready = reqwest::get(format!("http://{}/readyz", refused.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // Nothing was counted twice: the store answers what it did before.
    let after = window(&refused, &q).await;
    assert_eq!(counts_only(&after), expected);
    assert_eq!(after["digest"], before["digest"]);
    refused.abort();
}
