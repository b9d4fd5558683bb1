//! The built-in page in a real browser: headless Chromium driven over WebDriver
//! (Debian's chromium and chromium-driver). It picks the Phan Rang report period and
//! locality, shows the annex rows, downloads the CSV (equal to the API's), turns a row
//! red when a service falls below 50%, and leaves a screenshot in
//! `$CARGO_TARGET_DIR/test-artefacts/`.

use crate::helpers::*;
use base64::Engine;
use chrono::{DateTime, Utc};
use dvc_pulse_ingest::gateway::Clock;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A chromedriver process with one headless Chromium session.
struct Driver {
    base: String,
    session: String,
    http: reqwest::Client,
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(downloads: &Path) -> Driver {
        let http = reqwest::Client::new();
        let spawn = |port: u16| {
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian package chromium-driver) must be installed: tests/run installs it")
        };
        // Ready when its status says so (another server on the port would not).
        let ready = |port: u16| {
            let status = http.get(format!("http://127.0.0.1:{port}/status")).send();
            async move {
                let Ok(r) = status.await else { return false };
                r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
            }
        };
        let (child, port) =
            spawn_on_free_port("chromedriver", spawn, ready, Duration::from_secs(20)).await;
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1800", "--lang=vi-VN"],
                "prefs": { "download.default_directory": downloads.display().to_string(),
                           "download.prompt_for_download": false }
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let d = Driver {
            base,
            session,
            http,
            child,
        };
        // Headless Chromium downloads only where told to.
        d.cmd(
            "chromium/send_command",
            json!({ "cmd": "Page.setDownloadBehavior",
                    "params": { "behavior": "allow", "downloadPath": downloads.display().to_string() } }),
        )
        .await;
        d
    }

    async fn cmd(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn exec(&self, script: &str) -> Value {
        self.cmd("execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    async fn click(&self, css: &str) {
        let e = self
            .cmd("element", json!({ "using": "css selector", "value": css }))
            .await;
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        self.cmd(&format!("element/{id}/click"), json!({})).await;
    }

    /// Waits until `script` returns something other than null/false.
    async fn until(&self, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.exec(script).await;
            if !(v.is_null() || v == false) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {script}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, to: &Path) {
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
        eprintln!("screenshot: {}", to.display());
    }
}

/// Clicks "Xem" and waits for the page to render the answer.
async fn show(d: &Driver) {
    let before = d.exec("return document.body.dataset.ready || ''").await;
    d.click("#show").await;
    d.until(&format!(
        "const r = document.body.dataset.ready; return r && r !== {before} ? r : null"
    ))
    .await;
}

fn artefacts() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(target).join("test-artefacts")
}

const TABLE_ROWS: &str = "return [...document.querySelectorAll('#annex tbody tr')].map(tr => \
    [tr.className, ...[...tr.cells].map(td => td.textContent)])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium() {
    let (_, s) = golden();
    let f = Fixture::new(2);
    let dir = tempfile::tempdir().unwrap();
    let t: DateTime<Utc> = "2024-09-01T03:00:00Z".parse().unwrap();
    let clock: Clock = Arc::new(move || t);
    let w = f.worker(&dir.path().join("ckpt"), Some(clock)).await;
    import_lines(&f, dir.path(), &s.lines).await;
    let api = format!(
        "http://{}/v1/windows?from=2024-06-05&to=2024-07-05&layout=annex&locality=582&services=DA06-01..DA06-15",
        w.addr
    );
    let golden = golden_csv();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{api}&format=csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        != golden
    {
        assert!(Instant::now() < deadline, "the worker never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let d = Driver::start(&downloads).await;
    d.cmd("url", json!({ "url": format!("http://{}/", w.addr) }))
        .await;
    d.until("return document.body.dataset.ready || null").await;
    assert_eq!(
        d.exec("return document.title").await,
        "dvc-pulse · Tỷ lệ hồ sơ trực tuyến"
    );
    // The report period 05/6 – 05/7/2024 as custom dates, Ninh Thuận (pre-2025), then
    // Phan Rang - Tháp Chàm from the list the page loads.
    d.exec(
        "const $ = id => document.getElementById(id); \
         $('mode').value = 'custom'; $('from').value = '2024-06-05'; $('to').value = '2024-07-05'; \
         $('services').value = 'DA06-01..DA06-15'; \
         $('province').value = '58'; $('province').dispatchEvent(new Event('change'));",
    )
    .await;
    d.until(
        "return [...document.getElementById('unit').options].some(o => o.value === '582') || null",
    )
    .await;
    d.exec("document.getElementById('unit').value = '582'")
        .await;
    show(&d).await;

    let shown = d.exec(TABLE_ROWS).await;
    let shown: Vec<Vec<String>> = serde_json::from_value(shown).unwrap();
    let expected: Vec<Vec<String>> = {
        let mut r = csv::Reader::from_reader(golden.as_bytes());
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect()
    };
    let cells: Vec<Vec<String>> = shown.iter().map(|r| r[1..].to_vec()).collect();
    assert_eq!(cells, expected, "the page shows the annex");
    assert!(
        shown.iter().all(|r| r[0] != "low"),
        "no Phan Rang service is below 50%"
    );
    assert_eq!(
        d.exec("return document.getElementById('share').textContent")
            .await,
        "100,0%"
    );

    // The CSV the page downloads is the API's, byte for byte.
    d.click("#csv").await;
    let file = downloads.join("dvc-pulse_annex_582_2024-06-05_2024-07-05.csv");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "no download in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downloaded = std::fs::read(&file).unwrap();
    let from_api = reqwest::get(format!("{api}&format=csv"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded, from_api.to_vec());
    assert_eq!(downloaded, golden.as_bytes());

    // Three in-person dossiers of the first service: it is now at 0% and shown in red.
    let gw = f.gateway().await;
    let batch: Vec<Value> = (0..3)
        .map(|i| {
            let mut e = event(&format!("CMND-{i}"));
            e["procedure_code"] = "DA06-01".into();
            e["channel"] = "in_person".into();
            e["received_at"] = "2024-06-21T10:00:00+07:00".into();
            e["updated_at"] = "2024-06-21T10:00:00+07:00".into();
            e
        })
        .collect();
    let (status, body) = post(gw.addr, Some(TOKEN), ndjson(&batch)).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        show(&d).await;
        let rows: Vec<Vec<String>> = serde_json::from_value(d.exec(TABLE_ROWS).await).unwrap();
        if rows[0][5] == "3" || Instant::now() > deadline {
            assert_eq!(
                rows[0],
                [
                    "low",
                    "1",
                    &rows[0][2],
                    "Đã kết nối",
                    "Công an",
                    "3",
                    "0",
                    "0%"
                ]
            );
            assert!(rows[1..].iter().all(|r| r[0] != "low"));
            break;
        }
    }
    // 13 of 14 services with dossiers are above 50%: the 70% target is met.
    assert_eq!(
        d.exec("const e = document.getElementById('share'); return [e.textContent, e.className]")
            .await,
        json!(["92,9%", "pass"])
    );
    // The chart of one service's online rate over time.
    d.exec(
        "delete document.getElementById('chart').dataset.points; \
         const s = document.getElementById('chart-service'); s.value = 'DA06-11'; \
         s.dispatchEvent(new Event('change'));",
    )
    .await;
    let points = d
        .until(
            "const n = +document.getElementById('chart').dataset.points; return n > 0 ? n : null",
        )
        .await;
    let series: Value = reqwest::get(format!(
        "http://{}/v1/windows/daily?from=2024-04-07&to=2024-07-05&locality=582&group_by=service",
        w.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let expected_points = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["service_id"] == "DA06-11")
        .count();
    assert!(expected_points > 0);
    assert_eq!(
        points, expected_points,
        "one point per window end with dossiers"
    );
    assert!(
        d.exec("return document.querySelector('#chart polyline') !== null")
            .await
            .as_bool()
            .unwrap()
    );
    d.screenshot(&artefacts().join("browser-page.png")).await;
    let _ = d
        .http
        .delete(format!("{}/session/{}", d.base, d.session))
        .send()
        .await;
    w.stop().await.unwrap();
}
