//! Prometheus configuration and rules are code: checked and unit-tested with the real
//! `promtool` and `amtool` (Debian's prometheus and prometheus-alertmanager packages,
//! installed by tests/run). A missing tool fails these tests; it never skips them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn docker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker")
}

fn run(tool: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (tests/run installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

#[test]
fn prometheus_config_and_rules_are_valid() {
    let dir = docker().join("prometheus");
    let out = run("promtool", &["check", "config", "prometheus.yml"], &dir);
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    run("promtool", &["check", "rules", "rules/dvc-pulse.yml"], &dir);
}

#[test]
fn every_alert_fires_and_stays_quiet_as_its_unit_tests_say() {
    let dir = docker().join("prometheus");
    let out = run(
        "promtool",
        &["test", "rules", "tests/dvc-pulse.test.yml"],
        &dir,
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert of the rules file has a firing and a quiet case in the tests.
    let rules = std::fs::read_to_string(dir.join("rules/dvc-pulse.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("tests/dvc-pulse.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|c| c.starts_with(&format!("{name}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{name} has a quiet case"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels")),
            "{name} has a firing case"
        );
    }
}

#[test]
fn alertmanager_config_is_valid() {
    run(
        "amtool",
        &["check-config", "alertmanager/alertmanager.yml"],
        &docker(),
    );
}
