//! Windows end to end: the golden annex through the file path and through Kafka and a
//! worker's API, late data, and rebalances between workers of one group.

use crate::helpers::*;
use chrono::{DateTime, Duration as Days, NaiveDate, TimeZone, Utc};
use dvc_pulse_devkit::fixture::ReportRow;
use dvc_pulse_ingest::gateway::Clock;
use dvc_pulse_ingest::import::ImportOptions;
use dvc_pulse_report::vi_rate;
use dvc_pulse_window::Measure;
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn fixed_clock(t: &str) -> Clock {
    let t: DateTime<Utc> = t.parse().unwrap();
    Arc::new(move || t)
}

/// The annex rows a window table gives: (service name, total, online, rate as written).
/// Rows without receptions (present when dossiers are still pending) have nothing to match.
fn annex_of(rows: &[Value]) -> Vec<(String, u64, u64, String)> {
    rows.iter()
        .filter(|r| r["total"].as_i64() != Some(0))
        .map(|r| {
            let (t, o) = (r["total"].as_i64().unwrap(), r["online"].as_i64().unwrap());
            (
                r["service_name"].as_str().unwrap().to_string(),
                t as u64,
                o as u64,
                vi_rate(o, t),
            )
        })
        .collect()
}

fn expected_annex(rows: &[ReportRow]) -> Vec<(String, u64, u64, String)> {
    rows.iter()
        .filter(|r| r.total > 0)
        .map(|r| (r.service_vi.clone(), r.total, r.online, r.rate_vi.clone()))
        .collect()
}

async fn get(addr: std::net::SocketAddr, query: &str) -> Value {
    reqwest::get(format!("http://{addr}/v1/windows?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the API until `done` holds, for at most `limit`.
async fn poll(
    addr: std::net::SocketAddr,
    query: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = get(addr, query).await;
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_annex_from_a_file_snapshot() {
    let (rows, s) = golden();
    let dir = tempfile::tempdir().unwrap();
    let path = write_lines(dir.path(), &s.lines);
    let cfg = dvc_pulse_app::Config::default();
    let q = WindowQuery {
        from: d("2024-06-05"),
        to: d("2024-07-05"),
        group_by: vec![GroupKey::Service],
        locality: Some("582".into()),
    };
    let now: DateTime<Utc> = "2024-09-01T00:00:00Z".parse().unwrap();
    let snap = dvc_pulse_app::snapshot::from_file(&cfg, &path, &q, now, None, |_, _| {})
        .await
        .unwrap();
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(
        annex_of(json["rows"].as_array().unwrap()),
        expected_annex(&rows)
    );
    assert_eq!(
        (
            snap.table.totals.get(Measure::Total),
            snap.table.totals.get(Measure::Online)
        ),
        (8725, 8685)
    );
    assert_eq!(
        vi_rate(
            snap.table.totals.get(Measure::Online),
            snap.table.totals.get(Measure::Total)
        ),
        "99,54%"
    );
    let rejected: usize = snap.input.rejected.values().sum();
    assert_eq!(
        rejected, s.malformed,
        "every malformed line is rejected, with a reason: {:?}",
        snap.input.rejected
    );
    assert!(
        s.duplicates > 0 && s.stale > 0,
        "the scenario carries duplicates and stale versions"
    );
}

/// Real portal records carry national procedure codes, not catalogue ids: the annex is
/// the same when every service comes by its first national code (and the traffic-fine
/// service, which has none, by its portal code `C08_XPHCDB`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_annex_from_national_procedure_codes() {
    let (rows, s) = golden();
    let reference = dvc_pulse_model::Reference::embedded();
    let national = |id: &str| {
        reference
            .services
            .get(id)
            .and_then(|svc| svc.procedure_codes.first().cloned())
    };
    let mut replaced = std::collections::BTreeSet::new();
    let lines: Vec<Vec<u8>> = s
        .lines
        .iter()
        .map(|l| {
            let Ok(mut v) = serde_json::from_slice::<Value>(l) else {
                return l.clone();
            };
            let code = v["procedure_code"].as_str().and_then(national);
            match code {
                Some(c) => {
                    replaced.insert(c.clone());
                    v["procedure_code"] = c.into();
                    serde_json::to_vec(&v).unwrap()
                }
                None => l.clone(),
            }
        })
        .collect();
    assert!(
        replaced.contains("C08_XPHCDB") && replaced.contains("1.004222"),
        "{replaced:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_lines(dir.path(), &lines);
    let cfg = dvc_pulse_app::Config::default();
    let q = WindowQuery {
        from: d("2024-06-05"),
        to: d("2024-07-05"),
        group_by: vec![GroupKey::Service],
        locality: Some("582".into()),
    };
    let now: DateTime<Utc> = "2024-09-01T00:00:00Z".parse().unwrap();
    let snap = dvc_pulse_app::snapshot::from_file(&cfg, &path, &q, now, None, |_, _| {})
        .await
        .unwrap();
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(
        annex_of(json["rows"].as_array().unwrap()),
        expected_annex(&rows)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_annex_through_kafka_and_the_worker_api() {
    let (rows, s) = golden();
    let f = Fixture::new(6);
    let dir = tempfile::tempdir().unwrap();
    let path = write_lines(dir.path(), &s.lines);
    let w = f
        .worker(
            &dir.path().join("ckpt"),
            Some(fixed_clock("2024-09-01T03:00:00Z")),
        )
        .await;
    let imported = dvc_pulse_app::import::run(
        &f.config,
        &path,
        &ImportOptions {
            batch_size: 500,
            skip_before: 0,
        },
        false,
    )
    .await
    .unwrap();
    let rejected: usize = imported.rejected.values().sum();
    assert_eq!(rejected, s.malformed);
    let query = "from=2024-06-05&to=2024-07-05&locality=582&group_by=service";
    let expected = expected_annex(&rows);
    let v = poll(w.addr, query, Duration::from_secs(60), |v| {
        v["rows"]
            .as_array()
            .is_some_and(|r| annex_of(r) == expected)
    })
    .await;
    assert_eq!(annex_of(v["rows"].as_array().unwrap()), expected, "{v}");
    assert_eq!(v["totals"]["total"], 8725);
    // Every measure (finished, on time, pending…) equals the batch path over the same file.
    let q = WindowQuery {
        from: d("2024-06-05"),
        to: d("2024-07-05"),
        group_by: vec![GroupKey::Service],
        locality: Some("582".into()),
    };
    let now: DateTime<Utc> = "2024-09-01T03:00:00Z".parse().unwrap();
    let batch = dvc_pulse_app::snapshot::from_file(&f.config, &path, &q, now, Some(400), |_, _| {})
        .await
        .unwrap();
    let batch = serde_json::to_value(&batch).unwrap();
    // Rates are derived from the counts and only differ in the last bit of a JSON round trip.
    let counts = |v: &Value| {
        let strip = |mut r: Value| {
            r.as_object_mut().unwrap().remove("online_rate");
            r
        };
        let rows: Vec<Value> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(strip)
            .collect();
        (rows, strip(v["totals"].clone()))
    };
    assert_eq!(counts(&v), counts(&batch));
    assert_eq!(v["from"], "2024-06-05");
    assert!(v["as_of"]["newest_event"].is_string());
    assert_eq!(v["as_of"]["partitions"].as_array().unwrap().len(), 6);
    // The CSV answer carries the same rows.
    let csv = reqwest::get(format!("http://{}/v1/windows?{query}&format=csv", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), v["rows"].as_array().unwrap().len() + 1);
    assert!(
        csv.contains("DA06-02,\"Cấp lại, đổi thẻ căn cước công dân\""),
        "{csv}"
    );
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_changes_every_window_that_covers_its_day() {
    let f = Fixture::new(2);
    let dir = tempfile::tempdir().unwrap();
    let now = "2024-09-01T03:00:00Z";
    let w = f
        .worker(&dir.path().join("ckpt"), Some(fixed_clock(now)))
        .await;
    // The gateway stamps what it sends with its clock: the worker's "today".
    let gw = f.gateway_at(fixed_clock(now)).await;
    // Received 45 days before the message's day (2024-09-01 ICT): 2024-07-18.
    let received = ict_at("2024-07-18", 9);
    let mut e = event("LATE-1");
    e["received_at"] = received.to_rfc3339().into();
    e["updated_at"] = received.to_rfc3339().into();
    let window = |to: NaiveDate| {
        format!(
            "from={}&to={to}&locality=582&group_by=",
            to - Days::days(29)
        )
    };
    let day = d("2024-07-18");
    let before: Vec<Value> = futures_join(
        w.addr,
        &[
            day - Days::days(1),
            day,
            day + Days::days(29),
            day + Days::days(30),
        ]
        .map(window),
    )
    .await;
    let (status, _) = post(gw.addr, Some(TOKEN), ndjson(&[e])).await;
    assert_eq!(status, 200);
    let acked = Instant::now();
    let v = poll(w.addr, &window(day), Duration::from_secs(30), |v| {
        v["totals"]["total"] == 1
    })
    .await;
    eprintln!(
        "late event visible {:?} after the gateway's ack",
        acked.elapsed()
    );
    assert_eq!(v["totals"]["total"], 1, "{v}");
    for offset in 0..30 {
        let v = get(w.addr, &window(day + Days::days(offset))).await;
        assert_eq!(
            v["totals"]["total"],
            1,
            "window ending {} covers the late day",
            day + Days::days(offset)
        );
    }
    // The daily series says the same: the window ending on each day D covers D-29..=D.
    let daily: Value = reqwest::get(format!(
        "http://{}/v1/windows/daily?from={}&to={}&locality=582&group_by=",
        w.addr,
        day - Days::days(2),
        day + Days::days(31)
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let days: Vec<&str> = daily["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["day"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..30).map(|i| (day + Days::days(i)).to_string()).collect();
    assert_eq!(days, expected, "{daily}");
    assert!(
        daily["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["total"] == 1 && p["online"] == 1)
    );
    let after: Vec<Value> = futures_join(
        w.addr,
        &[
            day - Days::days(1),
            day,
            day + Days::days(29),
            day + Days::days(30),
        ]
        .map(window),
    )
    .await;
    let totals = |vs: &[Value]| {
        vs.iter()
            .map(|v| v["totals"]["total"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(totals(&before), vec![0, 0, 0, 0]);
    assert_eq!(totals(&after), vec![0, 1, 1, 0]);
    // 45 days late is counted as such.
    let metrics = reqwest::get(format!("http://{}/metrics", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dvc_pulse_worker_late_versions_total{band=\"30-90d\"} 1"),
        "{metrics}"
    );
    gw.stop().await.unwrap();
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_horizon_goes_to_the_dead_letter_topic() {
    let mut f = Fixture::new(1);
    f.config.worker.horizon_days = 31;
    let dir = tempfile::tempdir().unwrap();
    let w = f
        .worker(
            &dir.path().join("ckpt"),
            Some(fixed_clock("2024-09-01T03:00:00Z")),
        )
        .await;
    let gw = f.gateway_at(fixed_clock("2024-09-01T03:00:00Z")).await;
    // Received 2024-06-05: 88 days before the message's day, beyond a 31-day horizon.
    let (status, _) = post(gw.addr, Some(TOKEN), ndjson(&[event("OLD-1")])).await;
    assert_eq!(status, 200);
    let dlq = read(&f, &f.config.topics.dead_letter, 1);
    assert_eq!(dlq.len(), 1);
    let body: Value = serde_json::from_slice(&dlq[0].payload).unwrap();
    assert_eq!(body["reason"], "beyond_horizon");
    assert_eq!(body["payload"]["dossier_id"], "OLD-1");
    assert!(
        body["origin"]
            .as_str()
            .unwrap()
            .starts_with(&f.config.topics.events)
    );
    let v = get(w.addr, "from=2024-06-01&to=2024-06-30&group_by=").await;
    assert_eq!(v["totals"]["total"], 0);
    let m = reqwest::get(format!("http://{}/metrics", w.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("dvc_pulse_worker_beyond_horizon_versions_total 1"),
        "{m}"
    );
    // The gateway accepted it (the horizon is the worker's business) and says so.
    let g = reqwest::get(format!("http://{}/metrics", gw.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        g.contains("dvc_pulse_ingest_accepted_records_total 1"),
        "{g}"
    );
    assert!(g.contains("dvc_pulse_build_info{version="), "{g}");
    gw.stop().await.unwrap();
    w.stop().await.unwrap();
}

fn ict_at(day: &str, hour: u32) -> DateTime<chrono::FixedOffset> {
    dvc_pulse_model::event::ict()
        .from_local_datetime(&d(day).and_hms_opt(hour, 0, 0).unwrap())
        .unwrap()
}

async fn futures_join(addr: std::net::SocketAddr, queries: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for q in queries {
        out.push(get(addr, q).await);
    }
    out
}

/// A worker loads its partitions when the group assigns them, not at its next message
/// or commit tick: their windows are served, and a burst of backlog meets a loaded state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_partitions_are_loaded_before_any_message() {
    let mut f = Fixture::new(4);
    f.config.worker.commit_interval = Duration::from_secs(600);
    let dir = tempfile::tempdir().unwrap();
    let w = f.worker(dir.path(), None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && w.worker.assigned_partitions().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let assigned = w.worker.assigned_partitions();
    assert_eq!(
        assigned,
        vec![0, 1, 2, 3],
        "the only worker gets every partition"
    );
    let loaded = Instant::now() + Duration::from_secs(10);
    while Instant::now() < loaded && w.worker.owned_partitions().len() < assigned.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut owned = w.worker.owned_partitions();
    owned.sort_unstable();
    assert_eq!(owned, assigned, "loaded with no message and no commit tick");
    assert_eq!(w.worker.metrics.partitions_owned.get(), 4);
    assert_eq!(w.worker.metrics.consumed.get(), 0, "the topic is empty");
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_one_added_windows_stay_exact() {
    use dvc_pulse_devkit::fixture::{canonical_stream, counts_only, oracle, produce};
    let mut f = Fixture::new(12);
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("max.poll.interval.ms", "10000"),
    ] {
        f.config.kafka.properties.insert(k.into(), v.into());
    }
    let today = Utc::now()
        .with_timezone(&dvc_pulse_model::event::ict())
        .date_naive();
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 5,
        start: today - Days::days(40),
        days: 35,
        ..Default::default()
    };
    let messages = canonical_stream(&sim, Utc::now());
    let thirds: Vec<Vec<(String, Vec<u8>)>> = messages
        .chunks(messages.len() / 3 + 1)
        .map(<[_]>::to_vec)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let send = |chunk: Vec<(String, Vec<u8>)>| {
        let (b, t) = (
            f.config.kafka.bootstrap_servers.clone(),
            f.config.topics.events.clone(),
        );
        tokio::task::spawn_blocking(move || produce(&b, &t, &chunk))
    };
    let a = f.worker(&ckpt, None).await;
    let b = f.worker(&ckpt, None).await;
    let c = f.worker(&ckpt, None).await;
    // Wait until the group has settled on the three, then feed them and kill one mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = || {
        [&a, &b, &c]
            .iter()
            .map(|w| w.worker.assigned_partitions().len())
            .filter(|n| *n > 0)
            .count()
            == 3
    };
    while Instant::now() < deadline && !settled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled(),
        "three workers share the partitions: {:?}",
        [&a, &b, &c].map(|w| w.worker.assigned_partitions())
    );
    send(thirds[0].clone()).await.unwrap();
    while Instant::now() < deadline && b.worker.metrics.consumed.get() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        b.worker.metrics.consumed.get() > 0,
        "b consumed before being killed"
    );
    b.abort();
    send(thirds[1].clone()).await.unwrap();
    let d = f.worker(&ckpt, None).await;
    send(thirds[2].clone()).await.unwrap();
    let queries = [
        WindowQuery::rolling(
            today - Days::days(6),
            vec![GroupKey::Service],
            Some("582".into()),
        ),
        WindowQuery {
            from: today - Days::days(40),
            to: today,
            group_by: vec![GroupKey::Commune, GroupKey::Procedure],
            locality: None,
        },
    ];
    let expected: Vec<Value> = queries
        .iter()
        .map(|q| counts_only(&serde_json::to_value(oracle(&messages, q)).unwrap()))
        .collect();
    let url = |q: &WindowQuery| {
        let g: Vec<_> = q.group_by.iter().map(|k| k.name()).collect();
        format!(
            "from={}&to={}&group_by={}&locality={}",
            q.from,
            q.to,
            g.join(","),
            q.locality.clone().unwrap_or_default()
        )
    };
    // Every surviving worker answers for all partitions, from the shared store.
    for w in [&a, &c, &d] {
        for (q, e) in queries.iter().zip(&expected) {
            let v = poll(w.addr, &url(q), Duration::from_secs(90), |v| {
                counts_only(v) == *e
            })
            .await;
            assert_eq!(counts_only(&v), *e, "worker {} on {q:?}", w.worker.id);
        }
    }
    assert!(
        !d.worker.assigned_partitions().is_empty(),
        "the added worker took partitions"
    );
    let owned: usize = [&a, &c, &d]
        .iter()
        .map(|w| w.worker.assigned_partitions().len())
        .sum();
    assert_eq!(owned, 12, "the survivors own every partition");
    for w in [a, c, d] {
        w.stop().await.unwrap();
    }
}
