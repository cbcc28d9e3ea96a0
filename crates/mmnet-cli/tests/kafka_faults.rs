//! Broker faults, each with its defined behaviour (docs/RELIABILITY.md): the broker
//! SIGKILLed and restarted on durable storage mid-stream, the broker gone for 30 s, no broker
//! at all (give up after `kafka.unavailable_timeout_s`), missing topics, score records the
//! producer refuses.
//!
//! Durable storage is Tansu's `s3://` engine against moto (an S3-compatible server from
//! PyPI, installed by scripts/install-deps.sh into .tools/moto-venv).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod kafka_support;
mod s3_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_support::*;
use s3_support::S3;

/// Tansu on moto's S3: durable across broker restarts.
fn broker_opts(s3: &S3) -> BrokerOpts {
    BrokerOpts {
        storage: Some("s3://tansu/".into()),
        env: s3.env(),
        ..Default::default()
    }
}

/// `mmnet produce` in the background (it must ride out the broker's restarts too).
fn produce_bg(broker: &Broker, topic: &str, rows: usize, rate: usize) -> Child {
    produce_command(&broker.addr, topic)
        .args([
            "--repeat",
            "10",
            "--limit",
            &rows.to_string(),
            "--rate",
            &rate.to_string(),
            // No idempotence for the test's own producer: Tansu can lose an acknowledged
            // idempotent batch across a crash (docs/RELIABILITY.md); the operator's output
            // is what this test judges, and it reads back whatever input the topic holds.
            "-X",
            "enable.idempotence=false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The broker SIGKILLed and restarted on durable storage while 20,000 records flow, then
/// gone for 30 s: the operator stays up, reports not-ready with the reason, resumes by
/// itself, and every input offset has a score record afterwards.
#[test]
fn broker_sigkill_and_30s_outage_lose_nothing() {
    let dir = workdir();
    let d = dir.path();
    let s3 = S3::start(d, "tansu");
    let mut broker = Broker::start_with(d, broker_opts(&s3));
    broker.create_topic("f-in", 2);
    broker.create_topic("f-out", 2);
    let mut extra = group_args("f-in", "f-out", "faults");
    // The operator's producer as shipped except idempotence: see docs/RELIABILITY.md for
    // why on Tansu (and only there) it is turned off. MMNET_TEST_IDEMPOTENT=1 keeps it on,
    // to re-check that Tansu bug.
    if std::env::var_os("MMNET_TEST_IDEMPOTENT").is_none() {
        extra.extend_from_slice(&["-X", "enable.idempotence=false"]);
    }
    let op = Operator::start(&broker, d, "faults", &extra);
    op.wait_assigned(Duration::from_secs(60));

    // Phase 1: kill -9 mid-stream, restart at once.
    let mut producer = produce_bg(&broker, "f-in", 20_000, 4000);
    op.wait_scored(3000.0, Duration::from_secs(60));
    broker.kill9();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let status = producer.wait().unwrap();
    assert!(
        status.success(),
        "the input producer failed across the restart"
    );

    // Phase 2: gone for 30 s.
    broker.kill9();
    let gone = Instant::now();
    let mut health = String::new();
    while gone.elapsed() < Duration::from_secs(30) {
        assert!(
            op_alive(&op),
            "operator exited during the outage:\n{}",
            op.log()
        );
        health = http_get(&op.metrics, "/health");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        health.contains(" 503 ") && health.contains("no broker reachable"),
        "{health}"
    );
    assert!(http_get(&op.metrics, "/live").contains(" 200 "));
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(&op.metrics, "/health").contains(" 200 ") {
        assert!(Instant::now() < deadline, "not ready again:\n{}", op.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut producer = produce_bg(&broker, "f-in", 2_000, 4000);
    assert!(producer.wait().unwrap().success());

    // Every input record the topic holds has a score; duplicates only from replay.
    let inputs = read_until(&broker.addr, "f-in", Duration::from_secs(60), |_| false);
    let expected: std::collections::BTreeSet<_> =
        inputs.iter().map(|r| (r.partition, r.offset)).collect();
    assert!(expected.len() >= 20_000, "only {} inputs", expected.len());
    let scores = read_until(&broker.addr, "f-out", Duration::from_secs(120), |r| {
        sources(r).len() >= expected.len()
    });
    assert_all_scored(&expected, &scores);
    eprintln!(
        "inputs {}, score records {} (duplicates {}), health during the outage: {}",
        expected.len(),
        scores.len(),
        scores.len() - sources(&scores).len(),
        health.lines().last().unwrap_or_default()
    );
    assert!(op.terminate());
}

fn op_alive(op: &Operator) -> bool {
    Command::new("kill")
        .args(["-0", &op.child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
        && !std::fs::read_to_string(format!("/proc/{}/stat", op.child.id()))
            .unwrap_or_default()
            .contains(") Z ")
}

/// No broker at all: not ready, then a clear non-zero exit after the give-up time.
#[test]
fn no_broker_gives_up_after_the_configured_time() {
    let dir = workdir();
    let dead = format!("127.0.0.1:{}", free_port());
    let t = Instant::now();
    let mut op = Operator::start_at(
        &dead,
        dir.path(),
        "nobroker",
        &model(),
        &[
            "--input-topic",
            "in",
            "--output-topic",
            "out",
            "--unavailable-timeout",
            "6",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_secs(2));
    let h = http_get(&op.metrics, "/health");
    assert!(h.contains(" 503 "), "{h}");
    let status = wait_exit(&mut op, Duration::from_secs(40)).expect("did not give up");
    assert!(!status.success());
    let log = op.log();
    assert!(log.contains("no Kafka broker reachable for"), "{log}");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        secs >= 6.0,
        "gave up after {secs:.1} s, before the configured 6 s"
    );
    eprintln!("gave up after {secs:.1} s");
}

/// A missing output or dead-letter topic is a startup error naming it, not a record-by-
/// record failure five minutes later.
#[test]
fn missing_topics_are_startup_errors() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("m-in", 1);
    broker.create_topic("m-out", 1);
    for (name, extra, missing) in [
        (
            "no-out",
            vec!["--output-topic", "m-nope"],
            "output topic `m-nope`",
        ),
        (
            "no-dlq",
            vec!["--output-topic", "m-out", "--dlq-topic", "m-dlq-nope"],
            "dead-letter topic `m-dlq-nope`",
        ),
        (
            "no-in",
            vec!["--output-topic", "m-out"],
            "input topic `m-in2`",
        ),
    ] {
        let input = if name == "no-in" { "m-in2" } else { "m-in" };
        let mut args = vec!["--input-topic", input];
        args.extend(extra);
        let mut op = Operator::start(&broker, dir.path(), name, &args);
        let status = wait_exit(&mut op, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{name}: still running:\n{}", op.log()));
        assert!(!status.success());
        let log = op.log();
        assert!(
            log.contains(missing) && log.contains("does not exist"),
            "{name}: {log}"
        );
    }
}

/// Score records the producer refuses (here: larger than a small `message.max.bytes`)
/// become dead letters `rejected`, and the stream goes on; without a dead-letter topic the
/// operator stops with an error that says what to change.
#[test]
fn refused_score_records_are_dead_lettered() {
    let dir = workdir();
    let d = dir.path();
    let broker = Broker::start(d);
    for t in ["r-in", "r-in2", "r-out", "r-dlq"] {
        broker.create_topic(t, 1);
    }
    // 300 JSON rows (small score records) then Arrow messages of 100 rows each, whose
    // Arrow score streams exceed 4,000 bytes.
    produce(&broker, "r-in", &["--limit", "300"]);
    produce(
        &broker,
        "r-in",
        &[
            "--limit",
            "300",
            "--format",
            "arrow",
            "--rows-per-message",
            "100",
        ],
    );
    let config = d.join("small.toml");
    std::fs::write(&config, "[producer]\n\"message.max.bytes\" = \"4000\"\n").unwrap();
    let cfg = config.to_str().unwrap();
    let mut extra = group_args("r-in", "r-out", "refused");
    extra.extend_from_slice(&[
        "--dlq-topic",
        "r-dlq",
        "--config",
        cfg,
        "--output-format",
        "arrow",
    ]);
    // And an unscorable message larger than the producer's limit: its dead letter (the
    // original bytes) is refused too, and goes out without them.
    let mut big = b"{\"not json".to_vec();
    big.resize(6000, b'x');
    produce_raw(&broker, "r-in", &[("big", big)]);
    let op = Operator::start(&broker, d, "refused", &extra);
    let letters = read_until(&broker.addr, "r-dlq", Duration::from_secs(60), |r| {
        r.len() >= 4
    });
    assert_eq!(letters.len(), 4, "{}", op.log());
    let reason = |l: &Read| l.headers["mmnet.dlq.reason"].clone();
    let rejected: Vec<_> = letters.iter().filter(|l| reason(l) == "rejected").collect();
    assert_eq!(rejected.len(), 3);
    for l in rejected {
        assert!(
            l.headers["mmnet.dlq.error"].contains("too large"),
            "{:?}",
            l.headers
        );
        assert!(l.payload.is_empty());
    }
    let stripped = letters
        .iter()
        .find(|l| reason(l) == "invalid_json")
        .unwrap();
    assert!(stripped.payload.is_empty());
    assert!(stripped.headers["mmnet.dlq.payload_dropped"].contains("too large"));
    assert_eq!(
        stripped.headers["trace-id"], "big",
        "the input's headers are kept"
    );
    // The 300 JSON inputs were scored around them.
    let scores = read_until(&broker.addr, "r-out", Duration::from_secs(60), |r| {
        r.len() >= 300
    });
    assert_eq!(scores.len(), 300);
    assert!(op.terminate());

    // Without a dead-letter topic: a stop that names the fix.
    produce(
        &broker,
        "r-in2",
        &[
            "--limit",
            "300",
            "--format",
            "arrow",
            "--rows-per-message",
            "100",
        ],
    );
    let mut op = Operator::start(&broker, d, "refused-nodlq", &{
        let mut e = group_args("r-in2", "r-out", "refused-nodlq");
        e.extend_from_slice(&["--config", cfg, "--output-format", "arrow"]);
        e
    });
    let status = wait_exit(&mut op, Duration::from_secs(60)).expect("did not stop");
    assert!(!status.success());
    let log = op.log();
    assert!(
        log.contains("--dlq-topic") && log.contains("message.max.bytes"),
        "{log}"
    );
}
