//! The store against real Delta tables in a directory: commits with offsets, restore,
//! windows, fencing of a second writer, as_of versions, compaction and vacuum.

use dvc_pulse_model::DossierEvent;
use dvc_pulse_store::{CommitMeta, PartitionCommit, Store, StoreOptions};
use dvc_pulse_window::Measure;
use dvc_pulse_window::outbox::{Committed, Outbox};
use dvc_pulse_window::{Dims, GroupKey, PartitionState, WindowQuery, content_hash, window_in};

fn event(id: &str, day: u32, channel: &str, updated_h: u32) -> DossierEvent {
    serde_json::from_value(serde_json::json!({
        "dossier_id": id, "procedure_code": "1.001193", "locality_code": "22738",
        "channel": channel, "status": "received",
        "received_at": format!("2024-06-{day:02}T09:00:00+07:00"),
        "updated_at": format!("2024-06-{day:02}T{updated_h:02}:00:00+07:00"),
    }))
    .unwrap()
}

async fn open(dir: &std::path::Path, history_days: u32) -> Store {
    Store::open(StoreOptions {
        query_memory: None,
        url: dir.display().to_string(),
        history_days,
        app_prefix: "g/events".into(),
    })
    .await
    .unwrap()
}

/// Applies `events` from `offset` on and commits them as partition 0.
async fn apply_and_commit(
    store: &Store,
    state: &mut PartitionState,
    committed: Committed,
    events: &[DossierEvent],
) -> Result<Committed, dvc_pulse_store::StoreError> {
    apply_and_commit_to(store, (0, 1), state, committed, events).await
}

/// [`apply_and_commit`] as `partition` of a topic of `of` partitions.
async fn apply_and_commit_to(
    store: &Store,
    (partition, of): (i32, i32),
    state: &mut PartitionState,
    committed: Committed,
    events: &[DossierEvent],
) -> Result<Committed, dvc_pulse_store::StoreError> {
    let mut out = Outbox::default();
    for e in events {
        let off = state.next_offset;
        let bytes = serde_json::to_vec(e).unwrap();
        let applied = state.apply_full(e, content_hash(&bytes), 20000, 100000);
        out.record(
            &committed,
            off,
            1_700_000_000_000 + off,
            &e.dossier_id,
            &applied,
        );
        state.next_offset = off + 1;
    }
    let parts = [PartitionCommit {
        clock_ms: 0,
        partition,
        next_offset: state.next_offset,
        expected: committed,
        batches: out.take(state, partition).unwrap(),
    }];
    let meta = CommitMeta {
        partitions: of,
        ..Default::default()
    };
    Ok(store.commit(&parts, meta).await?[0])
}

async fn totals(store: &Store, as_of: Option<i64>) -> (i64, i64, i64) {
    let view = store.view(as_of, 1).await.unwrap();
    let dims = Dims::new(&dvc_pulse_model::Reference::embedded());
    let q = WindowQuery {
        from: "2024-06-01".parse().unwrap(),
        to: "2024-06-30".parse().unwrap(),
        group_by: vec![GroupKey::Service],
        locality: None,
    };
    let t = window_in(&view.ctx, &dims, &q).await.unwrap();
    (
        t.totals.get(Measure::Total),
        t.totals.get(Measure::Online),
        view.meta.at,
    )
}

/// A worker loads every partition assigned to it in one read: each comes back as it was
/// committed, in the order asked, an untouched partition empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_load_together_each_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1).await;
    let events = [
        vec![event("A", 3, "online", 9)],
        vec![event("B", 4, "in_person", 9), event("C", 5, "online", 9)],
        vec![
            event("D", 6, "online", 9),
            event("E", 7, "postal", 9),
            event("D", 6, "in_person", 10),
        ],
    ];
    let mut states = Vec::new();
    for (p, es) in events.iter().enumerate() {
        let (mut state, committed) = store.load_partition(p as i32).await.unwrap();
        apply_and_commit_to(&store, (p as i32, 4), &mut state, committed, es)
            .await
            .unwrap();
        states.push(state);
    }
    let other = open(dir.path(), 1).await;
    let loaded = other.load_partitions(&[2, 3, 0, 1]).await.unwrap();
    let order = [Some(2), None, Some(0), Some(1)];
    assert_eq!(loaded.len(), order.len());
    for ((state, committed), expected) in loaded.iter().zip(order) {
        let Some(p) = expected else {
            assert_eq!(state.dossier_count(), 0);
            assert_eq!(*committed, Committed::default());
            continue;
        };
        let n = events[p].len() as i64;
        assert_eq!(state.next_offset, n, "partition {p}");
        assert_eq!(
            *committed,
            Committed {
                changes: n,
                contributions: n,
                state: n
            }
        );
        assert_eq!(
            state.dossier_count(),
            states[p].dossier_count(),
            "partition {p}"
        );
        assert_eq!(
            state.buckets_batch(),
            states[p].buckets_batch(),
            "partition {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_restore_fence_time_travel_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 1).await;
    let (mut state, committed) = store.load_partition(0).await.unwrap();
    assert_eq!(committed, Committed::default());
    let c1 = apply_and_commit(
        &store,
        &mut state,
        committed,
        &[event("A", 3, "online", 9), event("B", 4, "in_person", 9)],
    )
    .await
    .unwrap();
    assert_eq!(
        c1,
        Committed {
            changes: 2,
            contributions: 2,
            state: 2
        }
    );
    let (total, online, at1) = totals(&store, None).await;
    assert_eq!((total, online), (2, 1));

    // A correction (B online) and a duplicate.
    let c2 = apply_and_commit(
        &store,
        &mut state,
        c1,
        &[event("B", 4, "online", 10), event("A", 3, "online", 9)],
    )
    .await
    .unwrap();
    assert_eq!(
        totals(&store, None).await.0..=totals(&store, None).await.1,
        2..=2
    );
    // As of the first commit's moment: the first answer again.
    assert_eq!(totals(&store, Some(at1)).await, (2, 1, at1));

    // A second store handle restores the same state and offsets.
    let other = open(dir.path(), 1).await;
    let (restored, rc) = other.load_partition(0).await.unwrap();
    assert_eq!(rc, c2);
    assert_eq!(restored.dossier_count(), 2);
    assert_eq!(restored.buckets_batch(), state.buckets_batch());

    // The other handle takes the partition over and commits: the first one is fenced.
    let mut taken = restored;
    let c3 = apply_and_commit(&other, &mut taken, rc, &[event("C", 5, "online", 9)])
        .await
        .unwrap();
    assert_eq!(c3.contributions, 5);
    let err = apply_and_commit(&store, &mut state, c2, &[event("D", 6, "online", 9)])
        .await
        .unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert_eq!(
        totals(&store, None).await.0,
        3,
        "the fenced writer wrote nothing"
    );

    // The changes table names every version read, by offset range.
    let log = store.changes(&[(0, 0, 5)]).await.unwrap();
    let mut named: Vec<_> = log
        .revisions
        .iter()
        .map(|(_, r)| (r.offset, r.dossier_id.to_string(), r.change.name()))
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            (0, "A".into(), "new"),
            (1, "B".into(), "new"),
            (2, "B".into(), "corrected"),
            (3, "A".into(), "duplicate"),
            (4, "C".into(), "new")
        ]
    );

    // Compaction folds many small files; the window and every as_of stay the same.
    let mut c = c3;
    for i in 0..5 {
        c = apply_and_commit(
            &other,
            &mut taken,
            c,
            &[event(&format!("E{i}"), 7, "in_person", 9)],
        )
        .await
        .unwrap();
    }
    let before = totals(&other, None).await;
    let files = |sub: &str| walk(&dir.path().join(sub));
    // Vacuum with no retention: superseded files go at once (the as_of above is answered
    // before; keeping versions is what history_days is for).
    let as_of_first = totals(&other, Some(at1)).await.0;
    let m = open(dir.path(), 0).await.maintain(20000, 4).await.unwrap();
    assert!(m.compacted >= 1, "{m:?}");
    let after = totals(&other, None).await;
    assert_eq!((before.0, before.1), (after.0, after.1));
    assert_eq!(as_of_first, 2);
    assert!(m.vacuumed > 0, "{m:?}");
    assert!(
        files("contributions") < 6,
        "{} files",
        files("contributions")
    );
    // State compaction: one file for the partition, restore unchanged.
    other
        .compact_state(0, taken.full_state_batch(0, c.state).unwrap(), c.state)
        .await
        .unwrap();
    assert_eq!(other.state_files(0).await.unwrap(), 1);
    let (again, _) = open(dir.path(), 1).await.load_partition(0).await.unwrap();
    assert_eq!(again.buckets_batch(), taken.buckets_batch());
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        if p.ends_with("_delta_log") {
                            0
                        } else {
                            walk(&p)
                        }
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "parquet"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
