//! Differential property test: the streaming state's buckets and the batch SQL over raw
//! versions give the same windows, for random messy streams, windows and groupings.

use chrono::{Duration, NaiveDate, TimeZone};
use datafusion::arrow::array::AsArray;
use dvc_pulse_model::event::ict;
use dvc_pulse_model::{Channel, DossierEvent, Reference, Status};
use dvc_pulse_window::Measure;
use dvc_pulse_window::fact::day_number;
use dvc_pulse_window::state::Outcome;
use dvc_pulse_window::{
    Dims, EventsBuilder, GroupKey, LatestVersions, PartitionState, WindowQuery, content_hash,
    series_from_buckets, window_from_buckets, window_from_events, window_from_latest,
};
use proptest::prelude::*;
use std::sync::LazyLock;

static DIMS: LazyLock<Dims> = LazyLock::new(|| Dims::new(&Reference::embedded()));

const LOCALITIES: &[&str] = &["22738", "22741", "582", "22780", "00004", "56", "79"];
const PROCEDURES: &[&str] = &["1.001193", "DA06-03", "DA06-06", "2.000001"];
const AGENCIES: &[Option<&str>] = &[
    None,
    Some("Công an phường Đô Vinh"),
    Some("UBND xã Thành Hải"),
];

fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
}

fn at(minutes: i64) -> dvc_pulse_model::event::Timestamp {
    let t0 = ict()
        .from_local_datetime(&base().and_hms_opt(0, 0, 0).unwrap())
        .unwrap();
    t0 + Duration::minutes(minutes)
}

prop_compose! {
    fn version()(
        dossier in 0..25u8,
        procedure in 0..PROCEDURES.len(),
        locality in 0..LOCALITIES.len(),
        agency in 0..AGENCIES.len(),
        channel in 0..3usize,
        status in 1..=10u8,
        received in proptest::option::weighted(0.9, 0..60 * 24 * 60i64),
        finish_after in proptest::option::of(0..20 * 24 * 60i64),
        due_after in proptest::option::of(0..20 * 24 * 60i64),
        updated in 0..90 * 24 * 60i64,
    ) -> DossierEvent {
        DossierEvent {
            dossier_id: format!("D{dossier}"),
            procedure_code: PROCEDURES[procedure].into(),
            procedure_name: None,
            locality_code: LOCALITIES[locality].into(),
            agency: AGENCIES[agency].map(str::to_string),
            channel: Channel::ALL[channel],
            status: Status::from_portal_number(status as u64).unwrap(),
            received_at: received.map(at),
            due_at: received.zip(due_after).map(|(r, d)| at(r + d)),
            finished_at: received.zip(finish_after).map(|(r, f)| at(r + f)),
            updated_at: at(updated),
            event_id: None,
            source: None,
        }
    }
}

fn stream() -> impl Strategy<Value = Vec<DossierEvent>> {
    prop::collection::vec(version(), 0..120).prop_flat_map(|vs| {
        // Redeliver some versions byte for byte, then shuffle the lot.
        let n = vs.len();
        (
            Just(vs),
            prop::collection::vec(any::<prop::sample::Index>(), 0..n / 4 + 1),
        )
            .prop_map(|(mut vs, dups)| {
                let extra: Vec<_> = dups
                    .iter()
                    .filter(|_| !vs.is_empty())
                    .map(|i| vs[i.index(vs.len())].clone())
                    .collect();
                vs.extend(extra);
                vs
            })
            .prop_shuffle()
    })
}

fn query() -> impl Strategy<Value = WindowQuery> {
    (
        0..80i64,
        0..40i64,
        prop::sample::subsequence(GroupKey::ALL.to_vec(), 0..3).prop_shuffle(),
        proptest::option::of(prop::sample::select(vec![
            "582", "58", "56", "22738", "79", "00004", "001",
        ])),
    )
        .prop_map(|(start, len, group_by, locality)| WindowQuery {
            from: base() + Duration::days(start),
            to: base() + Duration::days(start + len),
            group_by,
            locality: locality.map(str::to_string),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn streaming_equals_batch(events in stream(), q in query(), today_offset in 30..120i64, partitions in 1..4usize, run in 1..9usize) {
        let today = day_number(base() + Duration::days(today_offset));
        let horizon = 60;
        let mut states = vec![PartitionState::default(); partitions];
        let mut builder = EventsBuilder::default();
        let mut latest = LatestVersions::new(today - horizon);
        for e in &events {
            latest.push(e);
            let bytes = e.to_canonical_json();
            let content = content_hash(&bytes);
            let p = dvc_pulse_window::dossier_key(&e.dossier_id)[0] as usize % partitions;
            let outcome = states[p].apply(e, content, today, horizon);
            builder.push(e);
            let negative = matches!(outcome, Outcome::Applied { lateness_days, .. } if lateness_days < 0);
            prop_assert!(!negative, "lateness is never negative");
        }
        // A checkpoint round trip rebuilds the same buckets.
        for s in &states {
            let back = PartitionState::from_state_rows(&[s.full_state_batch(0, s.next_offset).unwrap()], s.next_offset, 0).unwrap();
            prop_assert_eq!(back.buckets_batch(), s.buckets_batch());
            prop_assert_eq!(back.dossier_count(), s.dossier_count());
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let streaming = rt.block_on(window_from_buckets(&DIMS, states.iter().map(|s| s.buckets_batch()).collect(), &q)).unwrap();
        let batch = rt.block_on(window_from_events(&DIMS, vec![builder.finish()], &q, today - horizon)).unwrap();
        prop_assert_eq!(&streaming, &batch, "query {:?}", q);
        // The fold of `snapshot --input` picks the same latest versions as the SQL.
        let folded = rt.block_on(window_from_latest(&DIMS, latest, &q)).unwrap();
        prop_assert_eq!(&folded, &batch, "folded, query {:?}", q);
        // Folded in runs of `run` versions (as the parser threads do), merged in order.
        let mut merged = LatestVersions::new(today - horizon);
        for part in events.chunks(run) {
            let mut b = merged.block();
            part.iter().for_each(|e| b.push(e));
            merged.merge(b);
        }
        let merged = rt.block_on(window_from_latest(&DIMS, merged, &q)).unwrap();
        prop_assert_eq!(&merged, &batch, "merged runs of {}, query {:?}", run, q);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// The RANGE window over a day grid equals one plain window per day.
    #[test]
    fn rolling_series_equals_a_window_per_day(events in stream(), q in query(), partitions in 1..3usize) {
        let today = day_number(base() + Duration::days(120));
        let mut states = vec![PartitionState::default(); partitions];
        for e in &events {
            let bytes = e.to_canonical_json();
            let p = dvc_pulse_window::dossier_key(&e.dossier_id)[0] as usize % partitions;
            states[p].apply(e, content_hash(&bytes), today, 400);
        }
        let q = WindowQuery { to: q.from + Duration::days((q.to - q.from).num_days().min(12)), ..q };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let batches: Vec<_> = states.iter().map(|s| s.buckets_batch()).collect();
        let series = rt.block_on(series_from_buckets(&DIMS, batches.clone(), &q)).unwrap();
        let mut day = q.from;
        while day <= q.to {
            let w = rt.block_on(window_from_buckets(&DIMS, batches.clone(), &WindowQuery::rolling(day, q.group_by.clone(), q.locality.clone()))).unwrap();
            let flows = |c: &dvc_pulse_window::Counts| (c.get(Measure::Total), c.get(Measure::Online), c.get(Measure::InPerson), c.get(Measure::Postal), c.get(Measure::Finished), c.get(Measure::OnTime), c.get(Measure::Overdue), c.get(Measure::FinishedNoDue));
            let expected: Vec<_> = w.rows.iter().filter(|r| r.counts.get(Measure::Total) != 0 || r.counts.get(Measure::Finished) != 0).map(|r| (r.keys.clone(), flows(&r.counts))).collect();
            let got: Vec<_> = series.points.iter().filter(|p| p.day == day).map(|p| (p.row.keys.clone(), flows(&p.row.counts))).collect();
            prop_assert_eq!(got, expected, "day {}", day);
            day += Duration::days(1);
        }
    }
}

/// Pins the definitions on a hand-made dossier, so both paths cannot agree on a wrong answer.
#[test]
fn one_dossier_by_hand() {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let e = DossierEvent {
        dossier_id: "X".into(),
        procedure_code: "1.001193".into(),
        procedure_name: None,
        locality_code: "22738".into(),
        agency: None,
        channel: Channel::Online,
        status: Status::Processed,
        // 2024-06-09 23:30 UTC is 2024-06-10 06:30 in Hà Nội.
        received_at: Some(
            "2024-06-09T23:30:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                .with_timezone(&ict()),
        ),
        due_at: Some(at(14 * 24 * 60 + 17 * 60)), // 2024-06-15 17:00
        finished_at: Some(at(20 * 24 * 60 + 9 * 60)), // 2024-06-21 09:00: late
        updated_at: at(20 * 24 * 60 + 9 * 60),
        event_id: None,
        source: None,
    };
    let mut s = PartitionState::default();
    let today = day_number(d("2024-07-01"));
    assert!(matches!(
        s.apply(&e, 1, today, 400),
        Outcome::Applied {
            replaced: false,
            lateness_days: 21
        }
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let w = |from: &str, to: &str| {
        let q = WindowQuery {
            from: d(from),
            to: d(to),
            group_by: vec![GroupKey::Service],
            locality: Some("582".into()),
        };
        rt.block_on(window_from_buckets(&DIMS, vec![s.buckets_batch()], &q))
            .unwrap()
            .totals
    };
    let c = w("2024-06-10", "2024-06-10");
    assert_eq!(
        (
            c.get(Measure::Total),
            c.get(Measure::Online),
            c.get(Measure::Pending),
            c.get(Measure::PendingOverdue)
        ),
        (1, 1, 1, 0)
    );
    let c = w("2024-06-16", "2024-06-16");
    assert_eq!(
        (
            c.get(Measure::Total),
            c.get(Measure::Pending),
            c.get(Measure::PendingOverdue),
            c.get(Measure::PendingWithin)
        ),
        (0, 1, 1, 0)
    );
    let c = w("2024-06-01", "2024-06-30");
    assert_eq!(
        (
            c.get(Measure::Total),
            c.get(Measure::Finished),
            c.get(Measure::Overdue),
            c.get(Measure::OnTime),
            c.get(Measure::Pending)
        ),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(c.online_rate(), Some(100.0));
    let c = w("2024-06-09", "2024-06-09");
    assert_eq!((c.get(Measure::Total), c.get(Measure::Pending)), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Exactly once across a crash between the store's commits: the outbox's output is
    /// committed at `c1`, then changes and contributions reach `c2` while the state stays
    /// at `c1`; a worker restored from the state rows replays from `c1` and emits into each
    /// table only what it lacks. Every table then holds each version once, and the
    /// contributions add up to the buckets of a state that read the stream once.
    #[test]
    fn replay_after_a_partial_commit_emits_each_version_once(events in stream(), q in query(), c1 in 0..130usize, extra in 0..130usize) {
        use dvc_pulse_window::outbox::{Committed, Outbox};
        let today = day_number(base() + Duration::days(120));
        let n = events.len();
        let (c1, c2) = (c1.min(n), (c1 + extra).min(n));
        let content = |e: &dvc_pulse_model::DossierEvent| content_hash(&e.to_canonical_json());
        let feed = |s: &mut PartitionState, out: &mut Outbox, c: &Committed, range: std::ops::Range<usize>| {
            for i in range {
                let a = s.apply_full(&events[i], content(&events[i]), today, 400);
                out.record(c, i as i64, i as i64, &events[i].dossier_id, &a);
                s.next_offset = i as i64 + 1;
            }
        };
        // First life: commits everything up to c1, then changes and contributions to c2.
        let (mut live, mut out) = (PartitionState::default(), Outbox::default());
        feed(&mut live, &mut out, &Committed::default(), 0..c1);
        let first = out.take(&live, 0).unwrap();
        let state_rows = first.state.clone();
        feed(&mut live, &mut out, &Committed { changes: c1 as i64, contributions: c1 as i64, state: c1 as i64 }, c1..c2);
        let second = out.take(&live, 0).unwrap();
        // Second life: restored from the state rows (offset c1), replays c1..n.
        let mut back = PartitionState::from_state_rows(&[state_rows], c1 as i64, 0).unwrap();
        let committed = Committed { changes: c2 as i64, contributions: c2 as i64, state: c1 as i64 };
        let mut out = Outbox::default();
        feed(&mut back, &mut out, &committed, c1..n);
        let third = out.take(&back, 0).unwrap();
        // Every version once in the changes table, in offset order.
        let offsets: Vec<i64> = [&first, &second, &third]
            .iter()
            .flat_map(|b| b.changes.column(2).as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        prop_assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
        // The contributions add up to the state of a single pass.
        let mut once = PartitionState::default();
        for e in &events {
            once.apply(e, content(e), today, 400);
        }
        let contributions: Vec<_> = [first.contributions, second.contributions, third.contributions]
            .into_iter()
            .map(|b| b.project(&(0..16).collect::<Vec<_>>()).unwrap())
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let expected = rt.block_on(window_from_buckets(&DIMS, vec![once.buckets_batch()], &q)).unwrap();
        let got = rt.block_on(window_from_buckets(&DIMS, contributions, &q)).unwrap();
        prop_assert_eq!(&got, &expected, "c1 {} c2 {} query {:?}", c1, c2, q);
        prop_assert_eq!(back.buckets_batch(), once.buckets_batch());
    }
}

/// `state` rows ordered by key (their order is a hash map's, which its capacity decides;
/// a key appears once per commit).
fn by_key(b: &datafusion::arrow::array::RecordBatch) -> datafusion::arrow::array::RecordBatch {
    use datafusion::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
    let by = |i: usize| SortColumn {
        values: b.column(i).clone(),
        options: None,
    };
    let order = lexsort_to_indices(&[by(1), by(2)], None).unwrap();
    take_record_batch(b, &order).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// The worker's path (the key computed beforehand, the bucket deltas computed once
    /// for the state and the outbox) emits what the plain path does, commit after commit;
    /// and an outbox taken once and fed again emits exactly what a fresh one would.
    #[test]
    fn keyed_apply_and_a_reused_outbox_emit_what_the_plain_path_does(events in stream(), cut in 0..130usize) {
        use dvc_pulse_window::dossier_key;
        use dvc_pulse_window::outbox::{Committed, Outbox};
        let today = day_number(base() + Duration::days(120));
        let content = |e: &DossierEvent| content_hash(&e.to_canonical_json());
        let cut = cut.min(events.len());
        let c = Committed::default();
        let (mut plain, mut keyed) = (PartitionState::default(), PartitionState::default());
        let (mut plain_out, mut keyed_out, mut fresh) = (Outbox::default(), Outbox::default(), Outbox::default());
        let mut taken = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if i == cut {
                taken.push((plain_out.take(&plain, 0).unwrap(), keyed_out.take(&keyed, 0).unwrap()));
            }
            let a = plain.apply_full(e, content(e), today, 400);
            plain_out.record(&c, i as i64, i as i64, &e.dossier_id, &a);
            let key = dossier_key(&e.dossier_id);
            let (b, deltas) = keyed.apply_keyed(key, e, content(e), today, 400);
            prop_assert_eq!(a, b);
            keyed_out.record_netted(&c, (i as i64, i as i64), &e.dossier_id, &b, &deltas);
            if i >= cut {
                fresh.record(&c, i as i64, i as i64, &e.dossier_id, &a);
            }
        }
        for _ in 0..1 + usize::from(cut == events.len()) {
            taken.push((plain_out.take(&plain, 0).unwrap(), keyed_out.take(&keyed, 0).unwrap()));
        }
        prop_assert_eq!(plain.buckets_batch(), keyed.buckets_batch());
        for (p, k) in &taken {
            prop_assert_eq!(&p.changes, &k.changes);
            prop_assert_eq!(&p.contributions, &k.contributions);
            prop_assert_eq!(by_key(&p.state), by_key(&k.state));
        }
        // After a take, nothing of the earlier versions is left to emit again.
        let fresh = fresh.take(&keyed, 0).unwrap();
        let (_, after_cut) = taken.last().unwrap();
        prop_assert_eq!(&after_cut.changes, &fresh.changes);
        prop_assert_eq!(&after_cut.contributions, &fresh.contributions);
        prop_assert_eq!(by_key(&after_cut.state), by_key(&fresh.state));
    }
}
