//! The README's first command: `dvc-pulse demo` shows non-empty windows, serves the page,
//! keeps its terminal for the tally (logs go to a file), and stops cleanly on Ctrl-C.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_windows_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
        .arg("demo")
        .current_dir(dir.path())
        // Free ports, so the test runs beside anything on 8080/8081.
        .env("DVC_PULSE__INGEST__LISTEN", "127.0.0.1:0")
        .env("DVC_PULSE__WORKER__LISTEN", "127.0.0.1:0")
        // The demo's log file goes to the temporary directory.
        .env("TMPDIR", dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let page = loop {
        let line = lines.next().expect("demo prints its URLs").unwrap();
        if let Some(rest) = line.trim().strip_prefix("Web page") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep reading stdout so the demo never blocks on a full pipe.
    let tail = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let html = reqwest::get(&page).await.unwrap().text().await.unwrap();
    assert!(html.contains("<title>dvc-pulse"), "{html}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let total = loop {
        let v: Value = reqwest::get(format!("{page}v1/windows?group_by=service"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = v["totals"]["total"].as_i64().unwrap();
        if total > 0 || Instant::now() > deadline {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(total > 0, "the demo's windows stay empty");
    eprintln!("non-empty windows {:?} after start", started.elapsed());
    let annex = reqwest::get(format!(
        "{page}v1/windows?layout=annex&format=csv&header=vi"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(annex.starts_with("STT,Dịch vụ công trực tuyến,"), "{annex}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "demo exits cleanly on Ctrl-C: {exit:?}");
    let out = tail.join().unwrap();
    assert!(out.iter().any(|l| l.contains("stopping")), "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.contains(" events, ") && l.contains(" dossiers | ")),
        "the tally is on the terminal: {out:?}"
    );
    assert!(
        !out.iter()
            .any(|l| l.contains(" INFO ") || l.contains(" WARN ")),
        "log lines on the terminal: {out:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("dvc-pulse-demo.log")).expect("log file");
    assert!(log.contains(" INFO "), "the logs go to the file: {log}");
}
