//! The operator's settings: one TOML file (`pipelines/*.toml`), overridable from the command
//! line. Every field has a default, so a file only says what differs.
//!
//! [`OperatorConfig::template`] is the commented reference printed by
//! `mmnet kafka --print-config`; a test parses it and compares it with
//! [`OperatorConfig::default`], so the documentation cannot drift from the code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{OperatorError, Result};
use crate::security::{SecuritySection, expand_env, refuse_secret_on_command_line};

/// Everything `mmnet kafka` needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorConfig {
    /// Settings tuned as a whole: `throughput` (the default) or `low-latency`. A profile
    /// only supplies defaults: anything set in the file, on the command line or as a
    /// librdkafka property wins over it (see [`Profile`]).
    pub profile: Profile,
    /// The model to score with.
    pub model: ModelSection,
    /// Brokers, topics and group.
    pub kafka: KafkaSection,
    /// Input decoding.
    pub input: InputSection,
    /// Micro-batching and backpressure.
    pub batch: BatchSection,
    /// Delivery guarantee.
    pub delivery: DeliverySection,
    /// Score record format.
    pub output: OutputSection,
    /// Prometheus metrics and health endpoint.
    pub metrics: MetricsSection,
    /// Drift signals against the model's training profile.
    pub drift: DriftSection,
    /// TLS and SASL.
    pub security: SecuritySection,
    /// librdkafka properties for both consumer and producer (timeouts, tuning, ...); they
    /// override what `[security]` sets.
    pub librdkafka: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer: BTreeMap<String, String>,
}

/// A set of defaults for batching, fetching and producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Batches of up to 1024 messages lingering 20 ms, librdkafka's fetch defaults, producer
    /// `linger.ms = 5`: records/s first.
    #[default]
    Throughput,
    /// A batch is what has arrived (no lingering), up to 256 messages, 16 in flight; the
    /// broker answers a fetch after at most 1 ms without data; the producer sends at once.
    /// Costs CPU on the operator and the broker when traffic is light (more, smaller
    /// requests) and records/s when heavy (smaller batches).
    LowLatency,
}

impl Profile {
    /// Its name in TOML and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Throughput => "throughput",
            Profile::LowLatency => "low-latency",
        }
    }

    /// `[batch]` keys this profile sets where the file does not.
    fn batch_defaults(self) -> &'static [(&'static str, i64)] {
        match self {
            Profile::Throughput => &[],
            Profile::LowLatency => &[
                ("linger_ms", 0),
                ("max_messages", 256),
                ("max_in_flight", 16),
            ],
        }
    }

    /// librdkafka consumer properties this profile sets, below `[security]`, `[librdkafka]`
    /// and `[consumer]` (each of which wins over it).
    pub fn consumer_properties(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Throughput => &[],
            // The broker holds a fetch until fetch.min.bytes (1) or this: the default 500 ms
            // is harmless on a broker that answers as soon as data arrives (Apache Kafka),
            // and is the latency on one that polls its storage within the wait (Tansu).
            // Not 1 ms: Tansu (the pinned build) lists a partition's stored batches within
            // the fetch's wait and answers empty once that takes longer, which with 1 ms
            // stopped a consumer for good after ~4,000 single-record batches a partition
            // (benches/latency.sh, docs/BENCHMARKS.md); 10 ms moves that ten times further
            // out and costs an idle consumer 100 fetches a second.
            Profile::LowLatency => &[("fetch.wait.max.ms", "10")],
        }
    }

    /// librdkafka producer properties this profile sets, below the user's.
    pub fn producer_properties(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Throughput => &[],
            Profile::LowLatency => &[("linger.ms", "0")],
        }
    }
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Model directory (or its manifest.json), as written by `mmnet train`.
    pub path: Option<PathBuf>,
    /// Name written into every score record (`model.name`).
    pub name: String,
    /// Overrides the threshold stored in the model for `is_anomaly`.
    pub threshold: Option<f32>,
    /// Reload the model when what `path` names changes (a directory replaced by rename, a
    /// symlink flipped), checked every `watch_interval_ms`. SIGHUP reloads either way.
    pub watch: bool,
    /// How often `watch` looks at `path`.
    pub watch_interval_ms: u64,
    /// A second model scoring every record beside the served one (`shadow` in each score
    /// record); promoting it is a hot swap of `path`.
    pub shadow_path: Option<PathBuf>,
    /// Arithmetic of the scoring products (`f32` or `bf16`); absent = what the model's
    /// manifest says (f32 unless it was trained or saved with bf16).
    pub precision: Option<mmnet_core::kernel::Precision>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: None,
            name: "mmnet".into(),
            threshold: None,
            watch: false,
            watch_interval_ms: 1000,
            shadow_path: None,
            precision: None,
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Consumer group; instances with the same group share the input partitions.
    pub group: String,
    /// Telemetry topic to read.
    pub input_topic: String,
    /// Topic the score records go to.
    pub output_topic: String,
    /// Dead-letter topic for records that cannot be scored. Without one, such a record stops
    /// the operator (its offset is not committed, so nothing is lost).
    pub dlq_topic: Option<String>,
    /// `client.id` of the consumer and producer.
    pub client_id: String,
    /// Seconds without any reachable broker after which the operator exits non-zero (for its
    /// orchestrator to restart it); until then it waits, not ready. 0 = wait forever.
    pub unavailable_timeout_s: u64,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group: "mmnet".into(),
            input_topic: String::new(),
            output_topic: String::new(),
            dlq_topic: None,
            client_id: "mmnet".into(),
            unavailable_timeout_s: 300,
        }
    }
}

/// Payload format of input messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Per message: Arrow IPC stream if it starts with the IPC continuation marker, else JSON.
    #[default]
    Auto,
    /// A JSON object keyed by feature name.
    Json,
    /// An Arrow IPC stream with one or more record batches.
    Arrow,
}

/// `[input]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputSection {
    /// `auto`, `json` or `arrow`.
    pub format: InputFormat,
    /// Larger messages are dead-lettered as `oversized` without being parsed.
    pub max_message_bytes: usize,
}

impl Default for InputSection {
    fn default() -> Self {
        Self {
            format: InputFormat::Auto,
            max_message_bytes: 8 << 20,
        }
    }
}

/// `[batch]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSection {
    /// A batch is scored once it holds this many messages ...
    pub max_messages: usize,
    /// ... or this many payload bytes ...
    pub max_bytes: usize,
    /// ... or this long after its first message arrived, whichever comes first.
    pub linger_ms: u64,
    /// Batches between consuming and committing (decoded, scoring, awaiting delivery). When
    /// all are taken, consumption pauses: memory stays bounded however slow the output is.
    pub max_in_flight: usize,
}

impl Default for BatchSection {
    fn default() -> Self {
        Self {
            max_messages: 1024,
            max_bytes: 4 << 20,
            linger_ms: 20,
            max_in_flight: 4,
        }
    }
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// An input offset is committed only after its score (or dead letter) is acknowledged
    /// by the broker; a crash replays, never skips.
    #[default]
    AtLeastOnce,
    /// Scores and input offsets in one Kafka transaction per batch; input read with
    /// `isolation.level=read_committed`.
    ExactlyOnce,
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySection {
    /// `at-least-once` or `exactly-once`.
    pub guarantee: Guarantee,
    /// `transactional.id` for exactly-once; must be unique per instance and stable across its
    /// restarts. Default: `mmnet-<group>-<input_topic>-<hostname>`.
    pub transactional_id: Option<String>,
    /// How often stored offsets are committed (at-least-once); also on rebalance and shutdown.
    pub commit_interval_ms: u64,
    /// Seconds to drain in-flight batches and flush on SIGINT/SIGTERM before giving up.
    pub shutdown_timeout_s: u64,
}

impl Default for DeliverySection {
    fn default() -> Self {
        Self {
            guarantee: Guarantee::AtLeastOnce,
            transactional_id: None,
            commit_interval_ms: 1000,
            shutdown_timeout_s: 30,
        }
    }
}

/// Score record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One JSON object per input row (schemas/score.schema.json).
    #[default]
    Json,
    /// One Arrow IPC stream per input message, a row per input row (same fields, flattened).
    Arrow,
}

/// `[output]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// `json` or `arrow`.
    pub format: OutputFormat,
    /// Add an `explain` object to every JSON score record: the most attended memory items
    /// and the features carrying the reconstruction error (`mmnet explain`, per record).
    /// Scores and explanations come from one forward pass; the cost is the decoder (if the
    /// score does not already need it) and two small sorts per record.
    pub explain: bool,
    /// Memory items listed per record when `explain` is on.
    pub explain_top_memory: usize,
    /// Features listed per record when `explain` is on.
    pub explain_top_features: usize,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            format: OutputFormat::Json,
            explain: false,
            explain_top_memory: 3,
            explain_top_features: 5,
        }
    }
}

/// `[drift]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSection {
    /// Rows of recent traffic `mmnet_score_psi` and `mmnet_flagged_ratio` describe (whole
    /// batches, so up to one batch more); 0 turns the drift signals off.
    pub window_rows: usize,
    /// Features that get their own `mmnet_out_of_range_total{feature=...}` series, the first
    /// ones seen out of range; the rest are counted under `feature="_other"`.
    pub max_features: usize,
}

impl Default for DriftSection {
    fn default() -> Self {
        Self {
            window_rows: 10_000,
            max_features: 10,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of `/metrics` (Prometheus text) and `/health`; empty disables both.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl OperatorConfig {
    /// Reads a TOML file; unknown keys are errors (a typo must not be ignored silently).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with_profile(path, None)
    }

    /// [`OperatorConfig::from_file`] with a profile from the command line (see
    /// [`OperatorConfig::from_toml_with_profile`]).
    pub fn from_file_with_profile(path: &Path, profile: Option<Profile>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| OperatorError::Config {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml_with_profile(&text, profile).map_err(|e| match e {
            OperatorError::Config { what, reason } => OperatorError::Config {
                what: if what == "<config>" {
                    path.display().to_string()
                } else {
                    format!("{}: {what}", path.display())
                },
                reason,
            },
            other => other,
        })
    }

    /// Parses TOML text; `${VAR}` in any string value is replaced by the environment
    /// variable VAR (see [`expand_env`]).
    pub fn from_toml(text: &str) -> Result<Self> {
        Self::from_toml_with_profile(text, None)
    }

    /// [`OperatorConfig::from_toml`] with `profile` (from the command line) in place of
    /// the file's `profile`; the profile's `[batch]` defaults fill the keys the file leaves
    /// out.
    pub fn from_toml_with_profile(text: &str, profile: Option<Profile>) -> Result<Self> {
        let config_error = |e: &dyn std::fmt::Display| OperatorError::Config {
            what: "<config>".into(),
            reason: e.to_string(),
        };
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| config_error(&e))?;
        expand_env(&mut doc)?;
        if let Some(p) = profile {
            doc.insert("profile".into(), p.as_str().into());
        }
        let chosen = [Profile::Throughput, Profile::LowLatency]
            .into_iter()
            .find(|p| doc.get("profile").and_then(toml::Value::as_str) == Some(p.as_str()));
        if let Some(p) = chosen
            && !p.batch_defaults().is_empty()
        {
            let batch = doc
                .entry("batch")
                .or_insert_with(|| toml::Table::new().into());
            if let Some(t) = batch.as_table_mut() {
                for &(k, v) in p.batch_defaults() {
                    t.entry(k).or_insert(v.into());
                }
            }
        }
        doc.try_into().map_err(|e| config_error(&e))
    }

    /// Applies `-X key=value`: a librdkafka property for both clients. Password-like keys
    /// are refused: the command line is visible to every user of the host.
    pub fn set_librdkafka(&mut self, kv: &str) -> Result<()> {
        let (k, v) = kv.split_once('=').ok_or_else(|| OperatorError::Config {
            // Only the key: a malformed pair may still hold a secret.
            what: format!("-X {}", kv.split(['=', ':']).next().unwrap_or_default()),
            reason: "expected key=value".into(),
        })?;
        refuse_secret_on_command_line(k.trim())?;
        self.librdkafka.insert(k.trim().into(), v.trim().into());
        Ok(())
    }

    /// Checks what serde cannot: required fields and consistent settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, reason: &str| {
            Err(OperatorError::Config {
                what: what.into(),
                reason: reason.into(),
            })
        };
        if self.model.path.is_none() {
            return bad("model.path", "no model given (--model DIR)");
        }
        for (what, v) in [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group", &self.kafka.group),
            ("kafka.input_topic", &self.kafka.input_topic),
            ("kafka.output_topic", &self.kafka.output_topic),
        ] {
            if v.trim().is_empty() {
                return bad(what, "must not be empty");
            }
        }
        self.security.validate()?;
        if self.model.watch && self.model.watch_interval_ms == 0 {
            return bad("model.watch_interval_ms", "must be at least 1");
        }
        if self.kafka.input_topic == self.kafka.output_topic
            || self.kafka.dlq_topic.as_deref() == Some(self.kafka.input_topic.as_str())
        {
            return bad(
                "kafka.output_topic",
                "output and dead-letter topics must differ from the input topic",
            );
        }
        if self.output.explain && self.output.format != OutputFormat::Json {
            return bad(
                "output.explain",
                "explanations are written into JSON score records; set output.format = \"json\"",
            );
        }
        if self.output.explain
            && (self.output.explain_top_memory == 0 || self.output.explain_top_features == 0)
        {
            return bad(
                "output.explain_top_memory",
                "explain_top_memory and explain_top_features must be at least 1",
            );
        }
        if self.batch.max_messages == 0
            || self.batch.max_bytes == 0
            || self.batch.max_in_flight == 0
        {
            return bad(
                "batch",
                "max_messages, max_bytes and max_in_flight must be at least 1",
            );
        }
        if self.input.max_message_bytes == 0 {
            return bad("input.max_message_bytes", "must be at least 1");
        }
        for key in ["enable.auto.offset.store", "enable.auto.commit"] {
            if self.librdkafka.contains_key(key) || self.consumer.contains_key(key) {
                return bad(
                    key,
                    "is managed by mmnet (offsets are stored only after delivery); set delivery.commit_interval_ms instead",
                );
            }
        }
        Ok(())
    }

    /// The commented default configuration (`mmnet kafka --print-config`).
    pub fn template() -> &'static str {
        TEMPLATE
    }
}

const TEMPLATE: &str = r#"# mmnet kafka: pipeline configuration. Every field shows its default; a file only needs
# what differs. Command-line flags override the file.

# "throughput" or "low-latency" (--profile): defaults for [batch] and for librdkafka.
# low-latency: [batch] linger_ms = 0, max_messages = 256, max_in_flight = 16; consumer
# fetch.wait.max.ms = 10; producer linger.ms = 0. Anything set below, in [librdkafka],
# [consumer], [producer] or on the command line wins over the profile.
profile = "throughput"

[model]
# Model directory written by `mmnet train` (required; --model).
# path = "models/mmnet"
# Name written into every score record (model.name).
name = "mmnet"
# Override the model's stored threshold for is_anomaly (--threshold).
# threshold = 0.5
# Hot swap: SIGHUP reloads the model from `path` (resolved again, so a flipped symlink is
# followed); with watch = true (--watch-model) a change of what `path` names triggers it too.
# The new model is loaded and checked beside the running one (format, digest, every feature
# it needs is one the input carries: the serving model's features); if it fails, the old
# one keeps serving. Swaps happen between batches: each score record's `model` names the
# model that scored it.
watch = false
watch_interval_ms = 1000
# Shadow scoring (--shadow-model): a second model scores every record too; each JSON score
# record gets a `shadow` object (digest, mmnet_score, is_anomaly), Arrow output
# shadow_* columns. Reloaded with the served model on SIGHUP.
# shadow_path = "models/candidate"
# Arithmetic of the scoring products (--precision): "f32" or "bf16" (weights and
# activations rounded to bf16, f32 sums: ~2.5x the rows/s where the CPU has AMX, scores
# within ~1e-3 of f32). Absent: what the model's manifest says. Applies to the shadow too.
# precision = "bf16"

[kafka]
# Bootstrap brokers (--brokers).
brokers = "localhost:9092"
# Consumer group: instances in one group share the input partitions (--group).
group = "mmnet"
# Telemetry topic (--input-topic) and score topic (--output-topic); both required.
input_topic = ""
output_topic = ""
# Dead-letter topic for records that cannot be scored (--dlq-topic). Without one, such a
# record stops the operator before its offset is committed, so nothing is lost.
# dlq_topic = "telemetry-dlq"
# client.id of the consumer and producer.
client_id = "mmnet"
# With no broker reachable the operator waits (librdkafka reconnects; /health says why it is
# not ready) and resumes by itself; after this many seconds it exits non-zero so that its
# orchestrator restarts it. 0 = wait forever.
unavailable_timeout_s = 300

[input]
# "auto" (Arrow IPC stream if the message starts with its marker, else JSON), "json", "arrow".
format = "auto"
# Larger messages go to the dead-letter topic as "oversized".
max_message_bytes = 8388608

[batch]
# Score a batch when it holds max_messages messages or max_bytes payload bytes, or
# linger_ms after its first message, whichever comes first.
max_messages = 1024
max_bytes = 4194304
linger_ms = 20
# Batches between consume and commit. When all are taken, consumption pauses, so memory
# stays bounded when the output cannot keep up.
max_in_flight = 4

[delivery]
# "at-least-once": an input offset is committed only after its score record (or dead
# letter) is acknowledged by the broker. "exactly-once": scores and offsets in one
# transaction per batch, input read with isolation.level=read_committed.
guarantee = "at-least-once"
# transactional.id for exactly-once: unique per instance, stable across its restarts.
# Default: mmnet-<group>-<input_topic>-<hostname>.
# transactional_id = "mmnet-0"
# How often stored offsets are committed (also on rebalance and shutdown).
commit_interval_ms = 1000
# Seconds to drain in-flight work and flush on SIGINT/SIGTERM.
shutdown_timeout_s = 30

[output]
# "json": one JSON score record per input row (schemas/score.schema.json).
# "arrow": one Arrow IPC stream per input message, a row per input row.
format = "json"
# Add an "explain" object to each JSON score record: the most attended memory items (normal
# or anomaly part) and the features with the largest share of the reconstruction error.
# JSON output only; costs the decoder pass (if the score does not already run it) and two
# small sorts per record.
explain = false
explain_top_memory = 3
explain_top_features = 5

[metrics]
# Prometheus text at /metrics and liveness at /health; "" disables.
listen = "127.0.0.1:9464"

[drift]
# Drift signals against what the model saw in training (kept in its manifest): over the last
# window_rows scored rows, mmnet_score_psi (population stability index of mmnet_score
# against the training deciles: < 0.1 stable, > 0.25 shifted) and mmnet_flagged_ratio
# (share flagged is_anomaly; about 1 - threshold quantile on training-like traffic); and
# mmnet_out_of_range_total{feature=...}, rows with a feature outside its training range
# (max_features series, the rest under feature="_other"). window_rows = 0 turns them off.
window_rows = 10000
max_features = 10

[security]
# TLS and SASL; every mmnet binary has both (librdkafka with a vendored OpenSSL). Any string
# in this file may be "${ENV_VAR}": replaced by that environment variable at startup.
# "plaintext", "ssl", "sasl_plaintext" or "sasl_ssl" (--security-protocol).
protocol = "plaintext"
# SASL: "PLAIN" (send the password: TLS only), "SCRAM-SHA-256" or "SCRAM-SHA-512"
# (default with a SASL protocol) (--sasl-mechanism, --sasl-username).
# sasl_mechanism = "SCRAM-SHA-512"
# sasl_username = "mmnet"
# The password never goes on the command line: from the environment ...
# sasl_password = "${KAFKA_PASSWORD}"
# ... or from a file (--secret-file PATH); any librdkafka property can be read this way.
# secret_files = { "sasl.password" = "/run/secrets/kafka-password" }
# CA bundle (PEM) for the brokers' certificates (--ssl-ca); default: the system's CA store.
# ca_location = "/etc/kafka/ca.pem"
# Mutual TLS: client certificate and key (PEM); the key's password as sasl_password.
# certificate_location = "/etc/kafka/client.pem"
# key_location = "/etc/kafka/client.key"
# key_password = "${KAFKA_KEY_PASSWORD}"
# Check that a broker's certificate names the host connected to.
verify_hostname = true
# Secrets are kept out of logs, errors and /metrics: values given here, through ${VAR}
# under a password-like key, or from secret_files are replaced by *** wherever printed.

# librdkafka properties for both clients (-X key=value; password-like keys are refused on
# the command line), e.g. "socket.keepalive.enable" = "true". They override [security].
[librdkafka]

# librdkafka properties for the consumer only, e.g. "session.timeout.ms" = "10000".
[consumer]

# librdkafka properties for the producer only, e.g. "compression.type" = "lz4".
[producer]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_the_default() {
        let parsed = OperatorConfig::from_toml(OperatorConfig::template()).unwrap();
        assert_eq!(parsed, OperatorConfig::default());
    }

    #[test]
    fn shipped_pipelines_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let mut c = OperatorConfig::from_file(&p).unwrap();
                c.model.path = Some("model".into());
                c.validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 2, "expected example pipelines in {}", dir.display());
    }

    /// The low-latency profile fills the `[batch]` keys a file leaves out and sits below
    /// every librdkafka property the user sets; the command line's profile replaces the
    /// file's; an unknown profile is an error naming it.
    #[test]
    fn profiles_supply_defaults_that_everything_else_overrides() {
        let c = OperatorConfig::from_toml("profile = \"low-latency\"\n").unwrap();
        assert_eq!(c.profile, Profile::LowLatency);
        assert_eq!(
            (
                c.batch.linger_ms,
                c.batch.max_messages,
                c.batch.max_in_flight
            ),
            (0, 256, 16)
        );
        assert_eq!(c.batch.max_bytes, BatchSection::default().max_bytes);
        let consumer = crate::clients::consumer_config(&c, &[]);
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("10"));
        let producer = crate::clients::producer_config(&c, &[], None);
        assert_eq!(producer.get("linger.ms"), Some("0"));

        let text = "profile = \"low-latency\"\n[batch]\nlinger_ms = 3\n\
                    [consumer]\n\"fetch.wait.max.ms\" = \"7\"\n";
        let c = OperatorConfig::from_toml(text).unwrap();
        assert_eq!((c.batch.linger_ms, c.batch.max_messages), (3, 256));
        assert_eq!(
            crate::clients::consumer_config(&c, &[]).get("fetch.wait.max.ms"),
            Some("7")
        );
        let mut c = c;
        c.set_librdkafka("linger.ms=2").unwrap();
        assert_eq!(
            crate::clients::producer_config(&c, &[], None).get("linger.ms"),
            Some("2")
        );

        // --profile on the command line over the file's, with or without a file.
        let c = OperatorConfig::from_toml_with_profile(
            "profile = \"low-latency\"\n",
            Some(Profile::Throughput),
        )
        .unwrap();
        assert_eq!(c.batch, BatchSection::default());
        let c = OperatorConfig::from_toml_with_profile("", Some(Profile::LowLatency)).unwrap();
        assert_eq!(c.batch.linger_ms, 0);
        // The default stays throughput, with the batch defaults and librdkafka's own fetch wait.
        let d = OperatorConfig::default();
        assert_eq!(d.profile, Profile::Throughput);
        assert_eq!(
            crate::clients::consumer_config(&d, &[]).get("fetch.wait.max.ms"),
            None
        );
        let e = OperatorConfig::from_toml("profile = \"fast\"\n").unwrap_err();
        assert!(e.to_string().contains("fast"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = OperatorConfig::from_toml("[batch]\nmax_row = 3\n").unwrap_err();
        assert!(e.to_string().contains("max_row"), "{e}");
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let c = OperatorConfig::from_toml(
            "[kafka]\ninput_topic = \"a\"\n[librdkafka]\n\"security.protocol\" = \"SSL\"\n",
        )
        .unwrap();
        assert_eq!(c.kafka.input_topic, "a");
        assert_eq!(c.kafka.group, "mmnet");
        assert_eq!(c.batch, BatchSection::default());
        assert_eq!(c.librdkafka["security.protocol"], "SSL");
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = OperatorConfig::default();
        c.model.path = Some("m".into());
        c.kafka.input_topic = "in".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("kafka.output_topic"), "{e}");
        c.kafka.output_topic = "in".into();
        assert!(c.validate().is_err());
        c.kafka.output_topic = "out".into();
        c.validate().unwrap();
        c.output.explain = true;
        c.output.format = OutputFormat::Arrow;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("output.explain")
        );
        c.output.format = OutputFormat::Json;
        c.validate().unwrap();
        c.set_librdkafka("enable.auto.commit=false").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("managed by mmnet")
        );
        assert!(c.set_librdkafka("novalue").is_err());
    }
}
