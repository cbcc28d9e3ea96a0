//! Test support for the Kafka operator: a real Tansu broker per test on a free port, the
//! `mmnet` binary as operator processes, and a reader of whole topics.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub const MMNET: &str = env!("CARGO_BIN_EXE_mmnet");

/// A scratch directory for broker and operator logs; kept (and printed) when
/// MMNET_KEEP_TEST_DIRS is set, for post-mortems.
pub fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    if std::env::var_os("MMNET_KEEP_TEST_DIRS").is_some() {
        eprintln!("test dir: {}", d.path().display());
        let mut d = d;
        d.disable_cleanup(true);
        return d;
    }
    d
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tansu_path() -> PathBuf {
    std::env::var_os("MMNET_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/bin/tansu"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start a broker: in-memory by default.
#[derive(Debug, Clone, Default)]
pub struct BrokerOpts {
    /// `--storage-engine`; default `memory://tansu/`.
    pub storage: Option<String>,
    /// Port the broker advertises (a TLS proxy's), default its own.
    pub advertised_port: Option<u16>,
    /// `--authentication`: every client must log in with SASL.
    pub authentication: bool,
    /// Extra environment (S3 endpoint and credentials).
    pub env: Vec<(String, String)>,
}

/// A Tansu broker, killed on drop.
pub struct Broker {
    child: Child,
    pub addr: String,
    pub port: u16,
    log: PathBuf,
    opts: BrokerOpts,
}

impl Broker {
    /// A broker with in-memory storage on a free port.
    pub fn start(dir: &Path) -> Broker {
        Self::start_with(dir, BrokerOpts::default())
    }

    /// A broker on a free port, as `opts` say.
    pub fn start_with(dir: &Path, opts: BrokerOpts) -> Broker {
        let tansu = tansu_path();
        assert!(
            tansu.exists(),
            "Tansu broker not found at {}: run `make tansu` (scripts/install-tansu.sh) or set MMNET_TANSU",
            tansu.display()
        );
        let port = free_port();
        let log = dir.join(format!("tansu-{port}.log"));
        let child = Self::spawn(port, &log, &opts);
        let b = Broker {
            child,
            addr: format!("127.0.0.1:{port}"),
            port,
            log,
            opts,
        };
        b.wait_listening();
        b
    }

    fn spawn(port: u16, log: &Path, opts: &BrokerOpts) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://127.0.0.1:{}", opts.advertised_port.unwrap_or(port));
        let storage = opts.storage.as_deref().unwrap_or("memory://tansu/");
        let mut cmd = Command::new(tansu_path());
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            storage,
        ]);
        if opts.authentication {
            cmd.arg("--authentication");
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "Tansu did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no flush; what storage holds is what survives.
    pub fn kill9(&mut self) {
        signal(&self.child, "KILL");
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port and storage (after [`Broker::kill9`]).
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.log, &self.opts);
        self.wait_listening();
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_path())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://{}", self.addr),
                "--partitions",
                &partitions.to_string(),
                name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "creating topic {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every (partition, offset) of the first `n` records of `topic`, read back. (Tansu's
    /// ListOffsets does not report true high watermarks, so tests count records instead.)
    pub fn offsets(&self, topic: &str, n: usize) -> BTreeSet<(i32, i64)> {
        let got = read_until(&self.addr, topic, Duration::from_secs(120), |r| {
            r.len() >= n
        });
        assert_eq!(
            got.len(),
            n,
            "{topic} holds {} records, expected {n}",
            got.len()
        );
        got.iter().map(|r| (r.partition, r.offset)).collect()
    }

    /// Offsets committed by `group` on `topic` (partition -> next offset).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        // Convert before the consumer drops: a live list blocks rd_kafka_destroy.
        let map = got.to_topic_map();
        drop(got);
        map.into_iter()
            .map(|((_, p), o)| (p, o.to_raw().unwrap_or(-1)))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(&self.log)
        {
            let tail: Vec<_> = log.lines().rev().take(20).collect();
            eprintln!("--- tansu log tail ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn reader(addr: &str, props: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("group.id", "mmnet-test-reader")
        .set("enable.auto.commit", "false");
    for (k, v) in props {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Read {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// Reads every partition of `topic` from the start until `done(records)` or `timeout`.
/// `done` is asked when the topic is drained for the moment or every 5,000 records, so it
/// may be costly.
pub fn read_until(
    addr: &str,
    topic: &str,
    timeout: Duration,
    done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    read_until_with(addr, &[], topic, timeout, done)
}

/// [`read_until`] with extra client properties (TLS, SASL).
pub fn read_until_with(
    addr: &str,
    props: &[(&str, &str)],
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Read]) -> bool,
) -> Vec<Read> {
    let c = reader(addr, props);
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    drop(tpl);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut ask = true;
    while Instant::now() < deadline {
        if ask && done(&out) {
            break;
        }
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                ask = out.len() % 5000 == 0;
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => ask = true,
        }
    }
    out
}

/// (partition, offset) of the inputs named by JSON score records.
pub fn sources(scores: &[Read]) -> BTreeSet<(i32, i64)> {
    scores
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["source"]["partition"].as_i64().unwrap() as i32,
                v["source"]["offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The offset a fully processed partition commits: one past its last record.
pub fn next_offsets(offsets: &BTreeSet<(i32, i64)>) -> BTreeMap<i32, i64> {
    let mut m = BTreeMap::new();
    for &(p, o) in offsets {
        let e = m.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    m
}

/// Asserts every input has a score, naming a few that do not (never the whole set).
pub fn assert_all_scored(expected: &BTreeSet<(i32, i64)>, scores: &[Read]) {
    let seen = sources(scores);
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} of {} inputs have no score record, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
}

pub fn mmnet(args: &[&str]) -> Output {
    Command::new(MMNET).args(args).output().unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = mmnet(args);
    assert!(
        out.status.success(),
        "mmnet {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Trains a small model (2 epochs, memory 8) on the shipped Spambase data into `out`, with
/// `extra` flags (a seed, a score).
pub fn train_spambase(out: &Path, extra: &[&str]) {
    let data = spambase();
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--memory-size",
        "8",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

/// A small model trained once per test binary on the shipped Spambase data (57 features).
pub fn model() -> PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("mmnet-kafka-model-{}", std::process::id()));
            train_spambase(&dir, &[]);
            dir
        })
        .clone()
}

/// A model directory's manifest.json.
pub fn manifest(model: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap()
}

/// The feature names of a model, in order.
pub fn model_features(model: &Path) -> Vec<String> {
    manifest(model)["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

pub fn spambase() -> PathBuf {
    root().join("data/spambase.parquet")
}

/// `mmnet produce` of the shipped Spambase rows into `topic` at `addr` (keys: row numbers),
/// for a test to add its own flags, environment and way of running.
pub fn produce_command(addr: &str, topic: &str) -> Command {
    let mut c = Command::new(MMNET);
    c.arg("produce")
        .arg("--data")
        .arg(spambase())
        .args(["--brokers", addr, "--topic", topic]);
    c
}

/// Runs `cmd`, which must succeed (else the test fails with its stderr); its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `mmnet produce` of the shipped Spambase rows into `topic`, which must succeed.
pub fn produce(broker: &Broker, topic: &str, extra: &[&str]) -> String {
    run_ok(produce_command(&broker.addr, topic).args(extra))
}

/// Raw payloads into partition 0 of `topic`, keyed and with a `trace-id` header each.
pub fn produce_raw(broker: &Broker, topic: &str, payloads: &[(&str, Vec<u8>)]) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .unwrap();
    for (key, payload) in payloads {
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace-id",
            value: Some(*key),
        });
        p.send(
            BaseRecord::to(topic)
                .key(*key)
                .payload(payload.as_slice())
                .partition(0)
                .headers(headers),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// `--input-topic I --output-topic O --group G`.
pub fn group_args<'a>(input: &'a str, output: &'a str, group: &'a str) -> Vec<&'a str> {
    vec![
        "--input-topic",
        input,
        "--output-topic",
        output,
        "--group",
        group,
    ]
}

/// librdkafka settings Tansu needs for quick group joins (ECOSYSTEM.md).
pub const GROUP_TIMEOUTS: [&str; 6] = [
    "-X",
    "session.timeout.ms=6000",
    "-X",
    "heartbeat.interval.ms=1000",
    "-X",
    "max.poll.interval.ms=10000",
];

/// An operator process (`mmnet kafka`); killed on drop if still running.
pub struct Operator {
    pub child: Child,
    pub metrics: String,
    stderr: PathBuf,
}

impl Operator {
    pub fn start(broker: &Broker, dir: &Path, name: &str, extra: &[&str]) -> Operator {
        Self::start_with_model(broker, dir, name, &model(), extra)
    }

    /// [`Operator::start`] serving `model` instead of the shared test model.
    pub fn start_with_model(
        broker: &Broker,
        dir: &Path,
        name: &str,
        model: &Path,
        extra: &[&str],
    ) -> Operator {
        Self::start_at(&broker.addr, dir, name, model, extra, &[])
    }

    /// An operator reaching the brokers at `brokers` (a TLS proxy, say), with extra
    /// environment variables.
    pub fn start_at(
        brokers: &str,
        dir: &Path,
        name: &str,
        model: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let metrics = format!("127.0.0.1:{}", free_port());
        let stderr = dir.join(format!("{name}.log"));
        let mut args = vec![
            "kafka",
            "--model",
            model.to_str().unwrap(),
            "--brokers",
            brokers,
            "--metrics-listen",
            &metrics,
        ];
        args.extend_from_slice(&GROUP_TIMEOUTS);
        args.extend_from_slice(extra);
        let child = Command::new(MMNET)
            .args(&args)
            .env("MMNET_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        Operator {
            child,
            metrics,
            stderr,
        }
    }

    /// A metric's value from /metrics (0 when absent or unreachable).
    pub fn metric(&self, line_prefix: &str) -> f64 {
        http_get(&self.metrics, "/metrics")
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the operator has at least one partition assigned.
    pub fn wait_assigned(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.metric("mmnet_assigned_partitions") < 1.0 {
            assert!(
                Instant::now() < deadline,
                "no partition assigned:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the operator has published at least `n` score records.
    pub fn wait_scored(&self, n: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.metric("mmnet_records_out_total") < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} scores:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then wait; returns whether it exited with success.
    pub fn terminate(mut self) -> bool {
        signal(&self.child, "TERM");
        wait_timeout(&mut self.child, Duration::from_secs(40))
    }

    pub fn kill9(mut self) {
        signal(&self.child, "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `timeout` for the operator to exit by itself; its exit status, or `None` if
/// it is still running.
pub fn wait_exit(op: &mut Operator, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(s) = op.child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        assert!(
            Instant::now() < deadline,
            "operator did not stop within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
