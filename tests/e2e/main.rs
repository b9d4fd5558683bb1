//! End-to-end tests through the real Kafka protocol: librdkafka's mock cluster as the
//! broker, the gateway over real HTTP, Debian's kcat as an independent client, and
//! Prometheus's own promtool and amtool for the rules and configuration.

mod helpers;

mod api;
mod browser;
mod compose;
mod edges;
mod faults;
mod gateway;
mod horizon;
mod import;
mod kcat;
mod layout;
mod metrics;
mod openapi;
mod prometheus;
mod reports;
mod windows;
