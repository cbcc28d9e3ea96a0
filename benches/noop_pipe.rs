//! The ceiling for `mmnet kafka` (issue 20): a pipe that consumes, produces the same bytes
//! (key, payload, timestamp) to another topic and stores each input offset once its copy is
//! acknowledged, with the operator's own client settings (`consumer_config`,
//! `producer_config` from the same `OperatorConfig`, the same `--profile` and `-X`), on the
//! same broker. No decoding, scoring, encoding or batching stages: what is left is the
//! clients and the broker, so the operator's distance to it is what mmnet itself costs.
//!
//! usage: noop_pipe --brokers HOST:PORT --input TOPIC --output TOPIC --group G
//!                  [--profile throughput|low-latency] [-X key=value ...]
//! Runs until SIGINT/SIGTERM; prints the records piped on exit, and the p50/p99 of each copy's
//! send-to-acknowledgement time (the producer and broker leg that `mmnet_record_latency_seconds`
//! also contains), so the operator's figure can be read against what the clients alone take.

#![allow(clippy::print_stderr)] // a benchmark tool: its report goes to stderr

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mmnet_kafka::clients::{consumer_config, producer_config};
use mmnet_kafka::{OperatorConfig, Profile};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

fn args() -> Result<OperatorConfig, String> {
    let mut it = std::env::args().skip(1);
    let (mut profile, mut props, mut vals) = (None, Vec::new(), Vec::new());
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--profile" => {
                profile = Some(match value()?.as_str() {
                    "throughput" => Profile::Throughput,
                    "low-latency" => Profile::LowLatency,
                    p => return Err(format!("unknown profile `{p}`")),
                })
            }
            "-X" => props.push(value()?),
            "--brokers" | "--input" | "--output" | "--group" => vals.push((a.clone(), value()?)),
            _ => return Err(format!("unknown argument `{a}`")),
        }
    }
    let mut cfg = OperatorConfig::from_toml_with_profile("", profile).map_err(|e| e.to_string())?;
    for (k, v) in vals {
        match k.as_str() {
            "--brokers" => cfg.kafka.brokers = v,
            "--input" => cfg.kafka.input_topic = v,
            "--output" => cfg.kafka.output_topic = v,
            _ => cfg.kafka.group = v,
        }
    }
    for p in props {
        cfg.set_librdkafka(&p).map_err(|e| e.to_string())?;
    }
    if cfg.kafka.input_topic.is_empty() || cfg.kafka.output_topic.is_empty() {
        return Err("--input and --output are required".into());
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() {
    let cfg = match args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let consumer: StreamConsumer = consumer_config(&cfg, &[])
        .create()
        .expect("consumer settings");
    let producer: FutureProducer = producer_config(&cfg, &[], None)
        .create()
        .expect("producer settings");
    consumer
        .subscribe(&[&cfg.kafka.input_topic])
        .expect("subscribe");
    // Deliveries in input order; an offset is stored once its copy is acknowledged, as the
    // operator does at least once. Bounded like the operator's in-flight batches.
    let limit = cfg.batch.max_in_flight * cfg.batch.max_messages;
    let mut pending: VecDeque<(i32, i64, Instant, DeliveryFuture)> = VecDeque::new();
    let mut acked: Vec<f64> = Vec::new();
    let mut piped = 0u64;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            m = consumer.recv(), if pending.len() < limit => {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("consume error: {e}");
                        continue;
                    }
                };
                let mut r = FutureRecord::<[u8], [u8]>::to(&cfg.kafka.output_topic);
                if let Some(k) = m.key() {
                    r = r.key(k);
                }
                if let Some(p) = m.payload() {
                    r = r.payload(p);
                }
                if let Some(t) = m.timestamp().to_millis() {
                    r = r.timestamp(t);
                }
                match producer.send_result(r) {
                    Ok(f) => pending.push_back((m.partition(), m.offset(), Instant::now(), f)),
                    Err((e, _)) => eprintln!("produce error: {e}"),
                }
            }
            done = async { (&mut pending.front_mut().expect("guarded").3).await }, if !pending.is_empty() => {
                let (p, o, sent, _) = pending.pop_front().expect("guarded");
                if matches!(done, Ok(Ok(_))) {
                    piped += 1;
                    acked.push(sent.elapsed().as_secs_f64() * 1e3);
                    let _ = consumer.store_offset(&cfg.kafka.input_topic, p, o);
                }
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
    acked.sort_by(f64::total_cmp);
    let q = |p: f64| {
        acked
            .get(((acked.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    eprintln!(
        "noop_pipe: {piped} records piped; send to acknowledgement p50 {:.2} ms, p99 {:.2} ms",
        q(0.5),
        q(0.99)
    );
}
