//! Types of configuration values shared by every section: durations (one format
//! everywhere) and secrets (never printed).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Durations in configuration: `"30s"`, `"10m"`, `"1h 30m"`, `"500ms"` (humantime), or a
/// plain number of seconds. Use as `#[serde(with = "dvc_pulse_model::settings::duration")]`.
pub mod duration {
    use super::*;
    use std::time::Duration;

    /// Writes the humantime form, e.g. `"10m"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads a number of seconds or a humantime text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(t) => parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!("bad duration {t:?}: use e.g. 30s, 10m, 2h"))
            }),
        }
    }

    /// Parses a number of seconds or a humantime text.
    pub fn parse(t: &str) -> Option<Duration> {
        let t = t.trim();
        match t.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(t).ok(),
        }
    }
}

/// A secret configuration value (a password, a key): kept as given, but printed,
/// logged and serialised as `***`. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_in_every_accepted_form() {
        for (text, secs) in [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7200),
            ("1h 30m", 5400),
            ("45", 45),
        ] {
            assert_eq!(
                duration::parse(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(duration::parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration::parse("soon"), None);
    }

    #[test]
    fn secrets_never_show() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
    }
}
