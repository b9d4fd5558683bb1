//! Real data's edge cases, through the gateway and through `snapshot --input`: a leading
//! byte-order mark, versions from the future, two-digit and five-digit years, dates
//! without leading zeros, portal procedure codes.

use crate::helpers::*;
use chrono::{DateTime, NaiveDate, Utc};
use dvc_pulse_window::Measure;
use dvc_pulse_window::{GroupKey, WindowQuery};
use serde_json::{Value, json};
use std::sync::Arc;

const NOW: &str = "2024-09-01T03:00:00Z";

/// Each case: a record and the reason it gets (`None`: accepted).
fn cases() -> Vec<(Value, Option<&'static str>)> {
    let with = |id: &str, fields: Value| {
        let mut e = event(id);
        for (k, v) in fields.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    vec![
        (
            with("FUT-U", json!({"updated_at": "2099-01-01T00:00:00+07:00"})),
            Some("updated_in_future"),
        ),
        (
            with(
                "FUT-F",
                json!({"status": "processed", "finished_at": "01/01/2099"}),
            ),
            Some("finished_in_future"),
        ),
        (
            with("YY", json!({"received_at": "05/06/24"})),
            Some("invalid_date"),
        ),
        (
            with("Y5", json!({"received_at": "10000-06-05T08:30:00+07:00"})),
            Some("invalid_date"),
        ),
        // Due the day it was received, written without leading zeros: the end of that day.
        (
            with(
                "NOPAD",
                json!({"received_at": "5/6/2024 8:30", "due_at": "5/6/2024"}),
            ),
            None,
        ),
        (
            with("PORTAL", json!({"procedure_code": "C08_XPHCDB"})),
            None,
        ),
    ]
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn with_bom(text: &str) -> Vec<u8> {
    [BOM, text.as_bytes()].concat()
}

fn clock() -> dvc_pulse_ingest::gateway::Clock {
    let t: DateTime<Utc> = NOW.parse().unwrap();
    Arc::new(move || t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reads_the_edges_of_real_data() {
    let f = Fixture::new(1);
    let gw = f.gateway_at(clock()).await;
    // A body that starts with a byte-order mark loses nothing: its first record counts.
    let (s, r) = post(
        gw.addr,
        Some(TOKEN),
        with_bom(&ndjson(&[event("BOM-1"), event("BOM-2")])),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(2)), "{r}");
    let body = with_bom(&Value::Array(vec![event("BOM-3")]).to_string());
    let (s, r) = post(gw.addr, Some(TOKEN), body).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    for (record, reason) in cases() {
        let (s, r) = post(gw.addr, Some(TOKEN), ndjson(std::slice::from_ref(&record))).await;
        assert_eq!(s, 200);
        let got = r["rejected"][0]["reason"].as_str();
        assert_eq!(got, reason, "{} → {r}", record["dossier_id"]);
        assert_eq!(r["accepted"].as_u64(), Some(reason.is_none() as u64));
    }
    let events = read(&f, &f.config.topics.events, 5);
    let portal: Vec<Value> = events
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .filter(|e: &Value| e["dossier_id"] == "PORTAL" || e["dossier_id"] == "NOPAD")
        .collect();
    assert_eq!(portal.len(), 2);
    for e in portal {
        if e["dossier_id"] == "PORTAL" {
            assert_eq!(e["procedure_code"], "C08_XPHCDB");
        } else {
            assert_eq!(e["due_at"], "2024-06-05T23:59:59+07:00");
        }
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_input_reads_the_edges_of_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dvc_pulse_app::Config::default();
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let q = WindowQuery {
        from: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(),
        group_by: vec![GroupKey::Procedure],
        locality: None,
    };
    let (records, reasons): (Vec<Value>, Vec<Option<&str>>) = cases().into_iter().unzip();
    let accepted = reasons.iter().filter(|r| r.is_none()).count();
    let mut expected = std::collections::BTreeMap::new();
    for r in reasons.iter().flatten() {
        *expected.entry(r.to_string()).or_insert(0) += 1;
    }
    // NDJSON and a JSON array, each starting with a byte-order mark.
    let first = event("BOM-FIRST");
    let mut lines = vec![first.clone()];
    lines.extend(records.iter().cloned());
    let ndjson_path = dir.path().join("export.ndjson");
    std::fs::write(&ndjson_path, with_bom(&ndjson(&lines))).unwrap();
    let array_path = dir.path().join("export.json");
    std::fs::write(
        &array_path,
        with_bom(&Value::Array(lines.clone()).to_string()),
    )
    .unwrap();
    // A CSV export as Excel writes it.
    let csv_path = dir.path().join("export.csv");
    let header = "dossier_id,procedure_code,locality_code,channel,status,received_at,updated_at";
    let row = "BOM-CSV,1001193,22738,online,received,05/06/2024 08:30,05/06/2024 08:30";
    std::fs::write(&csv_path, with_bom(&format!("{header}\n{row}\n"))).unwrap();
    for path in [&ndjson_path, &array_path] {
        let snap = dvc_pulse_app::snapshot::from_file(&cfg, path, &q, now, None, |_, _| {})
            .await
            .unwrap();
        assert_eq!(snap.input.records, lines.len(), "{}", path.display());
        assert_eq!(snap.input.accepted, accepted + 1, "{}", path.display());
        assert_eq!(snap.input.rejected, expected, "{}", path.display());
        let codes: Vec<&str> = snap
            .table
            .rows
            .iter()
            .filter_map(|r| r.keys[0].1.as_str())
            .collect();
        assert!(codes.contains(&"C08_XPHCDB"), "{codes:?}");
        assert_eq!(snap.table.totals.get(Measure::Total), (accepted + 1) as i64);
    }
    let snap = dvc_pulse_app::snapshot::from_file(&cfg, &csv_path, &q, now, None, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (snap.input.records, snap.input.accepted),
        (1, 1),
        "{:?}",
        snap.input
    );
    assert_eq!(snap.table.totals.get(Measure::Total), 1);
    // A locality no unit set knows fails before any file is opened (this one is missing).
    let wrong = WindowQuery {
        locality: Some("99999".into()),
        ..q.clone()
    };
    let missing = dir.path().join("missing.ndjson");
    let err = dvc_pulse_app::snapshot::from_file(&cfg, &missing, &wrong, now, None, |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a unit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_in_an_agency_name_is_neutralised_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = event("CSV-INJ");
    e["agency"] = json!("=HYPERLINK(\"http://x\",\"y\")");
    let path = dir.path().join("export.ndjson");
    std::fs::write(&path, ndjson(&[e])).unwrap();
    let cfg = dvc_pulse_app::Config::default();
    let q = WindowQuery {
        from: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2024, 6, 30).unwrap(),
        group_by: vec![GroupKey::Agency],
        locality: None,
    };
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let snap = dvc_pulse_app::snapshot::from_file(&cfg, &path, &q, now, None, |_, _| {})
        .await
        .unwrap();
    let opts = dvc_pulse_report::ReportOptions::parse(None, None, Some("csv"), None, None).unwrap();
    let reference = dvc_pulse_model::Reference::embedded();
    let csv = dvc_pulse_report::render(&snap.table, json!({}), &opts, &reference).unwrap();
    let text = String::from_utf8(csv.body).unwrap();
    let cells: Vec<String> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .flat_map(|r| r.unwrap().iter().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(
        cells.contains(&"'=HYPERLINK(\"http://x\",\"y\")".to_string()),
        "{text}"
    );
    assert!(!cells.iter().any(|c| c.starts_with('=')), "{text}");
}
