//! Helpers shared by the tests that run `dvc-pulse worker` processes.

#![allow(dead_code)]

use dvc_pulse_devkit::fixture::Fixture;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Consumer-group settings under which dead members leave the group quickly.
pub const FAST_GROUP: &str = "[kafka.properties]\n\"session.timeout.ms\" = \"1500\"\n\"heartbeat.interval.ms\" = \"250\"\n\"max.poll.interval.ms\" = \"3000\"\n";

/// Settings with a 6 s session: a paused member is dropped after it.
pub const SESSION_6S: &str = "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\"max.poll.interval.ms\" = \"10000\"\n";

/// Starts `dvc-pulse worker` on the fixture's topics and group, with its store at
/// `store`, group settings `group_toml`, extra `DVC_PULSE__…` variables, stderr to `log`.
pub fn spawn_worker(
    f: &Fixture,
    port: u16,
    store: &Path,
    log: &Path,
    group_toml: &str,
    env: &[(&str, &str)],
) -> Child {
    let c = &f.config;
    let config = store.with_extension("toml");
    std::fs::write(&config, group_toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
        .arg("--config")
        .arg(&config)
        .arg("worker")
        .env(
            "DVC_PULSE__KAFKA__BOOTSTRAP_SERVERS",
            &c.kafka.bootstrap_servers,
        )
        .env("DVC_PULSE__TOPICS__EVENTS", &c.topics.events)
        .env("DVC_PULSE__TOPICS__DEAD_LETTER", &c.topics.dead_letter)
        .env("DVC_PULSE__WORKER__GROUP_ID", &c.worker.group_id)
        .env("DVC_PULSE__WORKER__LISTEN", format!("127.0.0.1:{port}"))
        .env("DVC_PULSE__WORKER__STORE_URL", store)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .expect("worker starts")
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a JSON answer: status and body, `None` when nothing answers.
pub fn get(url: &str) -> Option<(u16, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    })
}

/// Waits for a child to exit, at most `secs`.
pub fn wait_exit(child: &mut Child, secs: u64) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The last 25 lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}
