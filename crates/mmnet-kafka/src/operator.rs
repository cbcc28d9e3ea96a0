//! The streaming operator: consume -> micro-batch -> score -> produce -> store offsets.
//!
//! At-least-once pipeline, three tasks joined by bounded channels:
//!
//! ```text
//! ingest (recv, batch by size/bytes/linger) --[1]--> score (blocking thread: decode, score,
//! encode; then enqueue every record) --[max_in_flight]--> commit (await each batch's
//! acknowledgements, in order, then store its offsets)
//! ```
//!
//! An offset is stored only after every record of its batch and of all earlier batches was
//! acknowledged (counted per batch in the producer's delivery callback, `BatchAcks`), so a
//! committed offset never covers an unscored record; librdkafka commits
//! stored offsets every `commit_interval_ms`, on rebalance and on close. When the output is
//! slow, the channels fill, `recv` is no longer called and librdkafka's bounded prefetch
//! stops fetching: consumption pauses instead of memory growing.
//!
//! Exactly-once runs batches one at a time, each in a Kafka transaction holding its score
//! records, dead letters and input offsets.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::batch::{Destination, Output, Prepared, RawBatch};
use crate::clients::{
    Ack, AckContext, BatchAcks, ClientWatch, Failure, Fatal, OperatorContext, consumer_config,
    producer_config, record_refused, send_acked,
};
use crate::config::{Guarantee, OperatorConfig};
use crate::error::{OperatorError, Result};
use crate::metrics::{Health, Metrics};
use crate::serving::{self, Serving, load_scorer};

type Consumer_ = StreamConsumer<OperatorContext>;
type Producer_ = ThreadedProducer<AckContext>;

/// Totals of one run, printed when the operator stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Input messages whose offsets were stored (or committed in a transaction).
    pub messages: u64,
    /// Score records acknowledged.
    pub scores: u64,
    /// Of which anomalies.
    pub anomalies: u64,
    /// Dead letters acknowledged.
    pub dead_letters: u64,
}

/// Loads the model and runs until `shutdown` resolves (then drains, flushes and commits) or
/// a fatal error.
pub async fn run(
    cfg: OperatorConfig,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RunSummary> {
    cfg.validate()?;
    let path = cfg.model.path.clone().unwrap_or_default();
    let first = load_scorer(&cfg, &path)?;
    info!(model = %path.display(), digest = %first.digest, features = first.model.input_dim(),
          shadow = ?first.shadow.as_ref().map(|s| s.digest.as_str()), "model loaded");
    metrics.set_model(&cfg.model.name, &first.digest, &first.digest);
    let scorer = Arc::new(Serving::new(
        first,
        cfg.drift.window_rows,
        cfg.drift.max_features,
    ));

    let security = cfg.security.client_properties()?;
    let watch = ClientWatch::new(metrics.clone());
    let fatal = watch.fatal.clone();
    let ctx = OperatorContext {
        watch: watch.clone(),
        input_topic: cfg.kafka.input_topic.clone(),
    };
    let consumer: Arc<Consumer_> = Arc::new(
        consumer_config(&cfg, &security)
            .create_with_context(ctx)
            .map_err(|cause| kafka_setup_error("creating the consumer", cause))?,
    );
    let txn_id = match cfg.delivery.guarantee {
        Guarantee::AtLeastOnce => None,
        Guarantee::ExactlyOnce => {
            Some(cfg.delivery.transactional_id.clone().unwrap_or_else(|| {
                format!(
                    "mmnet-{}-{}-{}",
                    cfg.kafka.group,
                    cfg.kafka.input_topic,
                    hostname()
                )
            }))
        }
    };
    let producer: Producer_ = producer_config(&cfg, &security, txn_id.as_deref())
        .create_with_context(AckContext { watch })
        .map_err(|cause| kafka_setup_error("creating the producer", cause))?;
    drop(security);
    // Before anything is consumed: every topic exists (a missing output topic would
    // otherwise fail each record after message.timeout.ms, 5 minutes, then crash-loop).
    wait_for_topics(&cfg, &consumer, &fatal).await?;
    if txn_id.is_some() {
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(30)))
            .await
            .map_err(|e| OperatorError::Internal(e.to_string()))?
            .map_err(OperatorError::kafka("initialising transactions"))?;
    }
    consumer
        .subscribe(&[&cfg.kafka.input_topic])
        .map_err(OperatorError::kafka("subscribing"))?;
    metrics.set_health(Health::Running);
    info!(topic = %cfg.kafka.input_topic, group = %cfg.kafka.group, guarantee = ?cfg.delivery.guarantee, "consuming");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let m = metrics.clone();
    let on_signal = Arc::clone(&stop_tx);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutdown requested: draining in-flight batches");
        m.set_health(Health::Stopping);
        let _ = on_signal.send(true);
    });

    let cfg = Arc::new(cfg);
    let reloader = tokio::spawn(reload_on_request(
        Arc::clone(&cfg),
        Arc::clone(&scorer),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let pipeline = async {
        match cfg.delivery.guarantee {
            Guarantee::AtLeastOnce => {
                at_least_once(
                    &cfg,
                    &consumer,
                    &producer,
                    &scorer,
                    &metrics,
                    (Arc::clone(&stop_tx), stop_rx),
                )
                .await
            }
            Guarantee::ExactlyOnce => {
                exactly_once(&cfg, &consumer, &producer, &scorer, &metrics, stop_rx).await
            }
        }
    };
    // The pipeline runs until stopped or failed; the watchdog ends it when the brokers are
    // gone for longer than `kafka.unavailable_timeout_s` or a login / TLS handshake failed.
    let result = tokio::select! {
        r = pipeline => r,
        e = watchdog(&cfg, &metrics, &fatal) => {
            let _ = stop_tx.send(true);
            Err(e)
        }
    };
    // Without a broker, a final commit or flush can only wait out its timeout.
    let broker_gone = matches!(
        result,
        Err(OperatorError::Unavailable { .. } | OperatorError::Security(_))
    );

    reloader.abort();
    // Whatever happened, what was stored was acknowledged: commit it, flush, leave the group.
    let flush_timeout = if broker_gone {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(cfg.delivery.shutdown_timeout_s)
    };
    if cfg.delivery.guarantee == Guarantee::AtLeastOnce && !broker_gone {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                warn!(error = %e, "final offset commit failed; those records will be re-scored")
            }
        }
    }
    if let Err(e) = producer.flush(flush_timeout) {
        warn!(error = %e, "producer flush on shutdown");
    }
    consumer.unsubscribe();
    drop(consumer);
    match &result {
        Ok(s) => info!(
            messages = s.messages,
            scores = s.scores,
            anomalies = s.anomalies,
            dead_letters = s.dead_letters,
            "stopped"
        ),
        Err(_) => metrics.set_health(Health::Failed),
    }
    result
}

/// A client-creation error: librdkafka's text names the property and may quote its value.
fn kafka_setup_error(context: &str, cause: KafkaError) -> OperatorError {
    OperatorError::Config {
        what: format!("kafka ({context})"),
        reason: crate::security::redact(&cause.to_string()).into_owned(),
    }
}

/// Resolves when the operator must stop without being asked: a security error, or no broker
/// reachable for longer than `kafka.unavailable_timeout_s` (0 = wait forever).
async fn watchdog(cfg: &OperatorConfig, metrics: &Metrics, fatal: &Fatal) -> OperatorError {
    let limit = Duration::from_secs(cfg.kafka.unavailable_timeout_s);
    let mut warned = false;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(msg) = fatal.get() {
            return OperatorError::Security(msg);
        }
        match metrics.outage() {
            Some((d, reason)) if !limit.is_zero() && d >= limit => {
                return OperatorError::Unavailable {
                    seconds: d.as_secs(),
                    reason,
                };
            }
            Some((d, reason)) if d >= Duration::from_secs(5) && !warned => {
                warn!(reason = %reason, "no broker reachable; waiting (not ready)");
                warned = true;
            }
            Some(_) => {}
            None => {
                if warned {
                    info!("broker reachable again; resuming");
                }
                warned = false;
            }
        }
    }
}

/// Waits until the brokers answer and checks that the input, output and dead-letter topics
/// exist. Unreachable brokers are waited for (not ready) up to `kafka.unavailable_timeout_s`;
/// a missing topic is an error at once.
async fn wait_for_topics(
    cfg: &OperatorConfig,
    consumer: &Arc<Consumer_>,
    fatal: &Fatal,
) -> Result<()> {
    let started = std::time::Instant::now();
    let limit = Duration::from_secs(cfg.kafka.unavailable_timeout_s);
    let topics: Vec<(&str, String)> = [
        ("input", Some(cfg.kafka.input_topic.clone())),
        ("output", Some(cfg.kafka.output_topic.clone())),
        ("dead-letter", cfg.kafka.dlq_topic.clone()),
    ]
    .into_iter()
    .filter_map(|(role, t)| t.map(|t| (role, t)))
    .collect();
    for (role, topic) in topics {
        loop {
            let c = Arc::clone(consumer);
            let t = topic.clone();
            // The consumer asks with allow.auto.create.topics=false (librdkafka's consumer
            // default), so asking does not create the topic on brokers that auto-create.
            let md = tokio::task::spawn_blocking(move || {
                c.fetch_metadata(Some(&t), Duration::from_secs(5))
                    .map(|md| md.topics().first().map(|x| x.error()))
            })
            .await
            .map_err(|e| OperatorError::Internal(e.to_string()))?;
            if let Some(msg) = fatal.get() {
                return Err(OperatorError::Security(msg));
            }
            match md {
                Ok(Some(None)) => break,
                Ok(Some(Some(code))) => {
                    let code = RDKafkaErrorCode::from(code);
                    if matches!(
                        code,
                        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                    ) {
                        return Err(OperatorError::MissingTopic {
                            role,
                            topic,
                            brokers: cfg.kafka.brokers.clone(),
                        });
                    }
                    // Leader election and the like: transient.
                    debug!(topic = %topic, error = %code, "topic metadata not ready; retrying");
                }
                Ok(None) => debug!(topic = %topic, "empty metadata; retrying"),
                Err(e) => {
                    let reason = crate::security::redact(&e.to_string()).into_owned();
                    if !limit.is_zero() && started.elapsed() >= limit {
                        return Err(OperatorError::Unavailable {
                            seconds: started.elapsed().as_secs(),
                            reason,
                        });
                    }
                    warn!(error = %reason, "brokers not answering yet; retrying (not ready)");
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// Waits for the next message or a stop request; `None` = stop.
async fn next_message(
    consumer: &Consumer_,
    stop: &mut watch::Receiver<bool>,
    deadline: Option<tokio::time::Instant>,
) -> Option<Option<rdkafka::message::OwnedMessage>> {
    loop {
        if *stop.borrow() {
            return None;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        // A message already here is taken before an expired deadline ends the batch, so
        // `linger_ms = 0` means "what has arrived", not "one message".
        tokio::select! {
            biased;
            _ = stop.changed() => return None,
            m = consumer.recv() => match m {
                Ok(m) => return Some(Some(m.detach())),
                Err(e) => {
                    // Broker down, transport errors: librdkafka reconnects by itself.
                    warn!(error = %e, "consume error; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = sleep => return Some(None),
        }
    }
}

/// Collects one batch: waits for a first message, then fills until a size, byte or linger
/// limit. Returns the batch and whether a stop was requested.
async fn collect(
    cfg: &OperatorConfig,
    consumer: &Consumer_,
    stop: &mut watch::Receiver<bool>,
    metrics: &Metrics,
) -> (RawBatch, bool) {
    let Some(Some(first)) = next_message(consumer, stop, None).await else {
        return (RawBatch::new(), true);
    };
    // Started when the first message is here: waiting for it is not batch latency.
    let mut batch = RawBatch::new();
    observe_age(metrics, &first);
    batch.push(first);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.batch.linger_ms);
    let mut stopping = false;
    while batch.messages.len() < cfg.batch.max_messages && batch.bytes < cfg.batch.max_bytes {
        match next_message(consumer, stop, Some(deadline)).await {
            None => {
                stopping = true;
                break;
            }
            Some(None) => break,
            Some(Some(m)) => {
                observe_age(metrics, &m);
                batch.push(m)
            }
        }
    }
    metrics.messages_in.inc_by(batch.messages.len() as u64);
    (batch, stopping)
}

/// Observes how old `m` is on arrival (`mmnet_record_input_age_seconds`), when it has a
/// timestamp and the clocks do not put it in the future.
fn observe_age(metrics: &Metrics, m: &rdkafka::message::OwnedMessage) {
    use rdkafka::Message;
    let Some(ts) = m.timestamp().to_millis() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if now >= ts {
        metrics
            .record_input_age_seconds
            .observe((now - ts) as f64 / 1e3);
    }
}

/// Waits for SIGHUP or (with `[model] watch`) a change of what the model path names, and
/// reloads; runs until the operator stops.
async fn reload_on_request(
    cfg: Arc<OperatorConfig>,
    serving: Arc<Serving>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; model reload by signal is off");
            None
        }
    };
    let path = cfg.model.path.clone().unwrap_or_default();
    let mut seen = serving::fingerprint(&path);
    let interval = Duration::from_millis(cfg.model.watch_interval_ms.max(1));
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let tick = async {
            if cfg.model.watch {
                tokio::time::sleep(interval).await
            } else {
                std::future::pending().await
            }
        };
        let trigger = tokio::select! {
            _ = stop.changed() => return,
            _ = hup_recv => serving::Trigger::Signal,
            () = tick => {
                let now = serving::fingerprint(&path);
                // A path briefly missing mid-rename is not a change; a new target is.
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                serving::Trigger::Watch
            }
        };
        let (c, s, m) = (Arc::clone(&cfg), Arc::clone(&serving), metrics.clone());
        // Loading reads and checks files: off the async threads, and never on the scoring path.
        if let Err(e) =
            tokio::task::spawn_blocking(move || serving::reload(&c, &s, &m, trigger)).await
        {
            warn!(error = %e, "model reload task failed");
        }
        if trigger == serving::Trigger::Signal {
            seen = serving::fingerprint(&path);
        }
    }
}

async fn prepare(serving: &Arc<Serving>, raw: RawBatch, metrics: &Metrics) -> Result<Prepared> {
    // One model per batch: a swap lands between batches.
    let s = serving.current();
    let t = std::time::Instant::now();
    let p = tokio::task::spawn_blocking(move || s.prepare(raw))
        .await
        .map_err(|e| OperatorError::Internal(format!("scoring task: {e}")))??;
    metrics.scoring_seconds.observe(t.elapsed().as_secs_f64());
    metrics.batch_rows.observe(p.scored_rows as f64);
    metrics.records_in.inc_by(p.rows as u64);
    if let Some(d) = &p.drift {
        serving.observe_drift(d, metrics);
    }
    if p.shadow.0 > 0 {
        metrics.shadow_records.inc_by(p.shadow.0 as u64);
        metrics.shadow_disagreements.inc_by(p.shadow.1 as u64);
    }
    Ok(p)
}

fn topic<'a>(cfg: &'a OperatorConfig, o: &Output) -> &'a str {
    match o.destination {
        Destination::Scores => cfg.kafka.output_topic.as_str(),
        Destination::DeadLetters(_) => cfg.kafka.dlq_topic.as_deref().unwrap_or_default(),
    }
}

fn record<'a>(
    cfg: &'a OperatorConfig,
    o: &'a Output,
    acks: &Arc<BatchAcks>,
    index: usize,
) -> BaseRecord<'a, [u8], [u8], Box<Ack>> {
    let mut r = BaseRecord::with_opaque_to(topic(cfg, o), acks.ack(index, o.received))
        .payload(o.payload.as_slice());
    if let Some(k) = &o.key {
        r = r.key(k.as_slice());
    }
    if let Some(t) = o.timestamp {
        r = r.timestamp(t);
    }
    if let Some(h) = &o.headers {
        r = r.headers(h.clone());
    }
    r
}

fn delivery_what(cfg: &OperatorConfig, o: &Output) -> String {
    format!(
        "to `{}` for input {}/{}@{}",
        topic(cfg, o),
        cfg.kafka.input_topic,
        o.partition,
        o.offset
    )
}

/// Enqueues a batch's record `index`, waiting while librdkafka's queue is full
/// (backpressure). A record librdkafka refuses to queue is counted as failed in `acks`,
/// like one the broker refuses, so both are handled in one place ([`settle_failures`]).
async fn enqueue(
    producer: &Producer_,
    cfg: &OperatorConfig,
    outputs: &[Output],
    index: usize,
    acks: &Arc<BatchAcks>,
) {
    let o = &outputs[index];
    if let Err(cause) = send_acked(producer, record(cfg, o, acks, index)).await {
        acks.fail_unsent(index, delivery_what(cfg, o), cause);
    }
}

/// A batch's failed records: a record refused for what it is (too large, a bad timestamp)
/// is replaced by a smaller dead letter ([`Output::refused`]) when there is a dead-letter
/// topic, and the batch goes on; anything else stops the operator before the batch's
/// offsets are stored.
async fn settle_failures(
    cfg: &OperatorConfig,
    producer: &Producer_,
    prepared: &mut Prepared,
    failures: Vec<Failure>,
) -> Result<()> {
    let mut letters = Vec::with_capacity(failures.len());
    for f in &failures {
        let o = &prepared.outputs[f.index];
        let replacement = if record_refused(&f.error) && cfg.kafka.dlq_topic.is_some() {
            o.refused(&cfg.kafka.input_topic, &f.error.to_string())
        } else {
            None
        };
        let Some(letter) = replacement else {
            let what = if record_refused(&f.error) && cfg.kafka.dlq_topic.is_none() {
                format!(
                    "{} (the record itself was refused; with a dead-letter topic (--dlq-topic) it would be dead-lettered as `rejected`, or raise the producer's message.max.bytes and the topic's max.message.bytes)",
                    f.what
                )
            } else {
                f.what.clone()
            };
            return Err(OperatorError::Delivery {
                what,
                cause: f.error.clone(),
            });
        };
        warn!(input = %format!("{}/{}@{}", cfg.kafka.input_topic, o.partition, o.offset),
              error = %f.error, to = %topic(cfg, o),
              "record refused by the broker; sending a smaller dead letter instead");
        letters.push(letter);
    }
    let acks = BatchAcks::new(letters.len(), format!("{} refused records", letters.len()));
    for j in 0..letters.len() {
        enqueue(producer, cfg, &letters, j, &acks).await;
    }
    if let Err(v) = acks.wait().await {
        let f = &v[0];
        return Err(OperatorError::Delivery {
            what: f.what.clone(),
            cause: f.error.clone(),
        });
    }
    for (f, letter) in failures.iter().zip(letters) {
        prepared.outputs[f.index] = letter;
    }
    Ok(())
}

/// What a batch is, for delivery errors: its first input record.
fn batch_what(cfg: &OperatorConfig, p: &Prepared) -> String {
    match p.outputs.first() {
        Some(o) => format!(
            "the batch starting at input {}/{}@{}",
            cfg.kafka.input_topic, o.partition, o.offset
        ),
        None => "an empty batch".into(),
    }
}

/// A batch whose records are enqueued, awaiting acknowledgements.
struct InFlight {
    prepared: Prepared,
    acks: Arc<BatchAcks>,
}

async fn at_least_once(
    cfg: &Arc<OperatorConfig>,
    consumer: &Arc<Consumer_>,
    producer: &Producer_,
    scorer: &Arc<Serving>,
    metrics: &Metrics,
    (stop_tx, mut stop): (Arc<watch::Sender<bool>>, watch::Receiver<bool>),
) -> Result<RunSummary> {
    // A failing stage stops ingestion too (the ingest task may be waiting for messages
    // that never come); what was acknowledged before the failure is still committed.
    let fail = |e: OperatorError| {
        let _ = stop_tx.send(true);
        e
    };
    let (raw_tx, mut raw_rx) = mpsc::channel::<RawBatch>(1);
    let (fly_tx, fly_rx) = mpsc::channel::<InFlight>(cfg.batch.max_in_flight);

    let ingest = {
        let (cfg, consumer, metrics) = (Arc::clone(cfg), Arc::clone(consumer), metrics.clone());
        async move {
            loop {
                let (batch, stopping) = collect(&cfg, &consumer, &mut stop, &metrics).await;
                if !batch.messages.is_empty() {
                    metrics.in_flight_batches.inc();
                    if raw_tx.send(batch).await.is_err() {
                        break; // a later stage failed; its error is reported
                    }
                }
                if stopping {
                    break;
                }
            }
            Ok::<(), OperatorError>(())
        }
    };

    let score = {
        let (cfg, producer, scorer, metrics) = (
            Arc::clone(cfg),
            producer.clone(),
            Arc::clone(scorer),
            metrics.clone(),
        );
        async move {
            while let Some(raw) = raw_rx.recv().await {
                let mut prepared = prepare(&scorer, raw, &metrics).await.map_err(fail)?;
                let poison = prepared.poison.take();
                let acks = BatchAcks::with_latency(
                    prepared.outputs.len(),
                    batch_what(&cfg, &prepared),
                    Some(metrics.record_latency_seconds.clone()),
                );
                for i in 0..prepared.outputs.len() {
                    enqueue(&producer, &cfg, &prepared.outputs, i, &acks).await;
                }
                if fly_tx.send(InFlight { prepared, acks }).await.is_err() {
                    break;
                }
                if let Some(e) = poison {
                    // Stop after what precedes the bad record is committed.
                    return Err(fail(e));
                }
            }
            Ok::<(), OperatorError>(())
        }
    };

    let commit = {
        let (cfg, consumer, producer, metrics) = (
            Arc::clone(cfg),
            Arc::clone(consumer),
            producer.clone(),
            metrics.clone(),
        );
        let fail = &fail;
        async move {
            commit_in_order(cfg, consumer, producer, metrics, fly_rx)
                .await
                .map_err(fail)
        }
    };

    let (a, b, c) = tokio::join!(ingest, score, commit);
    // The first failing stage is the cause; the others stopped because of it.
    b?;
    let summary = c?;
    a?;
    Ok(summary)
}

async fn commit_in_order(
    cfg: Arc<OperatorConfig>,
    consumer: Arc<Consumer_>,
    producer: Producer_,
    metrics: Metrics,
    mut rx: mpsc::Receiver<InFlight>,
) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    while let Some(mut f) = rx.recv().await {
        if let Err(failures) = f.acks.wait().await {
            settle_failures(&cfg, &producer, &mut f.prepared, failures).await?;
        }
        for (&p, &off) in &f.prepared.offsets {
            // After a revoke the partition is no longer ours: the store fails and the new
            // owner re-scores from the last commit (duplicates, never gaps).
            if let Err(e) = consumer.store_offset(&cfg.kafka.input_topic, p, off) {
                debug!(partition = p, offset = off, error = %e, "offset not stored (partition revoked)");
            }
        }
        account(&mut summary, &metrics, &f.prepared);
        metrics.in_flight_batches.dec();
    }
    Ok(summary)
}

fn account(summary: &mut RunSummary, metrics: &Metrics, p: &Prepared) {
    let (mut scores, mut anomalies) = (0u64, 0u64);
    for o in &p.outputs {
        match o.destination {
            Destination::Scores => {
                scores += o.scores as u64;
                anomalies += o.anomalies as u64;
            }
            Destination::DeadLetters(reason) => {
                summary.dead_letters += 1;
                metrics
                    .dead_letters
                    .get_or_create(&vec![("reason", reason.as_str())])
                    .inc();
            }
        }
    }
    summary.scores += scores;
    summary.anomalies += anomalies;
    metrics.records_out.inc_by(scores);
    metrics.anomalies.inc_by(anomalies);
    summary.messages += p.messages as u64;
    metrics
        .batch_latency_seconds
        .observe(p.started.elapsed().as_secs_f64());
}

async fn exactly_once(
    cfg: &Arc<OperatorConfig>,
    consumer: &Arc<Consumer_>,
    producer: &Producer_,
    scorer: &Arc<Serving>,
    metrics: &Metrics,
    mut stop: watch::Receiver<bool>,
) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    let timeout = Duration::from_secs(cfg.delivery.shutdown_timeout_s.max(10));
    loop {
        let (batch, stopping) = collect(cfg, consumer, &mut stop, metrics).await;
        if !batch.messages.is_empty() {
            metrics.in_flight_batches.inc();
            let mut prepared = prepare(scorer, batch, metrics).await?;
            let poison = prepared.poison.take();
            let group = consumer
                .group_metadata()
                .ok_or_else(|| OperatorError::Internal("no consumer group metadata".into()))?;
            let mut offsets = TopicPartitionList::new();
            for (&p, &off) in &prepared.offsets {
                offsets
                    .add_partition_offset(&cfg.kafka.input_topic, p, Offset::Offset(off + 1))
                    .map_err(OperatorError::kafka("building the offset list"))?;
            }
            let (c, p) = (Arc::clone(cfg), producer.clone());
            let latency = metrics.record_latency_seconds.clone();
            let prepared = tokio::task::spawn_blocking(move || {
                transact(&c, &p, &prepared, &offsets, &group, timeout, latency).map(|()| prepared)
            })
            .await
            .map_err(|e| OperatorError::Internal(format!("transaction task: {e}")))??;
            account(&mut summary, metrics, &prepared);
            metrics.in_flight_batches.dec();
            if let Some(e) = poison {
                return Err(e);
            }
        }
        if stopping {
            return Ok(summary);
        }
    }
}

/// One batch in one transaction. On failure the transaction is aborted and the operator
/// stops; on restart it resumes from the last committed transaction's offsets. `latency`
/// observes each record at its delivery inside the transaction (before the commit).
fn transact(
    cfg: &OperatorConfig,
    producer: &Producer_,
    prepared: &Prepared,
    offsets: &TopicPartitionList,
    group: &rdkafka::consumer::ConsumerGroupMetadata,
    timeout: Duration,
    latency: prometheus_client::metrics::histogram::Histogram,
) -> Result<()> {
    let attempt = || -> std::result::Result<(), KafkaError> {
        producer.begin_transaction()?;
        // Deliveries are counted but not awaited here: committing the transaction fails if
        // any record of it was not delivered.
        let acks = BatchAcks::with_latency(
            prepared.outputs.len(),
            batch_what(cfg, prepared),
            Some(latency.clone()),
        );
        for (i, o) in prepared.outputs.iter().enumerate() {
            let mut r = record(cfg, o, &acks, i);
            loop {
                match producer.send(r) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        r = back;
                        producer.poll(Timeout::After(Duration::from_millis(5)));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        producer.send_offsets_to_transaction(offsets, group, timeout)?;
        producer.commit_transaction(timeout)
    };
    attempt().map_err(|cause| {
        let _ = producer.abort_transaction(timeout);
        OperatorError::Kafka {
            context: "exactly-once transaction (aborted; a restart resumes from the last committed batch)".into(),
            cause,
        }
    })
}
