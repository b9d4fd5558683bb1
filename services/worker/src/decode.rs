//! Batches of messages, and their decoding on a thread beside the consume loop: while the
//! loop applies one batch, the next is decoded (nothing in decoding depends on the state),
//! so the loop's own thread only takes messages and applies them, in order.

use crate::error::WorkerError;
use dvc_pulse_model::DossierEvent;
use dvc_pulse_model::parse::decode_event;
use dvc_pulse_window::state::Key;
use dvc_pulse_window::{content_hash, dossier_key};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::stream_consumer::MessageStream;
use rdkafka::message::{BorrowedMessage, Message as _};
use std::sync::mpsc;
use tokio::sync::mpsc as async_mpsc;

/// Most messages taken from the consumer's queue at once.
const MAX_BATCH: usize = 1024;

/// Batches taken but not yet applied: one decoding while the loop takes the next.
const DEPTH: usize = 2;

/// Smallest batch worth decoding on several threads.
const PARALLEL_FROM: usize = 256;

/// Messages taken together from the consumer's queue: their payloads copied into one
/// reused buffer (no allocation per message), so no borrowed message lives across an
/// await.
#[derive(Default)]
pub(crate) struct Batch {
    /// Its number in the order batches were taken (from 1).
    pub seq: u64,
    bytes: Vec<u8>,
    pub msgs: Vec<Read>,
}

/// One message of a batch: partition, offset, Kafka timestamp (ms) and payload span.
pub(crate) struct Read {
    pub p: i32,
    pub off: i64,
    pub at_ms: Option<i64>,
    span: std::ops::Range<usize>,
}

/// A payload decoded, with its content hash and its dossier's key (both hashes of what
/// the message alone holds, computed here rather than on the loop's thread); or why it
/// is not an event.
pub(crate) type Decoded = Result<(DossierEvent, u64, Key), serde_json::Error>;

impl Batch {
    pub fn push(&mut self, m: &BorrowedMessage<'_>) {
        let start = self.bytes.len();
        self.bytes
            .extend_from_slice(m.payload().unwrap_or_default());
        self.msgs.push(Read {
            p: m.partition(),
            off: m.offset(),
            at_ms: m.timestamp().to_millis(),
            span: start..self.bytes.len(),
        });
    }

    /// Adds the messages already waiting in the consumer's queue, up to [`MAX_BATCH`].
    pub fn fill<C: ConsumerContext + 'static>(&mut self, messages: &mut MessageStream<'_, C>) {
        while self.msgs.len() < MAX_BATCH {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => self.push(&m),
                Some(Some(Err(e))) => tracing::warn!(error = %e, "consume"),
                _ => return,
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Read, &[u8])> {
        self.msgs.iter().map(|r| (r, &self.bytes[r.span.clone()]))
    }

    /// Every payload decoded, content-hashed and keyed, in order, on up to `lanes` threads.
    fn decode(&self, lanes: usize) -> Vec<Decoded> {
        let mut reads: Vec<&Read> = self.msgs.iter().collect();
        on_lanes(&mut reads, lanes, PARALLEL_FROM, |r| {
            let payload = &self.bytes[r.span.clone()];
            decode_event(payload).map(|e| {
                let key = dossier_key(&e.dossier_id);
                (e, content_hash(payload), key)
            })
        })
    }
}

/// `f` of every item, in order: on up to `lanes` threads when there are at least
/// `parallel_from` items, each thread taking a contiguous run.
pub(crate) fn on_lanes<T: Send, R: Send>(
    items: &mut [T],
    lanes: usize,
    parallel_from: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    if lanes <= 1 || items.len() < parallel_from.max(2) {
        return items.iter_mut().map(&f).collect();
    }
    let chunk = items.len().div_ceil(lanes);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks_mut(chunk);
        let first = chunks.next().expect("at least two items");
        let rest: Vec<_> = chunks
            .map(|c| s.spawn(move || c.iter_mut().map(f).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<R> = first.iter_mut().map(f).collect();
        for h in rest {
            all.extend(h.join().expect("a lane does not panic"));
        }
        all
    })
}

/// The machine's cores, at most four.
pub(crate) fn lanes() -> usize {
    static LANES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LANES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

/// The decoding thread, fed batches in the order they were taken and giving them back
/// decoded in the same order; at most [`DEPTH`] at a time.
pub(crate) struct Decoder {
    to: Option<mpsc::Sender<Batch>>,
    from: async_mpsc::UnboundedReceiver<(Batch, Vec<Decoded>)>,
    thread: Option<std::thread::JoinHandle<()>>,
    in_flight: usize,
    taken: u64,
    spare: Vec<Batch>,
}

impl Decoder {
    pub fn start() -> Result<Self, WorkerError> {
        let (to, rx) = mpsc::channel::<Batch>();
        let (tx, from) = async_mpsc::unbounded_channel();
        // The loop's thread applies; the other cores decode.
        let lanes = lanes().saturating_sub(1).max(1);
        let thread = std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || {
                for batch in rx {
                    let decoded = batch.decode(lanes);
                    if tx.send((batch, decoded)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| stopped(e.to_string()))?;
        Ok(Self {
            to: Some(to),
            from,
            thread: Some(thread),
            in_flight: 0,
            taken: 0,
            spare: Vec::new(),
        })
    }

    /// An empty batch to take messages into, numbered next.
    pub fn batch(&mut self) -> Batch {
        let mut b = self.spare.pop().unwrap_or_default();
        b.bytes.clear();
        b.msgs.clear();
        self.taken += 1;
        b.seq = self.taken;
        b
    }

    /// The number of the latest batch taken: every batch up to it was taken from the
    /// consumer's queue before whatever the loop does now.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Whether another batch may be taken.
    pub fn has_room(&self) -> bool {
        self.in_flight < DEPTH
    }

    /// Whether a batch is decoding or decoded and not yet collected.
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }

    pub fn submit(&mut self, batch: Batch) -> Result<(), WorkerError> {
        let to = self.to.as_ref().expect("the sender lives until drop");
        to.send(batch)
            .map_err(|_| stopped("the decoding thread is gone".into()))?;
        self.in_flight += 1;
        Ok(())
    }

    /// The oldest batch submitted, decoded (call only when [`Decoder::busy`]).
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<(Batch, Vec<Decoded>), WorkerError> {
        let done = self.from.recv().await;
        let done = done.ok_or_else(|| stopped("the decoding thread stopped".into()))?;
        self.in_flight -= 1;
        Ok(done)
    }

    /// Gives an applied batch's buffers back for reuse.
    pub fn recycle(&mut self, batch: Batch) {
        if self.spare.len() < DEPTH {
            self.spare.push(batch);
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        self.to = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped(detail: String) -> WorkerError {
    WorkerError::Task {
        task: "decode",
        detail,
    }
}
