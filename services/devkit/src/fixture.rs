//! Dev-only helpers for tests and benchmarks: an embedded broker with unique topic names,
//! a gateway on port 0, and a reader of committed topic contents.

use crate::EmbeddedBroker;
use dvc_pulse_app::Config;
use dvc_pulse_app::gateway::RunningGateway;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A broker with its own topics, and a configuration pointing at them.
pub struct Fixture {
    /// The broker (stops when dropped).
    pub broker: EmbeddedBroker,
    /// Configuration with the broker, unique topics and a test token.
    pub config: Config,
}

/// The bearer token fixtures accept.
pub const TOKEN: &str = "test-token";

impl Fixture {
    /// A fresh broker with unique topic names (`partitions` for the events topic).
    pub fn new(partitions: i32) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut config = Config::default();
        config.topics.events = format!("events-{}-{n}", std::process::id());
        config.topics.dead_letter = format!("dlq-{}-{n}", std::process::id());
        config.topics.partitions = partitions;
        let broker = EmbeddedBroker::start(&[
            (&config.topics.events, partitions),
            (&config.topics.dead_letter, 1),
        ])
        .expect("embedded broker starts");
        config.kafka.bootstrap_servers = broker.bootstrap_servers().to_string();
        config.kafka.transactional_id_prefix = format!("test-{}-{n}", std::process::id());
        config.ingest.listen = "127.0.0.1:0".parse().expect("address");
        config.ingest.token_sha256 = vec![dvc_pulse_ingest::gateway::hash_token(TOKEN)];
        config.worker.group_id = format!("workers-{}-{n}", std::process::id());
        config.worker.listen = "127.0.0.1:0".parse().expect("address");
        config.worker.commit_interval = Duration::from_millis(200);
        config.worker.store_url = "memory://".into();
        // The fixtures are 2024 data, stamped with today's Kafka timestamps unless a test
        // gives the gateway a clock: a horizon of ten years keeps them in.
        config.worker.horizon_days = 3650;
        Self { broker, config }
    }

    /// Starts a gateway on port 0 with this fixture's configuration.
    pub async fn gateway(&self) -> RunningGateway {
        dvc_pulse_app::gateway::start(&self.config, None)
            .await
            .expect("gateway starts")
    }

    /// A gateway whose clock (validation, and the Kafka timestamps of what it sends) is `clock`.
    pub async fn gateway_at(&self, clock: dvc_pulse_ingest::gateway::Clock) -> RunningGateway {
        dvc_pulse_app::gateway::start(&self.config, Some(clock))
            .await
            .expect("gateway starts")
    }
}

impl Fixture {
    /// Starts a worker on port 0 checkpointing into `checkpoints`, with `clock` if given.
    pub async fn worker(
        &self,
        checkpoints: &std::path::Path,
        clock: Option<dvc_pulse_ingest::gateway::Clock>,
    ) -> dvc_pulse_app::node::RunningWorker {
        let mut cfg = self.config.clone();
        cfg.worker.store_url = checkpoints.display().to_string();
        dvc_pulse_app::node::start(&cfg, clock)
            .await
            .expect("worker starts")
    }
}

/// One row of a report table fixture (the annex of a seed report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// STT column.
    pub stt: String,
    /// Service name as the report writes it.
    pub service_vi: String,
    /// Catalogue id of that service.
    pub service_id: String,
    /// Total received.
    pub total: u64,
    /// Received online.
    pub online: u64,
    /// Rate as written, e.g. `87,76%` or `-`.
    pub rate_vi: String,
}

/// The Phan Rang–Tháp Chàm annex (2024-06-05..2024-07-05, district 582), without its total row.
pub fn phan_rang() -> Vec<ReportRow> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/phan-rang-thap-cham_2024-06-05_2024-07-05.csv"
    );
    let reference = dvc_pulse_model::Reference::embedded();
    let mut r = csv::Reader::from_path(path).expect("fixture readable");
    r.records()
        .map(|rec| rec.expect("fixture row"))
        .filter(|rec| &rec[1] != "Tổng")
        .map(|rec| {
            let id = reference
                .services
                .services()
                .iter()
                .find(|s| s.name_vi == rec[1])
                .unwrap_or_else(|| panic!("{} is in the catalogue", &rec[1]))
                .id
                .clone();
            ReportRow {
                stt: rec[0].into(),
                service_vi: rec[1].into(),
                service_id: id,
                total: rec[4].parse().expect("total"),
                online: rec[5].parse().expect("online"),
                rate_vi: rec[6].into(),
            }
        })
        .collect()
}

/// One committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Key as text.
    pub key: Option<String>,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Headers as text.
    pub headers: Vec<(String, String)>,
}

/// A client of the cluster at `bootstrap`, configured as every dvc-pulse client is.
pub fn client(bootstrap: &str) -> ClientConfig {
    let kafka = dvc_pulse_kafka::KafkaConfig {
        bootstrap_servers: bootstrap.to_string(),
        ..Default::default()
    };
    dvc_pulse_kafka::client_config(&kafka, &[])
}

/// Reads the committed messages of `topic` from the beginning, until at least `min` have
/// arrived and nothing more came for `quiet`, or until `deadline` (then returns what it has).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    min: usize,
    quiet: Duration,
    deadline: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "devkit-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let (start, mut last) = (Instant::now(), Instant::now());
    let mut out = Vec::new();
    while start.elapsed() < deadline {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                last = Instant::now();
                out.push(Record {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| {
                                    (
                                        x.key.to_string(),
                                        String::from_utf8_lossy(x.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None if out.len() >= min && last.elapsed() >= quiet => break,
            None => {}
        }
    }
    out
}

/// A messy stream for worker tests: `sim` deliveries validated at `now` (as the gateway
/// would), kept in delivery order as (dossier id, canonical bytes).
pub fn canonical_stream(
    sim: &crate::SimConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, Vec<u8>)> {
    let reference = std::sync::Arc::new(dvc_pulse_model::Reference::embedded());
    let v = dvc_pulse_model::Validator::new(reference.clone(), Default::default());
    crate::simulate(sim, &reference)
        .deliveries
        .iter()
        .filter_map(|d| v.parse_record(&d.bytes, now).ok())
        .map(|e| (e.dossier_id.clone(), e.to_canonical_json()))
        .collect()
}

/// Produces `(key, payload)` messages to `topic` with an idempotent producer; waits for
/// every acknowledgement.
pub fn produce(bootstrap: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    produce_at(bootstrap, topic, messages, |_| None)
}

/// [`produce`], each message with the Kafka timestamp `stamp` gives it (ms; `None`: now).
pub fn produce_at(
    bootstrap: &str,
    topic: &str,
    messages: &[(String, Vec<u8>)],
    stamp: impl Fn(&[u8]) -> Option<i64>,
) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    for (k, v) in messages {
        let mut r = BaseRecord::to(topic).key(k).payload(v);
        if let Some(t) = stamp(v) {
            r = r.timestamp(t);
        }
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60))
        .expect("every message acknowledged");
}

/// The window of `q` computed by the batch path over canonical messages: the oracle.
pub fn oracle(
    messages: &[(String, Vec<u8>)],
    q: &dvc_pulse_window::WindowQuery,
) -> dvc_pulse_window::WindowTable {
    let dims = dvc_pulse_window::Dims::new(&dvc_pulse_model::Reference::embedded());
    let mut b = dvc_pulse_window::EventsBuilder::default();
    for (_, bytes) in messages {
        let e: dvc_pulse_model::DossierEvent = serde_json::from_slice(bytes).expect("canonical");
        b.push(&e);
    }
    let batch = b.finish();
    // On a thread of its own, so async tests can call it too.
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(dvc_pulse_window::window_from_events(
                &dims,
                vec![batch],
                q,
                i32::MIN,
            ))
            .expect("oracle query")
        })
        .join()
        .expect("oracle thread")
    })
}

/// A window answer with its rates removed (they are derived, and lose a bit in JSON).
pub fn counts_only(v: &serde_json::Value) -> serde_json::Value {
    let strip = |r: &serde_json::Value| {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("online_rate");
        }
        r
    };
    let rows: Vec<_> = v["rows"]
        .as_array()
        .map(|a| a.iter().map(strip).collect())
        .unwrap_or_default();
    serde_json::json!({ "rows": rows, "totals": strip(&v["totals"]) })
}
