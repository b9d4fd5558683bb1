//! The consume loop: apply each message to its partition's state, dead-letter what cannot
//! count, commit the output to the table store with the offsets it covers, then commit
//! those offsets to Kafka.
//!
//! Exactly-once effect: every table of the store records, per partition, the offset its
//! rows cover (a Delta transaction id); a partition resumes from the `state` table's
//! offset and emits into each table only what that table lacks. Kafka's committed offset
//! is for lag monitoring only: when it is ahead of the store, the worker seeks back.
//! A worker whose partition another worker committed to meanwhile is fenced: the loop
//! ends with an error and writes nothing more.

use crate::decode::{Batch, Decoded, Decoder, Read, lanes, on_lanes};
use crate::error::WorkerError;
use crate::metrics::{Metrics, band};
use crate::worker::{Owned, Worker};
use dvc_pulse_kafka::dlq::DeadLetter;
use dvc_pulse_kafka::sink::{Destination, KafkaSink, Message};
use dvc_pulse_kafka::{KafkaConfig, TopicsConfig, client_config};
use dvc_pulse_model::{DossierEvent, Reason};
use dvc_pulse_store::{CommitMeta, PartitionCommit};
use dvc_pulse_window::Outcome;
use dvc_pulse_window::outbox::Committed;
use dvc_pulse_window::state::Key;
use futures::StreamExt;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Hears rebalances and statistics on the client's thread.
struct Ctx {
    revoked: mpsc::Sender<Vec<i32>>,
    assigned: mpsc::Sender<Vec<i32>>,
    /// Wakes the consume loop to take in a rebalance at once.
    rebalance: Arc<tokio::sync::Notify>,
    metrics: Metrics,
    topic: String,
    worker: Arc<Worker>,
}

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        if let Some(t) = s.topics.get(&self.topic) {
            for (p, ps) in &t.partitions {
                if *p >= 0 && ps.consumer_lag >= 0 {
                    self.metrics
                        .lag
                        .with_label_values(&[&p.to_string()])
                        .set(ps.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let mut assigned = self.worker.assigned.lock().expect("assigned lock");
            for p in &ps {
                assigned.remove(p);
            }
            let _ = self.revoked.send(ps);
            self.rebalance.notify_one();
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let mut assigned = self.worker.assigned.lock().expect("assigned lock");
            assigned.extend(ps.iter().copied());
            tracing::info!(partitions = ?*assigned, "assigned");
            let _ = self.assigned.send(ps);
            self.rebalance.notify_one();
        }
    }
}

/// A client of its own for metadata requests: on the consumer's connections they would
/// queue behind fetch responses of up to `fetch.max.bytes` (hundreds of milliseconds
/// while a worker catches up, with the consume loop waiting on the answer). An admin
/// client: it polls its own events, and never consumes or produces.
type MetadataClient = Arc<AdminClient<DefaultClientContext>>;

fn metadata_client(worker: &Worker, kafka: &KafkaConfig) -> Result<MetadataClient, WorkerError> {
    let id = format!("{}-metadata", worker.id);
    let cc = client_config(kafka, &[("client.id", id.as_str())]);
    Ok(Arc::new(
        cc.create().map_err(kafka_err("create metadata client"))?,
    ))
}

/// The events topic's partition count, from the brokers (not a cached copy).
async fn topic_partitions(meta: &MetadataClient, topic: &str) -> Result<i32, WorkerError> {
    let (c, topic) = (meta.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        c.inner()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map(|m| {
                m.topics()
                    .first()
                    .map_or(0, |t| t.partitions().len() as i32)
            })
    })
    .await
    .map_err(|e| WorkerError::Task {
        task: "metadata",
        detail: e.to_string(),
    })?
    .map_err(kafka_err("fetch metadata"))
}

/// Stops when the topic no longer has the partition count the store was built from:
/// checked before every commit, after the messages it covers were read, so nothing
/// produced under another count is ever committed. False (commit postponed) when the
/// brokers cannot say.
async fn partitions_unchanged(worker: &Worker, meta: &MetadataClient) -> Result<bool, WorkerError> {
    let recorded = worker.partitions();
    let found = match topic_partitions(meta, &worker.topic).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "partition count unknown; commit postponed");
            return Ok(false);
        }
    };
    if found != recorded && found > 0 {
        return Err(WorkerError::Store(
            dvc_pulse_store::StoreError::PartitionCount { recorded, found },
        ));
    }
    Ok(found == recorded)
}

fn kafka_err(operation: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> WorkerError {
    move |source| WorkerError::Kafka { operation, source }
}

/// The group consumer: manual offsets (the store holds them), committed reads only.
fn create_consumer(
    worker: &Worker,
    kafka: &KafkaConfig,
    ctx: Ctx,
) -> Result<Arc<StreamConsumer<Ctx>>, WorkerError> {
    let cc = client_config(
        kafka,
        &[
            ("group.id", worker.cfg.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("statistics.interval.ms", "1000"),
            ("session.timeout.ms", "10000"),
            // A full prefetch queue pauses fetching for this long (librdkafka's default
            // is a second): a worker catching up drains its queue far sooner.
            ("fetch.queue.backoff.ms", "20"),
            ("client.id", worker.id.as_str()),
        ],
    );
    Ok(Arc::new(
        cc.create_with_context(ctx)
            .map_err(kafka_err("create consumer"))?,
    ))
}

/// Runs the consume loop until `shutdown` turns true; checkpoints once more on the way out.
pub async fn run(
    worker: Arc<Worker>,
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let (tx, revoked) = mpsc::channel();
    let (atx, assigned) = mpsc::channel();
    let rebalance = Arc::new(tokio::sync::Notify::new());
    let ctx = Ctx {
        revoked: tx,
        assigned: atx,
        rebalance: rebalance.clone(),
        metrics: worker.metrics.clone(),
        topic: worker.topic.clone(),
        worker: worker.clone(),
    };
    let consumer = create_consumer(&worker, kafka, ctx)?;
    let metadata = metadata_client(&worker, kafka)?;
    let n = topic_partitions(&metadata, &worker.topic).await?;
    if n > 0 {
        // A store built from another partition count would count dossiers twice.
        worker.store.bind_partitions(n).await?;
        worker.set_partitions(n);
    }
    consumer
        .subscribe(&[&worker.topic])
        .map_err(kafka_err("subscribe"))?;
    let dlq_kafka = KafkaConfig {
        transactional_id_prefix: format!("dvc-pulse-{}", worker.id),
        producers: 1,
        ..kafka.clone()
    };
    let sink = KafkaSink::new(dlq_kafka, topics.clone())?;
    let mut pending: Vec<Message> = Vec::new();
    let mut decoder = Decoder::start()?;
    let mut sought = Sought::default();
    let mut since = 0u64;
    let mut flight = Flight::default();
    // One stream for the loop's life: a message taken through `recv` would register and
    // unregister a waker (two locks) each time.
    let mut messages = consumer.stream();
    let mut ticker = tokio::time::interval(worker.cfg.commit_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(worker = %worker.id, group = %worker.cfg.group_id, partitions = worker.partitions(), "consuming");
    worker.set_ready(true);
    loop {
        // Biased: taking the next batch comes before applying a decoded one, so the
        // decoding thread always has the next batch while the loop applies.
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            // Partitions are loaded as soon as they are assigned, while librdkafka
            // fetches their committed offsets and first messages.
            _ = rebalance.notified() => {
                let (gone, new) = decisions(&revoked, &assigned);
                rebalanced(&worker, &consumer, &mut flight, gone, new).await?;
            }
            landed = flight.landing(), if flight.busy() => {
                flight.land(&worker, &consumer, landed)?;
                if since >= worker.cfg.commit_every_events {
                    since = 0;
                    flight.start(&worker, &metadata, &sink, &mut pending).await?;
                }
            }
            _ = ticker.tick() => {
                let (gone, new) = decisions(&revoked, &assigned);
                rebalanced(&worker, &consumer, &mut flight, gone, new).await?;
                if !flight.busy() {
                    since = 0;
                    flight.start(&worker, &metadata, &sink, &mut pending).await?;
                }
            }
            m = messages.next(), if decoder.has_room() => match m {
                Some(Ok(msg)) => {
                    let mut batch = decoder.batch();
                    batch.push(&msg);
                    drop(msg);
                    batch.fill(&mut messages);
                    decoder.submit(batch)?;
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consume"),
                // rdkafka's stream never ends; were it to, the loop must not spin.
                None => return Err(WorkerError::Task {
                    task: "consume",
                    detail: "the consumer's message stream ended".into(),
                }),
            },
            done = decoder.next(), if decoder.busy() => {
                let (batch, decoded) = done?;
                let (gone, new) = decisions(&revoked, &assigned);
                rebalanced(&worker, &consumer, &mut flight, gone, new).await?;
                let taken = decoder.taken();
                since += apply_batch(&worker, &consumer, (&batch, decoded), &mut sought, taken, &mut pending).await?;
                decoder.recycle(batch);
                if since >= worker.cfg.commit_every_events && !flight.busy() {
                    since = 0;
                    flight.start(&worker, &metadata, &sink, &mut pending).await?;
                }
            }
        }
    }
    flight.settle(&worker, &consumer).await?;
    drop_revoked(&worker, decisions(&revoked, &assigned).0).await?;
    flight
        .start(&worker, &metadata, &sink, &mut pending)
        .await?;
    flight.settle(&worker, &consumer).await?;
    consumer.unsubscribe();
    Ok(())
}

/// The partitions revoked and assigned since the last look.
fn decisions(
    revoked: &mpsc::Receiver<Vec<i32>>,
    assigned: &mpsc::Receiver<Vec<i32>>,
) -> (Vec<i32>, Vec<i32>) {
    (
        revoked.try_iter().flatten().collect(),
        assigned.try_iter().flatten().collect(),
    )
}

/// Takes in the group's latest decisions: revoked partitions are dropped (after the
/// commit in flight lands, so their committed offsets are current for the fence
/// check), newly assigned ones loaded.
async fn rebalanced(
    worker: &Worker,
    consumer: &Arc<StreamConsumer<Ctx>>,
    flight: &mut Flight,
    gone: Vec<i32>,
    new: Vec<i32>,
) -> Result<(), WorkerError> {
    if !gone.is_empty() {
        flight.settle(worker, consumer).await?;
        drop_revoked(worker, gone).await?;
    }
    load_assigned(worker, new).await
}

async fn drop_revoked(worker: &Worker, gone: Vec<i32>) -> Result<(), WorkerError> {
    if gone.is_empty() {
        return Ok(());
    }
    // Keep exactly what the group assigns here: a partition held anywhere else would be
    // exported twice. The next owner resumes from what the store holds.
    let assigned = worker.assigned.lock().expect("assigned lock").clone();
    let dropped: Vec<(i32, i64)> = {
        let mut owned = worker.owned.lock().expect("owned lock");
        let dropped = owned
            .iter()
            .filter(|(p, _)| !assigned.contains(p))
            .map(|(p, o)| (*p, o.committed.contributions))
            .collect();
        owned.retain(|p, _| assigned.contains(p));
        worker.metrics.partitions_owned.set(owned.len() as i64);
        dropped
    };
    // A partition that another worker committed to while this one still held it: this
    // worker was a zombie (paused past its session), and stops.
    let ps: Vec<i32> = dropped.iter().map(|(p, _)| *p).collect();
    let now = worker.store.committed_all(&ps).await?;
    for ((p, ours), found) in dropped.into_iter().zip(now) {
        let found = found.contributions;
        if found > ours {
            return Err(WorkerError::Store(dvc_pulse_store::StoreError::Fenced {
                table: "contributions",
                partition: p,
                expected: ours,
                found,
            }));
        }
    }
    Ok(())
}

/// Loads the state of newly assigned partitions now, so windows and gauges cover them
/// before their next message arrives.
async fn load_assigned(worker: &Worker, ps: Vec<i32>) -> Result<(), WorkerError> {
    let assigned: Vec<i32> = {
        let assigned = worker.assigned.lock().expect("assigned lock");
        ps.into_iter().filter(|p| assigned.contains(p)).collect()
    };
    ensure_loaded(worker, &assigned).await
}

/// Loads the partitions of `ps` not owned yet, all in one read of the store.
async fn ensure_loaded(worker: &Worker, ps: &[i32]) -> Result<(), WorkerError> {
    let missing: Vec<i32> = {
        let owned = worker.owned.lock().expect("owned lock");
        ps.iter()
            .copied()
            .filter(|p| !owned.contains_key(p))
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(&p) = missing.iter().find(|p| **p >= worker.partitions()) {
        return Err(WorkerError::Store(
            dvc_pulse_store::StoreError::PartitionCount {
                recorded: worker.partitions(),
                found: p + 1,
            },
        ));
    }
    let loaded = worker.store.load_partitions(&missing).await?;
    let mut owned = worker.owned.lock().expect("owned lock");
    for (p, (state, committed)) in missing.into_iter().zip(loaded) {
        tracing::info!(
            partition = p,
            offset = state.next_offset,
            dossiers = state.dossier_count(),
            contributions = committed.contributions,
            changes = committed.changes,
            "partition loaded"
        );
        owned
            .entry(p)
            .or_insert_with(|| Owned::new(state, committed));
    }
    worker.metrics.partitions_owned.set(owned.len() as i64);
    Ok(())
}

/// Partitions sought back, each with the number of the latest batch taken before its
/// seek: their messages in that batch and earlier ones were fetched before the seek, and
/// come again after it.
#[derive(Default)]
struct Sought(Vec<(i32, u64)>);

impl Sought {
    /// Whether a message of partition `p` in batch `seq` predates a seek of `p`.
    fn covers(&self, p: i32, seq: u64) -> bool {
        self.0.iter().any(|&(q, upto)| q == p && seq <= upto)
    }

    /// Forgets the seeks that no batch from `seq` on predates.
    fn forget_before(&mut self, seq: u64) {
        self.0.retain(|&(_, upto)| upto >= seq);
    }
}

/// Applies a decoded batch under one lock of the owned partitions; the metrics are
/// updated once for the batch. `taken` is the number of the latest batch taken (a seek
/// made now covers it). Messages of partitions no longer assigned here, or fetched before
/// a seek of their partition, are left unread. Returns how many messages changed a state.
async fn apply_batch(
    worker: &Worker,
    consumer: &StreamConsumer<Ctx>,
    (batch, decoded): (&Batch, Vec<Decoded>),
    sought: &mut Sought,
    taken: u64,
    pending: &mut Vec<Message>,
) -> Result<u64, WorkerError> {
    // A batch taken before a revocation may hold the revoked partitions' messages.
    let assigned = worker.assigned.lock().expect("assigned lock").clone();
    let mut partitions: Vec<i32> = batch.msgs.iter().map(|r| r.p).collect();
    partitions.retain(|p| assigned.contains(p));
    partitions.sort_unstable();
    partitions.dedup();
    ensure_loaded(worker, &partitions).await?;
    sought.forget_before(batch.seq);
    let now = (worker.clock)();
    let mut tally = Tally::default();
    let mut seeks: Vec<(i32, i64, i64)> = Vec::new();
    {
        let mut owned = worker.owned.lock().expect("owned lock");
        for ((r, payload), d) in batch.iter().zip(decoded) {
            if !assigned.contains(&r.p) || sought.covers(r.p, batch.seq) {
                tally.unread += 1;
                continue;
            }
            let o = owned.get_mut(&r.p).expect("loaded above");
            match position(o, r.p, r.off, &worker.metrics) {
                Position::Replayed => tally.replayed += 1,
                Position::Ahead(to) => {
                    tally.unread += 1;
                    seeks.push((r.p, r.off, to));
                    sought.0.push((r.p, taken));
                }
                Position::Next => {
                    apply(worker, o, (r, payload, d), now, &mut tally, pending);
                    tally.changed += 1;
                }
            }
        }
    }
    tally.flush(&worker.metrics, batch.msgs.len() as u64);
    for (p, off, to) in seeks {
        seek_back(worker, consumer, p, off, to)?;
    }
    Ok(tally.changed)
}

/// What a batch did, added to the metrics once.
#[derive(Default)]
struct Tally {
    changed: u64,
    /// Left unread: fetched before a seek, or of a partition no longer assigned here
    /// (read again from the store's offset, here or by the partition's new owner).
    unread: u64,
    replayed: u64,
    applied: u64,
    retractions: u64,
    late: [u64; crate::metrics::LATENESS_BANDS.len()],
    duplicates: u64,
    stale: u64,
    beyond_horizon: u64,
    newest_event_us: Option<i64>,
}

impl Tally {
    fn flush(&self, m: &Metrics, taken: u64) {
        m.consumed.inc_by(taken - self.unread);
        m.replayed.inc_by(self.replayed);
        m.applied.inc_by(self.applied);
        m.retractions.inc_by(self.retractions);
        for (c, n) in m.late.iter().zip(self.late) {
            c.inc_by(n);
        }
        m.duplicates.inc_by(self.duplicates);
        m.stale.inc_by(self.stale);
        m.beyond_horizon.inc_by(self.beyond_horizon);
        if let Some(us) = self.newest_event_us {
            m.newest_event_seconds.set(us / 1_000_000);
        }
    }
}

/// Applies the next message of a partition: decodes it, folds it into the state or
/// dead-letters it, and moves the partition's offset past it.
fn apply(
    worker: &Worker,
    o: &mut Owned,
    (r, payload, decoded): (&Read, &[u8], Decoded),
    now: chrono::DateTime<chrono::Utc>,
    tally: &mut Tally,
    pending: &mut Vec<Message>,
) {
    let (p, off) = (r.p, r.off);
    // Without a timestamp (old message formats), the time it was read stands in.
    let at_ms = r
        .at_ms
        .filter(|t| *t > 0)
        .unwrap_or_else(|| now.timestamp_millis());
    advance_clock(worker, o, off, at_ms);
    // Only dead letters need it; built on that rare path.
    let origin = || format!("{}/{p}@{off}", worker.topic);
    match decoded {
        Ok((event, content, key)) => {
            if let Some(letter) = fold(worker, o, (&event, content, key), (off, at_ms), tally) {
                pending.push(dead_letter(
                    Reason::BeyondHorizon,
                    &letter,
                    payload,
                    origin(),
                    now,
                    Some(&event.dossier_id),
                ));
            }
        }
        Err(e) => {
            let reason = if serde_json::from_slice::<serde_json::Value>(payload).is_ok() {
                Reason::InvalidField
            } else {
                Reason::MalformedJson
            };
            worker
                .metrics
                .invalid
                .with_label_values(&[reason.as_str()])
                .inc();
            pending.push(dead_letter(
                reason,
                &e.to_string(),
                payload,
                origin(),
                now,
                None,
            ));
        }
    }
    o.state.next_offset = off + 1;
    o.state.generation += 1;
}

/// Where a message stands against what a partition's state has read.
enum Position {
    /// Already in the state: a replay after a restart or a seek.
    Replayed,
    /// Past the state's next offset on the first read: seek back to this offset.
    Ahead(i64),
    /// The next message to apply.
    Next,
}

fn position(o: &mut Owned, p: i32, off: i64, m: &Metrics) -> Position {
    if off < o.state.next_offset {
        return Position::Replayed;
    }
    if off > o.state.next_offset && !o.seeked {
        // Kafka's position is past what the checkpoint holds: go back once. (Later gaps
        // are transaction markers, which take offsets but are never delivered.)
        o.seeked = true;
        o.sought_to = Some(o.state.next_offset);
        return Position::Ahead(o.state.next_offset);
    }
    o.seeked = true;
    if let Some(to) = o.sought_to.take() {
        // One offset may be a transaction marker; more means Kafka no longer has them.
        if off > to + 1 {
            m.offset_gaps.inc();
            tracing::error!(
                partition = p,
                from = to,
                to = off,
                "messages missing from Kafka (retention?) since the checkpoint; windows miss them"
            );
        }
    }
    Position::Next
}

fn seek_back(
    worker: &Worker,
    consumer: &StreamConsumer<Ctx>,
    p: i32,
    off: i64,
    to: i64,
) -> Result<(), WorkerError> {
    consumer
        .seek(
            &worker.topic,
            p,
            Offset::Offset(to),
            Duration::from_secs(10),
        )
        .map_err(kafka_err("seek"))?;
    tracing::info!(
        partition = p,
        from = off,
        to,
        "sought back to the checkpoint's offset"
    );
    Ok(())
}

/// Moves the partition's clock to a message's timestamp; on a new day, evicts the
/// dossiers that left the horizon.
fn advance_clock(worker: &Worker, o: &mut Owned, off: i64, at_ms: i64) {
    if let Some(today) = o.state.tick(at_ms) {
        let gone = o.state.evict(today, worker.cfg.horizon_days);
        if !gone.is_empty() {
            worker.metrics.evicted.inc_by(gone.len() as u64);
            o.outbox.evicted(&o.committed, off, &gone);
        }
    }
}

/// Folds a decoded event into the partition's state and accounts for it; the detail of
/// a dead letter when the event lies beyond the horizon.
fn fold(
    worker: &Worker,
    o: &mut Owned,
    (event, content, key): (&DossierEvent, u64, Key),
    (off, at_ms): (i64, i64),
    tally: &mut Tally,
) -> Option<String> {
    // "Today" is the partition's clock (its newest message timestamp), so a replay
    // decides the horizon exactly as the first pass did.
    let today = o.state.today().expect("the clock has a timestamp");
    worker.note_procedure(&event.procedure_code, event.procedure_name.as_deref());
    let (applied, deltas) =
        o.state
            .apply_keyed(key, event, content, today, worker.cfg.horizon_days);
    let id = &event.dossier_id;
    o.outbox
        .record_netted(&o.committed, (off, at_ms), id, &applied, &deltas);
    match applied.outcome {
        Outcome::Applied {
            replaced,
            lateness_days,
        } => {
            tally.applied += 1;
            tally.retractions += u64::from(replaced);
            tally.late[band(lateness_days)] += 1;
            tally.newest_event_us = Some(o.state.newest_event_us);
            None
        }
        Outcome::Duplicate => {
            tally.duplicates += 1;
            None
        }
        Outcome::Stale => {
            tally.stale += 1;
            None
        }
        Outcome::BeyondHorizon { day } => {
            tally.beyond_horizon += 1;
            Some(format!(
                "counts for {}, more than {} days before the partition's day (newest message timestamp)",
                dvc_pulse_window::fact::day_date(day),
                worker.cfg.horizon_days
            ))
        }
    }
}

fn dead_letter(
    reason: Reason,
    detail: &str,
    payload: &[u8],
    origin: String,
    now: chrono::DateTime<chrono::Utc>,
    key: Option<&str>,
) -> Message {
    let d = DeadLetter::for_message(reason.as_str(), detail, payload, &origin, now);
    Message {
        to: Destination::DeadLetter,
        key: key.map(str::to_string),
        payload: serde_json::to_vec(&d).expect("dead letter serialises"),
        reason: Some(reason.as_str()),
        timestamp_ms: None,
    }
}

/// The store commit running beside the consume loop: at most one at a time, so each
/// commit is fenced on the offsets the previous one left. While it runs the loop keeps
/// applying; what it applies goes to the outbox for the next commit (every offset it
/// reads is past the one in flight, so the outbox's per-table filters are unaffected).
#[derive(Default)]
struct Flight(Option<tokio::task::JoinHandle<Result<Landed, WorkerError>>>);

/// What a store commit wrote: each partition's next offset and what its tables hold now.
struct Landed(Vec<(i32, i64, Committed)>);

/// A partition state to rewrite whole after the commit (stamped with its next offset).
type Compaction = (i32, datafusion::arrow::array::RecordBatch, i64);

impl Flight {
    fn busy(&self) -> bool {
        self.0.is_some()
    }

    /// Waits for the commit in flight (call only when [`Flight::busy`]).
    async fn landing(&mut self) -> Result<Landed, WorkerError> {
        let handle = self.0.as_mut().expect("a commit is in flight");
        let joined = handle.await;
        self.0 = None;
        joined.map_err(|e| WorkerError::Task {
            task: "store commit",
            detail: e.to_string(),
        })?
    }

    /// Publishes pending dead letters, then starts committing every owned partition's
    /// output to the store. Does nothing while a commit is in flight.
    async fn start(
        &mut self,
        worker: &Arc<Worker>,
        metadata: &MetadataClient,
        sink: &KafkaSink,
        pending: &mut Vec<Message>,
    ) -> Result<(), WorkerError> {
        if self.busy() {
            return Ok(());
        }
        // Dead letters first: a commit must never cover a message whose dead letter is lost.
        if !pending.is_empty()
            && let Err(e) = sink.publish(std::mem::take(pending)).await
        {
            tracing::warn!(error = %e, "dead letters not published; commit postponed");
            return Ok(());
        }
        if !has_output(worker) || !partitions_unchanged(worker, metadata).await? {
            return Ok(());
        }
        let (parts, meta, compact) = take_output(worker)?;
        if parts.is_empty() {
            return Ok(());
        }
        let worker = worker.clone();
        // On a thread of its own: the Parquet encoding is CPU work, and as a task it
        // would share the loop's runtime thread (a spawned task starts where it was
        // spawned) and stall the loop while it encodes.
        let runtime = tokio::runtime::Handle::current();
        self.0 = Some(tokio::task::spawn_blocking(move || {
            runtime.block_on(write(&worker, parts, meta, compact))
        }));
        Ok(())
    }

    /// Takes in a landed commit: the partitions' committed offsets, then Kafka's copy.
    fn land(
        &mut self,
        worker: &Worker,
        consumer: &StreamConsumer<Ctx>,
        landed: Result<Landed, WorkerError>,
    ) -> Result<(), WorkerError> {
        let landed = landed?;
        let mut tpl = TopicPartitionList::new();
        {
            let mut owned = worker.owned.lock().expect("owned lock");
            for &(p, next_offset, c) in &landed.0 {
                if let Some(o) = owned.get_mut(&p) {
                    o.committed = c;
                }
                tpl.add_partition_offset(&worker.topic, p, Offset::Offset(next_offset))
                    .map_err(kafka_err("offset list"))?;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            // Not fatal: the store holds the offsets; Kafka's copy is for lag monitoring.
            tracing::warn!(error = %e, "offset commit");
        }
        Ok(())
    }

    /// Waits for the commit in flight, if any, and takes it in.
    async fn settle(
        &mut self,
        worker: &Worker,
        consumer: &StreamConsumer<Ctx>,
    ) -> Result<(), WorkerError> {
        if self.busy() {
            let landed = self.landing().await;
            self.land(worker, consumer, landed)?;
        }
        Ok(())
    }
}

/// Commits the partitions' output to the store, then rewrites the partition states
/// that grew (each as of the offset just committed).
async fn write(
    worker: &Worker,
    parts: Vec<PartitionCommit>,
    meta: CommitMeta,
    compact: Vec<Compaction>,
) -> Result<Landed, WorkerError> {
    let started = Instant::now();
    let now = worker.store.commit(&parts, meta).await?;
    worker
        .metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    worker.metrics.commits.inc();
    for (p, rows, offset) in compact {
        worker.store.compact_state(p, rows, offset).await?;
    }
    Ok(Landed(
        parts
            .iter()
            .zip(now)
            .map(|(part, c)| (part.partition, part.next_offset, c))
            .collect(),
    ))
}

/// Whether any owned partition read past what its tables hold.
fn has_output(worker: &Worker) -> bool {
    let owned = worker.owned.lock().expect("owned lock");
    owned.values().any(owes_output)
}

/// Whether a partition read past what one of its tables holds.
fn owes_output(o: &Owned) -> bool {
    let c = o.committed;
    o.state.next_offset > c.changes.min(c.contributions).min(c.state)
}

/// Takes every owned partition's pending output, with the commit's metadata and the
/// partition states to rewrite whole after it (built now: the state is exactly at the
/// offset being committed only until the loop applies the next message).
fn take_output(
    worker: &Worker,
) -> Result<(Vec<PartitionCommit>, CommitMeta, Vec<Compaction>), WorkerError> {
    let mut owned = worker.owned.lock().expect("owned lock");
    let dossiers: usize = owned.values().map(|o| o.state.dossier_count()).sum();
    let newest = owned
        .values()
        .map(|o| o.state.newest_event_us)
        .fold(0, i64::max);
    let mut due: Vec<(i32, &mut Owned)> = owned
        .iter_mut()
        .filter(|(_, o)| owes_output(o))
        .map(|(p, o)| (*p, o))
        .collect();
    // Encoding is the loop's longest pause: the partitions are encoded side by side.
    let taken = on_lanes(&mut due, lanes(), 2, |(p, o)| take_one(*p, o));
    let mut parts = Vec::with_capacity(taken.len());
    let mut compact = Vec::new();
    for t in taken {
        let (part, compaction) = t?;
        parts.push(part);
        compact.extend(compaction);
    }
    worker.metrics.dossiers.set(dossiers as i64);
    let meta = CommitMeta {
        at: 0,
        newest_event_us: newest,
        partitions: worker.partitions(),
    };
    Ok((parts, meta, compact))
}

/// One partition's pending output, and its whole state to rewrite when its `state`
/// rows since the last rewrite outnumber its dossiers.
fn take_one(p: i32, o: &mut Owned) -> Result<(PartitionCommit, Option<Compaction>), WorkerError> {
    let c = o.committed;
    let batches = o.outbox.take(&o.state, p)?;
    // The state table moves to `next_offset` with this commit (it is the last table
    // written, so never ahead of the others).
    o.state_rows += batches.state.num_rows();
    let mut compaction = None;
    if o.state_rows > o.state.dossier_count().max(10_000) {
        let at = o.state.next_offset;
        compaction = Some((p, o.state.full_state_batch(p, at)?, at));
        o.state_rows = 0;
    }
    let part = PartitionCommit {
        partition: p,
        next_offset: o.state.next_offset,
        clock_ms: o.state.clock_ms,
        expected: c,
        batches,
    };
    Ok((part, compaction))
}
