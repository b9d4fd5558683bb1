//! The Kafka sink: a pool of transactional (hence idempotent, acks=all) producers. Each
//! batch is one transaction across `dossier-events` and the dead-letter topic, so a batch
//! is either wholly visible to readers or not at all: a request that gets 503 left nothing
//! behind, and its retry cannot duplicate events.

use crate::config::{KafkaConfig, TopicsConfig};
use crate::error::KafkaClientError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Which topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Accepted canonical events.
    Events,
    /// Rejected records.
    DeadLetter,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic.
    pub to: Destination,
    /// Key: the dossier id, when known.
    pub key: Option<String>,
    /// Bytes.
    pub payload: Vec<u8>,
    /// Reason code header for dead letters, so consumers can filter without parsing.
    pub reason: Option<&'static str>,
    /// The record's timestamp (ms; the producer's clock when `None`). Workers take the
    /// day of the horizon from it.
    pub timestamp_ms: Option<i64>,
}

type TxProducer = ThreadedProducer<DefaultProducerContext>;

struct Slot {
    id: usize,
    producer: Option<TxProducer>,
}

struct Inner {
    kafka: KafkaConfig,
    topics: TopicsConfig,
    slots: Mutex<Vec<Slot>>,
    permits: Semaphore,
}

/// Publishes batches of messages, each batch atomically. Cheap to clone.
#[derive(Clone)]
pub struct KafkaSink {
    inner: Arc<Inner>,
}

impl KafkaSink {
    /// A sink for the given cluster; producers connect lazily, on their first batch.
    pub fn new(kafka: KafkaConfig, topics: TopicsConfig) -> Result<Self, KafkaClientError> {
        if kafka.bootstrap_servers.is_empty() {
            return Err(KafkaClientError::Config(
                "kafka.bootstrap_servers is empty".into(),
            ));
        }
        let n = kafka.producers.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                slots: Mutex::new((0..n).map(|id| Slot { id, producer: None }).collect()),
                permits: Semaphore::new(n),
                kafka,
                topics,
            }),
        })
    }

    /// The topics this sink writes.
    pub fn topics(&self) -> &TopicsConfig {
        &self.inner.topics
    }

    /// Publishes `batch` in one transaction. `Ok` means every message is committed.
    pub async fn publish(&self, batch: Vec<Message>) -> Result<(), KafkaClientError> {
        if batch.is_empty() {
            return Ok(());
        }
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| KafkaClientError::Internal(e.to_string()))?;
        let mut slot = self
            .inner
            .slots
            .lock()
            .expect("slots lock")
            .pop()
            .expect("a slot per permit");
        let inner = self.inner.clone();
        let (slot, result) = tokio::task::spawn_blocking(move || {
            let r = inner.transact(&mut slot, &batch);
            (slot, r)
        })
        .await
        .map_err(|e| KafkaClientError::Internal(format!("publish task: {e}")))?;
        self.inner.slots.lock().expect("slots lock").push(slot);
        result
    }
}

impl Inner {
    fn producer(&self, slot: &mut Slot, deadline: Instant) -> Result<(), KafkaClientError> {
        if slot.producer.is_some() {
            return Ok(());
        }
        let id = format!("{}-{}", self.kafka.transactional_id_prefix, slot.id);
        let cfg = crate::config::client_config(
            &self.kafka,
            &[
                ("transactional.id", id.as_str()),
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("transaction.timeout.ms", "60000"),
                ("message.timeout.ms", "55000"),
            ],
        );
        let p: TxProducer = cfg.create().map_err(|source| KafkaClientError::Kafka {
            operation: "create producer",
            source,
        })?;
        // Also fences an earlier producer with this id and aborts what it left open.
        p.init_transactions(remaining(deadline))
            .map_err(|source| KafkaClientError::Kafka {
                operation: "init transactions",
                source,
            })?;
        slot.producer = Some(p);
        Ok(())
    }

    fn transact(&self, slot: &mut Slot, batch: &[Message]) -> Result<(), KafkaClientError> {
        let deadline = Instant::now() + self.kafka.batch_timeout;
        self.producer(slot, deadline)?;
        let p = slot.producer.as_ref().expect("just created");
        let result = self.send_all(p, batch, deadline);
        if result.is_err() {
            // Abort so readers never see a partial batch; a producer that cannot even
            // abort is dropped, and its successor's init fences the open transaction.
            if p.abort_transaction(Duration::from_secs(2)).is_err() {
                tracing::warn!(
                    producer = slot.id,
                    "abort failed; the producer will be recreated"
                );
                slot.producer = None;
            }
        }
        result
    }

    fn send_all(
        &self,
        p: &TxProducer,
        batch: &[Message],
        deadline: Instant,
    ) -> Result<(), KafkaClientError> {
        p.begin_transaction()
            .map_err(|source| KafkaClientError::Kafka {
                operation: "begin transaction",
                source,
            })?;
        for m in batch {
            let topic = match m.to {
                Destination::Events => &self.topics.events,
                Destination::DeadLetter => &self.topics.dead_letter,
            };
            let mut record = BaseRecord::<str, [u8]>::to(topic).payload(&m.payload);
            if let Some(k) = &m.key {
                record = record.key(k.as_str());
            }
            if let Some(t) = m.timestamp_ms {
                record = record.timestamp(t);
            }
            if let Some(reason) = m.reason {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "reason",
                    value: Some(reason),
                }));
            }
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if Instant::now() >= deadline {
                            return Err(KafkaClientError::Timeout(self.kafka.batch_timeout));
                        }
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((source, _)) => {
                        return Err(KafkaClientError::Kafka {
                            operation: "produce",
                            source,
                        });
                    }
                }
            }
        }
        p.commit_transaction(remaining(deadline))
            .map_err(|source| match source {
                KafkaError::Transaction(ref e)
                    if e.code() == RDKafkaErrorCode::OperationTimedOut =>
                {
                    KafkaClientError::Timeout(self.kafka.batch_timeout)
                }
                source => KafkaClientError::Kafka {
                    operation: "commit transaction",
                    source,
                },
            })
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100))
}
