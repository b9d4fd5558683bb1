//! The JSON Schema and the Rust parser agree on every example in `schemas/examples/`:
//! valid examples pass both; each invalid example yields the reason its name starts
//! with, and the schema rejects it too exactly when the reason is structural.

use chrono::{TimeZone, Utc};
use dvc_pulse_model::{Reason, Reference, Validator, ValidatorConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(schemas().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no examples in {dir}");
    v
}

fn schema_accepts(validator: &jsonschema::Validator, raw: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(raw) else {
        return false;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    validator.is_valid(&value)
}

fn setup() -> (jsonschema::Validator, Validator) {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(schemas().join("dossier-event.schema.json")).unwrap(),
    )
    .unwrap();
    let js = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles");
    let parser = Validator::new(Arc::new(Reference::embedded()), ValidatorConfig::default());
    (js, parser)
}

#[test]
fn valid_examples_pass_schema_and_parser() {
    let (js, parser) = setup();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for path in files("examples/valid") {
        let raw = std::fs::read(&path).unwrap();
        assert!(
            schema_accepts(&js, &raw),
            "schema rejects {}",
            path.display()
        );
        let event = parser
            .parse_record(&raw, now)
            .unwrap_or_else(|r| panic!("parser rejects {}: {}", path.display(), r.rejection));
        // The canonical form is itself valid against the schema.
        assert!(
            schema_accepts(&js, &event.to_canonical_json()),
            "canonical form of {}",
            path.display()
        );
    }
}

#[test]
fn invalid_examples_yield_their_named_reason() {
    let (js, parser) = setup();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for path in files("examples/invalid") {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let code = stem.split('-').next().unwrap();
        let want =
            Reason::parse(code).unwrap_or_else(|| panic!("{stem}: {code} is not a reason code"));
        let raw = std::fs::read(&path).unwrap();
        let got = parser
            .parse_record(&raw, now)
            .expect_err(stem)
            .rejection
            .reason;
        assert_eq!(got, want, "{}", path.display());
        assert_eq!(
            schema_accepts(&js, &raw),
            !want.is_structural(),
            "{stem}: the schema should {} it",
            if want.is_structural() {
                "reject"
            } else {
                "accept (the rule is beyond JSON Schema)"
            }
        );
        seen.insert(want);
    }
    // Every reason the parser can give has an example (beyond_horizon is the worker's,
    // unknown_agency needs a DVCQG record, which the canonical schema does not describe).
    for r in Reason::ALL {
        if !matches!(r, Reason::BeyondHorizon | Reason::UnknownAgency) {
            assert!(seen.contains(&r), "no invalid example for {r}");
        }
    }
}
