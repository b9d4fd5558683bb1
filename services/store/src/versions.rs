//! The moment of each version, for `as_of`.
//!
//! Every commit of the store carries `dvcPulse` metadata whose `at` (ms) is later than the
//! previous version's (see [`crate::table::Table::commit`]), so versions are ordered by
//! `at` and a moment names one version: the newest whose `at` is not after it. Versions
//! written by other tools (vacuum, the creation) have no `at` of their own and take their
//! commit timestamp. Lookups read single commit files and are cached.

use crate::error::StoreError;
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the store's metadata in a commit's `commitInfo`.
pub const META_KEY: &str = "dvcPulse";

/// What a commit says of itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitMeta {
    /// Its moment (ms since the epoch): strictly later than the previous version's.
    pub at: i64,
    /// Newest `updated_at` reflected by the table after this commit (µs; 0 when unknown).
    #[serde(default)]
    pub newest_event_us: i64,
    /// Partitions of the events topic.
    #[serde(default)]
    pub partitions: i32,
}

impl CommitMeta {
    /// This commit's metadata, following `previous`: `at` later than the previous
    /// version's, newest event and partition count carried over when larger.
    pub fn after(&self, previous: &CommitMeta) -> CommitMeta {
        let now = chrono::Utc::now().timestamp_millis();
        CommitMeta {
            at: now.max(self.at).max(previous.at + 1),
            newest_event_us: self.newest_event_us.max(previous.newest_event_us),
            partitions: if self.partitions > 0 {
                self.partitions
            } else {
                previous.partitions
            },
        }
    }
}

/// Reads the metadata of `version` (from its commit file).
pub async fn read_meta(table: &DeltaTable, version: i64) -> Result<CommitMeta, StoreError> {
    let bytes = table
        .log_store()
        .read_commit_entry(version as u64)
        .await
        .map_err(StoreError::delta("log"))?;
    let Some(bytes) = bytes else {
        return Ok(CommitMeta::default());
    };
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let Some(info) = v.get("commitInfo") else {
            continue;
        };
        if let Some(m) = info.get(META_KEY)
            && let Ok(m) = serde_json::from_value::<CommitMeta>(m.clone())
        {
            return Ok(m);
        }
        let at = info.get("timestamp").and_then(|t| t.as_i64()).unwrap_or(0);
        return Ok(CommitMeta {
            at,
            ..CommitMeta::default()
        });
    }
    Ok(CommitMeta::default())
}

/// A cache of version metadata, and `as_of` lookups over it.
#[derive(Debug, Default)]
pub struct Versions {
    metas: BTreeMap<i64, CommitMeta>,
}

impl Versions {
    /// The metadata of `version`.
    pub async fn meta(
        &mut self,
        table: &DeltaTable,
        version: i64,
    ) -> Result<CommitMeta, StoreError> {
        if let Some(m) = self.metas.get(&version) {
            return Ok(*m);
        }
        let m = read_meta(table, version).await?;
        if self.metas.len() > 100_000 {
            self.metas.clear();
        }
        self.metas.insert(version, m);
        Ok(m)
    }

    /// The newest version in `earliest..=latest` whose `at` is not after `at_ms`; `None`
    /// when even `earliest` is later.
    pub async fn resolve(
        &mut self,
        table: &DeltaTable,
        earliest: i64,
        latest: i64,
        at_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        if self.meta(table, earliest).await?.at > at_ms {
            return Ok(None);
        }
        let (mut lo, mut hi) = (earliest, latest);
        // Invariant: at(lo) <= at_ms; the answer is in lo..=hi.
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if self.meta(table, mid).await?.at <= at_ms {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(Some(lo))
    }
}

/// The earliest version whose commit file is still in the log.
pub async fn earliest_version(table: &DeltaTable) -> Result<i64, StoreError> {
    use futures::StreamExt;
    let store = table.log_store();
    let prefix = store.log_path().clone();
    let mut files = store.object_store(None).list(Some(&prefix));
    let mut min: Option<i64> = None;
    while let Some(meta) = files.next().await {
        let meta = meta.map_err(|e| StoreError::Delta {
            table: "log",
            source: e.into(),
        })?;
        let name = meta.location.filename().unwrap_or_default();
        if let Some(v) = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<i64>().ok())
        {
            min = Some(min.map_or(v, |m: i64| m.min(v)));
        }
    }
    Ok(min.unwrap_or(0))
}
