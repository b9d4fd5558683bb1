//! Report authors' view, end to end through Kafka and a worker: the Phan Rang annex byte
//! for byte as CSV, and as XLSX and Parquet read back by real readers; then late data,
//! and the same report regenerated identically `as_of` the first one, with the diff
//! naming what changed, also after the worker restarts from the store.

use crate::helpers::*;
use calamine::{Data, Reader, Xlsx};
use chrono::{DateTime, Utc};
use dvc_pulse_ingest::gateway::Clock;
use dvc_pulse_report::vi_rate;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ANNEX: &str =
    "from=2024-06-05&to=2024-07-05&locality=582&layout=annex&services=DA06-01..DA06-15";

async fn fetch(addr: SocketAddr, query: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(format!("http://{addr}/v1/windows?{query}"))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn text(addr: SocketAddr, query: &str) -> String {
    let (status, body) = fetch(addr, query).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    body
}

async fn json_of(addr: SocketAddr, path_query: &str) -> Value {
    reqwest::get(format!("http://{addr}{path_query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until the annex CSV satisfies `done`, for at most a minute.
async fn poll_csv(addr: SocketAddr, query: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let csv = text(addr, query).await;
        if done(&csv) || Instant::now() > deadline {
            return csv;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cells of the XLSX's data rows (after the two header rows), as the CSV writes them.
fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range("Phụ lục").unwrap();
    let cell = |d: &Data| match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
        Data::Int(i) => i.to_string(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(cell).collect()).collect();
    assert_eq!(
        rows[0][0],
        "KẾT QUẢ TIẾP NHẬN HỒ SƠ DỊCH VỤ CÔNG TRỰC TUYẾN THIẾT YẾU"
    );
    assert_eq!(rows[1][0], "(Từ ngày 05/6/2024 đến 05/7/2024)");
    assert_eq!(
        rows[4][..5],
        [
            "STT",
            "Dịch vụ công trực tuyến",
            "Kết nối Cổng DVC quốc gia",
            "Đơn vị thực hiện",
            "Tổng số hồ sơ"
        ]
    );
    assert_eq!(
        rows[5][4..],
        ["Tổng số hồ sơ", "Tiếp nhận hồ sơ trực tuyến", "Tỷ lệ %"]
    );
    rows[6..].to_vec()
}

fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// The golden CSV with `extra_total`/`extra_online` added to the row of `stt` and to "Tổng".
fn golden_plus(stt: &str, extra_total: i64, extra_online: i64) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let text = golden_csv();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    w.write_record(r.headers().unwrap()).unwrap();
    for rec in r.records() {
        let mut v: Vec<String> = rec.unwrap().iter().map(str::to_string).collect();
        if v[0] == stt || v[1] == "Tổng" {
            let t = v[4].parse::<i64>().unwrap() + extra_total;
            let o = v[5].parse::<i64>().unwrap() + extra_online;
            v[4] = t.to_string();
            v[5] = o.to_string();
            v[6] = vi_rate(o, t);
        }
        w.write_record(&v).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// A dossier of Đăng ký khai sinh in Phan Rang whose latest version is online: the one
/// to correct. Returns its latest version.
fn online_birth_registration(lines: &[Vec<u8>]) -> Value {
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for l in lines {
        let Ok(v) = serde_json::from_slice::<Value>(l) else {
            continue;
        };
        let Some(id) = v["dossier_id"].as_str() else {
            continue;
        };
        let newer = latest.get(id).is_none_or(|old| {
            let t = |v: &Value| {
                DateTime::parse_from_rfc3339(v["updated_at"].as_str().unwrap_or("")).ok()
            };
            t(&v) > t(old)
        });
        if newer {
            latest.insert(id.to_string(), v);
        }
    }
    latest
        .into_values()
        .find(|v| {
            v["procedure_code"] == "DA06-11"
                && v["channel"] == "online"
                && v["finished_at"].is_string()
                && v["received_at"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("2024-06-2"))
        })
        .expect("the scenario has finished online birth registrations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annex_layouts_and_as_of_reports_through_kafka() {
    let (_, s) = golden();
    let f = Fixture::new(4);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let t: DateTime<Utc> = "2024-09-01T03:00:00Z".parse().unwrap();
    let clock: Clock = Arc::new(move || t);
    let w = f.worker(&ckpt, Some(clock.clone())).await;
    import_lines(&f, dir.path(), &s.lines).await;

    // The annex, byte for byte as the fixture.
    let golden = golden_csv();
    let csv = poll_csv(w.addr, &format!("{ANNEX}&format=csv"), |c| c == golden).await;
    assert_eq!(csv, golden);
    // The same through the XLSX writer and a real XLSX reader.
    let (status, xlsx) = fetch(w.addr, &format!("{ANNEX}&format=xlsx")).await;
    assert_eq!(status, 200);
    assert_eq!(xlsx_rows(&xlsx), csv_rows(&golden));
    // Vietnamese headers on request; Parquet typed, for analysts.
    let vi = text(w.addr, &format!("{ANNEX}&format=csv&header=vi")).await;
    assert!(vi.starts_with("STT,Dịch vụ công trực tuyến,Kết nối Cổng DVC quốc gia,Đơn vị thực hiện,Tổng số hồ sơ,Tiếp nhận hồ sơ trực tuyến,Tỷ lệ %\n"), "{vi}");
    let (_, pq) = fetch(w.addr, &format!("{ANNEX}&format=parquet")).await;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(pq),
        )
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let totals: i64 = batches
        .iter()
        .map(|b| {
            let c = b.column_by_name("total").unwrap();
            datafusion::arrow::compute::sum(
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap(),
            )
            .unwrap_or(0)
        })
        .sum();
    assert_eq!(totals, 8725);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 15);
    // The processing variant of the same window adds up with the window's finished counts.
    let processing: Value = json_of(
        w.addr,
        &format!(
            "/v1/windows?{}&layout=processing",
            ANNEX.replace("&layout=annex", "")
        ),
    )
    .await;
    let table: Value = json_of(
        w.addr,
        "/v1/windows?from=2024-06-05&to=2024-07-05&locality=582",
    )
    .await;
    assert_eq!(
        processing["total"]["finished"], table["totals"]["finished"],
        "{processing}"
    );
    assert_eq!(processing["columns"][5]["title"], "Đúng hạn");

    // The first report: its as_of regenerates it.
    let first: Value = json_of(w.addr, &format!("/v1/windows?{ANNEX}")).await;
    let at = first["as_of"]["at"].as_str().unwrap().to_string();
    let id = first["id"].as_str().unwrap().to_string();
    let as_of = |at: &str| format!("{ANNEX}&format=csv&as_of={}", at.replace('+', "%2B"));
    assert_eq!(text(w.addr, &as_of(&at)).await, golden);

    // Late data: two new dossiers received in the window, one of them delivered twice,
    // and a correction of an online dossier to in person.
    let late = |id: &str| {
        let mut e = event(id);
        e["received_at"] = "2024-06-20T09:00:00+07:00".into();
        e["updated_at"] = "2024-06-20T09:00:00+07:00".into();
        e["locality_code"] = "22738".into();
        e
    };
    let mut fix = online_birth_registration(&s.lines);
    let corrected_id = fix["dossier_id"].as_str().unwrap().to_string();
    let updated = DateTime::parse_from_rfc3339(fix["updated_at"].as_str().unwrap()).unwrap()
        + chrono::Duration::days(3);
    fix["updated_at"] = updated.to_rfc3339().into();
    fix["channel"] = "in_person".into();
    let gw = f.gateway().await;
    let (status, body) = post(
        gw.addr,
        Some(TOKEN),
        ndjson(&[late("LATE-A"), late("LATE-B"), late("LATE-A"), fix]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Khai sinh is row 11: two more received online, one online moved to in person.
    let expected_now = golden_plus("11", 2, 1);
    let now_csv = poll_csv(w.addr, &format!("{ANNEX}&format=csv"), |c| {
        c == expected_now
    })
    .await;
    assert_eq!(
        now_csv, expected_now,
        "without as_of the table differs by the late events only"
    );

    // As of the first report: identical, same id and digest.
    assert_eq!(text(w.addr, &as_of(&at)).await, golden);
    let again: Value = json_of(
        w.addr,
        &format!("/v1/windows?{ANNEX}&as_of={}", at.replace('+', "%2B")),
    )
    .await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["as_of"]["at"], at.as_str());
    // The diff names the late events, the correction and the redelivery.
    let diff: Value = json_of(
        w.addr,
        &format!(
            "/v1/windows/diff?from=2024-06-05&to=2024-07-05&locality=582&as_of_a={}",
            at.replace('+', "%2B")
        ),
    )
    .await;
    let named: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{diff}"))
        .iter()
        .map(|c| {
            (
                c["dossier_id"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = named.clone();
    sorted.sort();
    let mut expected = vec![
        ("LATE-A".to_string(), "late".to_string()),
        ("LATE-A".to_string(), "duplicate".to_string()),
        ("LATE-B".to_string(), "late".to_string()),
        (corrected_id.clone(), "corrected".to_string()),
    ];
    expected.sort();
    assert_eq!(sorted, expected, "{diff}");
    assert_eq!(diff["rows"].as_array().unwrap().len(), 1, "{diff}");
    assert_eq!(diff["rows"][0]["keys"]["service_id"], "DA06-11");
    assert_eq!(
        diff["rows"][0]["after"]["total"].as_i64().unwrap()
            - diff["rows"][0]["before"]["total"].as_i64().unwrap(),
        2
    );
    assert_eq!(diff["a"]["id"], id.as_str());
    let corr = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reason"] == "corrected")
        .unwrap();
    assert_eq!(
        (corr["online_delta"].as_i64(), corr["channel"].as_str()),
        (Some(-1), Some("in_person"))
    );

    // Bad moments get stable codes.
    let (status, body) = fetch(w.addr, &format!("{ANNEX}&as_of=yesterday")).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "invalid_as_of"
    );
    // Before anything was ingested, the window was empty: every row reads 0 and "-".
    let empty = text(w.addr, &format!("{ANNEX}&format=csv&as_of=2001-01-01")).await;
    assert_eq!(
        golden_plus("11", 0, 0).lines().count(),
        empty.lines().count()
    );
    assert!(empty.ends_with(",Tổng,,,0,0,-\n"), "{empty}");
    assert!(
        empty.lines().skip(1).all(|l| l.ends_with(",0,0,-")),
        "{empty}"
    );

    // After a restart, the store's history is still there; the CLI's client
    // path gets the same bytes.
    w.stop().await.unwrap();
    let w = f.worker(&ckpt, Some(clock)).await;
    let params = [
        ("from", "2024-06-05".to_string()),
        ("to", "2024-07-05".to_string()),
        ("locality", "582".to_string()),
        ("layout", "annex".to_string()),
        ("services", "DA06-01..DA06-15".to_string()),
        ("format", "csv".to_string()),
        ("as_of", at.clone()),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (_, body) = dvc_pulse_app::snapshot::from_url(
            &format!("http://{}", w.addr),
            "/v1/windows",
            &params,
            |_, _| {},
        )
        .await
        .unwrap();
        if body == golden.as_bytes() || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(String::from_utf8(body).unwrap(), golden);
    assert_eq!(
        text(w.addr, &format!("{ANNEX}&format=csv")).await,
        expected_now
    );
    let err = dvc_pulse_app::snapshot::from_url(
        &format!("http://{}", w.addr),
        "/v1/windows",
        &[("layout", "annexe".into())],
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("invalid_layout"), "{err}");
    w.stop().await.unwrap();
}

/// `as_of` is a version of the shared store: a report taken from worker A is regenerated
/// with the same id and digest by worker B and by a query-only `serve` after late data;
/// the Python `deltalake` reader (delta-rs's bindings, an independent client) sums the
/// contributions table to the API's window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_across_workers_serve_and_an_independent_reader() {
    let (_, s) = golden();
    let f = Fixture::new(4);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let t: DateTime<Utc> = "2024-09-01T03:00:00Z".parse().unwrap();
    let clock: Clock = Arc::new(move || t);
    let a = f.worker(&store, Some(clock.clone())).await;
    let b = f.worker(&store, Some(clock.clone())).await;
    import_lines(&f, dir.path(), &s.lines).await;
    let golden = golden_csv();
    for w in [&a, &b] {
        assert_eq!(
            poll_csv(w.addr, &format!("{ANNEX}&format=csv"), |c| c == golden).await,
            golden
        );
    }
    let first: Value = json_of(a.addr, &format!("/v1/windows?{ANNEX}")).await;
    let at = first["as_of"]["at"].as_str().unwrap().to_string();
    // Late data after the report.
    let mut late = event("LATE-X");
    late["received_at"] = "2024-06-20T09:00:00+07:00".into();
    late["updated_at"] = "2024-06-20T09:00:00+07:00".into();
    late["locality_code"] = "22738".into();
    let gw = f.gateway().await;
    let (status, body) = post(gw.addr, Some(TOKEN), ndjson(&[late])).await;
    assert_eq!(status, 200, "{body}");
    let later = golden_plus("11", 1, 1);
    poll_csv(a.addr, &format!("{ANNEX}&format=csv"), |c| c == later).await;
    let serve = {
        let mut cfg = f.config.clone();
        cfg.worker.store_url = store.display().to_string();
        dvc_pulse_app::node::serve(&cfg, Some(clock)).await.unwrap()
    };
    let again = |addr| {
        let at = at.clone();
        async move {
            json_of(
                addr,
                &format!("/v1/windows?{ANNEX}&as_of={}", at.replace('+', "%2B")),
            )
            .await
        }
    };
    for addr in [a.addr, b.addr, serve.addr] {
        let r = again(addr).await;
        assert_eq!(r["id"], first["id"], "{r}");
        assert_eq!(r["digest"], first["digest"], "{r}");
        assert_eq!(r["as_of"]["at"], at.as_str());
    }
    // Live, every server agrees too (one store).
    let live: Vec<Value> = live_reports(&[a.addr, b.addr, serve.addr]).await;
    assert!(
        live.windows(2).all(|w| w[0]["digest"] == w[1]["digest"]),
        "{live:?}"
    );
    assert_ne!(live[0]["digest"], first["digest"]);

    // The independent reader: the contributions table, summed by Python's deltalake.
    let totals: Value = json_of(
        serve.addr,
        "/v1/windows?from=2024-06-05&to=2024-07-05&group_by=",
    )
    .await;
    let script = r#"
import sys, json, datetime
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pylist()
lo, hi = datetime.date(2024, 6, 5), datetime.date(2024, 7, 5)
flows = ["received", "online", "in_person", "postal", "finished"]
out = {k: sum(r[k] for r in t if lo <= r["day"] <= hi) for k in flows}
out["pending"] = sum(r["pending_open"] - r["pending_close"] for r in t if r["day"] <= hi)
print(json.dumps(out), flush=True)
# Skip interpreter teardown: its thread pools sometimes abort there ("terminate called
# without an active exception") after the answer is out.
import os
os._exit(0)
"#;
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(store.join("contributions"))
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "python deltalake reader: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let sums: Value = serde_json::from_slice(&py.stdout).unwrap();
    let api = &totals["totals"];
    assert_eq!(sums["received"], api["total"], "{sums} vs {api}");
    for k in ["online", "in_person", "postal", "finished", "pending"] {
        assert_eq!(sums[k], api[k], "{k}: {sums} vs {api}");
    }
    assert!(api["total"].as_i64().unwrap() > 8000);
    for w in [a, b, serve] {
        w.stop().await.unwrap();
    }
}

async fn live_reports(addrs: &[SocketAddr]) -> Vec<Value> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(json_of(*a, &format!("/v1/windows?{ANNEX}")).await);
    }
    out
}
