//! One partition's state: dossiers (latest version wins) and the daily buckets they add up
//! to. Synchronous and clock-free: "today" is an argument, or the partition's own clock
//! (the newest Kafka timestamp read), never the machine's.

use crate::changes::BucketDeltas;
use crate::dossiers::DossierTable;
use crate::fact::{Counter, Days, NO_DAY, ict_day, ict_day_us};
use dvc_pulse_model::{DossierEvent, Status};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A dossier's key in the state: 96 bits of SHA-256 of its id, as two words (the last 32
/// bits zero). Collisions need ~2^48 dossiers in one partition.
pub type Key = [u64; 2];

/// The [`Key`] of a dossier id.
pub fn dossier_key(id: &str) -> Key {
    let h = Sha256::digest(id.as_bytes());
    [
        u64::from_be_bytes(h[0..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")) & !0xffff_ffff,
    ]
}

/// 32 bits of SHA-256 of a version's canonical bytes: tells duplicates apart from
/// corrections (a correction whose hash equals the held version's, one in 2^32, would be
/// taken for a duplicate). It never orders versions.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let h = Sha256::digest(bytes);
    u32::from_be_bytes(h[0..4].try_into().expect("4 bytes")) as u64
}

/// Strings seen in a partition, numbered in order of first sight.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    names: Vec<Box<str>>,
    ids: FastMap<Box<str>, u32>,
}

impl Interner {
    /// The id of a string, adding it when new.
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }

    /// The string of an id.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// All strings, by id.
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }
}

/// No agency.
pub const NO_AGENCY: u32 = u32::MAX;

/// The strings entries refer to by id: procedure codes, locality codes, agencies.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Procedure codes.
    pub procedures: Interner,
    /// Locality codes.
    pub localities: Interner,
    /// Agencies.
    pub agencies: Interner,
    /// (procedure, locality, agency) triples, numbered in order of first sight.
    groups: Vec<(u32, u32, u32)>,
    group_ids: FastMap<(u32, u32, u32), u32>,
}

impl Names {
    /// The id of a (procedure, locality, agency) triple, adding it when new.
    pub fn group(&mut self, t: (u32, u32, u32)) -> u32 {
        if let Some(&i) = self.group_ids.get(&t) {
            return i;
        }
        let i = self.groups.len() as u32;
        self.groups.push(t);
        self.group_ids.insert(t, i);
        i
    }

    /// The triple of a group id.
    pub fn group_of(&self, id: u32) -> (u32, u32, u32) {
        self.groups[id as usize]
    }

    /// Procedure, locality and agency of an entry.
    pub fn of(&self, e: &Entry) -> (&str, &str, Option<&str>) {
        (
            self.procedures.name(e.procedure),
            self.localities.name(e.locality),
            (e.agency != NO_AGENCY).then(|| self.agencies.name(e.agency)),
        )
    }

    /// Ids of the three names, adding them when new.
    pub fn ids(
        &mut self,
        procedure: &str,
        locality: &str,
        agency: Option<&str>,
    ) -> (u32, u32, u32) {
        (
            self.procedures.id(procedure),
            self.localities.id(locality),
            agency.map_or(NO_AGENCY, |a| self.agencies.id(a)),
        )
    }
}

/// A dossier's version as the state uses it (held packed: see [`crate::dossiers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `updated_at` in microseconds since the epoch.
    pub updated_us: i64,
    /// [`content_hash`] of the version.
    pub content: u64,
    /// Procedure id in the partition's interner.
    pub procedure: u32,
    /// Locality id.
    pub locality: u32,
    /// Agency id, or [`NO_AGENCY`].
    pub agency: u32,
    /// Days of the contribution; `days.received == NO_DAY` when not a received dossier.
    pub days: Days,
    /// Status (portal number 1..10).
    pub status: u8,
}

impl Entry {
    /// The last day it counts for: the latest of its received, finished and closed days
    /// and of its `updated_at` (a dossier not received: its `updated_at`'s day). `None`
    /// while it can still change a count (received and pending).
    pub fn settled_day(&self) -> Option<i32> {
        let updated = ict_day_us(self.updated_us);
        let d = self.days;
        if d.received == NO_DAY {
            return Some(updated);
        }
        (d.closed != NO_DAY).then(|| updated.max(d.received).max(d.finished).max(d.closed))
    }
}

/// What applying one version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The version is now the dossier's latest.
    Applied {
        /// An older version was retracted.
        replaced: bool,
        /// Days between the day the version counts for and today (0 when on time).
        lateness_days: i32,
    },
    /// Byte-identical to the version already held.
    Duplicate,
    /// Older than the version already held: ignored.
    Stale,
    /// Its day is older than the horizon: not applied, to be dead-lettered.
    BeyondHorizon {
        /// The day it would have counted for (Date32).
        day: i32,
    },
}

/// Key of a daily bucket: day (Date32), procedure, locality, agency.
pub type BucketKey = (i32, u32, u32, u32);

/// Counters of one bucket, indexed by [`Counter`].
pub type BucketCounts = [i64; Counter::ALL.len()];

/// A hash map keyed by integers the pipeline makes (days, ids, dossier keys): a fast
/// hash, randomly seeded per process.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The state of one partition of `dossier-events`.
#[derive(Debug, Clone, Default)]
pub struct PartitionState {
    pub(crate) dossiers: DossierTable,
    pub(crate) buckets: FastMap<BucketKey, BucketCounts>,
    pub(crate) names: Names,
    /// The next Kafka offset to apply.
    pub next_offset: i64,
    /// Newest `updated_at` applied, microseconds (0 when none).
    pub newest_event_us: i64,
    /// Bumped on every change, so readers can cache derived batches.
    pub generation: u64,
    /// The partition's clock: the newest Kafka timestamp read (ms; 0 before any). Its ICT
    /// day is "today" for the horizon and eviction, so a replay reaches the same state
    /// whenever it runs.
    pub clock_ms: i64,
}

/// What applying one version did, with the entries before and after (both absent when
/// the version was beyond the horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The dossier's key ([`dossier_key`]).
    pub key: [u64; 2],
    /// The outcome.
    pub outcome: Outcome,
    /// The entry held before, if any.
    pub old: Option<Entry>,
    /// The entry of the version read (held now when the outcome is `Applied`).
    pub new: Option<Entry>,
}

impl PartitionState {
    /// Applies one version. `today` is the ICT day (Date32) of the partition's clock; a
    /// version of a dossier the state does not hold is refused when its day is before
    /// `today - horizon_days`. Versions of a held dossier are never refused.
    pub fn apply(
        &mut self,
        e: &DossierEvent,
        content: u64,
        today: i32,
        horizon_days: i32,
    ) -> Outcome {
        self.apply_full(e, content, today, horizon_days).outcome
    }

    /// [`PartitionState::apply`], with the entries before and after.
    pub fn apply_full(
        &mut self,
        e: &DossierEvent,
        content: u64,
        today: i32,
        horizon_days: i32,
    ) -> Applied {
        let key = dossier_key(&e.dossier_id);
        self.apply_keyed(key, e, content, today, horizon_days).0
    }

    /// [`PartitionState::apply_full`] with the dossier's key already computed
    /// ([`dossier_key`] of its id; a caller may compute it on another thread), and the
    /// bucket deltas the version added (none unless applied), for the caller to reuse.
    pub fn apply_keyed(
        &mut self,
        key: Key,
        e: &DossierEvent,
        content: u64,
        today: i32,
        horizon_days: i32,
    ) -> (Applied, BucketDeltas) {
        debug_assert_eq!(key, dossier_key(&e.dossier_id));
        let done = |outcome, old, new, deltas| {
            (
                Applied {
                    key,
                    outcome,
                    old,
                    new,
                },
                deltas,
            )
        };
        let days = Days::of(e);
        let day = days.map_or_else(|| ict_day(&e.updated_at), |d| d.received);
        let old = self.entry(&key);
        if old.is_none() && day < today.saturating_sub(horizon_days) {
            return done(
                Outcome::BeyondHorizon { day },
                None,
                None,
                Default::default(),
            );
        }
        let entry = self.entry_of(e, content, days);
        if let Some(old) = old {
            if entry.content == old.content {
                return done(
                    Outcome::Duplicate,
                    Some(old),
                    Some(entry),
                    Default::default(),
                );
            }
            // Equal `updated_at` and status: the later version (higher offset) wins.
            if (entry.updated_us, entry.status) < (old.updated_us, old.status) {
                return done(Outcome::Stale, Some(old), Some(entry), Default::default());
            }
        }
        let deltas = BucketDeltas::of(old.as_ref(), Some(&entry));
        deltas.add_to(&mut self.buckets);
        let group = self
            .names
            .group((entry.procedure, entry.locality, entry.agency));
        self.dossiers.insert(&key, &entry, group);
        self.newest_event_us = self.newest_event_us.max(entry.updated_us);
        self.generation += 1;
        let outcome = Outcome::Applied {
            replaced: old.is_some(),
            lateness_days: (today - day).max(0),
        };
        done(outcome, old, Some(entry), deltas)
    }

    fn entry_of(&mut self, e: &DossierEvent, content: u64, days: Option<Days>) -> Entry {
        Entry {
            updated_us: e.updated_at.timestamp_micros(),
            content,
            procedure: self.names.procedures.id(&e.procedure_code),
            locality: self.names.localities.id(&e.locality_code),
            agency: e
                .agency
                .as_deref()
                .map_or(NO_AGENCY, |a| self.names.agencies.id(a)),
            days: days.unwrap_or(Days {
                received: NO_DAY,
                finished: NO_DAY,
                closed: NO_DAY,
                due: NO_DAY,
                channel: 0,
                on_time: false,
            }),
            status: e.status.portal_number(),
        }
    }

    /// Adds `new - old` to the buckets; a bucket left all zero is removed.
    fn contribute(&mut self, old: Option<&Entry>, new: Option<&Entry>) {
        BucketDeltas::of(old, new).add_to(&mut self.buckets);
    }

    /// The ICT day of the partition's clock, or `None` before any timestamp was read.
    pub fn today(&self) -> Option<i32> {
        (self.clock_ms > 0).then(|| ict_day_us(self.clock_ms.saturating_mul(1000)))
    }

    /// Moves the clock to the timestamp `at_ms` of the message about to be applied (never
    /// back). Returns the new day when the clock entered a later day.
    pub fn tick(&mut self, at_ms: i64) -> Option<i32> {
        let before = self.today();
        self.clock_ms = self.clock_ms.max(at_ms);
        let after = self.today();
        (after != before).then_some(after).flatten()
    }

    /// Evicts every dossier whose days all lie before `today - horizon_days`
    /// ([`Entry::settled_day`]): no later version can change its counts, since any
    /// version of it is then beyond the horizon too. The buckets forget it as well (they
    /// are the live dossiers' sum; the store keeps what it contributed). Returns the
    /// keys evicted.
    pub fn evict(&mut self, today: i32, horizon_days: i32) -> Vec<Key> {
        let limit = today.saturating_sub(horizon_days);
        let gone: Vec<(Key, Entry)> = self
            .dossiers
            .iter()
            .filter_map(|(k, e, g)| {
                let e = self.with_names(e, g);
                e.settled_day().is_some_and(|d| d < limit).then_some((k, e))
            })
            .collect();
        for (k, e) in &gone {
            self.contribute(Some(e), None);
            self.dossiers.remove(k);
        }
        if !gone.is_empty() {
            self.generation += 1;
        }
        gone.into_iter().map(|(k, _)| k).collect()
    }

    fn with_names(&self, mut e: Entry, group: u32) -> Entry {
        (e.procedure, e.locality, e.agency) = self.names.group_of(group);
        e
    }

    /// Sets a dossier's entry (restoring persisted state), replacing its contribution.
    pub fn insert_entry(&mut self, key: Key, e: Entry) {
        let old = self.entry(&key);
        self.contribute(old.as_ref(), Some(&e));
        let group = self.names.group((e.procedure, e.locality, e.agency));
        self.dossiers.insert(&key, &e, group);
        self.generation += 1;
    }

    /// The entry held for a key.
    pub fn entry(&self, key: &Key) -> Option<Entry> {
        self.dossiers.get(key).map(|(e, g)| self.with_names(e, g))
    }

    /// Every key held, with its entry.
    pub fn entries(&self) -> impl Iterator<Item = (Key, Entry)> + '_ {
        self.dossiers
            .iter()
            .map(|(k, e, g)| (k, self.with_names(e, g)))
    }

    /// The names entries refer to.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Live dossiers held.
    pub fn dossier_count(&self) -> usize {
        self.dossiers.len()
    }

    /// Non-empty daily buckets held.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Bytes of heap the dossier table takes (capacities).
    pub fn dossier_heap_bytes(&self) -> usize {
        self.dossiers.heap_bytes()
    }

    /// Bytes of heap the dossier table and buckets take (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        let b = self.buckets.capacity() * (std::mem::size_of::<(BucketKey, BucketCounts)>() + 1);
        self.dossiers.heap_bytes() + b
    }

    /// The status of a version as the state stores it.
    pub fn status_of(n: u8) -> Status {
        Status::from_portal_number(n as u64).expect("stored statuses are valid")
    }
}
