// Written for tests/e2e/reports.rs (uses its helpers); not yet run: see the issue notes.

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
        dvc_pulse_app::worker::serve(&cfg, Some(clock))
            .await
            .unwrap()
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
print(json.dumps(out))
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
