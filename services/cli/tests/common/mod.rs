//! Helpers shared by the tests that run `dvc-pulse worker` processes.

#![allow(dead_code)]

use dvc_pulse_devkit::fixture::Fixture;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Consumer-group settings under which dead members leave the group quickly. Not under
/// 4 s: the embedded broker (librdkafka's mock) answers the first join of an empty group
/// after its `group.initial.rebalance.delay.ms` (3 s, fixed), and expires a member that
/// waits for that answer once its session runs out. With a session of 3 s or less,
/// nobody can join a group its dead members have left: seen with 1.5 s, a recovered
/// worker retried its join every 6 s for minutes.
pub const FAST_GROUP: &str = "[kafka.properties]\n\"session.timeout.ms\" = \"4000\"\n\"heartbeat.interval.ms\" = \"400\"\n\"max.poll.interval.ms\" = \"6000\"\n";

/// Settings with a 6 s session: a paused member is dropped after it.
pub const SESSION_6S: &str = "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n\"max.poll.interval.ms\" = \"10000\"\n";

/// Starts `dvc-pulse worker` on the fixture's topics and group, with its store at
/// `store`, group settings `group_toml`, extra `DVC_PULSE__…` variables, stderr to `log`;
/// returns it once its API listens, with the port. The kernel picks the port as the
/// worker binds it: a port picked beforehand and released could be taken by another
/// test's broker or client before the worker (or its restart) binds it.
pub fn spawn_worker(
    f: &Fixture,
    store: &Path,
    log: &Path,
    group_toml: &str,
    env: &[(&str, &str)],
) -> (Child, u16) {
    let c = &f.config;
    let config = store.with_extension("toml");
    std::fs::write(&config, group_toml).unwrap();
    let before = listening_ports(log).len();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
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
        .env("DVC_PULSE__WORKER__LISTEN", "127.0.0.1:0")
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
        .expect("worker starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(&port) = listening_ports(log).get(before) {
            return (child, port);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the worker exited ({status}) before listening:\n{}",
                tail(log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the worker does not listen after 60 s:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a log that contain `needle`, in order.
pub fn lines_with(log: &Path, needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The ports of the "worker API listening" lines of a log, in order.
fn listening_ports(log: &Path) -> Vec<u16> {
    lines_with(log, "worker API listening")
        .iter()
        .filter_map(|l| {
            let addr = l.split_whitespace().find_map(|w| w.strip_prefix("addr="))?;
            addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
        })
        .collect()
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
