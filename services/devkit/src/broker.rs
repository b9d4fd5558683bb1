//! The embedded Kafka-protocol broker: librdkafka's mock cluster on 127.0.0.1.
//!
//! The mock cluster is not `Send`, so it lives on its own thread and is driven by
//! messages; [`EmbeddedBroker`] is the handle, usable from anywhere.

use dvc_pulse_app::AppError;
use rdkafka::mocking::MockCluster;
use std::sync::mpsc;
use std::thread::JoinHandle;

enum Cmd {
    Down(mpsc::Sender<Result<(), String>>),
    Up(mpsc::Sender<Result<(), String>>),
    CreateTopic(String, i32, mpsc::Sender<Result<(), String>>),
    Stop,
}

/// A running embedded broker; stops when dropped.
pub struct EmbeddedBroker {
    bootstrap: String,
    tx: mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster and creates `topics` (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Result<Self, AppError> {
        let (tx, rx) = mpsc::channel::<Cmd>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                for cmd in rx {
                    match cmd {
                        Cmd::Down(reply) => {
                            let _ = reply.send(cluster.broker_down(-1).map_err(|e| e.to_string()));
                        }
                        Cmd::Up(reply) => {
                            let _ = reply.send(cluster.broker_up(-1).map_err(|e| e.to_string()));
                        }
                        Cmd::CreateTopic(name, partitions, reply) => {
                            let _ = reply.send(
                                cluster
                                    .create_topic(&name, partitions, 1)
                                    .map_err(|e| e.to_string()),
                            );
                        }
                        Cmd::Stop => break,
                    }
                }
            })
            .map_err(|e| AppError::Broker(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|e| AppError::Broker(e.to_string()))?
            .map_err(AppError::Broker)?;
        let broker = Self {
            bootstrap,
            tx,
            thread: Some(thread),
        };
        for (name, partitions) in topics {
            broker.create_topic(name, *partitions)?;
        }
        Ok(broker)
    }

    /// Starts a broker with the configured events and dead-letter topics.
    pub fn for_config(cfg: &dvc_pulse_app::Config) -> Result<Self, AppError> {
        Self::start(&[
            (&cfg.topics.events, cfg.topics.partitions),
            (&cfg.topics.dead_letter, 1),
        ])
    }

    /// `host:port` to give clients as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn call(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Cmd,
    ) -> Result<(), AppError> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(make(reply))
            .map_err(|e| AppError::Broker(e.to_string()))?;
        rx.recv()
            .map_err(|e| AppError::Broker(e.to_string()))?
            .map_err(AppError::Broker)
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), AppError> {
        self.call(|r| Cmd::CreateTopic(name.to_string(), partitions, r))
    }

    /// Fault injection: the broker drops connections and refuses new ones.
    pub fn down(&self) -> Result<(), AppError> {
        self.call(Cmd::Down)
    }

    /// Ends `down`.
    pub fn up(&self) -> Result<(), AppError> {
        self.call(Cmd::Up)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
