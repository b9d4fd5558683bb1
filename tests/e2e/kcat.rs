//! An independent Kafka client (Debian's kcat) reads what the gateway wrote.

use crate::helpers::*;
use std::process::Command;

fn kcat() -> &'static str {
    let ok = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "kcat is required (Debian package kcat; tests/run installs it)"
    );
    "kcat"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_both_topics() {
    let f = Fixture::new(2);
    let gw = f.gateway().await;
    let mut bad = event("K-bad");
    bad["channel"] = serde_json::json!("fax");
    let (s, _) = post(
        gw.addr,
        Some(TOKEN),
        ndjson(&[event("K-1"), event("K-2"), bad]),
    )
    .await;
    assert_eq!(s, 200);
    let bootstrap = &f.config.kafka.bootstrap_servers;
    let run = |topic: &str| {
        let out = Command::new(kcat())
            .args([
                "-C",
                "-b",
                bootstrap,
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-X",
                "isolation.level=read_committed",
                "-f",
                "%k\t%h\t%s\n",
            ])
            .output()
            .expect("kcat runs");
        assert!(
            out.status.success(),
            "kcat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let events = run(&f.config.topics.events);
    let mut keys: Vec<&str> = events
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["K-1", "K-2"]);
    assert!(
        events.contains("\"received_at\":\"2024-06-05T08:30:00+07:00\""),
        "{events}"
    );
    let dlq = run(&f.config.topics.dead_letter);
    let line = dlq.lines().next().expect("one dead letter");
    let mut parts = line.splitn(3, '\t');
    assert_eq!(parts.next(), Some("K-bad"));
    assert_eq!(parts.next(), Some("reason=unknown_channel"));
    let body: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
    assert_eq!(body["reason"], "unknown_channel");
    assert_eq!(body["field"], "channel");
    gw.stop().await.unwrap();
}
