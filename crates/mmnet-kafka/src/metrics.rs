//! Prometheus metrics, readiness (`/health`) and liveness (`/live`).
//!
//! Metrics are plain atomics (prometheus-client) updated from the pipeline tasks; a small
//! blocking HTTP server (tiny_http) on its own thread encodes them on scrape, so a slow
//! scraper never touches the async runtime.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::decode::DeadReason;
use crate::error::{OperatorError, Result};

/// Label set `{reason="..."}`.
pub type ReasonLabel = Vec<(&'static str, &'static str)>;
/// Label set `{partition="..."}`.
pub type PartitionLabel = Vec<(&'static str, i64)>;
/// Label set `{name="...",digest="..."}`.
pub type ModelLabel = Vec<(&'static str, String)>;

/// Why no broker is reachable, since when, from the clients' latest reports.
#[derive(Debug)]
struct Link {
    down_since: Option<Instant>,
    reason: String,
    /// Per client: when it last reported, and whether a broker was UP then.
    reports: [Option<(Instant, bool)>; 2],
}

/// A client's report older than this no longer counts (reports come every second while the
/// client is served; the consumer is not served while backpressure pauses the pipeline).
const REPORT_FRESH: Duration = Duration::from_secs(3);

/// Lifecycle state reported by `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Connecting, waiting for a partition assignment.
    Starting = 0,
    /// Consuming and scoring.
    Running = 1,
    /// Draining after a shutdown signal.
    Stopping = 2,
    /// A fatal error; the process is about to exit.
    Failed = 3,
}

/// Every metric of the operator.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Input messages consumed.
    pub messages_in: Counter,
    /// Input rows decoded (JSON: one per message; Arrow: rows in the stream).
    pub records_in: Counter,
    /// Score records acknowledged by the broker.
    pub records_out: Counter,
    /// Rows flagged `is_anomaly`, among acknowledged score records.
    pub anomalies: Counter,
    /// Dead letters acknowledged, by reason.
    pub dead_letters: Family<ReasonLabel, Counter>,
    /// Rows per scored batch.
    pub batch_rows: Histogram,
    /// Seconds to decode, score and encode one batch.
    pub scoring_seconds: Histogram,
    /// Seconds from a batch's first message to its offsets being stored (end-to-end latency
    /// inside the operator).
    pub batch_latency_seconds: Histogram,
    /// Seconds from a message's receipt by the operator to the broker's acknowledgement of
    /// its score record (or dead letter), per record.
    pub record_latency_seconds: Histogram,
    /// Age of a message when the operator receives it: its clock minus the message's
    /// timestamp (producer's CreateTime or the broker's LogAppendTime). Across hosts it
    /// includes their clock difference; on one host it is the path producer -> broker ->
    /// operator that `record_latency_seconds` does not cover.
    pub record_input_age_seconds: Histogram,
    /// Consumer lag per input partition (from librdkafka statistics).
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    /// Partitions currently assigned.
    pub assigned_partitions: Gauge,
    /// Batches between consume and commit.
    pub in_flight_batches: Gauge,
    /// 1 for the model serving now (`{name, digest}`); a swap moves the 1.
    pub model_info: Family<ModelLabel, Gauge>,
    /// Model reloads by result: `ok` (swapped), `unchanged`, `failed` (old model kept).
    pub model_reloads: Family<ReasonLabel, Counter>,
    /// Rows scored by the shadow model.
    pub shadow_records: Counter,
    /// Rows where the shadow model's `is_anomaly` differs from the served model's.
    pub shadow_disagreements: Counter,
    /// PSI of `mmnet_score` over the drift window against the training deciles.
    pub score_psi: Gauge<f64, AtomicU64>,
    /// Share of the drift window's rows flagged `is_anomaly`.
    pub flagged_ratio: Gauge<f64, AtomicU64>,
    /// Rows with a feature outside its training range, by feature (capped series).
    pub out_of_range: Family<ModelLabel, Counter>,
    /// Brokers with an open, authenticated connection, in the latest report of either
    /// client (consumer or producer).
    pub brokers_up: Gauge,
    health: Arc<AtomicU8>,
    link: Arc<Mutex<Link>>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `mmnet_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("mmnet");
        let m = Self {
            messages_in: Counter::default(),
            records_in: Counter::default(),
            records_out: Counter::default(),
            anomalies: Counter::default(),
            dead_letters: Family::default(),
            batch_rows: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            scoring_seconds: Histogram::new(exponential_buckets(1e-5, 2.0, 22)),
            batch_latency_seconds: Histogram::new(exponential_buckets(1e-4, 2.0, 20)),
            // 100 us to ~18 s in steps of sqrt(2): fine enough to tell 1 ms from 2 ms.
            record_latency_seconds: Histogram::new(exponential_buckets(
                1e-4,
                std::f64::consts::SQRT_2,
                36,
            )),
            record_input_age_seconds: Histogram::new(exponential_buckets(
                1e-4,
                std::f64::consts::SQRT_2,
                36,
            )),
            consumer_lag: Family::default(),
            assigned_partitions: Gauge::default(),
            in_flight_batches: Gauge::default(),
            model_info: Family::default(),
            model_reloads: Family::default(),
            shadow_records: Counter::default(),
            shadow_disagreements: Counter::default(),
            score_psi: Gauge::default(),
            flagged_ratio: Gauge::default(),
            out_of_range: Family::default(),
            brokers_up: Gauge::default(),
            health: Arc::new(AtomicU8::new(Health::Starting as u8)),
            link: Arc::new(Mutex::new(Link {
                down_since: Some(Instant::now()),
                reason: "connecting to the brokers".into(),
                reports: [None; 2],
            })),
            registry: Arc::new(Registry::default()),
        };
        r.register(
            "messages_in",
            "Input messages consumed",
            m.messages_in.clone(),
        );
        r.register("records_in", "Input rows decoded", m.records_in.clone());
        r.register(
            "records_out",
            "Score records acknowledged by the broker",
            m.records_out.clone(),
        );
        r.register(
            "anomalies",
            "Acknowledged score records with is_anomaly = true (anomaly rate = anomalies / records_out)",
            m.anomalies.clone(),
        );
        for reason in DeadReason::ALL {
            // Present at zero from the start, so alerts on a rate see a series.
            let _ = m
                .dead_letters
                .get_or_create(&vec![("reason", reason.as_str())]);
        }
        r.register(
            "dead_letters",
            "Dead letters acknowledged, by reason",
            m.dead_letters.clone(),
        );
        r.register("batch_rows", "Rows per scored batch", m.batch_rows.clone());
        r.register(
            "scoring_seconds",
            "Seconds to decode, score and encode one batch",
            m.scoring_seconds.clone(),
        );
        r.register(
            "batch_latency_seconds",
            "Seconds from a batch's first message to its offsets being stored",
            m.batch_latency_seconds.clone(),
        );
        r.register(
            "record_latency_seconds",
            "Seconds from a message's receipt by the operator to the acknowledgement of its score record",
            m.record_latency_seconds.clone(),
        );
        r.register(
            "record_input_age_seconds",
            "Seconds between a message's timestamp and its receipt by the operator (includes clock skew across hosts)",
            m.record_input_age_seconds.clone(),
        );
        r.register(
            "consumer_lag",
            "Messages behind the high watermark per input partition (librdkafka statistics)",
            m.consumer_lag.clone(),
        );
        r.register(
            "assigned_partitions",
            "Input partitions assigned to this instance",
            m.assigned_partitions.clone(),
        );
        r.register(
            "in_flight_batches",
            "Batches between consume and commit",
            m.in_flight_batches.clone(),
        );
        r.register(
            "model_info",
            "The model serving now (1), by name and weights digest",
            m.model_info.clone(),
        );
        for result in ["ok", "unchanged", "failed"] {
            let _ = m.model_reloads.get_or_create(&vec![("result", result)]);
        }
        r.register(
            "model_reloads",
            "Model reloads (SIGHUP or a watched path change), by result; failed = the old model kept serving",
            m.model_reloads.clone(),
        );
        r.register(
            "shadow_records",
            "Rows scored by the shadow model",
            m.shadow_records.clone(),
        );
        r.register(
            "shadow_disagreements",
            "Rows where the shadow model's is_anomaly differs from the served model's",
            m.shadow_disagreements.clone(),
        );
        r.register(
            "score_psi",
            "Population stability index of mmnet_score over the drift window against the training deciles (< 0.1 stable, > 0.25 shifted)",
            m.score_psi.clone(),
        );
        r.register(
            "flagged_ratio",
            "Share of the drift window's rows flagged is_anomaly",
            m.flagged_ratio.clone(),
        );
        r.register(
            "out_of_range",
            "Rows with a feature outside its training range, by feature",
            m.out_of_range.clone(),
        );
        r.register(
            "brokers_up",
            "Brokers connected and authenticated in the latest librdkafka statistics of the consumer or producer (every second); 0 = not ready",
            m.brokers_up.clone(),
        );
        Self {
            registry: Arc::new(r),
            ..m
        }
    }

    /// A client's connection report (`client`: 0 consumer, 1 producer): whether it has a
    /// broker UP, and the last error seen. The brokers count as reachable while any fresh
    /// report says so; the first report of an outage starts its clock.
    pub fn report_brokers(&self, client: usize, up: bool, reason: &str) {
        let Ok(mut l) = self.link.lock() else { return };
        let now = Instant::now();
        if let Some(r) = l.reports.get_mut(client) {
            *r = Some((now, up));
        }
        let reachable = l
            .reports
            .iter()
            .flatten()
            .any(|&(t, u)| u && now.duration_since(t) < REPORT_FRESH);
        if reachable {
            l.down_since = None;
        } else {
            l.down_since.get_or_insert(now);
            l.reason = crate::security::redact(reason).into_owned();
        }
    }

    /// How long no broker has been reachable, and the last error; `None` when connected.
    pub fn outage(&self) -> Option<(Duration, String)> {
        let l = self.link.lock().ok()?;
        l.down_since.map(|t| (t.elapsed(), l.reason.clone()))
    }

    /// Moves `mmnet_model_info`'s 1 from `old` to `new` (the first call: `old` = `new`).
    pub fn set_model(&self, name: &str, old: &str, new: &str) {
        let label = |d: &str| vec![("name", name.to_string()), ("digest", d.to_string())];
        if old != new {
            self.model_info.remove(&label(old));
        }
        self.model_info.get_or_create(&label(new)).set(1);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }

    /// Sets the state `/health` reports.
    pub fn set_health(&self, h: Health) {
        self.health.store(h as u8, Ordering::Relaxed);
    }

    /// The state `/health` reports.
    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            0 => Health::Starting,
            1 => Health::Running,
            2 => Health::Stopping,
            _ => Health::Failed,
        }
    }
}

/// The HTTP endpoint; stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    /// The bound address (useful with port 0).
    pub addr: String,
}

impl MetricsServer {
    /// Serves `/metrics` and `/health` on `listen` (e.g. `127.0.0.1:9464`, port 0 = any).
    pub fn start(listen: &str, metrics: Metrics) -> Result<Self> {
        let server = tiny_http::Server::http(listen).map_err(|e| OperatorError::Io {
            what: format!("metrics endpoint on {listen}"),
            cause: std::io::Error::other(e.to_string()),
        })?;
        let addr = server.server_addr().to_string();
        let server = Arc::new(server);
        let s = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("mmnet-metrics".into())
            .spawn(move || serve(&s, &metrics))
            .map_err(|cause| OperatorError::Io {
                what: "starting the metrics thread".into(),
                cause,
            })?;
        Ok(Self {
            server,
            thread: Some(thread),
            addr,
        })
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, metrics: &Metrics) {
    for req in server.incoming_requests() {
        let path = req.url().split('?').next().unwrap_or("");
        let (status, body, ctype) = match path {
            "/metrics" => (
                200,
                metrics.render(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            // Readiness: 200 only while running with a broker connection. During an outage
            // the process is alive and waiting (see /live), but scoring nothing.
            "/health" => {
                let h = metrics.health();
                let outage = metrics.outage();
                let ready = h == Health::Running && outage.is_none();
                let reason = match (&outage, h) {
                    (_, Health::Failed) => "stopped on a fatal error (see the log)".to_string(),
                    (_, Health::Stopping) => "shutting down".to_string(),
                    (Some((d, why)), _) => {
                        format!("no broker reachable for {:.0} s: {why}", d.as_secs_f64())
                    }
                    (None, Health::Starting) => "starting".to_string(),
                    (None, _) => String::new(),
                };
                let body = serde_json::json!({
                    "status": format!("{h:?}").to_lowercase(),
                    "ready": ready,
                    "reason": reason,
                    "assigned_partitions": metrics.assigned_partitions.get(),
                    "brokers_up": metrics.brokers_up.get(),
                });
                (
                    if ready { 200 } else { 503 },
                    format!("{body}\n"),
                    "application/json",
                )
            }
            // Liveness: 200 until the operator has failed; an outage is not a reason to
            // restart a process that will resume by itself.
            "/live" => {
                let alive = metrics.health() != Health::Failed;
                let body = format!("{{\"alive\":{alive}}}\n");
                (if alive { 200 } else { 503 }, body, "application/json")
            }
            _ => (
                404,
                "not found: try /metrics, /health or /live\n".into(),
                "text/plain",
            ),
        };
        let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()) {
            resp = resp.with_header(h);
        }
        let _ = req.respond(resp);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn get(addr: &str, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_health() {
        let m = Metrics::new();
        m.records_out.inc_by(7);
        m.dead_letters
            .get_or_create(&vec![("reason", "invalid_json")])
            .inc();
        let srv = MetricsServer::start("127.0.0.1:0", m.clone()).unwrap();
        let body = get(&srv.addr, "/metrics");
        assert!(body.contains("mmnet_records_out_total 7"), "{body}");
        assert!(
            body.contains("mmnet_dead_letters_total{reason=\"invalid_json\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("mmnet_dead_letters_total{reason=\"oversized\"} 0"),
            "{body}"
        );
        assert!(body.contains("mmnet_scoring_seconds_bucket"), "{body}");
        // Starting (no broker seen yet): alive, not ready.
        let h = get(&srv.addr, "/health");
        assert!(h.contains(" 503 ") && h.contains("\"starting\""), "{h}");
        assert!(get(&srv.addr, "/live").contains(" 200 "));
        m.set_health(Health::Running);
        m.report_brokers(0, true, "");
        let h = get(&srv.addr, "/health");
        assert!(h.contains(" 200 ") && h.contains("\"ready\":true"), "{h}");
        // One client down while the other still has a broker: reachable.
        m.report_brokers(1, false, "x");
        assert!(get(&srv.addr, "/health").contains(" 200 "));
        m.report_brokers(
            0,
            false,
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        );
        let h = get(&srv.addr, "/health");
        assert!(
            h.contains(" 503 ") && h.contains("no broker reachable") && h.contains("refused"),
            "{h}"
        );
        assert!(get(&srv.addr, "/live").contains(" 200 "));
        m.report_brokers(1, true, "");
        assert!(get(&srv.addr, "/health").contains(" 200 "));
        m.set_health(Health::Failed);
        let h = get(&srv.addr, "/health");
        assert!(h.contains(" 503 ") && h.contains("\"failed\""), "{h}");
        assert!(get(&srv.addr, "/live").contains(" 503 "));
        assert!(get(&srv.addr, "/nope").contains(" 404 "));
    }
}
