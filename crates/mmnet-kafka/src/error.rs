//! Errors that stop the operator. Records that cannot be scored are not errors: they become
//! dead letters ([`crate::decode::DeadReason`]).

/// Result alias of this crate.
pub type Result<T, E = OperatorError> = std::result::Result<T, E>;

/// Why the operator (or `mmnet produce`) stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A setting is missing or invalid.
    #[error("configuration: {what}: {reason}")]
    Config {
        /// The setting or file.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The model could not be loaded (the message names the model path).
    #[error(transparent)]
    Model(#[from] mmnet_core::CoreError),
    /// Reading the input table (`mmnet produce`).
    #[error(transparent)]
    Table(#[from] mmnet_arrow::TableError),
    /// librdkafka refused a call.
    #[error("kafka: {context}: {cause}")]
    Kafka {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
    /// A score or dead letter was not acknowledged by the broker; its input offset was not
    /// committed, so a restart replays it.
    #[error("delivery {what} failed: {cause} (offset not committed; a restart replays it)")]
    Delivery {
        /// `to `scores` for input telemetry/0@41`.
        what: String,
        /// librdkafka's error.
        cause: rdkafka::error::KafkaError,
    },
    /// A record cannot be scored and no dead-letter topic is configured.
    #[error(
        "input {topic}/{partition}@{offset} cannot be scored ({reason}: {detail}) and no dead-letter topic is set (--dlq-topic); stopping before its offset is committed"
    )]
    Unscorable {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Input offset.
        offset: i64,
        /// Dead-letter reason.
        reason: &'static str,
        /// Error text.
        detail: String,
    },
    /// No broker answered for longer than `kafka.unavailable_timeout_s`: the operator exits
    /// for its orchestrator to restart it; uncommitted records are replayed then.
    #[error(
        "no Kafka broker reachable for {seconds} s (kafka.unavailable_timeout_s): {reason}; exiting (records not yet committed are scored again after a restart)"
    )]
    Unavailable {
        /// How long the outage lasted.
        seconds: u64,
        /// The last connection error.
        reason: String,
    },
    /// A login or TLS handshake failed: retrying cannot fix it.
    #[error("kafka: {0}")]
    Security(String),
    /// A topic the operator needs does not exist.
    #[error(
        "the {role} topic `{topic}` does not exist on {brokers}; create it first (mmnet does not create topics: partitions, replication and retention are the cluster's choice)"
    )]
    MissingTopic {
        /// input, output or dead-letter.
        role: &'static str,
        /// Its name.
        topic: String,
        /// The bootstrap brokers asked.
        brokers: String,
    },
    /// Files and sockets.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        cause: std::io::Error,
    },
    /// A bug: a pipeline task ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl OperatorError {
    /// Wraps a librdkafka error with what was being done.
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let context = context.into();
        move |cause| Self::Kafka { context, cause }
    }
}
