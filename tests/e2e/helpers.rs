//! Shared helpers: requests to a gateway, canonical records.

use serde_json::{Value, json};
use std::time::Duration;

pub use dvc_pulse_devkit::fixture::{Fixture, Record, TOKEN, read_topic};

/// POSTs `body` to the gateway at `addr`.
pub async fn post(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("http://{addr}/v1/dossiers"))
        .body(body)
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A valid canonical record with id `id`.
pub fn event(id: &str) -> Value {
    json!({
        "dossier_id": id,
        "procedure_code": "1001193",
        "procedure_name": "Đăng ky\u{301} khai sinh",
        "locality_code": "22738",
        "channel": "online",
        "status": "received",
        "received_at": "05/06/2024 08:30",
        "updated_at": "2024-06-05T01:30:00Z"
    })
}

/// NDJSON of the given values.
pub fn ndjson(items: &[Value]) -> String {
    items.iter().map(|v| v.to_string() + "\n").collect()
}

/// Reads a topic with the defaults tests use.
pub fn read(f: &Fixture, topic: &str, min: usize) -> Vec<Record> {
    read_topic(
        &f.config.kafka.bootstrap_servers,
        topic,
        min,
        Duration::from_millis(700),
        Duration::from_secs(30),
    )
}

/// The Phan Rang annex fixture and a messy scenario that should reproduce it.
pub fn golden() -> (
    Vec<dvc_pulse_devkit::fixture::ReportRow>,
    dvc_pulse_devkit::golden::Scenario,
) {
    use dvc_pulse_devkit::golden::{TargetRow, scenario};
    let rows = dvc_pulse_devkit::fixture::phan_rang();
    let target: Vec<TargetRow> = rows
        .iter()
        .map(|r| TargetRow {
            service: r.service_id.clone(),
            total: r.total,
            online: r.online,
        })
        .collect();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let s = scenario(
        &target,
        d("2024-06-05"),
        d("2024-07-05"),
        "582",
        "586",
        &dvc_pulse_model::Reference::embedded(),
        7,
    );
    (rows, s)
}

/// The golden annex CSV, byte for byte.
pub fn golden_csv() -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/golden/phan-rang-thap-cham_2024-06-05_2024-07-05.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Writes `lines` as `dir/export.ndjson`.
pub fn write_lines(dir: &std::path::Path, lines: &[Vec<u8>]) -> std::path::PathBuf {
    let path = dir.join("export.ndjson");
    let mut body = Vec::new();
    for l in lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    std::fs::write(&path, body).unwrap();
    path
}

/// Imports `lines` through the importer of `f` (500 per transaction).
pub async fn import_lines(f: &Fixture, dir: &std::path::Path, lines: &[Vec<u8>]) {
    let path = write_lines(dir, lines);
    let opts = dvc_pulse_ingest::import::ImportOptions {
        batch_size: 500,
        skip_before: 0,
    };
    dvc_pulse_app::import::run(&f.config, &path, &opts, false)
        .await
        .unwrap();
}

/// A program started on a port just found free, once `ready(port)` says that it (and not
/// some other process) answers there. The kernel may hand a port out again as soon as
/// the probe that found it free lets it go, to a broker or a worker of a test running
/// alongside: a program that exits before it is ready is started again on a new port,
/// up to three times. `spawn(port)` starts it; `what` names it in a failure.
pub async fn spawn_on_free_port<F: std::future::Future<Output = bool>>(
    what: &str,
    mut spawn: impl FnMut(u16) -> std::process::Child,
    ready: impl Fn(u16) -> F,
    timeout: Duration,
) -> (std::process::Child, u16) {
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = spawn(port);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if child.try_wait().expect("the child's status").is_some() {
                break;
            }
            if ready(port).await {
                return (child, port);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not answer on port {port} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("{what} exited before answering, three times (is it installed and working?)")
}

/// A program that exits before it answers (as one whose port was taken would) is
/// started again on a new port; the next, a real HTTP server, is the one returned.
#[tokio::test]
async fn a_program_that_exits_before_it_answers_is_started_again() {
    let mut ports = Vec::new();
    let spawn = |port: u16| {
        ports.push(port);
        let mut cmd =
            std::process::Command::new(if ports.len() == 1 { "false" } else { "python3" });
        if ports.len() > 1 {
            cmd.args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ]);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("false and python3")
    };
    let ready = |port: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let (mut child, port) =
        spawn_on_free_port("http.server", spawn, ready, Duration::from_secs(20)).await;
    assert!(child.try_wait().unwrap().is_none(), "the server runs");
    // Twice, or three times should the server's own port be taken meanwhile.
    assert!(ports.len() >= 2, "started again: {ports:?}");
    assert_eq!(Some(&port), ports.last());
    child.kill().unwrap();
    child.wait().unwrap();
}
