//! Any bytes into the body splitter and the record parser: no panic, and every accepted
//! event's canonical form parses back to itself.
#![no_main]

use chrono::TimeZone;
use dvc_pulse_model::{Reference, Validator, ValidatorConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(Arc::new(Reference::embedded()), ValidatorConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    let now = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    for (_, raw) in dvc_pulse_model::parse::split_body(data) {
        if let Ok(e) = validator().parse_record(&raw, now) {
            let again = validator().parse_record(&e.to_canonical_json(), now).expect("canonical form parses");
            assert_eq!(again, e);
        }
    }
});
