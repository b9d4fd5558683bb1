//! The worker's /metrics against the real thing: `promtool check metrics` on a scrape,
//! and a real Prometheus scraping a worker fed by the simulator, with the dvc-pulse rules
//! loaded: a service pushed below 50% online appears in `/api/v1/alerts`.

use crate::helpers::*;
use chrono::{Duration as Days, Utc};
use dvc_pulse_devkit::fixture::{canonical_stream, produce};
use dvc_pulse_model::event::ict;
use dvc_pulse_model::{Channel, DossierEvent, Status};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` dossiers of DA06-09 in a commune of Khánh Hòa received today, `online` of them online.
fn low_service(n: usize, online: usize) -> Vec<(String, Vec<u8>)> {
    let now = Utc::now().with_timezone(&ict()) - Days::hours(1);
    (0..n)
        .map(|i| {
            let e = DossierEvent {
                dossier_id: format!("LOW-{i}"),
                procedure_code: "DA06-09".into(),
                procedure_name: None,
                locality_code: "22738".into(),
                agency: None,
                channel: if i < online {
                    Channel::Online
                } else {
                    Channel::InPerson
                },
                status: Status::Processing,
                received_at: Some(now),
                due_at: Some(now + Days::days(10)),
                finished_at: None,
                updated_at: now,
                event_id: None,
                source: None,
            };
            (e.dossier_id.clone(), e.to_canonical_json())
        })
        .collect()
}

async fn text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn promtool_check_metrics(scrape: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (tests/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
}

/// A Prometheus scraping `target` every second with the dvc-pulse rules, once it is ready.
async fn start_prometheus(dir: &Path, target: std::net::SocketAddr) -> (Killed, u16) {
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/prometheus/rules/dvc-pulse.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: dvc-pulse-worker\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let spawn = |port: u16| {
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus must be installed (tests/run installs it)")
    };
    // Ready when its readiness endpoint says so (another server on the port would not).
    let ready = |port: u16| async move {
        let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/-/ready")).await else {
            return false;
        };
        r.status().is_success() && r.text().await.is_ok_and(|t| t.contains("Prometheus"))
    };
    let (child, port) =
        spawn_on_free_port("prometheus", spawn, ready, Duration::from_secs(60)).await;
    (Killed(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_worker_and_sees_a_service_below_50() {
    let mut f = Fixture::new(3);
    f.config.worker.metrics.refresh = Duration::from_millis(200);
    let dir = tempfile::tempdir().unwrap();
    let w = f.worker(&dir.path().join("ckpt"), None).await;
    let today = Utc::now().with_timezone(&ict()).date_naive();
    // Simulated traffic in Hồ Chí Minh City; the low service alone in Khánh Hòa.
    let sim = dvc_pulse_devkit::SimConfig {
        seed: 2,
        start: today - Days::days(29),
        days: 29,
        localities: vec!["79".into()],
        scale: 0.3,
        ..Default::default()
    };
    let mut messages = canonical_stream(&sim, Utc::now());
    messages.extend(low_service(40, 10));
    let (b, t) = (
        f.config.kafka.bootstrap_servers.clone(),
        f.config.topics.events.clone(),
    );
    tokio::task::spawn_blocking(move || produce(&b, &t, &messages))
        .await
        .unwrap();

    let url = format!("http://{}/metrics", w.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scrape = String::new();
    while Instant::now() < deadline {
        scrape = text(&url).await;
        if scrape.lines().any(|l| {
            l.contains("service=\"DA06-09\"")
                && l.contains("province=\"56\"")
                && l.contains("channel=\"in_person\"")
                && l.ends_with(" 30")
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("dvc_pulse_window_received_dossiers{")
                && l.contains("service=\"DA06-09\"")
                && l.contains("province=\"56\"")
                && l.contains("channel=\"online\"")
                && l.ends_with(" 10")),
        "{scrape}"
    );
    assert!(scrape.contains("province_name=\"Tỉnh Khánh Hòa\""));
    assert!(scrape.contains("dvc_pulse_service_info{"));
    assert!(scrape.contains("dvc_pulse_alert_min_volume_dossiers 20"));
    assert!(scrape.contains("dvc_pulse_worker_consumed_messages_total"));
    promtool_check_metrics(&scrape);

    let (_prom, port) = start_prometheus(dir.path(), w.addr).await;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut alerts = Value::Null;
    let low = |a: &Value| {
        a["labels"]["alertname"] == "ServiceOnlineRateBelow50InProvince"
            && a["labels"]["service"] == "DA06-09"
            && a["labels"]["province"] == "56"
    };
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{api}/alerts")).await {
            if let Ok(v) = r.json::<Value>().await {
                alerts = v;
                if alerts["data"]["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(low))
                {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let list = alerts["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let alert = list.iter().find(|a| low(a)).unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        panic!("no alert for DA06-09: {alerts}\n{log}")
    });
    assert_eq!(alert["labels"]["service_name"], "Đăng ký biến động đất đai");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Tỉnh Khánh Hòa: dịch vụ Đăng ký biến động đất đai")
            && summary.contains("25%"),
        "{alert}"
    );
    // In Khánh Hòa only the service below 50% is alerted.
    let in_56 = |a: &&Value| {
        a["labels"]["alertname"] == "ServiceOnlineRateBelow50InProvince"
            && a["labels"]["province"] == "56"
    };
    assert!(list.iter().filter(in_56).all(low), "{alerts}");
    let q: Value = reqwest::get(format!(
        "{api}/query?query={}",
        encode("service_province:dvc_pulse_online_rate:ratio{service=\"DA06-09\",province=\"56\"}")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(q["data"]["result"][0]["value"][1], "0.25", "{q}");

    // Every panel query and template variable of every dashboard parses and returns data,
    // once Prometheus holds a few scrapes (rates need two samples in their range).
    let client = reqwest::Client::new();
    let scrapes = format!(
        "{api}/query?query={}",
        encode("count_over_time(up{job=\"dvc-pulse-worker\"}[1m])")
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let v: Value = client
            .get(&scrapes)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 5)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        for var in dashboard["templating"]["list"].as_array().unwrap() {
            let def = var["definition"].as_str().unwrap();
            let (metric, label) = def
                .trim_start_matches("label_values(")
                .trim_end_matches(')')
                .split_once(", ")
                .unwrap();
            let v: Value = client
                .get(format!(
                    "{api}/label/{label}/values?match[]={}",
                    encode(metric)
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(
                v["data"].as_array().is_some_and(|a| !a.is_empty()),
                "{file}: variable {def} has no values: {v}"
            );
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = substitute(target["expr"].as_str().unwrap());
                let v: Value = client
                    .get(format!("{api}/query?query={}", encode(&expr)))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(
                    v["status"], "success",
                    "{file}: {} — {expr}: {v}",
                    panel["title"]
                );
                assert!(
                    v["data"]["result"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty()),
                    "{file}: panel {} returns nothing for {expr}",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked} panel queries");
    w.stop().await.unwrap();
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.display().to_string(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        out.len(),
        3,
        "overview, service drill-down and pipeline dashboards"
    );
    out
}

/// Template variables as Grafana would fill them: "All" for multi-value ones, a service
/// with data for the drill-down's single service, a short rate interval.
fn substitute(expr: &str) -> String {
    expr.replace("=~\"$service\"", "=~\".*\"")
        .replace("=\"$service\"", "=\"DA06-09\"")
        .replace("$province", ".*")
        .replace("$agency", ".*")
        .replace("$__rate_interval", "30s")
}
