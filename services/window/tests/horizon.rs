//! The horizon, eviction and ties: an update of a held dossier is never refused, state
//! stays bounded while the partition's clock runs a year, windows stay exact against the
//! batch oracle, the later of two tied versions wins, and packing loses nothing.

use chrono::{Duration, NaiveDate, TimeZone};
use datafusion::arrow::array::RecordBatch;
use dvc_pulse_model::event::{Timestamp, ict};
use dvc_pulse_model::{Channel, DossierEvent, Reference, Status};
use dvc_pulse_window::Measure;
use dvc_pulse_window::batch::BUCKETS_SCHEMA;
use dvc_pulse_window::fact::day_number;
use dvc_pulse_window::outbox::{Committed, Outbox};
use dvc_pulse_window::state::Outcome;
use dvc_pulse_window::{
    Dims, EventsBuilder, GroupKey, LatestVersions, PartitionState, WindowQuery, WindowTable,
    content_hash, window_from_buckets, window_from_events, window_from_latest,
};
use proptest::prelude::*;
use std::sync::LazyLock;

static DIMS: LazyLock<Dims> = LazyLock::new(|| Dims::new(&Reference::embedded()));

const PROCEDURES: &[&str] = &["1.001193", "DA06-03", "DA06-06"];
const LOCALITIES: &[&str] = &["22738", "22741", "22780"];

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `day` plus `minutes`, in Hà Nội time.
fn at(day: NaiveDate, minutes: i64) -> Timestamp {
    ict()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        + Duration::minutes(minutes)
}

fn received(id: &str, when: Timestamp) -> DossierEvent {
    DossierEvent {
        dossier_id: id.into(),
        procedure_code: PROCEDURES[0].into(),
        procedure_name: None,
        locality_code: LOCALITIES[0].into(),
        agency: None,
        channel: Channel::Online,
        status: Status::Received,
        received_at: Some(when),
        due_at: Some(when + Duration::days(15)),
        finished_at: None,
        updated_at: when,
        event_id: None,
        source: None,
    }
}

fn finished(e: &DossierEvent, when: Timestamp) -> DossierEvent {
    DossierEvent {
        status: Status::Processed,
        finished_at: Some(when),
        updated_at: when,
        ..e.clone()
    }
}

fn apply(s: &mut PartitionState, e: &DossierEvent, today: NaiveDate, horizon: i32) -> Outcome {
    s.apply(
        e,
        content_hash(&e.to_canonical_json()),
        day_number(today),
        horizon,
    )
}

fn window(batches: Vec<RecordBatch>, from: &str, to: &str) -> WindowTable {
    let q = WindowQuery {
        from: d(from),
        to: d(to),
        group_by: vec![GroupKey::Service],
        locality: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(window_from_buckets(&DIMS, batches, &q))
        .unwrap()
}

#[test]
fn a_finish_thirteen_months_after_reception_counts() {
    let horizon = 365;
    let mut s = PartitionState::default();
    let first = received("LAND-1", at(d("2024-06-03"), 9 * 60));
    assert!(matches!(
        apply(&mut s, &first, d("2024-06-03"), horizon),
        Outcome::Applied {
            replaced: false,
            ..
        }
    ));
    // 13 months on, the day it counts for (received) is 402 days back: beyond the
    // horizon, but the state holds the dossier, so the finish is applied.
    let done = finished(&first, at(d("2025-07-10"), 10 * 60));
    assert!(matches!(
        apply(&mut s, &done, d("2025-07-10"), horizon),
        Outcome::Applied {
            replaced: true,
            lateness_days: 402
        }
    ));
    let w = window(vec![s.buckets_batch()], "2025-06-11", "2025-07-10");
    assert_eq!(
        (
            w.totals.get(Measure::Finished),
            w.totals.get(Measure::Overdue),
            w.totals.get(Measure::Pending)
        ),
        (1, 1, 0)
    );
    let before = window(vec![s.buckets_batch()], "2025-06-10", "2025-06-10");
    assert_eq!(
        (
            before.totals.get(Measure::Pending),
            before.totals.get(Measure::PendingOverdue)
        ),
        (1, 1)
    );
    // A dossier the state never held, received as long ago, is refused.
    let stranger = received("LAND-2", at(d("2024-06-03"), 9 * 60));
    assert_eq!(
        apply(&mut s, &stranger, d("2025-07-10"), horizon),
        Outcome::BeyondHorizon {
            day: day_number(d("2024-06-03"))
        }
    );
}

#[test]
fn of_two_tied_versions_the_later_one_wins_in_both_paths() {
    let mut s = PartitionState::default();
    let mut b = EventsBuilder::default();
    let today = d("2024-06-10");
    let first = received("TIE-1", at(today, 8 * 60));
    // A correction of the channel only: same updated_at, same status.
    let fixed = DossierEvent {
        channel: Channel::InPerson,
        ..first.clone()
    };
    let mut outcomes = Vec::new();
    let mut latest = LatestVersions::new(i32::MIN);
    for e in [&first, &fixed, &first, &fixed, &fixed] {
        outcomes.push(apply(&mut s, e, today, 400));
        b.push(e);
        latest.push(e);
    }
    let replaced = |o: &Outcome| matches!(o, Outcome::Applied { replaced: true, .. });
    assert!(matches!(
        outcomes[0],
        Outcome::Applied {
            replaced: false,
            ..
        }
    ));
    assert!(replaced(&outcomes[1]) && replaced(&outcomes[2]) && replaced(&outcomes[3]));
    assert_eq!(outcomes[4], Outcome::Duplicate);
    let streaming = window(vec![s.buckets_batch()], "2024-06-10", "2024-06-10");
    assert_eq!(
        (
            streaming.totals.get(Measure::Total),
            streaming.totals.get(Measure::InPerson)
        ),
        (1, 1)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let q = WindowQuery {
        from: today,
        to: today,
        group_by: vec![GroupKey::Service],
        locality: None,
    };
    let batch = rt
        .block_on(window_from_events(&DIMS, vec![b.finish()], &q, i32::MIN))
        .unwrap();
    assert_eq!(streaming, batch);
    let folded = rt.block_on(window_from_latest(&DIMS, latest, &q)).unwrap();
    assert_eq!(folded, batch);
}

/// One message of the generated year: the version and its Kafka timestamp.
struct Msg {
    at_ms: i64,
    event: DossierEvent,
}

/// A year of a small office: `per_day` dossiers a day, most finished 0-11 days later, one
/// in ten never, and one in twenty corrected again 40 days after finishing (by then
/// evicted under a short horizon). Each version reaches Kafka 0-5 hours after its update.
fn year(per_day: i64) -> (Vec<Msg>, usize) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as i64
    };
    let (mut out, mut late) = (Vec::new(), 0);
    let first = d("2024-01-01");
    for day in 0..365 {
        for k in 0..per_day {
            let when = at(first + Duration::days(day), 7 * 60 + rnd(600));
            let mut e = received(&format!("Y{day}-{k}"), when);
            e.procedure_code = PROCEDURES[rnd(3) as usize].into();
            e.locality_code = LOCALITIES[rnd(3) as usize].into();
            e.channel = Channel::ALL[rnd(3) as usize];
            let mut versions = vec![e.clone()];
            if rnd(10) != 0 {
                let done = finished(&e, when + Duration::minutes(rnd(12 * 24 * 60)));
                versions.push(done.clone());
                if rnd(20) == 0 {
                    late += 1;
                    versions.push(DossierEvent {
                        channel: Channel::Postal,
                        updated_at: done.updated_at + Duration::days(40),
                        ..done
                    });
                }
            }
            if rnd(8) == 0 {
                versions.push(versions[0].clone());
            }
            for v in versions {
                let at_ms = v.updated_at.timestamp_millis() + rnd(5 * 3_600_000);
                out.push(Msg { at_ms, event: v });
            }
        }
    }
    out.sort_by_key(|m| m.at_ms);
    (out, late)
}

fn project(b: &RecordBatch) -> RecordBatch {
    let cols: Vec<usize> = (0..BUCKETS_SCHEMA.fields().len()).collect();
    b.project(&cols).unwrap()
}

#[test]
fn eviction_keeps_a_year_bounded_and_every_window_exact() {
    let horizon = 5;
    let (messages, late) = year(40);
    let mut s = PartitionState::default();
    let mut outbox = Outbox::default();
    let committed = Committed::default();
    let (mut contributions, mut state_rows) = (Vec::new(), Vec::new());
    let mut accepted = EventsBuilder::default();
    let (mut most, mut refused, mut evicted) = (0, 0, 0);
    for (offset, m) in messages.iter().enumerate() {
        let offset = offset as i64;
        if let Some(today) = s.tick(m.at_ms) {
            let gone = s.evict(today, horizon);
            evicted += gone.len();
            outbox.evicted(&committed, offset, &gone);
            let b = outbox.take(&s, 0).unwrap();
            contributions.push(project(&b.contributions));
            state_rows.push(b.state);
            most = most.max(s.dossier_count());
        }
        let bytes = m.event.to_canonical_json();
        let applied = s.apply_full(&m.event, content_hash(&bytes), s.today().unwrap(), horizon);
        outbox.record(&committed, offset, m.at_ms, &m.event.dossier_id, &applied);
        s.next_offset = offset + 1;
        match applied.outcome {
            Outcome::BeyondHorizon { .. } => refused += 1,
            _ => accepted.push(&m.event),
        }
    }
    let b = outbox.take(&s, 0).unwrap();
    contributions.push(project(&b.contributions));
    state_rows.push(b.state);
    // Bounded: a year of 14,600 dossiers, at most the open ones (one in ten never
    // finishes: ~1,460 by the end) and those of the last ~3 weeks held at once.
    let dossiers = 365 * 40;
    assert!(evicted > dossiers * 3 / 4, "evicted {evicted}");
    assert!(most < 1_460 + 40 * 25, "held at most {most}");
    // Every late correction of an evicted dossier was refused, and nothing else.
    assert_eq!(
        refused, late,
        "refused {refused} of {late} late corrections"
    );
    // The state rows (with tombstones) restore exactly the dossiers held.
    let back = PartitionState::from_state_rows(&state_rows, s.next_offset, s.clock_ms).unwrap();
    assert_eq!(back.dossier_count(), s.dossier_count());
    assert_eq!(back.buckets_batch(), s.buckets_batch());
    // The contributions (never retracted by eviction) equal the batch over what was
    // accepted, for windows all through the year.
    let events = vec![accepted.finish()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut end = d("2024-01-20");
    while end <= d("2025-01-10") {
        let q = WindowQuery {
            from: end - Duration::days(29),
            to: end,
            group_by: vec![GroupKey::Service, GroupKey::Province],
            locality: None,
        };
        let streaming = rt
            .block_on(window_from_buckets(&DIMS, contributions.clone(), &q))
            .unwrap();
        let batch = rt
            .block_on(window_from_events(&DIMS, events.clone(), &q, i32::MIN))
            .unwrap();
        assert_eq!(streaming, batch, "window ending {end}");
        assert!(streaming.totals.get(Measure::Total) > 0 || end > d("2024-12-31"));
        end += Duration::days(23);
    }
}

prop_compose! {
    fn any_version()(
        received in proptest::option::weighted(0.9, -200_000..4_000_000i64),
        finish in proptest::option::of(-20_000..60_000_000i64),
        due in proptest::option::of(-5_000..70_000_000i64),
        updated in 0..6_000_000i64,
        status in 1..=10u8,
        channel in 0..3usize,
        agency in proptest::option::of("[a-c]{1,2}"),
    ) -> DossierEvent {
        let t = |m: i64| at(d("2024-01-01"), m);
        DossierEvent {
            dossier_id: format!("P{received:?}{finish:?}"),
            procedure_code: PROCEDURES[channel].into(),
            procedure_name: None,
            locality_code: LOCALITIES[(status % 3) as usize].into(),
            agency,
            channel: Channel::ALL[channel],
            status: Status::from_portal_number(status as u64).unwrap(),
            received_at: received.map(t),
            due_at: received.zip(due).map(|(r, x)| t(r + x)),
            finished_at: received.zip(finish).map(|(r, x)| t(r + x)),
            updated_at: t(updated),
            event_id: None,
            source: None,
        }
    }
}

proptest! {
    /// Packing an entry into its 36-byte slot loses nothing, wide days (finished or due
    /// more than 89 years from received) included.
    #[test]
    fn the_packed_table_gives_back_every_entry(versions in prop::collection::vec(any_version(), 1..60)) {
        let mut s = PartitionState::default();
        for e in &versions {
            let applied = s.apply_full(e, content_hash(&e.to_canonical_json()), 0, i32::MAX / 2);
            if matches!(applied.outcome, Outcome::Applied { .. }) {
                prop_assert_eq!(s.entry(&applied.key), applied.new);
            }
        }
        let keys: Vec<_> = s.entries().map(|(k, _)| k).collect();
        for k in keys.iter().step_by(2) {
            let e = s.entry(k);
            prop_assert!(e.is_some());
        }
        let held = s.dossier_count();
        let today = day_number(d("2400-01-01"));
        let gone = s.evict(today, 1);
        prop_assert_eq!(s.dossier_count() + gone.len(), held);
        for (k, e) in s.entries() {
            prop_assert_eq!(s.entry(&k), Some(e));
            prop_assert!(e.settled_day().is_none_or(|d| d >= today - 1));
        }
    }
}
