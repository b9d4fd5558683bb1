//! Shared helpers: requests to a gateway, canonical records.

use serde_json::{Value, json};
use std::time::Duration;

pub use dvc_pulse_testkit::{Fixture, Record, TOKEN, read_topic};

/// POSTs `body` to the gateway at `addr`.
pub async fn post(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("http://{addr}/v1/dossiers"))
        .body(body)
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A valid canonical record with id `id`.
pub fn event(id: &str) -> Value {
    json!({
        "dossier_id": id,
        "procedure_code": "1001193",
        "procedure_name": "Đăng ky\u{301} khai sinh",
        "locality_code": "22738",
        "channel": "online",
        "status": "received",
        "received_at": "05/06/2024 08:30",
        "updated_at": "2024-06-05T01:30:00Z"
    })
}

/// NDJSON of the given values.
pub fn ndjson(items: &[Value]) -> String {
    items.iter().map(|v| v.to_string() + "\n").collect()
}

/// Reads a topic with the defaults tests use.
pub fn read(f: &Fixture, topic: &str, min: usize) -> Vec<Record> {
    read_topic(
        &f.config.kafka.bootstrap_servers,
        topic,
        min,
        Duration::from_millis(700),
        Duration::from_secs(30),
    )
}
