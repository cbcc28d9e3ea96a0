//! # mmnet-kafka
//!
//! The streaming operator: consumes telemetry from a Kafka topic (JSON objects or Arrow IPC
//! streams), scores every row with a trained MMNet model in micro-batches, publishes one score
//! record per row keyed like its input, sends what cannot be scored to a dead-letter topic,
//! and commits input offsets only after their outputs are acknowledged (at-least-once), or
//! inside Kafka transactions (exactly-once). Also `produce`, which replays a table into a
//! topic for demos and benchmarks.

pub mod batch;
pub mod clients;
pub mod config;
pub mod decode;
pub mod drift;
pub mod error;
pub mod metrics;
pub mod operator;
pub mod produce;
pub mod record;
pub mod security;
pub mod serving;

pub use config::{OperatorConfig, Profile};
pub use error::{OperatorError, Result};
pub use metrics::{Metrics, MetricsServer};
pub use operator::{RunSummary, run};
