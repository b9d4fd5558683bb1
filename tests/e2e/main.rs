//! End-to-end tests through the real Kafka protocol: librdkafka's mock cluster as the
//! broker, the gateway over real HTTP, and Debian's kcat as an independent client.

mod helpers;

mod faults;
mod gateway;
mod import;
mod kcat;
mod windows;
