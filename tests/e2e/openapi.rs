//! Both services describe themselves at `/openapi.json` (OpenAPI 3.1, generated from the
//! handlers), and an independent fuzzer, Schemathesis, finds no server error, no
//! undocumented status or content type and no response outside the schema in either.

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;

/// Runs Schemathesis against `addr`'s document with `token`; a bounded number of
/// examples per operation, a fixed seed.
fn schemathesis(addr: std::net::SocketAddr, token: &str, name: &str) {
    let out = Command::new("schemathesis")
        .args([
            "run",
            &format!("http://{addr}/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis must be installed (tests/run installs it from PyPI)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis against the {name}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong_in_either_api() {
    let mut f = Fixture::new(2);
    f.config.worker.read_token_sha256 = vec![dvc_pulse_model::auth::hash_token("reader")];
    let dir = tempfile::tempdir().unwrap();
    let w = f.worker(&dir.path().join("store"), None).await;
    let gw = f.gateway().await;
    let events: Vec<Value> = (0..20).map(|i| event(&format!("OAS-{i}"))).collect();
    let (s, _) = post(gw.addr, Some(TOKEN), ndjson(&events)).await;
    assert_eq!(s, 200);
    for (addr, title) in [(gw.addr, "gateway"), (w.addr, "worker")] {
        let doc: Value = reqwest::get(format!("http://{addr}/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["openapi"], "3.1.0", "{title}");
        assert!(
            doc["paths"].as_object().unwrap().len() >= 4,
            "{title}: {doc}"
        );
    }
    let (g, wk) = (gw.addr, w.addr);
    tokio::task::spawn_blocking(move || {
        schemathesis(g, TOKEN, "gateway");
        schemathesis(wk, "reader", "worker");
    })
    .await
    .unwrap();
    gw.stop().await.unwrap();
    w.stop().await.unwrap();
}
