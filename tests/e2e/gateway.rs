//! The gateway through real HTTP and a real Kafka-protocol broker.

use crate::helpers::*;
use dvc_pulse_model::DossierEvent;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_are_canonical_on_the_topic_and_rejects_are_dead_lettered_without_personal_data()
 {
    let f = Fixture::new(3);
    let gw = f.gateway().await;
    let dvcqg = json!({
        "MaHoSo": "000.00.22.H58-240605-0007", "MaTTHC": "1.001193", "KenhThucHien": "2",
        "NgayTiepNhan": "20240605083000", "TrangThaiHoSo": 2, "DonViXuLy": "UBND phường Đô Vinh",
        "ChuHoSo": "Nguyễn Văn A", "SoDienThoai": "0901234567", "Email": "a@example.vn"
    });
    let bad_dvcqg = json!({
        "MaHoSo": "000.00.22.H58-240605-0008", "MaTTHC": "1.001193", "TrangThaiHoSo": 42,
        "NgayTiepNhan": "20240605083000", "DonViXuLy": "UBND phường Đô Vinh",
        "ChuHoSo": "Trần Thị B", "SoGiayToChuHoSo": "058090001234"
    });
    let mut unknown_status = event("H-3");
    unknown_status["status"] = json!("xong");
    let body = format!(
        "{}{}not json at all\n{}{}",
        ndjson(&[event("H-1")]),
        ndjson(&[event("H-2")]),
        ndjson(&[dvcqg, bad_dvcqg]),
        ndjson(&[unknown_status])
    );
    let (status, resp) = post(gw.addr, Some(TOKEN), body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["accepted"], 3);
    let rejected: Vec<(u64, String)> = resp["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (2, "malformed_json".into()),
            (4, "unknown_status".into()),
            (5, "unknown_status".into())
        ]
    );

    let metrics = reqwest::get(format!("http://{}/metrics", gw.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "dvc_pulse_ingest_accepted_records_total 3",
        "dvc_pulse_ingest_rejected_records_total{reason=\"malformed_json\"} 1",
        "dvc_pulse_ingest_rejected_records_total{reason=\"unknown_status\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    let events = read(&f, &f.config.topics.events, 3);
    assert_eq!(events.len(), 3);
    for r in &events {
        let e: DossierEvent = serde_json::from_slice(&r.payload).expect("canonical JSON");
        assert_eq!(
            e.to_canonical_json(),
            r.payload,
            "payload is the canonical form"
        );
        assert_eq!(
            r.key.as_deref(),
            Some(e.dossier_id.as_str()),
            "keyed by dossier_id"
        );
        assert_eq!(e.procedure_code, "1.001193");
    }
    let h1: Value = serde_json::from_slice(
        &events
            .iter()
            .find(|r| r.key.as_deref() == Some("H-1"))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(h1["received_at"], "2024-06-05T08:30:00+07:00");
    assert_eq!(h1["procedure_name"], "Đăng ký khai sinh", "NFC");

    let dlq = read(&f, &f.config.topics.dead_letter, 3);
    assert_eq!(dlq.len(), 3);
    let all = dlq
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect::<String>();
    for pii in [
        "Nguyễn Văn A",
        "Trần Thị B",
        "0901234567",
        "058090001234",
        "a@example.vn",
    ] {
        assert!(!all.contains(pii), "{pii} reached the dead-letter topic");
    }
    let topic_text = events
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect::<String>();
    assert!(!topic_text.contains("0901234567") && !topic_text.contains("Nguyễn Văn A"));
    for r in &dlq {
        let dl: Value = serde_json::from_slice(&r.payload).unwrap();
        let reason = dl["reason"].as_str().unwrap();
        assert_eq!(r.headers, [("reason".to_string(), reason.to_string())]);
        assert_eq!(dl["payload_sha256"].as_str().unwrap().len(), 64);
        if reason == "malformed_json" {
            assert!(dl["payload"].is_null(), "unreadable bytes are not kept");
        } else {
            assert!(dl["payload"].is_object());
        }
    }
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_size_and_empty_bodies_get_stable_errors() {
    let mut f = Fixture::new(1);
    f.config.ingest.body_limit_bytes = 4096;
    let gw = f.gateway().await;
    let one = ndjson(&[event("A")]);
    let (s, r) = post(gw.addr, None, one.clone()).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = post(gw.addr, Some("wrong"), one.clone()).await;
    assert_eq!(s, 401);
    let big = ndjson(
        &(0..100)
            .map(|i| event(&format!("B-{i}")))
            .collect::<Vec<_>>(),
    );
    let (s, r) = post(gw.addr, Some(TOKEN), big).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (s, r) = post(gw.addr, Some(TOKEN), "\n\n").await;
    assert_eq!((s, r["error"]["code"].as_str()), (400, Some("empty_body")));
    // Nothing of the refused requests reached Kafka.
    let (s, r) = post(gw.addr, Some(TOKEN), one).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(read(&f, &f.config.topics.events, 1).len(), 1);
    let health = reqwest::get(format!("http://{}/healthz", gw.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", gw.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_and_a_single_object_are_accepted_too() {
    let f = Fixture::new(2);
    let gw = f.gateway().await;
    let (s, r) = post(
        gw.addr,
        Some(TOKEN),
        Value::Array(vec![event("J-1"), event("J-2"), json!(7)]).to_string(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"][0]["index"], 2);
    assert_eq!(r["rejected"][0]["reason"], "not_an_object");
    let (s, r) = post(
        gw.addr,
        Some(TOKEN),
        serde_json::to_string_pretty(&event("J-3")).unwrap(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)));
    let keys: std::collections::BTreeSet<_> = read(&f, &f.config.topics.events, 3)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["J-1", "J-2", "J-3"]);
    gw.stop().await.unwrap();
}
