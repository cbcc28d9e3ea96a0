//! `mmnet produce`: replays a table (Parquet, CSV, NPZ) into a topic, as JSON objects (one
//! row per message, every column) or Arrow IPC streams (many rows per message), optionally at
//! a fixed rate. For demos, tests and benchmarks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch};
use arrow::ipc::writer::StreamWriter;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tracing::debug;

use crate::clients::{Fatal, LogContext, base_producer_config, send_when_queued};
use crate::error::{OperatorError, Result};
use crate::security::SecuritySection;

/// Message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProduceFormat {
    /// One JSON object per row (schemas/telemetry.schema.json).
    #[default]
    Json,
    /// Arrow IPC streams of `rows_per_message` rows.
    Arrow,
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Table to read.
    pub data: PathBuf,
    /// Bootstrap brokers.
    pub brokers: String,
    /// Destination topic.
    pub topic: String,
    /// Message format.
    pub format: ProduceFormat,
    /// Rows per Arrow message.
    pub rows_per_message: usize,
    /// Rows per second; `None` = as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Column whose value becomes the message key; default: the row number.
    pub key_column: Option<String>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
    /// Replay the table this many times (rows keep counting up for keys).
    pub repeat: usize,
    /// TLS and SASL (the operator's `[security]` section).
    pub security: SecuritySection,
    /// Extra librdkafka properties (after `security`).
    pub librdkafka: Vec<(String, String)>,
}

/// What was produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProduceSummary {
    /// Rows sent.
    pub rows: u64,
    /// Messages sent (= rows for JSON).
    pub messages: u64,
    /// Wall-clock seconds until the last acknowledgement.
    pub seconds: f64,
}

/// Produces the table, waits for every acknowledgement, and fails on the first failed one.
pub async fn produce(opts: &ProduceOptions) -> Result<ProduceSummary> {
    opts.security.validate()?;
    let mut cfg = base_producer_config(&opts.brokers);
    for (k, v) in opts
        .security
        .client_properties()?
        .iter()
        .chain(&opts.librdkafka)
    {
        cfg.set(k, v);
    }
    let ctx = LogContext::default();
    let fatal = ctx.fatal.clone();
    let producer: FutureProducer<LogContext> =
        cfg.create_with_context(ctx)
            .map_err(|e| OperatorError::Config {
                what: "kafka (creating the producer)".into(),
                reason: crate::security::redact(&e.to_string()).into_owned(),
            })?;
    let start = Instant::now();
    let mut rows = 0u64;
    let mut messages = 0u64;
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let limit = opts.limit.unwrap_or(usize::MAX) as u64;
    'outer: for _ in 0..opts.repeat.max(1) {
        let table = mmnet_arrow::read::open(&opts.data, None, 4096)?;
        let key_col = match &opts.key_column {
            Some(k) => Some(
                table
                    .schema
                    .index_of(k)
                    .map_err(|_| OperatorError::Config {
                        what: format!("--key-column {k}"),
                        reason: format!("no such column in {}", opts.data.display()),
                    })?,
            ),
            None => None,
        };
        for batch in table.batches {
            let mut batch = batch?;
            if rows >= limit {
                break 'outer;
            }
            if rows + batch.num_rows() as u64 > limit {
                batch = batch.slice(0, (limit - rows) as usize);
            }
            let msgs = encode(&batch, opts)?;
            let keys = keys(&batch, key_col, rows)?;
            for (i, (payload, n)) in msgs.into_iter().enumerate() {
                if let Some(rate) = opts.rate {
                    let due = start + Duration::from_secs_f64(rows as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let key = &keys[match opts.format {
                    ProduceFormat::Json => i,
                    ProduceFormat::Arrow => i * opts.rows_per_message.max(1),
                }];
                let record = FutureRecord::to(&opts.topic).key(key).payload(&payload);
                if let Some(msg) = fatal.get() {
                    return Err(OperatorError::Security(msg));
                }
                let delivery = send_when_queued(&producer, record)
                    .await
                    .map_err(OperatorError::kafka(format!("producing to {}", opts.topic)))?;
                pending.push(delivery);
                rows += n as u64;
                messages += 1;
            }
            // Bound memory: settle acknowledgements every so often.
            if pending.len() > 50_000 {
                settle(&mut pending, &opts.topic, &fatal).await?;
            }
        }
    }
    settle(&mut pending, &opts.topic, &fatal).await?;
    producer
        .flush(Duration::from_secs(30))
        .map_err(OperatorError::kafka("flushing"))?;
    let seconds = start.elapsed().as_secs_f64();
    debug!(rows, messages, seconds, "produced");
    Ok(ProduceSummary {
        rows,
        messages,
        seconds,
    })
}

/// Awaits every acknowledgement; a login or TLS failure ends the wait at once (librdkafka
/// would retry until `message.timeout.ms`, 5 minutes by default).
async fn settle(pending: &mut Vec<DeliveryFuture>, topic: &str, fatal: &Fatal) -> Result<()> {
    for f in pending.drain(..) {
        let ack = tokio::select! {
            a = f => a,
            msg = fatal.wait() => return Err(OperatorError::Security(msg)),
        };
        match ack {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(OperatorError::kafka(format!("delivery to {topic}"))(e)),
            Err(_) => {
                return Err(OperatorError::Internal(
                    "producer dropped a delivery".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Message payloads and the rows each holds.
fn encode(batch: &RecordBatch, opts: &ProduceOptions) -> Result<Vec<(Vec<u8>, usize)>> {
    let err = |e: arrow::error::ArrowError| OperatorError::Internal(format!("encoding rows: {e}"));
    match opts.format {
        ProduceFormat::Json => {
            let mut buf = Vec::new();
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            w.write(batch).map_err(err)?;
            w.finish().map_err(err)?;
            drop(w);
            Ok(buf
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| (l.to_vec(), 1))
                .collect())
        }
        ProduceFormat::Arrow => {
            let per = opts.rows_per_message.max(1);
            let mut out = Vec::new();
            let mut at = 0;
            while at < batch.num_rows() {
                let n = per.min(batch.num_rows() - at);
                let slice = batch.slice(at, n);
                let mut buf = Vec::new();
                let mut w = StreamWriter::try_new(&mut buf, &slice.schema()).map_err(err)?;
                w.write(&slice).map_err(err)?;
                w.finish().map_err(err)?;
                drop(w);
                out.push((buf, n));
                at += n;
            }
            Ok(out)
        }
    }
}

/// One key per row: the key column's value as text, or the global row number.
fn keys(batch: &RecordBatch, key_col: Option<usize>, first_row: u64) -> Result<Vec<String>> {
    match key_col {
        None => Ok((0..batch.num_rows() as u64)
            .map(|i| (first_row + i).to_string())
            .collect()),
        Some(c) => {
            let col = arrow::compute::cast(batch.column(c), &arrow::datatypes::DataType::Utf8)
                .map_err(|e| OperatorError::Internal(format!("key column: {e}")))?;
            let col = col
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(|| OperatorError::Internal("key column is not text".into()))?;
            Ok((0..col.len())
                .map(|i| {
                    if col.is_null(i) {
                        String::new()
                    } else {
                        col.value(i).to_string()
                    }
                })
                .collect())
        }
    }
}
