//! librdkafka clients as the operator configures them, and the callbacks that feed metrics
//! and logs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::ToBytes;
use rdkafka::producer::{
    BaseRecord, DeliveryFuture, DeliveryResult, FutureProducer, FutureRecord, ProducerContext,
    ThreadedProducer,
};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, error, info, warn};

use crate::config::{Guarantee, OperatorConfig};
use crate::metrics::Metrics;

/// Errors librdkafka reports but keeps retrying that no retry can fix: a refused login or a
/// failed TLS handshake (wrong CA, a TLS client on a plaintext listener). Kafka's Java
/// clients stop on these too (`SaslAuthenticationException`, `SslAuthenticationException`);
/// retrying them forever would look like a hang.
#[derive(Debug, Clone, Default)]
pub struct Fatal(Arc<FatalState>);

/// The first fatal error and the waiters for it.
#[derive(Debug, Default)]
struct FatalState {
    error: Mutex<Option<String>>,
    set: tokio::sync::Notify,
}

impl Fatal {
    /// Records the first fatal error (later ones are consequences).
    pub fn set(&self, msg: String) {
        if let Ok(mut f) = self.0.error.lock()
            && f.is_none()
        {
            *f = Some(msg);
            self.0.set.notify_waiters();
        }
    }

    /// The fatal error, if one happened.
    pub fn get(&self) -> Option<String> {
        self.0.error.lock().ok().and_then(|f| f.clone())
    }

    /// Resolves with the fatal error as soon as there is one.
    pub async fn wait(&self) -> String {
        loop {
            // Registered before the check, so a `set` between the check and the await
            // still wakes this waiter.
            let notified = self.0.set.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.get() {
                return m;
            }
            notified.await;
        }
    }

    /// Sorts a client error: fatal ones are recorded and returned.
    fn classify(&self, error: &KafkaError, reason: &str) -> Option<String> {
        let code = error.rdkafka_error_code()?;
        let reason = crate::security::redact(reason);
        let msg = match code {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                format!(
                    "the broker refused the login ({reason}); check security.sasl_username, the password and security.sasl_mechanism"
                )
            }
            // Only what a retry cannot fix: a certificate problem or a protocol mismatch.
            // A connection dropped mid-handshake (a broker restarting in a rolling
            // upgrade) is an outage like any other.
            RDKafkaErrorCode::SSL if tls_error_is_permanent(&reason) => format!(
                "TLS handshake failed ({reason}); check security.ca_location (the CA that signed the brokers' certificates), security.protocol and the broker address"
            ),
            _ => return None,
        };
        self.set(msg.clone());
        Some(msg)
    }
}

/// What the operator's two clients report about the cluster, shared by their contexts:
/// connection state feeds readiness ([`Metrics::report_brokers`]), security errors
/// [`Fatal`]. Both clients report because each is served at different times: the consumer's
/// callbacks run only while it is polled (not while the pipeline is paused by backpressure),
/// the producer's on its own thread but it connects only when it has something to send.
#[derive(Debug, Clone)]
pub struct ClientWatch {
    /// Readiness and the brokers-up gauge.
    pub metrics: Metrics,
    /// Set on an error no retry can fix.
    pub fatal: Fatal,
    last_error: Arc<Mutex<String>>,
}

impl ClientWatch {
    /// A watch feeding `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            fatal: Fatal::default(),
            last_error: Arc::new(Mutex::new(String::new())),
        }
    }

    fn on_error(&self, error: KafkaError, reason: &str) {
        let text = crate::security::redact(reason).into_owned();
        if let Some(msg) = self.fatal.classify(&error, reason) {
            error!(target: "librdkafka", "{msg}");
        } else {
            warn!(target: "librdkafka", error = %error, "{text}");
        }
        if let Ok(mut l) = self.last_error.lock() {
            *l = text;
        }
    }

    fn on_stats(&self, client: Client, stats: &Statistics) {
        // Any broker connection that is UP (connected, authenticated) will do; librdkafka
        // reconnects by itself, this only observes it.
        let up = stats.brokers.values().filter(|b| b.state == "UP").count();
        // The latest report of either client: the consumer's go stale while backpressure
        // pauses it, the producer's keep coming.
        self.metrics.brokers_up.set(up as i64);
        let last = self
            .last_error
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        let reason = if last.is_empty() {
            "no broker connection yet".to_string()
        } else {
            last
        };
        self.metrics
            .report_brokers(client as usize, up > 0, &reason);
    }
}

/// Which client a statistics report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The input consumer.
    Consumer = 0,
    /// The score producer.
    Producer = 1,
}

/// Whether a TLS error names a certificate or protocol problem (permanent) rather than a
/// dropped connection (transient).
fn tls_error_is_permanent(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "certificate",
        "unknown ca",
        "wrong version number",
        "no protocols available",
        "unsupported protocol",
        "handshake failure",
        "bad record mac",
        "ssl.ca.location",
    ]
    .iter()
    .any(|k| r.contains(k))
}

/// Consumer callbacks: rebalances and statistics go to logs and metrics, connection state
/// and errors to the [`ClientWatch`].
#[derive(Debug, Clone)]
pub struct OperatorContext {
    /// Shared with the producer's context.
    pub watch: ClientWatch,
    /// The input topic (statistics cover every topic the client knows).
    pub input_topic: String,
}

impl ClientContext for OperatorContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(error, reason);
    }

    fn stats(&self, stats: Statistics) {
        self.watch.on_stats(Client::Consumer, &stats);
        let metrics = &self.watch.metrics;
        let Some(topic) = stats.topics.get(&self.input_topic) else {
            return;
        };
        for (&p, part) in &topic.partitions {
            // Partition -1 is librdkafka's internal UA partition; lag -1 means unknown.
            if p >= 0 && part.consumer_lag >= 0 {
                metrics
                    .consumer_lag
                    .get_or_create(&vec![("partition", i64::from(p))])
                    .set(part.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for OperatorContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => info!(partitions = %partitions(tpl), "partitions revoked"),
            Rebalance::Assign(tpl) => info!(partitions = %partitions(tpl), "partitions assigned"),
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        // The list is dropped here, before anything could drop the consumer (see
        // ECOSYSTEM.md: a live list blocks rd_kafka_destroy).
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.watch.metrics.assigned_partitions.set(n as i64);
        self.watch.metrics.consumer_lag.clear();
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(offsets = %partitions(offsets), "offsets committed"),
            // Nothing stored since the last commit: not an error.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => warn!(error = %e, "offset commit failed; the next commit retries"),
        }
    }
}

/// A producer's callbacks: logs, and security errors to [`Fatal`] (`mmnet produce` stops on
/// them instead of waiting out `message.timeout.ms`).
#[derive(Debug, Clone, Default)]
pub struct LogContext {
    /// Set on an error no retry can fix.
    pub fatal: Fatal,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match self.fatal.classify(&error, reason) {
            Some(msg) => error!(target: "librdkafka", "{msg}"),
            None => {
                warn!(target: "librdkafka", error = %error, "{}", crate::security::redact(reason))
            }
        }
    }
}

fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    use RDKafkaLogLevel::*;
    let msg = crate::security::redact(msg);
    // `-X` and `[librdkafka]` apply to both clients, so each warns about the other's
    // properties; that is expected, not worth a warning.
    let level = if fac == "CONFWARN" && msg.contains("will be ignored by this") {
        Debug
    } else {
        level
    };
    match level {
        Emerg | Alert | Critical | Error => error!(target: "librdkafka", fac, "{msg}"),
        Warning => warn!(target: "librdkafka", fac, "{msg}"),
        Notice | Info => info!(target: "librdkafka", fac, "{msg}"),
        Debug => debug!(target: "librdkafka", fac, "{msg}"),
    }
}

fn partitions(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Consumer settings: mmnet's required ones, `[security]` (`security`, resolved by
/// [`crate::security::SecuritySection::client_properties`]), then the user's (`[librdkafka]`,
/// `[consumer]`).
pub fn consumer_config(cfg: &OperatorConfig, security: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &cfg.kafka.group)
        .set("client.id", &cfg.kafka.client_id)
        // A new group starts at the beginning of the topic: nothing is skipped.
        .set("auto.offset.reset", "earliest")
        // librdkafka's prefetch stays at its default bound (queued.max.messages.kbytes =
        // 64 MiB): capping it at 16 MiB cut throughput from 123k to 40k records/s on Tansu.
        // Lower it for small machines.
        .set("enable.partition.eof", "false")
        // When that prefetch queue is full, librdkafka postpones the next fetch by
        // fetch.queue.backoff.ms (default 1000 ms). An operator that drains the queue faster
        // than that then sits idle: on a backlog mmnet stalled ~0.4 s out of every ~1.3 s
        // (mmnet and broker both at 0 % CPU). 20 ms keeps the queue topped up; it only
        // applies while the queue is full, so an idle consumer costs nothing extra.
        .set("fetch.queue.backoff.ms", "20");
    match cfg.delivery.guarantee {
        Guarantee::AtLeastOnce => {
            // Offsets are stored by mmnet after delivery and committed by librdkafka
            // periodically, on rebalance and on close.
            c.set("enable.auto.offset.store", "false")
                .set("enable.auto.commit", "true")
                .set(
                    "auto.commit.interval.ms",
                    cfg.delivery.commit_interval_ms.to_string(),
                );
        }
        Guarantee::ExactlyOnce => {
            c.set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed");
        }
    }
    // Statistics drive readiness (is any broker UP?) and the give-up clock as well as
    // the lag gauges: every second, metrics endpoint or not. Parsing one small JSON
    // document a second is noise next to scoring.
    c.set("statistics.interval.ms", "1000");
    for &(k, v) in cfg.profile.consumer_properties() {
        c.set(k, v);
    }
    apply_pairs(&mut c, security);
    apply(&mut c, cfg.librdkafka.iter().chain(cfg.consumer.iter()));
    c
}

fn apply_pairs(c: &mut ClientConfig, props: &[(String, String)]) {
    for (k, v) in props {
        c.set(k, v);
    }
}

/// Producer settings: idempotent, key-hashed like the Java client, then the user's.
pub fn producer_config(
    cfg: &OperatorConfig,
    security: &[(String, String)],
    transactional_id: Option<&str>,
) -> ClientConfig {
    let mut c = base_producer_config(&cfg.kafka.brokers);
    c.set("client.id", &cfg.kafka.client_id);
    if let Some(id) = transactional_id {
        c.set("transactional.id", id);
    }
    // Readiness, as for the consumer.
    c.set("statistics.interval.ms", "1000");
    for &(k, v) in cfg.profile.producer_properties() {
        c.set(k, v);
    }
    apply_pairs(&mut c, security);
    apply(&mut c, cfg.librdkafka.iter().chain(cfg.producer.iter()));
    c
}

/// Settings every mmnet producer uses (the operator and `mmnet produce`).
pub fn base_producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        // No duplicates or reordering from internal retries.
        .set("enable.idempotence", "true")
        // Same key -> same partition as Java/Kafka Streams producers would choose.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5");
    c
}

/// Acknowledgements of one batch's records, counted in the producer's delivery callback.
///
/// Why not a `DeliveryFuture` per record: each one is a oneshot channel, a boxed sender and a
/// task wake-up, and the commit stage awaited them one by one: per-record work on the hot path
/// of the operator (the Kafka benchmark's profile). One shared counter per batch carries the
/// same guarantee: the batch's offsets are stored only after its last record is acknowledged.
#[derive(Debug)]
pub struct BatchAcks {
    pending: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    done: tokio::sync::Notify,
    /// Which batch, for error messages.
    what: String,
    /// Where each acknowledged record's latency goes (from its message's receipt).
    latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// One record the broker did not acknowledge.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Its index in the batch's outputs.
    pub index: usize,
    /// Where it was going, for the error message.
    pub what: String,
    /// librdkafka's error.
    pub error: KafkaError,
}

/// What a record carries to its delivery callback: its batch and its place in it (a
/// refused record must be told apart from its batch-mates to be dead-lettered).
#[derive(Debug)]
pub struct Ack {
    acks: Arc<BatchAcks>,
    index: usize,
    received: std::time::Instant,
}

impl BatchAcks {
    /// A batch of `records` records, described by `what` in errors.
    pub fn new(records: usize, what: String) -> Arc<Self> {
        Self::with_latency(records, what, None)
    }

    /// [`BatchAcks::new`], observing each acknowledged record's latency in `latency`.
    pub fn with_latency(
        records: usize,
        what: String,
        latency: Option<prometheus_client::metrics::histogram::Histogram>,
    ) -> Arc<Self> {
        Arc::new(BatchAcks {
            pending: AtomicUsize::new(records),
            failures: Mutex::new(Vec::new()),
            done: tokio::sync::Notify::new(),
            what,
            latency,
        })
    }

    /// The delivery opaque of the batch's record `index`, whose message arrived at
    /// `received`.
    pub fn ack(self: &Arc<Self>, index: usize, received: std::time::Instant) -> Box<Ack> {
        Box::new(Ack {
            acks: Arc::clone(self),
            index,
            received,
        })
    }

    /// Waits until every record was acknowledged or failed. Returns the failures, in the
    /// order they happened.
    pub async fn wait(&self) -> std::result::Result<(), Vec<Failure>> {
        while self.pending.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
        match self.failures.lock() {
            Ok(f) if f.is_empty() => Ok(()),
            Ok(mut f) => Err(std::mem::take(&mut *f)),
            Err(_) => Err(vec![Failure {
                index: 0,
                what: self.what.clone(),
                error: KafkaError::Canceled,
            }]),
        }
    }

    /// Records that a record was not even queued (so no callback will come for it).
    pub fn fail_unsent(&self, index: usize, what: String, error: KafkaError) {
        self.settle(Some(Failure { index, what, error }));
    }

    fn settle(&self, failed: Option<Failure>) {
        if let Some(f) = failed
            && let Ok(mut v) = self.failures.lock()
        {
            v.push(f);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit if `wait` is not waiting yet.
            self.done.notify_one();
        }
    }
}

/// Errors about one record, not the cluster: the record is refused whatever the retry, its
/// batch-mates are fine. Such a score record becomes a dead letter ([`DeadReason::Rejected`]
/// in `decode`) instead of stopping the operator, which would refuse it again after every
/// restart (a crash loop).
pub fn record_refused(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTimestamp
        )
    )
}

/// The operator's producer context: librdkafka logs to `tracing`, deliveries to
/// [`BatchAcks`], connection state and errors to the [`ClientWatch`].
#[derive(Debug, Clone)]
pub struct AckContext {
    /// Shared with the consumer's context.
    pub watch: ClientWatch,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_to_tracing(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(error, reason);
    }

    fn stats(&self, stats: Statistics) {
        self.watch.on_stats(Client::Producer, &stats);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        use rdkafka::Message;
        let failed = result.as_ref().err().map(|(e, m)| Failure {
            index: ack.index,
            what: format!(
                "to `{}` (partition {}) for a record of {}",
                m.topic(),
                m.partition(),
                ack.acks.what
            ),
            error: e.clone(),
        });
        if failed.is_none()
            && let Some(h) = &ack.acks.latency
        {
            h.observe(ack.received.elapsed().as_secs_f64());
        }
        ack.acks.settle(failed);
    }
}

/// Sends `record` with `send`, waiting while librdkafka's queue is full (backpressure: the
/// caller stops until the producer catches up). Other errors are returned as they are.
async fn when_queued<R, T>(
    mut record: R,
    send: impl Fn(R) -> Result<T, (KafkaError, R)>,
) -> Result<T, KafkaError> {
    loop {
        match send(record) {
            Ok(t) => return Ok(t),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Enqueues one record of a batch on the operator's producer ([`when_queued`]).
// The large error is rdkafka's own: the record handed back for a retry.
#[allow(clippy::result_large_err)]
pub async fn send_acked(
    producer: &ThreadedProducer<AckContext>,
    record: BaseRecord<'_, [u8], [u8], Box<Ack>>,
) -> Result<(), KafkaError> {
    when_queued(record, |r| producer.send(r)).await
}

/// Enqueues a record on a future producer (`mmnet produce`; [`when_queued`]).
#[allow(clippy::result_large_err)]
pub async fn send_when_queued<K, P>(
    producer: &FutureProducer<LogContext>,
    record: FutureRecord<'_, K, P>,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    when_queued(record, |r| producer.send_result(r)).await
}

fn apply<'a>(c: &mut ClientConfig, props: impl Iterator<Item = (&'a String, &'a String)>) {
    for (k, v) in props {
        c.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mmnet's consumer defaults are set, and a user's `[consumer]` value wins.
    #[test]
    fn consumer_defaults_yield_to_the_user() {
        let cfg = OperatorConfig::from_toml("").unwrap();
        let c = consumer_config(&cfg, &[]);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("20"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        let cfg = OperatorConfig::from_toml("[consumer]\n\"fetch.queue.backoff.ms\" = \"500\"\n")
            .unwrap();
        assert_eq!(
            consumer_config(&cfg, &[]).get("fetch.queue.backoff.ms"),
            Some("500")
        );
    }

    /// `wait` returns only after the last acknowledgement, whether it starts waiting before
    /// or after them, and reports every failure with its record's index.
    #[tokio::test]
    async fn batch_acks_wait_for_every_record_and_keep_the_failures() {
        let acks = BatchAcks::new(3, "batch 7".into());
        let waiter = {
            let acks = Arc::clone(&acks);
            tokio::spawn(async move { acks.wait().await })
        };
        acks.settle(None);
        acks.fail_unsent(1, "to `a`".into(), KafkaError::Canceled);
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "returned before the last acknowledgement"
        );
        acks.settle(Some(Failure {
            index: 2,
            what: "to `b`".into(),
            error: KafkaError::Canceled,
        }));
        let failures = waiter.await.unwrap().unwrap_err();
        let got: Vec<_> = failures
            .iter()
            .map(|f| (f.index, f.what.as_str()))
            .collect();
        assert_eq!(got, [(1, "to `a`"), (2, "to `b`")]);

        // Every acknowledgement before anyone waits: the stored permit releases `wait`.
        let early = BatchAcks::new(2, "batch 8".into());
        early.settle(None);
        early.settle(None);
        assert!(early.wait().await.is_ok());
        assert!(BatchAcks::new(0, "empty".into()).wait().await.is_ok());
    }

    #[tokio::test]
    async fn waiting_for_a_fatal_error_wakes_when_it_is_set() {
        let f = Fatal::default();
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.wait().await }
        });
        tokio::task::yield_now().await;
        f.set("first".into());
        f.set("a consequence".into());
        assert_eq!(waiter.await.unwrap(), "first");
        // Set before anyone waits: resolves at once.
        assert_eq!(f.wait().await, "first");
    }

    #[test]
    fn tls_errors_are_fatal_only_when_no_retry_can_fix_them() {
        let f = Fatal::default();
        let ssl = KafkaError::Global(RDKafkaErrorCode::SSL);
        assert!(
            f.classify(&ssl, "ssl://b:9093/1: SSL handshake failed: Disconnected (after 3ms in state SSL_HANDSHAKE)")
                .is_none()
        );
        assert!(
            f.get().is_none(),
            "a dropped handshake is an outage, not fatal"
        );
        let msg = f
            .classify(
                &ssl,
                "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
            )
            .unwrap();
        assert!(msg.contains("security.ca_location"), "{msg}");
        assert!(f.get().is_some());
        let f = Fatal::default();
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        assert!(f.classify(&auth, "SASL authentication error").is_some());
    }

    #[test]
    fn only_record_level_errors_dead_letter_a_record() {
        use rdkafka::error::KafkaError::MessageProduction as P;
        assert!(record_refused(&P(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(record_refused(&P(RDKafkaErrorCode::InvalidRecord)));
        assert!(!record_refused(&P(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
        assert!(!record_refused(&P(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!record_refused(&KafkaError::Canceled));
    }
}
