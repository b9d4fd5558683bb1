//! What a partition learnt when: one revision per version read, stamped with its Kafka
//! ingestion time. Windows "as of" a moment are the live buckets minus the revisions
//! after it, so a report can be regenerated exactly after late data changed the past.
//!
//! Revisions are kept for a retention (`history_days`), counted back from the newest
//! ingestion time; older ones are folded into the state and `floor_ms` says so.

use crate::fact::{Measure, NO_DAY, day_date, day_number};
use crate::query::WindowQuery;
use crate::state::{BucketKey, Counts, Entry, PartitionState};
use chrono::{DateTime, NaiveDate, Utc};
use dvc_pulse_model::Channel;
use dvc_pulse_model::event::{format_ts, ict};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};

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
        [
            Change::New,
            Change::Corrected,
            Change::Duplicate,
            Change::Stale,
        ]
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

/// One version read between two moments that bears on a window, and why it changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeItem {
    /// Dossier id.
    pub dossier_id: String,
    /// `late` (a dossier first read after the earlier moment, received on or before its
    /// day), `new` (first read, received later), `corrected` (a newer version replaced the
    /// one held), `duplicate` (identical redelivery, no effect), `stale` (an older version
    /// arrived after a newer one, no effect).
    pub reason: &'static str,
    /// Ingestion time (Kafka timestamp).
    pub ingested_at: String,
    /// Partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Procedure code as sent.
    pub procedure_code: String,
    /// Locality code as sent.
    pub locality_code: String,
    /// Day received, if received.
    pub received_on: Option<NaiveDate>,
    /// Channel.
    pub channel: &'static str,
    /// Status of the version read.
    pub status: &'static str,
    /// Status held before, for corrections, duplicates and stale versions.
    pub previous_status: Option<&'static str>,
    /// Received in the window before → after (`-1`, `0`, `+1`).
    pub received_delta: i64,
    /// Online in the window before → after.
    pub online_delta: i64,
}

/// Whether a measure counts within the window (flows) or up to its end (backlogs).
fn in_window(m: Measure, day: i32, from: i32, to: i32) -> bool {
    match m {
        Measure::PendingOpen
        | Measure::PendingClose
        | Measure::OverdueOpen
        | Measure::OverdueClose => day <= to,
        _ => day >= from && day <= to,
    }
}

/// Formats an ingestion time in ms as the APIs write times.
pub fn format_ms(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    format_ts(&t.with_timezone(&ict()))
}

impl PartitionState {
    /// The versions read in `(a_ms, b_ms]` that bear on window `q`, restricted to the
    /// locality codes in `under` when given.
    pub fn changes_between(
        &self,
        partition: i32,
        a_ms: i64,
        b_ms: i64,
        q: &WindowQuery,
        under: Option<&HashSet<String>>,
    ) -> Vec<ChangeItem> {
        let (from, to) = (day_number(q.from), day_number(q.to));
        let a_day = day_number(
            DateTime::<Utc>::from_timestamp_millis(a_ms)
                .unwrap_or_default()
                .with_timezone(&ict())
                .date_naive(),
        );
        let status = |e: &Entry| PartitionState::status_of(e.status).as_str();
        let mut out = Vec::new();
        for r in self.history.after(a_ms).take_while(|r| r.at_ms <= b_ms) {
            let place_ok =
                |e: &Entry| under.is_none_or(|u| u.contains(self.localities.name(e.locality)));
            if !place_ok(&r.new) && !r.old.as_ref().is_some_and(place_ok) {
                continue;
            }
            // Net effect on the window per (bucket, measure); ignored versions are judged
            // by what they would have counted.
            let mut net: HashMap<(BucketKey, u8), i64> = HashMap::new();
            let mut touch = |k: BucketKey, m: Measure, sign: i64| {
                if place_ok_key(self, under, k.2) && in_window(m, k.0, from, to) {
                    *net.entry((k, m as u8)).or_default() += sign;
                }
            };
            if r.change.applied() {
                r.deltas(&mut touch);
            } else if r.new.days.received != NO_DAY {
                let e = r.new;
                e.days
                    .deltas(|d, m| touch((d, e.procedure, e.locality, e.agency), m, 1));
            }
            net.retain(|_, v| *v != 0);
            if net.is_empty() {
                continue;
            }
            let delta = |m: Measure| {
                if !r.change.applied() {
                    return 0;
                }
                net.iter()
                    .filter(|((_, mm), _)| *mm == m as u8)
                    .map(|(_, v)| v)
                    .sum()
            };
            let received = (r.new.days.received != NO_DAY).then(|| day_date(r.new.days.received));
            let reason = match r.change {
                Change::New if r.new.days.received <= a_day => "late",
                Change::New => "new",
                Change::Corrected => "corrected",
                Change::Duplicate => "duplicate",
                Change::Stale => "stale",
            };
            out.push(ChangeItem {
                dossier_id: r.dossier_id.to_string(),
                reason,
                ingested_at: format_ms(r.at_ms),
                partition,
                offset: r.offset,
                procedure_code: self.procedures.name(r.new.procedure).to_string(),
                locality_code: self.localities.name(r.new.locality).to_string(),
                received_on: received,
                channel: Channel::ALL[r.new.days.channel as usize].as_str(),
                status: status(&r.new),
                previous_status: r.old.as_ref().map(status),
                received_delta: delta(Measure::Received),
                online_delta: delta(Measure::Online),
            });
        }
        out
    }
}

fn place_ok_key(s: &PartitionState, under: Option<&HashSet<String>>, locality: u32) -> bool {
    under.is_none_or(|u| u.contains(s.localities.name(locality)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::Days;

    fn rev(at_ms: i64) -> Revision {
        let e = Entry {
            updated_us: at_ms,
            content: 0,
            procedure: 0,
            locality: 0,
            agency: 0,
            days: Days {
                received: 10,
                finished: NO_DAY,
                closed: NO_DAY,
                due: NO_DAY,
                channel: 0,
                on_time: false,
            },
            status: 2,
        };
        Revision {
            at_ms,
            offset: at_ms,
            dossier_id: format!("D{at_ms}").into(),
            change: Change::New,
            old: None,
            new: e,
        }
    }

    #[test]
    fn keeps_the_retention_and_says_where_it_starts() {
        let mut h = History::new(10);
        for at in [1, 5, 12, 14, 30] {
            h.push(rev(at));
        }
        // 30 - 10 = 20: revisions at 1..=14 were folded away.
        assert_eq!(h.len(), 1);
        assert_eq!(h.floor_ms, 14);
        assert_eq!(h.after(14).count(), 1);
        // Times never go back: a skewed clock is raised to the newest seen.
        h.push(rev(25));
        assert_eq!(h.revisions().map(|r| r.at_ms).collect::<Vec<_>>(), [30, 30]);
        assert_eq!(
            h.undo_after(29)
                .values()
                .map(|c| c[Measure::Received as usize])
                .sum::<i64>(),
            -2
        );
        assert!(h.undo_after(30).is_empty());
    }
}
