//! What a partition owes the store since its last commit: the bucket deltas (the
//! `contributions` table), the versions read (`changes`) and the dossiers whose entry
//! changed (`state`). Each table has its own committed offset; a version below it is
//! already there and is not emitted again, so a replay after a crash between the three
//! commits writes each table's missing part exactly once.

use crate::changes::{BucketDeltas, Change, Revision};
use crate::error::WindowError;
use crate::state::{Applied, BucketCounts, BucketKey, FastMap, Key, Outcome, PartitionState};
use datafusion::arrow::array::RecordBatch;

/// The offsets each table holds for a partition: every version before it is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// `changes` table.
    pub changes: i64,
    /// `contributions` table.
    pub contributions: i64,
    /// `state` table.
    pub state: i64,
}

/// Pending output of one partition.
#[derive(Debug, Default)]
pub struct Outbox {
    contributions: FastMap<BucketKey, BucketCounts>,
    changes: Vec<Revision>,
    state: FastMap<Key, i64>,
}

/// One partition's output, encoded for the store.
#[derive(Debug)]
pub struct Batches {
    /// `changes` rows.
    pub changes: RecordBatch,
    /// `contributions` rows (bucket deltas; zero rows left out).
    pub contributions: RecordBatch,
    /// `state` rows.
    pub state: RecordBatch,
}

impl Outbox {
    /// Records what applying the version at `offset` (ingested at `at_ms`) did, emitting
    /// only into the tables whose committed offset is at or below it.
    pub fn record(
        &mut self,
        committed: &Committed,
        offset: i64,
        at_ms: i64,
        dossier_id: &str,
        applied: &Applied,
    ) {
        let deltas = match applied.new {
            Some(new) if matches!(applied.outcome, Outcome::Applied { .. }) => {
                BucketDeltas::of(applied.old.as_ref(), Some(&new))
            }
            _ => BucketDeltas::default(),
        };
        self.record_netted(committed, (offset, at_ms), dossier_id, applied, &deltas);
    }

    /// [`Outbox::record`] with the bucket deltas the version added, as
    /// [`PartitionState::apply_keyed`](crate::PartitionState::apply_keyed) returned them.
    pub fn record_netted(
        &mut self,
        committed: &Committed,
        (offset, at_ms): (i64, i64),
        dossier_id: &str,
        applied: &Applied,
        deltas: &BucketDeltas,
    ) {
        let (Some(change), Some(new)) = (Change::of(applied.outcome), applied.new) else {
            return;
        };
        if offset >= committed.changes {
            self.changes.push(Revision {
                at_ms,
                offset,
                dossier_id: dossier_id.into(),
                change,
                old: applied.old,
                new,
            });
        }
        if !change.applied() {
            return;
        }
        if offset >= committed.contributions {
            deltas.add_to(&mut self.contributions);
        }
        if offset >= committed.state {
            self.state.insert(applied.key, offset);
        }
    }

    /// Records dossiers evicted before applying the version at `offset`: their `state`
    /// rows become tombstones (when that table is at or below it).
    pub fn evicted(&mut self, committed: &Committed, offset: i64, keys: &[Key]) {
        if offset >= committed.state {
            for k in keys {
                self.state.insert(*k, offset);
            }
        }
    }

    /// Versions recorded since the last [`Outbox::take`].
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.contributions.is_empty() && self.state.is_empty()
    }

    /// Number of state rows pending.
    pub fn state_rows(&self) -> usize {
        self.state.len()
    }

    /// Encodes and empties the outbox.
    pub fn take(&mut self, s: &PartitionState, partition: i32) -> Result<Batches, WindowError> {
        // Buckets whose deltas net to zero were removed as they did.
        let keys: Vec<(Key, i64)> = self.state.iter().map(|(k, o)| (*k, *o)).collect();
        let batches = Batches {
            changes: s.changes_batch(partition, &self.changes)?,
            contributions: s.contributions_batch(&self.contributions),
            state: s.state_batch(partition, &keys)?,
        };
        // Emptied, keeping room for as much output as this commit had (the next is
        // likely alike; a burst's room goes at the next, smaller commit).
        let sizes = (self.changes.len(), self.contributions.len(), keys.len());
        self.changes.clear();
        self.changes.shrink_to(sizes.0);
        self.contributions.clear();
        self.contributions.shrink_to(sizes.1);
        self.state.clear();
        self.state.shrink_to(sizes.2);
        Ok(batches)
    }
}
