//! What a partition learnt when: one revision per version read, stamped with its Kafka
//! ingestion time. Windows "as of" a moment are the live buckets minus the revisions
//! after it, so a report can be regenerated exactly after late data changed the past.
//!
//! Revisions are kept for a retention (`history_days`), counted back from the newest
//! ingestion time; older ones are folded into the state and `floor_ms` says so.

use crate::fact::{Measure, NO_DAY};
use crate::state::{BucketKey, Counts, Entry};
use std::collections::{HashMap, VecDeque};

/// What a version did to the dossier it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Change {
    /// First version of a dossier the state did not know.
    New,
    /// A newer version of a known dossier: it replaced the old one.
    Corrected,
    /// Byte-identical to the version held: ignored.
    Duplicate,
    /// Older than the version held: ignored.
    Stale,
}

impl Change {
    /// Stable name in APIs.
    pub fn name(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Corrected => "corrected",
            Change::Duplicate => "duplicate",
            Change::Stale => "stale",
        }
    }

    /// From its `repr` value (checkpoints).
    pub fn from_u8(n: u8) -> Option<Change> {
        [Change::New, Change::Corrected, Change::Duplicate, Change::Stale]
            .get(n as usize)
            .copied()
    }

    /// Whether it changed counts.
    pub fn applied(self) -> bool {
        matches!(self, Change::New | Change::Corrected)
    }
}

/// One version read from the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Ingestion time (Kafka timestamp, ms), made non-decreasing within the partition.
    pub at_ms: i64,
    /// Kafka offset.
    pub offset: i64,
    /// Dossier id as sent.
    pub dossier_id: Box<str>,
    /// What it did.
    pub change: Change,
    /// The version held before (for `Corrected`, `Duplicate`, `Stale`).
    pub old: Option<Entry>,
    /// The version read.
    pub new: Entry,
}

impl Revision {
    /// Its effect on the buckets: `new - old` when applied, nothing otherwise.
    pub fn deltas(&self, mut f: impl FnMut(BucketKey, Measure, i64)) {
        if !self.change.applied() {
            return;
        }
        let mut add = |e: &Entry, sign: i64| {
            if e.days.received != NO_DAY {
                e.days
                    .deltas(|day, m| f((day, e.procedure, e.locality, e.agency), m, sign));
            }
        };
        if let Some(old) = &self.old {
            add(old, -1);
        }
        add(&self.new, 1);
    }
}

/// A partition's revisions within the retention.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub(crate) revisions: VecDeque<Revision>,
    /// Retention in ms; 0 keeps nothing.
    pub retention_ms: i64,
    /// Revisions at or before this moment were folded away: no `as_of` before it.
    pub floor_ms: i64,
    /// Newest ingestion time seen (ms; 0 when none).
    pub last_ms: i64,
}

impl History {
    /// An empty history keeping `retention_ms`.
    pub fn new(retention_ms: i64) -> Self {
        History {
            retention_ms,
            ..Default::default()
        }
    }

    /// Records a revision; `at_ms` is raised to the newest seen so the log stays ordered.
    pub(crate) fn push(&mut self, mut r: Revision) {
        r.at_ms = r.at_ms.max(self.last_ms);
        self.last_ms = r.at_ms;
        self.revisions.push_back(r);
        self.prune();
    }

    fn prune(&mut self) {
        let keep_from = self.last_ms - self.retention_ms;
        while let Some(r) = self.revisions.front() {
            if r.at_ms >= keep_from && self.retention_ms > 0 {
                break;
            }
            self.floor_ms = self.floor_ms.max(r.at_ms);
            self.revisions.pop_front();
        }
    }

    /// Revisions in order.
    pub fn revisions(&self) -> impl Iterator<Item = &Revision> {
        self.revisions.iter()
    }

    /// Number of revisions kept.
    pub fn len(&self) -> usize {
        self.revisions.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    /// Revisions read after `as_of_ms`, in order (a suffix of the log).
    pub fn after(&self, as_of_ms: i64) -> impl Iterator<Item = &Revision> {
        let start = self.revisions.partition_point(|r| r.at_ms <= as_of_ms);
        self.revisions.range(start..)
    }

    /// Bucket rows that take the live buckets back to `as_of_ms`: the negated effect of
    /// every revision after it.
    pub fn undo_after(&self, as_of_ms: i64) -> HashMap<BucketKey, Counts> {
        let mut out: HashMap<BucketKey, Counts> = HashMap::new();
        for r in self.after(as_of_ms) {
            r.deltas(|k, m, sign| {
                out.entry(k).or_insert([0; Measure::ALL.len()])[m as usize] -= sign;
            });
        }
        out.retain(|_, c| c.iter().any(|&x| x != 0));
        out
    }
}
