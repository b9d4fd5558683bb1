//! The crate layout holds: ingest and the two others (worker, store) never depend on each
//! other, the store never on the worker (the worker reads and writes through the store,
//! as the target layout has it), no production crate depends on the development kit,
//! and the graph has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each workspace crate under `services/` with the workspace crates it depends on
/// (`[dependencies]` only: what ships, not what tests use).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("../services");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&services).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_string();
        let deps = text
            .split("\n[")
            .find(|section| section.starts_with("dependencies]"))
            .map(|section| {
                section
                    .lines()
                    .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
                    .filter(|k| k.starts_with("dvc-pulse-"))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name, deps);
    }
    out
}

#[test]
fn ingest_stands_apart_and_the_store_never_uses_the_worker() {
    let g = graph();
    let apart = ["dvc-pulse-ingest", "dvc-pulse-worker", "dvc-pulse-store"];
    for a in apart {
        for b in apart {
            // The one edge the layout draws: the worker keeps its state in the store.
            if (a, b) == ("dvc-pulse-worker", "dvc-pulse-store") {
                continue;
            }
            assert!(!g[a].contains(b), "{a} depends on {b}");
        }
    }
    assert!(
        g["dvc-pulse-worker"].contains("dvc-pulse-store"),
        "the graph was read"
    );
}

#[test]
fn production_crates_never_use_the_devkit() {
    let g = graph();
    assert!(g.contains_key("dvc-pulse-devkit"), "{g:?}");
    for (name, deps) in &g {
        if name != "dvc-pulse" && name != "dvc-pulse-devkit" {
            assert!(
                !deps.contains("dvc-pulse-devkit"),
                "{name} depends on the devkit"
            );
        }
    }
}

#[test]
fn the_crate_graph_has_no_cycle() {
    let g = graph();
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>) {
        assert!(!path.iter().any(|p| p == n), "cycle: {path:?} -> {n}");
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            visit(d, g, path);
        }
        path.pop();
    }
    for n in g.keys() {
        visit(n, &g, &mut Vec::new());
    }
}
