//! What a partition read, version by version: one [`Revision`] per version (new, corrected,
//! duplicate, stale) with the entries before and after. The store keeps them as the
//! `changes` table; a [`ChangeLog`] read back from it names what changed a window between
//! two moments.

use crate::fact::{Counter, NO_DAY, day_date, day_number};
use crate::query::WindowQuery;
use crate::state::{BucketCounts, BucketKey, Entry, FastMap, Names, PartitionState};
use chrono::{DateTime, NaiveDate, Utc};
use dvc_pulse_model::Channel;
use dvc_pulse_model::event::{format_ts, ict};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

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

    /// From its [`Change::name`] (the `changes` table).
    pub fn from_name(n: &str) -> Option<Change> {
        [
            Change::New,
            Change::Corrected,
            Change::Duplicate,
            Change::Stale,
        ]
        .into_iter()
        .find(|c| c.name() == n)
    }

    /// What applying a version did, as a change; `None` when it was beyond the horizon.
    pub fn of(outcome: crate::state::Outcome) -> Option<Change> {
        use crate::state::Outcome;
        match outcome {
            Outcome::Applied {
                replaced: false, ..
            } => Some(Change::New),
            Outcome::Applied { replaced: true, .. } => Some(Change::Corrected),
            Outcome::Duplicate => Some(Change::Duplicate),
            Outcome::Stale => Some(Change::Stale),
            Outcome::BeyondHorizon { .. } => None,
        }
    }

    /// Whether it changed counts.
    pub fn applied(self) -> bool {
        matches!(self, Change::New | Change::Corrected)
    }
}

/// One version read from the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Ingestion time (Kafka timestamp, ms).
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
    pub fn deltas(&self, f: impl FnMut(BucketKey, Counter, i64)) {
        if self.change.applied() {
            replacement_deltas(self.old.as_ref(), &self.new, f);
        }
    }
}

/// The bucket deltas of `new` replacing `old`: `new - old`.
pub fn replacement_deltas(
    old: Option<&Entry>,
    new: &Entry,
    mut f: impl FnMut(BucketKey, Counter, i64),
) {
    let mut add = |e: &Entry, sign: i64| {
        if e.days.received != NO_DAY {
            e.days
                .deltas(|day, m| f((day, e.procedure, e.locality, e.agency), m, sign));
        }
    };
    if let Some(old) = old {
        add(old, -1);
    }
    add(new, 1);
}

/// The bucket deltas of `new` replacing `old` (either may be absent), netted per bucket:
/// one row per bucket touched, so each is looked up once, and buckets whose deltas cancel
/// (a status change leaves the received day's counts as they were) are left out.
#[derive(Debug, Default)]
pub struct BucketDeltas {
    len: usize,
    /// At most four days per entry ([`crate::fact::Days::deltas`]), two entries.
    rows: [(BucketKey, BucketCounts); 8],
}

impl BucketDeltas {
    /// `new - old`.
    pub fn of(old: Option<&Entry>, new: Option<&Entry>) -> Self {
        let mut d = BucketDeltas::default();
        for (e, sign) in [(old, -1), (new, 1)] {
            let Some(e) = e.filter(|e| e.days.received != NO_DAY) else {
                continue;
            };
            e.days.deltas(|day, m| {
                d.add((day, e.procedure, e.locality, e.agency), m, sign);
            });
        }
        d
    }

    fn add(&mut self, key: BucketKey, m: Counter, sign: i64) {
        let i = match self.rows[..self.len].iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.rows[self.len] = (key, [0; Counter::ALL.len()]);
                self.len += 1;
                self.len - 1
            }
        };
        self.rows[i].1[m as usize] += sign;
    }

    /// Adds the deltas to `buckets`; a bucket left all zero is removed.
    pub fn add_to(&self, buckets: &mut FastMap<BucketKey, BucketCounts>) {
        for (key, delta) in self.iter() {
            let counts = buckets.entry(*key).or_insert([0; Counter::ALL.len()]);
            for (c, d) in counts.iter_mut().zip(delta) {
                *c += d;
            }
            if counts.iter().all(|&c| c == 0) {
                buckets.remove(key);
            }
        }
    }

    /// The buckets whose counts change, with their deltas.
    pub fn iter(&self) -> impl Iterator<Item = &(BucketKey, BucketCounts)> {
        self.rows[..self.len]
            .iter()
            .filter(|(_, c)| c.iter().any(|&x| x != 0))
    }
}

/// Versions read, with the names their entries refer to: what the `changes` table holds
/// for a range of offsets, read back.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    /// Names of the entries' ids.
    pub names: Names,
    /// `(partition, revision)`, in any order.
    pub revisions: Vec<(i32, Revision)>,
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

/// Whether a counter counts within the window (flows) or up to its end (stocks).
fn in_window(m: Counter, day: i32, from: i32, to: i32) -> bool {
    day <= to && (m.is_stock() || day >= from)
}

/// Formats an ingestion time in ms as the APIs write times.
pub fn format_ms(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    format_ts(&t.with_timezone(&ict()))
}

impl ChangeLog {
    /// A revision's net effect on the window `from..=to` per (bucket, counter), within
    /// `under`; ignored versions are judged by what they would have counted.
    fn net_effect(
        &self,
        r: &Revision,
        from: i32,
        to: i32,
        under: Option<&HashSet<String>>,
    ) -> HashMap<(BucketKey, u8), i64> {
        let mut net: HashMap<(BucketKey, u8), i64> = HashMap::new();
        let mut touch = |k: BucketKey, m: Counter, sign: i64| {
            if under.is_none_or(|u| u.contains(self.names.localities.name(k.2)))
                && in_window(m, k.0, from, to)
            {
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
        net
    }

    /// The versions of the log that bear on window `q`, restricted to the locality codes
    /// in `under` when given, oldest first; `a_ms` is the earlier moment, which tells late
    /// dossiers (received on or before its day) from new ones.
    pub fn items(
        &self,
        a_ms: i64,
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
        let mut revisions: Vec<&(i32, Revision)> = self.revisions.iter().collect();
        revisions.sort_by_key(|(p, r)| (r.at_ms, *p, r.offset));
        for (partition, r) in revisions {
            let partition = *partition;
            let place_ok = |e: &Entry| {
                under.is_none_or(|u| u.contains(self.names.localities.name(e.locality)))
            };
            if !place_ok(&r.new) && !r.old.as_ref().is_some_and(place_ok) {
                continue;
            }
            let mut net = self.net_effect(r, from, to, under);
            net.retain(|_, v| *v != 0);
            if net.is_empty() {
                continue;
            }
            let delta = |m: Counter| {
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
                procedure_code: self.names.procedures.name(r.new.procedure).to_string(),
                locality_code: self.names.localities.name(r.new.locality).to_string(),
                received_on: received,
                channel: Channel::ALL[r.new.days.channel as usize].as_str(),
                status: status(&r.new),
                previous_status: r.old.as_ref().map(status),
                received_delta: delta(Counter::Received),
                online_delta: delta(Counter::Online),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_names_round_trip() {
        for c in [
            Change::New,
            Change::Corrected,
            Change::Duplicate,
            Change::Stale,
        ] {
            assert_eq!(Change::from_name(c.name()), Some(c));
        }
        assert_eq!(Change::from_name("late"), None);
    }

    fn entry(days: [i32; 4], channel: u8, on_time: bool, group: u32) -> Entry {
        let day = |d: i32| if d < 0 { NO_DAY } else { 20_000 + d };
        let received = day(days[0]);
        let after = |d: i32| {
            if d < 0 || received == NO_DAY {
                NO_DAY
            } else {
                received + d
            }
        };
        Entry {
            updated_us: 0,
            content: 0,
            procedure: group % 2,
            locality: group / 2,
            agency: crate::state::NO_AGENCY,
            days: crate::fact::Days {
                received,
                finished: after(days[1]),
                closed: after(days[2]),
                due: after(days[3]),
                channel,
                on_time,
            },
            status: 1,
        }
    }

    fn any_entry() -> impl proptest::strategy::Strategy<Value = Entry> {
        use proptest::prelude::*;
        (
            proptest::array::uniform4(-1i32..3),
            0u8..3,
            any::<bool>(),
            0u32..3,
        )
            .prop_map(|(d, c, t, g)| entry(d, c, t, g))
    }

    proptest::proptest! {
        /// Netted per bucket, the deltas are exactly those of `replacement_deltas`, and
        /// no bucket is listed twice or with all-zero deltas.
        #[test]
        fn netted_deltas_sum_the_single_ones(
            old in proptest::option::of(any_entry()),
            new in any_entry(),
        ) {
            let mut want: HashMap<BucketKey, BucketCounts> = HashMap::new();
            replacement_deltas(old.as_ref(), &new, |k, m, sign| {
                want.entry(k).or_insert([0; Counter::ALL.len()])[m as usize] += sign;
            });
            want.retain(|_, c| c.iter().any(|&x| x != 0));
            let netted = BucketDeltas::of(old.as_ref(), Some(&new));
            let got: HashMap<BucketKey, BucketCounts> = netted.iter().copied().collect();
            proptest::prop_assert_eq!(got.len(), netted.iter().count());
            proptest::prop_assert_eq!(got, want);
        }
    }
}
