//! One micro-batch: consumed messages -> decoded rows -> scores -> encoded output records.
//! Runs on a blocking thread (decode, score and encode are CPU work).

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::ArrayView2;
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};

use crate::config::OutputFormat;
use crate::decode::{DeadReason, Decoded, Decoder};
use crate::drift::BatchDrift;
use crate::error::{OperatorError, Result};
use crate::record::{
    self, ExplainRef, ModelRef, RowScores, ScoreRecord, ShadowRef, ShadowScores, Source, dlq_header,
};

/// Messages per parallel decode/encode chunk: a quarter of a default batch, so two cores
/// share a batch and small batches (low traffic) stay on one thread.
const PAR_MESSAGES: usize = 256;

/// Messages consumed together.
#[derive(Debug)]
pub struct RawBatch {
    /// When the first message arrived (for the latency histogram).
    pub started: Instant,
    /// The messages, in consumption order.
    pub messages: Vec<OwnedMessage>,
    /// When each message reached the operator (for `mmnet_record_latency_seconds`).
    pub received: Vec<Instant>,
    /// Payload bytes so far.
    pub bytes: usize,
}

impl RawBatch {
    /// An empty batch started now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            messages: Vec::new(),
            received: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a message received now.
    pub fn push(&mut self, m: OwnedMessage) {
        self.push_received(m, Instant::now());
    }

    /// Adds a message received at `at`.
    pub fn push_received(&mut self, m: OwnedMessage, at: Instant) {
        self.bytes += m.payload().map_or(0, <[u8]>::len);
        self.messages.push(m);
        self.received.push(at);
    }
}

impl Default for RawBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Which topic an output record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Score records.
    Scores,
    /// Dead letters.
    DeadLetters(DeadReason),
}

/// A record to produce, with the input coordinates it stands for.
#[derive(Debug)]
pub struct Output {
    /// Scores or dead letters.
    pub destination: Destination,
    /// The input key, unchanged (keeps per-key partitioning).
    pub key: Option<Vec<u8>>,
    /// Encoded score record(s), or the original payload for a dead letter.
    pub payload: Vec<u8>,
    /// Dead-letter headers.
    pub headers: Option<OwnedHeaders>,
    /// The input timestamp, carried over.
    pub timestamp: Option<i64>,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Score records in `payload` (JSON: 1; Arrow: rows) and how many are anomalies.
    pub scores: usize,
    /// Anomalies among them.
    pub anomalies: usize,
    /// When the input message reached the operator (its latency is measured from here to
    /// this record's acknowledgement).
    pub received: Instant,
}

impl Output {
    /// What to send instead of this record after the broker refused it for what it is
    /// (too large, say): a score record becomes a `rejected` dead letter; a dead letter
    /// loses its payload (the input bytes, still on the input topic) and says so in
    /// `mmnet.dlq.payload_dropped`. `None` when nothing smaller can be sent.
    pub fn refused(&self, input_topic: &str, error: &str) -> Option<Output> {
        match self.destination {
            Destination::Scores => Some(self.rejected(input_topic, error)),
            Destination::DeadLetters(_) if !self.payload.is_empty() => {
                let headers = self.headers.clone().unwrap_or_default().insert(Header {
                    key: dlq_header::PAYLOAD_DROPPED,
                    value: Some(error),
                });
                Some(Output {
                    destination: self.destination,
                    key: self.key.clone(),
                    payload: Vec::new(),
                    headers: Some(headers),
                    timestamp: self.timestamp,
                    partition: self.partition,
                    offset: self.offset,
                    scores: 0,
                    anomalies: 0,
                    received: self.received,
                })
            }
            Destination::DeadLetters(_) => None,
        }
    }

    /// The dead letter standing for this score record when the broker refused it (see
    /// [`DeadReason::Rejected`]): the input's key, timestamp and coordinates, the error, no
    /// payload (the refused record was the large part).
    pub fn rejected(&self, input_topic: &str, error: &str) -> Output {
        let (partition, offset) = (self.partition.to_string(), self.offset.to_string());
        let mut h = OwnedHeaders::new_with_capacity(5);
        for (key, value) in [
            (dlq_header::REASON, DeadReason::Rejected.as_str()),
            (dlq_header::ERROR, error),
            (dlq_header::TOPIC, input_topic),
            (dlq_header::PARTITION, partition.as_str()),
            (dlq_header::OFFSET, offset.as_str()),
        ] {
            h = h.insert(Header {
                key,
                value: Some(value),
            });
        }
        Output {
            destination: Destination::DeadLetters(DeadReason::Rejected),
            key: self.key.clone(),
            payload: Vec::new(),
            headers: Some(h),
            timestamp: self.timestamp,
            partition: self.partition,
            offset: self.offset,
            scores: 0,
            anomalies: 0,
            received: self.received,
        }
    }
}

/// A batch ready to produce.
#[derive(Debug)]
pub struct Prepared {
    /// When its first message arrived.
    pub started: Instant,
    /// Records to produce, in input order.
    pub outputs: Vec<Output>,
    /// Highest input offset per partition: stored once every output is acknowledged.
    pub offsets: BTreeMap<i32, i64>,
    /// Messages in the batch.
    pub messages: usize,
    /// Rows decoded (scored rows + dead rows).
    pub rows: usize,
    /// Rows scored.
    pub scored_rows: usize,
    /// A record that cannot be scored with no dead-letter topic to send it to: the batch
    /// was cut just before it, and the operator stops once the part before is committed.
    pub poison: Option<OperatorError>,
    /// Rows the shadow model scored, and on how many its `is_anomaly` differs.
    pub shadow: (usize, usize),
    /// The batch's drift signals, when on and the model has a training profile.
    pub drift: Option<BatchDrift>,
}

/// A second model scoring the rows the served model decodes (shadow scoring).
#[derive(Debug)]
pub struct Shadow {
    /// The model.
    pub model: mmnet_core::Model,
    /// Its digest, written into every record's `shadow` object.
    pub digest: String,
    /// Where each of its features sits among the served model's (the decoded columns).
    pub columns: Vec<usize>,
}

impl Shadow {
    fn score(&self, x: ArrayView2<f32>) -> Result<mmnet_core::ScoredBatch> {
        let identity = self.columns.len() == x.ncols()
            && self.columns.iter().enumerate().all(|(i, &c)| i == c);
        Ok(if identity {
            self.model.score(x, false, None)?
        } else {
            let own = x.select(ndarray::Axis(1), &self.columns);
            self.model.score(own.view(), false, None)?
        })
    }
}

/// What a batch needs besides its messages; shared by every batch.
#[derive(Debug)]
pub struct Scorer {
    /// The model.
    pub model: mmnet_core::Model,
    /// Its digest, written into every record.
    pub digest: String,
    /// `model.name`.
    pub name: String,
    /// Threshold override.
    pub threshold: Option<f32>,
    /// Payload decoder.
    pub decoder: Decoder,
    /// Score record format.
    pub format: OutputFormat,
    /// Whether a dead-letter topic is configured.
    pub has_dlq: bool,
    /// `(top memory items, top features)` to explain per record, or `None`.
    pub explain: Option<(usize, usize)>,
    /// A model scoring every record beside this one, or `None`.
    pub shadow: Option<Shadow>,
    /// Whether to compute drift signals (needs the model's training profile).
    pub drift: bool,
}

impl Scorer {
    /// Decodes, scores and encodes one batch. A record that cannot be scored without a
    /// dead-letter topic ends the batch early ([`Prepared::poison`]).
    pub fn prepare(&self, raw: RawBatch) -> Result<Prepared> {
        use rayon::prelude::*;
        let d = self.decoder.width();
        // Decode and encode are per message and most of the CPU time (JSON parsing and
        // writing): both run on every core in chunks; scoring runs once for the batch.
        let parts: Vec<(Vec<f32>, Vec<Decoded>)> = raw
            .messages
            .par_chunks(PAR_MESSAGES)
            .map(|chunk| {
                let mut x = Vec::with_capacity(chunk.len() * d);
                let dec = chunk
                    .iter()
                    .map(|m| self.decoder.decode(m.payload(), &mut x))
                    .collect();
                (x, dec)
            })
            .collect();
        let mut x = Vec::with_capacity(raw.messages.len() * d);
        let mut decoded = Vec::with_capacity(raw.messages.len());
        for (px, pd) in parts {
            x.extend_from_slice(&px);
            decoded.extend(pd);
        }
        let n = x.len() / d;
        let view = ArrayView2::from_shape((n, d), &x)
            .map_err(|e| OperatorError::Internal(format!("feature buffer: {e}")))?;
        let (scored, explanations) = match self.explain {
            Some((top_memory, top_features)) => {
                let (scored, e) =
                    self.model
                        .score_explained(view, self.threshold, top_memory, top_features)?;
                (scored, Some(e))
            }
            None => (self.model.score(view, false, self.threshold)?, None),
        };
        let shadow_scored = match &self.shadow {
            Some(sh) => Some(sh.score(view)?),
            None => None,
        };

        // A record that cannot be scored, with nowhere to send it, cuts the batch there.
        let mut poison = None;
        let mut messages = raw.messages.len();
        if !self.has_dlq
            && let Some(i) = decoded.iter().position(|dec| dec.dead.is_some())
        {
            let (m, dead) = (&raw.messages[i], decoded[i].dead.as_ref());
            poison = dead.map(|dead| OperatorError::Unscorable {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                reason: dead.reason.as_str(),
                detail: dead.detail.clone(),
            });
            messages = i;
        }
        // Where each message's rows start in the scored batch.
        let mut starts = Vec::with_capacity(messages + 1);
        let mut at = 0;
        for dec in &decoded[..messages] {
            starts.push(at);
            at += dec.rows.len();
        }
        let scored_rows = at;
        let model = ModelRef {
            name: &self.name,
            digest: &self.digest,
        };
        let encoded: Vec<Result<Vec<Output>>> = (0..messages)
            .collect::<Vec<_>>()
            .par_chunks(PAR_MESSAGES)
            .map(|idx| {
                let mut outputs = Vec::with_capacity(idx.len() + 1);
                for &i in idx {
                    let (m, dec) = (&raw.messages[i], &decoded[i]);
                    let timestamp = m.timestamp().to_millis();
                    let range = starts[i]..starts[i] + dec.rows.len();
                    if !range.is_empty() {
                        let s = RowScores {
                            rows: &dec.rows,
                            score: &scored.score[range.clone()],
                            s_sum: &scored.raw.s_sum[range.clone()],
                            s_kl: &scored.raw.s_kl[range.clone()],
                            is_anomaly: &scored.is_anomaly[range.clone()],
                            explain: explanations.as_deref().map(|e| &e[range.clone()]),
                            shadow: match (&self.shadow, &shadow_scored) {
                                (Some(sh), Some(ss)) => Some(ShadowScores {
                                    digest: &sh.digest,
                                    score: &ss.score[range.clone()],
                                    is_anomaly: &ss.is_anomaly[range],
                                }),
                                _ => None,
                            },
                        };
                        let at = raw.received[i];
                        self.encode_scores(m, at, dec.arrow, timestamp, &model, s, &mut outputs)?;
                    }
                    if let Some(dead) = &dec.dead {
                        outputs.push(self.dead_letter(m, raw.received[i], dead, timestamp));
                    }
                }
                Ok(outputs)
            })
            .collect();
        let mut outputs = Vec::with_capacity(scored_rows + 8);
        for e in encoded {
            outputs.extend(e?);
        }
        let mut offsets = BTreeMap::new();
        let mut rows = 0;
        for (m, dec) in raw.messages[..messages].iter().zip(&decoded) {
            offsets.insert(m.partition(), m.offset());
            rows += dec.rows.len()
                + dec
                    .dead
                    .as_ref()
                    .and_then(|x| x.rows.as_ref())
                    .map_or(0, Vec::len);
        }
        let shadow = shadow_scored.map_or((0, 0), |ss| {
            let differ = ss.is_anomaly[..scored_rows]
                .iter()
                .zip(&scored.is_anomaly[..scored_rows])
                .filter(|(a, b)| a != b)
                .count();
            (scored_rows, differ)
        });
        let drift = self.drift_of(&x, &scored, scored_rows);
        Ok(Prepared {
            drift,
            started: raw.started,
            outputs,
            offsets,
            messages,
            rows,
            scored_rows,
            poison,
            shadow,
        })
    }

    fn drift_of(
        &self,
        x: &[f32],
        scored: &mmnet_core::ScoredBatch,
        rows: usize,
    ) -> Option<BatchDrift> {
        let p = self
            .model
            .training
            .profile
            .as_ref()
            .filter(|_| self.drift)?;
        let d = self.decoder.width();
        let mut bins = [0u64; mmnet_core::profile::BINS];
        for &s in &scored.score[..rows] {
            bins[p.score_bin(s)] += 1;
        }
        let flagged = scored.is_anomaly[..rows].iter().filter(|&&a| a).count() as u64;
        let mut oor = vec![0u64; d];
        for row in x.chunks_exact(d).take(rows) {
            for (j, &v) in row.iter().enumerate() {
                oor[j] += u64::from(p.out_of_range(j, v));
            }
        }
        Some(BatchDrift {
            digest: self.digest.clone(),
            bins,
            flagged,
            rows: rows as u64,
            out_of_range: oor
                .into_iter()
                .enumerate()
                .filter(|&(_, n)| n > 0)
                .map(|(j, n)| (self.model.features[j].clone(), n))
                .collect(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_scores(
        &self,
        m: &OwnedMessage,
        received: Instant,
        arrow_rows: bool,
        timestamp: Option<i64>,
        model: &ModelRef<'_>,
        s: RowScores<'_>,
        outputs: &mut Vec<Output>,
    ) -> Result<()> {
        let source = |row| Source {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            row,
        };
        let anomalies = s.is_anomaly.iter().filter(|&&a| a).count();
        let base = |payload, scores, anomalies| Output {
            destination: Destination::Scores,
            key: m.key().map(<[u8]>::to_vec),
            payload,
            headers: None,
            timestamp,
            partition: m.partition(),
            offset: m.offset(),
            scores,
            anomalies,
            received,
        };
        match self.format {
            OutputFormat::Arrow => {
                let payload = record::arrow_message(&source(None), timestamp, model, s)
                    .map_err(|e| OperatorError::Internal(format!("encoding Arrow scores: {e}")))?;
                outputs.push(base(payload, s.rows.len(), anomalies));
            }
            OutputFormat::Json => {
                let (key_str, key_base64) = record::key_fields(m.key());
                for i in 0..s.rows.len() {
                    let r = ScoreRecord {
                        source: source(arrow_rows.then_some(s.rows[i])),
                        key: key_str,
                        key_base64: key_base64.clone(),
                        timestamp,
                        mmnet_score: s.score[i],
                        s_sum: s.s_sum[i],
                        s_kl: s.s_kl[i],
                        is_anomaly: s.is_anomaly[i],
                        model: model.clone(),
                        explain: s.explain.map(|e| ExplainRef::from(&e[i])),
                        shadow: s.shadow.map(|sh| ShadowRef {
                            digest: sh.digest,
                            mmnet_score: sh.score[i],
                            is_anomaly: sh.is_anomaly[i],
                        }),
                    };
                    // Sized for a typical record (~300 bytes): no regrowth while writing.
                    let mut payload = Vec::with_capacity(384);
                    serde_json::to_writer(&mut payload, &r)
                        .map_err(|e| OperatorError::Internal(format!("encoding JSON: {e}")))?;
                    outputs.push(base(payload, 1, usize::from(s.is_anomaly[i])));
                }
            }
        }
        Ok(())
    }

    fn dead_letter(
        &self,
        m: &OwnedMessage,
        received: Instant,
        dead: &crate::decode::Dead,
        timestamp: Option<i64>,
    ) -> Output {
        let mut h = m.headers().map_or_else(OwnedHeaders::new, |h| {
            let mut o = OwnedHeaders::new_with_capacity(h.count() + 7);
            for x in h.iter() {
                o = o.insert(Header {
                    key: x.key,
                    value: x.value,
                });
            }
            o
        });
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        let rows = dead
            .rows
            .as_ref()
            .map(|r| r.iter().map(usize::to_string).collect::<Vec<_>>().join(","));
        for (key, value) in [
            (dlq_header::REASON, Some(dead.reason.as_str())),
            (dlq_header::ERROR, Some(dead.detail.as_str())),
            (dlq_header::TOPIC, Some(m.topic())),
            (dlq_header::PARTITION, Some(partition.as_str())),
            (dlq_header::OFFSET, Some(offset.as_str())),
            (dlq_header::MODEL_DIGEST, Some(self.digest.as_str())),
            (dlq_header::ROWS, rows.as_deref()),
        ] {
            if let Some(v) = value {
                h = h.insert(Header {
                    key,
                    value: Some(v),
                });
            }
        }
        Output {
            destination: Destination::DeadLetters(dead.reason),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: Some(h),
            timestamp,
            partition: m.partition(),
            offset: m.offset(),
            scores: 0,
            anomalies: 0,
            received,
        }
    }
}
