//! The latest version of each dossier, folded in input order: the batch path of
//! `snapshot --input`, without the SQL's per-dossier ranking.
//!
//! A version is kept compact: its codes as ids into the fold's names, its times as
//! microseconds, its dossier id as a range of one buffer of ids. Nothing is allocated per
//! version, so folding, merging and dropping the fold cost no more than moving rows.

use crate::fact::{Days, NO_DAY, ict_day_us};
use crate::state::{NO_AGENCY, Names};
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use dvc_pulse_model::{Channel, DossierEvent, Status};
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};

/// Schema of the table [`LatestVersions::into_batches`] makes: one row per dossier, its
/// ICT days computed once (`*_day`, Date32), the due and finish instants kept for the
/// on-time comparison.
pub static LATEST_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("procedure_code", DataType::Utf8, false),
        Field::new("locality_code", DataType::Utf8, false),
        Field::new("agency", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, false),
        Field::new("status", DataType::UInt8, false),
        Field::new("received_day", DataType::Date32, true),
        Field::new("due_day", DataType::Date32, true),
        Field::new("finished_day", DataType::Date32, true),
        Field::new("updated_day", DataType::Date32, false),
        Field::new("due_at", ts(), true),
        Field::new("finished_at", ts(), true),
    ]))
});

/// An absent time.
const NONE: i64 = i64::MIN;

/// A time kept in a row, `None` when absent.
fn at(us: i64) -> Option<i64> {
    (us != NONE).then_some(us)
}

/// The ICT day of a time kept in a row.
fn day(us: i64) -> Option<i32> {
    at(us).map(ict_day_us)
}

/// A version as a fold keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    /// Microseconds since the epoch; the others are [`NONE`] when absent.
    updated: i64,
    received: i64,
    due: i64,
    finished: i64,
    /// Ids into the fold's names ([`NO_AGENCY`] for none).
    procedure: u32,
    locality: u32,
    agency: u32,
    channel: Channel,
    status: Status,
}

impl Version {
    fn of(e: &DossierEvent, names: &mut Names) -> Self {
        let us =
            |t: Option<dvc_pulse_model::event::Timestamp>| t.map_or(NONE, |t| t.timestamp_micros());
        let (procedure, locality, agency) =
            names.ids(&e.procedure_code, &e.locality_code, e.agency.as_deref());
        Self {
            updated: e.updated_at.timestamp_micros(),
            received: us(e.received_at),
            due: us(e.due_at),
            finished: us(e.finished_at),
            procedure,
            locality,
            agency,
            channel: e.channel,
            status: e.status,
        }
    }

    /// What decides between two versions of a dossier; the later in input order wins ties.
    fn rank(&self) -> (i64, u8) {
        (self.updated, self.status.portal_number())
    }

    /// The day it counts for against the horizon: its received day once received, else
    /// its update day (the SQL's `COALESCE(r, updated day)`).
    fn horizon_day(&self) -> i32 {
        ict_day_us(self.received_at().unwrap_or(self.updated))
    }

    /// When it was received, for a version that counts as received (a status past
    /// `new` and `rejected`, with `received_at`).
    fn received_at(&self) -> Option<i64> {
        at(self.received).filter(|_| self.status.is_received())
    }

    /// Whether the dossier can count in the window `from..=to`: received (a status
    /// past `new` and `rejected`, with `received_at`) by the window's end, and not
    /// closed before its start. A dossier closed before the window adds to none of its
    /// flows (it was received and finished by then) and is not pending at its end.
    fn may_count(&self, from: i32, to: i32) -> bool {
        let Some(received) = self.received_at().map(ict_day_us) else {
            return false;
        };
        let closed = Days::closed_day(
            received,
            day(self.finished).unwrap_or(NO_DAY),
            self.status.portal_number(),
            self.updated,
        );
        received <= to && (closed == NO_DAY || closed >= from)
    }

    /// The same version with its ids translated by `map` (a run's ids to the fold's).
    fn renamed(mut self, map: &Renames) -> Self {
        self.procedure = map.procedures[self.procedure as usize];
        self.locality = map.localities[self.locality as usize];
        if self.agency != NO_AGENCY {
            self.agency = map.agencies[self.agency as usize];
        }
        self
    }
}

/// Dossier ids end to end in one buffer; a fold names an id by its range.
#[derive(Debug, Clone, Default)]
struct Ids(Vec<u8>);

/// Where an id lies in [`Ids`].
#[derive(Debug, Clone, Copy)]
struct IdRef {
    start: usize,
    len: u32,
}

impl Ids {
    fn push(&mut self, id: &[u8]) -> IdRef {
        let start = self.0.len();
        self.0.extend_from_slice(id);
        IdRef {
            start,
            len: id.len() as u32,
        }
    }

    fn get(&self, r: IdRef) -> &[u8] {
        &self.0[r.start..r.start + r.len as usize]
    }
}

/// The ids of a run's names in the fold's names.
struct Renames {
    procedures: Vec<u32>,
    localities: Vec<u32>,
    agencies: Vec<u32>,
}

impl Renames {
    fn new(from: &Names, into: &mut Names) -> Self {
        let map = |from: &crate::state::Interner, into: &mut crate::state::Interner| {
            from.names().iter().map(|n| into.id(n)).collect()
        };
        Self {
            procedures: map(&from.procedures, &mut into.procedures),
            localities: map(&from.localities, &mut into.localities),
            agencies: map(&from.agencies, &mut into.agencies),
        }
    }
}

/// The hash of dossier ids, the same in a fold and its runs.
type Hasher = foldhash::fast::RandomState;

/// The latest version of each dossier, folded in input order by the rule the batch SQL
/// applies (`ROW_NUMBER` over `updated_at`, status, input order): a later `updated_at`
/// wins, then a later status, then the later in input order. With a horizon, a dossier
/// becomes known with its first version whose day is on or after `cutoff` (Date32); its
/// earlier versions are dropped, as the worker refuses them.
///
/// Contiguous runs of the input can be folded apart, on any thread, into [`BlockFold`]s
/// and merged here in input order: the result is the same as pushing every version.
/// Each dossier id is hashed once, where its version is folded; the hash travels with it.
/// The dossiers lie in a vector in order of first sight, found through a table of their
/// 4-byte positions: the table stays small enough to stay in cache, so telling a new
/// dossier from a known one (most of a merge) seldom touches memory, and growing it
/// moves positions, not rows.
#[derive(Debug, Clone)]
pub struct LatestVersions {
    cutoff: i32,
    hasher: Hasher,
    names: Names,
    ids: Ids,
    index: HashTable<u32>,
    rows: Vec<(u64, IdRef, Version)>,
}

impl LatestVersions {
    /// An empty fold; `i32::MIN` for no horizon.
    pub fn new(cutoff: i32) -> Self {
        Self {
            cutoff,
            hasher: Hasher::default(),
            names: Names::default(),
            ids: Ids::default(),
            index: HashTable::new(),
            rows: Vec::new(),
        }
    }

    /// The row of a dossier, if known.
    fn find(&mut self, hash: u64, id: &[u8]) -> Option<&mut Version> {
        let (ids, rows) = (&self.ids, &self.rows);
        let at = *self
            .index
            .find(hash, |&i| ids.get(rows[i as usize].1) == id)?;
        Some(&mut self.rows[at as usize].2)
    }

    /// Adds a dossier not known yet.
    fn insert(&mut self, hash: u64, id: &[u8], v: Version) {
        let at = u32::try_from(self.rows.len()).expect("fewer than 2^32 dossiers");
        let r = self.ids.push(id);
        self.rows.push((hash, r, v));
        let rows = &self.rows;
        self.index.insert_unique(hash, at, |&i| rows[i as usize].0);
    }

    /// Folds in the next version (in input order).
    pub fn push(&mut self, e: &DossierEvent) {
        let v = Version::of(e, &mut self.names);
        let id = e.dossier_id.as_bytes();
        let hash = self.hasher.hash_one(id);
        let cutoff = self.cutoff;
        match self.find(hash, id) {
            Some(best) if v.rank() >= best.rank() => *best = v,
            Some(_) => {}
            None if v.horizon_day() >= cutoff => self.insert(hash, id, v),
            None => {}
        }
    }

    /// An empty fold of a run of the input, under the same horizon and hashing.
    pub fn block(&self) -> BlockFold {
        BlockFold {
            cutoff: self.cutoff,
            hasher: self.hasher.clone(),
            names: Names::default(),
            ids: Ids::default(),
            runs: HashTable::new(),
        }
    }

    /// Folds in the next run of the input: a dossier already known takes the run's best
    /// version if it ranks at least as high; a new one starts from the run's first
    /// version inside the horizon.
    pub fn merge(&mut self, block: BlockFold) {
        let map = Renames::new(&block.names, &mut self.names);
        let rows = &self.rows;
        self.index
            .reserve(block.runs.len(), |&i| rows[i as usize].0);
        for p in block.runs {
            let id = block.ids.get(p.id);
            match self.find(p.hash, id) {
                Some(best) if p.all.rank() >= best.rank() => *best = p.all.renamed(&map),
                Some(_) => {}
                None => {
                    let first = match p.after {
                        After::None => continue,
                        After::SameAsAll => p.all,
                        After::Own(v) => v,
                    };
                    self.insert(p.hash, id, first.renamed(&map));
                }
            }
        }
    }

    /// Room for `n` more dossiers without growing: a reader that can tell how many are
    /// coming saves the copies and rehashes of growing step by step.
    pub fn reserve(&mut self, n: usize) {
        let avg_id = self.ids.0.len().checked_div(self.rows.len()).unwrap_or(16);
        self.ids.0.reserve(n * avg_id);
        self.rows.reserve(n);
        let rows = &self.rows;
        self.index.reserve(n, |&i| rows[i as usize].0);
    }

    /// Dossiers known so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no dossier is known.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The latest versions that may count in the window `from..=to` (Date32) as batches
    /// of [`LATEST_SCHEMA`] (for [`crate::window_from_latest`]), built on every core: one
    /// part per core, so that the query has a partition for every core too.
    /// The window SQL applies the rules; the rows left out here cannot count (never
    /// received, received after the window, or closed before it), and most of a long
    /// export's dossiers are such rows.
    pub fn into_batches(self, from: i32, to: i32) -> Vec<RecordBatch> {
        const ROWS: usize = 65_536;
        let rows: Vec<&Version> = self
            .rows
            .iter()
            .map(|x| &x.2)
            .filter(|v| v.may_count(from, to))
            .collect();
        if rows.is_empty() {
            return vec![latest_batch(&self.names, &[])];
        }
        let names = &self.names;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = rows.len().div_ceil(cores);
        let build = |part: &[&Version]| -> Vec<RecordBatch> {
            part.chunks(ROWS).map(|c| latest_batch(names, c)).collect()
        };
        std::thread::scope(|s| {
            let parts: Vec<_> = rows
                .chunks(per)
                .map(|p| s.spawn(move || build(p)))
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("a batch builder panicked"))
                .collect()
        })
    }

    /// Every dossier's id and latest version, with its names, sorted by id (for tests).
    #[cfg(test)]
    fn resolved(&self) -> Vec<(String, String, String, Option<String>, Version)> {
        let n = &self.names;
        let mut v: Vec<_> = self
            .rows
            .iter()
            .map(|(_, id, x)| {
                (
                    String::from_utf8(self.ids.get(*id).to_vec()).unwrap(),
                    n.procedures.name(x.procedure).to_string(),
                    n.localities.name(x.locality).to_string(),
                    (x.agency != NO_AGENCY).then(|| n.agencies.name(x.agency).to_string()),
                    Version {
                        procedure: 0,
                        locality: 0,
                        agency: 0,
                        ..*x
                    },
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// One batch of [`LATEST_SCHEMA`].
fn latest_batch(names: &Names, rows: &[&Version]) -> RecordBatch {
    let n = rows.len();
    let mut procedure = StringBuilder::with_capacity(n, n * 8);
    let mut locality = StringBuilder::with_capacity(n, n * 5);
    let mut agency = StringBuilder::with_capacity(n, 0);
    let mut channel = StringBuilder::with_capacity(n, n * 6);
    let mut status = UInt8Builder::with_capacity(n);
    let days = || Date32Builder::with_capacity(n);
    let (mut received, mut due_day, mut finished_day, mut updated) =
        (days(), days(), days(), days());
    let mut due_at = TimestampMicrosecondBuilder::with_capacity(n);
    let mut finished_at = TimestampMicrosecondBuilder::with_capacity(n);
    for v in rows {
        procedure.append_value(names.procedures.name(v.procedure));
        locality.append_value(names.localities.name(v.locality));
        agency.append_option((v.agency != NO_AGENCY).then(|| names.agencies.name(v.agency)));
        channel.append_value(v.channel.as_str());
        status.append_value(v.status.portal_number());
        received.append_option(day(v.received));
        due_day.append_option(day(v.due));
        finished_day.append_option(day(v.finished));
        updated.append_value(ict_day_us(v.updated));
        due_at.append_option(at(v.due));
        finished_at.append_option(at(v.finished));
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(procedure.finish()),
        Arc::new(locality.finish()),
        Arc::new(agency.finish()),
        Arc::new(channel.finish()),
        Arc::new(status.finish()),
        Arc::new(received.finish()),
        Arc::new(due_day.finish()),
        Arc::new(finished_day.finish()),
        Arc::new(updated.finish()),
        Arc::new(due_at.finish()),
        Arc::new(finished_at.finish()),
    ];
    RecordBatch::try_new(LATEST_SCHEMA.clone(), cols).expect("latest columns match")
}

/// The fold of one contiguous run of the input, for [`LatestVersions::merge`]: per
/// dossier, the best version of the run, and the best from its first version inside the
/// horizon on (what counts when the dossier was not known before the run).
#[derive(Debug, Clone)]
pub struct BlockFold {
    cutoff: i32,
    hasher: Hasher,
    names: Names,
    ids: Ids,
    runs: HashTable<Partial>,
}

#[derive(Debug, Clone)]
struct Partial {
    hash: u64,
    id: IdRef,
    all: Version,
    after: After,
}

/// The best version from the run's first one inside the horizon on.
#[derive(Debug, Clone)]
enum After {
    /// No version of the run is inside the horizon yet.
    None,
    /// The run's best version overall.
    SameAsAll,
    /// A version ranked below the best overall (which came before the horizon's first).
    Own(Version),
}

impl BlockFold {
    /// Room for `n` dossiers without growing.
    pub fn reserve(&mut self, n: usize) {
        self.runs.reserve(n, |x| x.hash);
        self.ids.0.reserve(n * 16);
    }

    /// Folds in the run's next version.
    pub fn push(&mut self, e: &DossierEvent) {
        let v = Version::of(e, &mut self.names);
        let inside = v.horizon_day() >= self.cutoff;
        let id = e.dossier_id.as_bytes();
        let hash = self.hasher.hash_one(id);
        let ids = &self.ids;
        let Some(p) = self.runs.find_mut(hash, |p| ids.get(p.id) == id) else {
            let after = if inside {
                After::SameAsAll
            } else {
                After::None
            };
            let id = self.ids.push(id);
            let p = Partial {
                hash,
                id,
                all: v,
                after,
            };
            self.runs.insert_unique(hash, p, |x| x.hash);
            return;
        };
        if v.rank() >= p.all.rank() {
            // The best overall; and the best from the horizon's first on, once there is one.
            if inside || !matches!(p.after, After::None) {
                p.after = After::SameAsAll;
            }
            p.all = v;
            return;
        }
        match &p.after {
            After::None if inside => p.after = After::Own(v),
            After::Own(a) if v.rank() >= a.rank() => p.after = After::Own(v),
            _ => {}
        }
    }

    /// Dossiers seen in the run.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// True when the run held no version.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn version(
        id: &str,
        status: Status,
        received_day: Option<i64>,
        updated_day: i64,
    ) -> DossierEvent {
        let t0 = dvc_pulse_model::event::ict()
            .with_ymd_and_hms(2024, 6, 1, 9, 0, 0)
            .unwrap();
        let day = |d: i64| t0 + chrono::Duration::days(d);
        DossierEvent {
            dossier_id: id.into(),
            procedure_code: format!("1.00{}", id.len()),
            procedure_name: None,
            locality_code: "22738".into(),
            agency: (id == "B").then(|| "UBND".into()),
            channel: Channel::Online,
            status,
            received_at: received_day.map(day),
            due_at: None,
            finished_at: None,
            updated_at: day(updated_day),
            event_id: None,
            source: None,
        }
    }

    /// Pushing every version, and folding runs apart then merging them, agree, for every
    /// way of cutting the input, when a dossier's best version lies before the horizon.
    #[test]
    fn runs_merged_in_order_equal_one_fold() {
        let cutoff = crate::fact::day_number(chrono::NaiveDate::from_ymd_opt(2024, 6, 10).unwrap());
        let input = [
            // Filed before the horizon, updated late: the best rank, but outside.
            version("A", Status::New, None, 8),
            // Received inside the horizon with an earlier update: what counts.
            version("A", Status::Received, Some(10), 7),
            version("A", Status::Processing, Some(10), 7),
            version("B", Status::Received, Some(2), 3),
            version("B", Status::Processing, Some(12), 12),
            version("CC", Status::Received, Some(12), 12),
            version("CC", Status::Received, Some(12), 12),
        ];
        let mut one = LatestVersions::new(cutoff);
        input.iter().for_each(|e| one.push(e));
        let want = one.resolved();
        assert_eq!(want.len(), 3);
        assert_eq!(
            want[0].4.status,
            Status::Processing,
            "A from its first version inside"
        );
        assert_eq!(want[1].3.as_deref(), Some("UBND"));
        assert_eq!(want[2].1, "1.002");
        for run in 1..=input.len() {
            for skip in 0..run {
                let mut merged = LatestVersions::new(cutoff);
                let (head, tail) = input.split_at(skip);
                for part in std::iter::once(head).chain(tail.chunks(run)) {
                    let mut b = merged.block();
                    part.iter().for_each(|e| b.push(e));
                    merged.merge(b);
                }
                assert_eq!(merged.resolved(), want, "runs of {run} after {skip}");
            }
        }
    }

    /// The batches hold one row per dossier, with its ICT days: an instant late in the
    /// UTC day is the next ICT day.
    #[test]
    fn batches_carry_ict_days() {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Date32Type;
        let mut l = LatestVersions::new(i32::MIN);
        let mut e = version("A", Status::Received, Some(0), 0);
        e.received_at = Some(
            dvc_pulse_model::event::ict()
                .with_ymd_and_hms(2024, 6, 1, 0, 30, 0)
                .unwrap(),
        );
        l.push(&e);
        l.push(&version("B", Status::New, None, 1));
        let june_1 = crate::fact::day_number(chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap());
        let batches = l.clone().into_batches(june_1 - 40, june_1);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 1, "a dossier never received counts in no window");
        let b = batches.iter().find(|b| b.num_rows() > 0).unwrap();
        let received = b.column(5).as_primitive::<Date32Type>();
        assert_eq!(received.value(0), june_1);
        // Received after the window's end: left out.
        let rows: usize = l
            .into_batches(june_1 - 40, june_1 - 1)
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 0);
    }

    /// A dossier closed before the window is left out; one closed in it, or still open,
    /// or closed after it, is kept.
    #[test]
    fn dossiers_closed_before_the_window_are_left_out() {
        let t0 = dvc_pulse_model::event::ict()
            .with_ymd_and_hms(2024, 6, 1, 9, 0, 0)
            .unwrap();
        let day0 = crate::fact::day_number(t0.date_naive());
        let mut l = LatestVersions::new(i32::MIN);
        for (id, finished) in [
            ("done-early", Some(3)),
            ("done-in", Some(20)),
            ("open", None),
            ("done-late", Some(60)),
        ] {
            let mut e = version(id, Status::Processed, Some(0), 0);
            e.finished_at = finished.map(|d| t0 + chrono::Duration::days(d));
            e.updated_at = e.finished_at.unwrap_or(t0);
            if finished.is_none() {
                e.status = Status::Processing;
            }
            l.push(&e);
        }
        let rows: usize = l
            .into_batches(day0 + 10, day0 + 40)
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        assert_eq!(rows, 3);
    }
}
