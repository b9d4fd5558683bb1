//! The worker's query API protected and bounded: read tokens, range limits, extreme
//! dates, paged diffs, a memory pool; every refusal a JSON `{"error": {code, message}}`.

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn call(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_tokens_limits_and_paged_diffs() {
    let mut f = Fixture::new(1);
    f.config.worker.read_token_sha256 = vec![dvc_pulse_model::auth::hash_token("reader")];
    let dir = tempfile::tempdir().unwrap();
    let w = f.worker(&dir.path().join("store"), None).await;
    let gw = f.gateway().await;
    let mut events: Vec<Value> = (0..4).map(|i| event(&format!("PAGE-{i}"))).collect();
    let mut unknown = event("PAGE-4");
    unknown["procedure_code"] = "9.999999".into();
    // (With a catalogue name it would map to that service by its name.)
    unknown["procedure_name"] = "Thủ tục ngoài danh mục".into();
    events.push(unknown);
    let (s, _) = post(gw.addr, Some(TOKEN), ndjson(&events)).await;
    assert_eq!(s, 200);
    let window = "/v1/windows?from=2024-06-01&to=2024-06-30&group_by=";
    // Without a token, or with a wrong one: 401 in the common error shape.
    for token in [None, Some("guess")] {
        let (s, v) = call(w.addr, window, token).await;
        assert_eq!((s, code(&v)), (401, "unauthorized"), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("token"));
    }
    // Health, readiness, metrics and the page stay open.
    for open in ["/healthz", "/readyz", "/metrics", "/"] {
        let r = reqwest::get(format!("http://{}{open}", w.addr))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut v = Value::Null;
    while Instant::now() < deadline {
        v = call(w.addr, window, Some("reader")).await.1;
        if v["totals"]["total"] == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(v["totals"]["total"], 5, "{v}");
    // The code outside the catalogue is listed for operators; the catalogue's is not.
    let (s, v) = call(
        w.addr,
        "/v1/procedures/unmapped?from=2024-06-01&to=2024-06-30",
        Some("reader"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["procedures"],
        serde_json::json!([{"code": "9.999999", "name": "Thủ tục ngoài danh mục", "dossiers": 1, "pending": 1}])
    );
    // Ten years of daily windows: refused with the limit in the message.
    let (s, v) = call(
        w.addr,
        "/v1/windows/daily?from=2014-01-01&to=2023-12-31",
        Some("reader"),
    )
    .await;
    assert_eq!((s, code(&v)), (400, "range_too_long"), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("400 days"),
        "{v}"
    );
    // Extreme dates are a 400, never a panic.
    for q in [
        "/v1/windows?from=-262143-01-01&to=2024-01-01",
        "/v1/windows?to=262142-12-31",
        "/v1/windows?from=0001-01-01&to=0001-01-30",
        "/v1/windows/daily?from=2024-01-01&to=99999-01-01",
        "/v1/windows/diff?as_of_a=2024-01-01&to=+262143-01-01",
    ] {
        let (s, v) = call(w.addr, q, Some("reader")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(!code(&v).is_empty(), "{q}: {v}");
    }
    // Unknown or malformed parameters: the same JSON body, not a plain-text rejection.
    for q in [
        "/v1/windows?bogus=1",
        "/v1/windows/diff?limit=many&as_of_a=2024-01-01",
        "/v1/places?x=y",
    ] {
        let (s, v) = call(w.addr, q, Some("reader")).await;
        assert_eq!((s, code(&v)), (400, "invalid_query"), "{q}: {v}");
    }
    // Diffs come in pages.
    let diff = "/v1/windows/diff?from=2024-06-01&to=2024-06-30&group_by=&as_of_a=2001-01-01";
    let (s, v) = call(w.addr, &format!("{diff}&limit=2"), Some("reader")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 2);
    assert_eq!(
        (v["changes_total"].as_u64(), v["next_offset"].as_u64()),
        (Some(5), Some(2))
    );
    let (_, last) = call(w.addr, &format!("{diff}&limit=2&offset=4"), Some("reader")).await;
    assert_eq!(last["changes"].as_array().unwrap().len(), 1);
    assert!(last["next_offset"].is_null());
    let (s, v) = call(w.addr, &format!("{diff}&limit=0"), Some("reader")).await;
    assert_eq!((s, code(&v)), (400, "invalid_page"));
    gw.stop().await.unwrap();
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_memory_pool_answers_503_and_the_worker_lives_on() {
    let mut f = Fixture::new(1);
    f.config.worker.query_memory = 1024;
    let dir = tempfile::tempdir().unwrap();
    let w = f.worker(&dir.path().join("store"), None).await;
    let gw = f.gateway().await;
    let events: Vec<Value> = (0..50).map(|i| event(&format!("MEM-{i}"))).collect();
    let (s, _) = post(gw.addr, Some(TOKEN), ndjson(&events)).await;
    assert_eq!(s, 200);
    let q = "/v1/windows?from=2024-06-01&to=2024-06-30&group_by=commune,procedure,agency";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut s, mut v) = (0, Value::Null);
    while Instant::now() < deadline {
        (s, v) = call(w.addr, q, None).await;
        if s == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!((s, code(&v)), (503, "query_too_large"), "{v}");
    let (s, _) = call(w.addr, "/healthz", None).await;
    assert_eq!(s, 200);
    gw.stop().await.unwrap();
    w.stop().await.unwrap();
}
