//! The compose stack cannot start here (no Docker engine), so what can be checked is:
//! Debian's docker-compose accepts the file, every host path it mounts or builds from
//! exists, and the Dockerfile builds the binary the README runs.

use std::path::Path;
use std::process::Command;

#[test]
fn compose_file_is_valid_and_refers_only_to_files_that_exist() {
    let docker = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docker")
        .canonicalize()
        .unwrap();
    let out = Command::new("docker-compose")
        .args(["-f", "compose.yml", "config"])
        .env("DVC_PULSE_TOKEN_SHA256", "0".repeat(64))
        .env("DVC_PULSE_READ_TOKEN_SHA256", "1".repeat(64))
        .current_dir(&docker)
        .output()
        .expect("docker-compose must be installed (tests/run installs it)");
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = docker.parent().unwrap().display().to_string();
    let mut paths = 0;
    for line in config.lines().map(str::trim) {
        // Bind mounts "- /host:/container[:ro]" and build contexts under the repository.
        let host = line
            .strip_prefix("- ")
            .and_then(|m| m.split(':').next())
            .or_else(|| line.strip_prefix("context: "))
            .filter(|p| p.starts_with(&root));
        if let Some(p) = host {
            assert!(
                Path::new(p).exists(),
                "{p} is mounted or built from but does not exist"
            );
            paths += 1;
        }
        if let Some(f) = line.strip_prefix("dockerfile: ") {
            assert!(Path::new(&root).join(f).exists(), "{f} exists");
        }
    }
    assert!(paths >= 8, "{paths} host paths checked:\n{config}");
    // The workers' API wants a read token, and their ports are published on loopback only.
    assert_eq!(
        config
            .matches("DVC_PULSE__WORKER__READ_TOKEN_SHA256")
            .count(),
        3,
        "{config}"
    );
    assert_eq!(config.matches("- 127.0.0.1:808").count(), 3, "{config}");
    for service in [
        "kafka",
        "kafka-init",
        "gateway",
        "worker-1",
        "worker-2",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(
            config.contains(&format!("\n  {service}:\n")),
            "service {service} in the stack"
        );
    }
    let dockerfile = std::fs::read_to_string(docker.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("cargo build --release -p dvc-pulse"),
        "the Dockerfile builds the dvc-pulse binary"
    );
    let cli =
        std::fs::read_to_string(docker.parent().unwrap().join("services/cli/Cargo.toml")).unwrap();
    assert!(
        cli.contains("name = \"dvc-pulse\""),
        "the package the Dockerfile builds is the binary"
    );
}
