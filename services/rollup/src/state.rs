//! One partition's state: dossiers (latest version wins) and the daily buckets they add up
//! to. Synchronous and clock-free: "today" is an argument.

use crate::fact::{Days, Measure, NO_DAY, ict_day};
use dvc_pulse_model::{DossierEvent, Status};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// 128 bits of SHA-256 of a dossier id: the state's key (collisions need ~2^64 dossiers).
pub fn dossier_key(id: &str) -> [u64; 2] {
    let h = Sha256::digest(id.as_bytes());
    [
        u64::from_be_bytes(h[0..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")),
    ]
}

/// 64 bits of SHA-256 of a version's canonical bytes: tells duplicates apart from
/// corrections, and breaks ties between versions with the same `updated_at` and status.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let h = Sha256::digest(bytes);
    u64::from_be_bytes(h[0..8].try_into().expect("8 bytes"))
}

/// Strings seen in a partition, numbered in order of first sight.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
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
}

impl Names {
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

/// What the state keeps of a dossier: its version and its contribution (48 bytes).
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
    fn version(&self) -> (i64, u8, u64) {
        (self.updated_us, self.status, self.content)
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

/// Counters of one bucket, indexed by [`Measure`].
pub type Counts = [i64; Measure::ALL.len()];

/// The state of one partition of `dossier-events`.
#[derive(Debug, Clone, Default)]
pub struct PartitionState {
    pub(crate) dossiers: HashMap<[u64; 2], Entry>,
    pub(crate) buckets: HashMap<BucketKey, Counts>,
    pub(crate) names: Names,
    /// The next Kafka offset to apply.
    pub next_offset: i64,
    /// Newest `updated_at` applied, microseconds (0 when none).
    pub newest_event_us: i64,
    /// Bumped on every change, so readers can cache derived batches.
    pub generation: u64,
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
    /// Applies one version. `today` is the worker's ICT day (Date32); versions whose day
    /// is before `today - horizon_days` are refused.
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
        let (outcome, old, new) = self.apply_entry(key, e, content, today, horizon_days);
        Applied {
            key,
            outcome,
            old,
            new,
        }
    }

    fn apply_entry(
        &mut self,
        key: [u64; 2],
        e: &DossierEvent,
        content: u64,
        today: i32,
        horizon_days: i32,
    ) -> (Outcome, Option<Entry>, Option<Entry>) {
        let days = Days::of(e);
        let day = days.map_or_else(|| ict_day(&e.updated_at), |d| d.received);
        if day < today - horizon_days {
            return (Outcome::BeyondHorizon { day }, None, None);
        }
        let entry = Entry {
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
        };
        let old = self.dossiers.get(&key).copied();
        if let Some(old) = old {
            match entry.version().cmp(&old.version()) {
                std::cmp::Ordering::Equal => return (Outcome::Duplicate, Some(old), Some(entry)),
                std::cmp::Ordering::Less => return (Outcome::Stale, Some(old), Some(entry)),
                std::cmp::Ordering::Greater => self.contribute(&old, -1),
            }
        }
        self.contribute(&entry, 1);
        self.dossiers.insert(key, entry);
        self.newest_event_us = self.newest_event_us.max(entry.updated_us);
        self.generation += 1;
        let outcome = Outcome::Applied {
            replaced: old.is_some(),
            lateness_days: (today - day).max(0),
        };
        (outcome, old, Some(entry))
    }

    fn contribute(&mut self, e: &Entry, sign: i64) {
        if e.days.received == NO_DAY {
            return;
        }
        let buckets = &mut self.buckets;
        e.days.deltas(|day, m| {
            let key = (day, e.procedure, e.locality, e.agency);
            let counts = buckets.entry(key).or_insert([0; Measure::ALL.len()]);
            counts[m as usize] += sign;
            if sign < 0 && counts.iter().all(|&c| c == 0) {
                buckets.remove(&key);
            }
        });
    }

    /// Sets a dossier's entry (restoring persisted state), replacing its contribution.
    pub fn insert_entry(&mut self, key: [u64; 2], e: Entry) {
        if let Some(old) = self.dossiers.insert(key, e) {
            self.contribute(&old, -1);
        }
        self.contribute(&e, 1);
        self.generation += 1;
    }

    /// The entry held for a key.
    pub fn entry(&self, key: &[u64; 2]) -> Option<&Entry> {
        self.dossiers.get(key)
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

    /// Bytes of heap the dossier table and buckets take (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        let d = self.dossiers.capacity() * (std::mem::size_of::<([u64; 2], Entry)>() + 1);
        let b = self.buckets.capacity() * (std::mem::size_of::<(BucketKey, Counts)>() + 1);
        d + b
    }

    /// The status of a version as the state stores it.
    pub fn status_of(n: u8) -> Status {
        Status::from_portal_number(n as u64).expect("stored statuses are valid")
    }
}
