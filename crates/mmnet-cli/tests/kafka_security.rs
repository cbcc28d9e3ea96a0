//! Secured clusters, with the binary `make` builds (TLS and SASL are in the default build):
//! TLS through a TLS-terminating proxy (stunnel) in front of Tansu, which serves plaintext
//! only; SASL against Tansu with `--authentication`; secrets kept out of every log line,
//! error and metric.
//!
//! Needs stunnel and openssl (scripts/install-deps.sh); the tests fail, not skip, without
//! them, so that CI cannot pass by not running them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod kafka_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_support::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed for 127.0.0.1 / localhost, made with the openssl CLI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]));
    (crt, key)
}

fn make_pki(dir: &Path) -> Pki {
    let (ca, ca_key) = make_ca(dir, "test-ca");
    let key = dir.join("broker.key");
    let csr = dir.join("broker.csr");
    let cert = dir.join("broker.pem");
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]));
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    Pki { ca, cert, key }
}

/// stunnel accepting TLS on `port` and forwarding plaintext to the broker.
struct Proxy(Child);

impl Proxy {
    fn start(dir: &Path, pki: &Pki, port: u16, broker: &Broker) -> Proxy {
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = warning\noutput = {}\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = {}\ncert = {}\nkey = {}\n",
                dir.join("stunnel.log").display(),
                broker.addr,
                pki.cert.display(),
                pki.key.display()
            ),
        )
        .unwrap();
        let bin = ["stunnel4", "stunnel"]
            .into_iter()
            .find(|b| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {b}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("stunnel not found: run scripts/install-deps.sh");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stunnel did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy(child)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Scrapes /metrics and /health while the operator runs (it may exit any moment).
fn scrape_while_alive(op: &mut Operator, timeout: Duration) -> (String, Option<bool>) {
    let mut seen = String::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(s) = op.child.try_wait().unwrap() {
            return (seen, Some(s.success()));
        }
        seen.push_str(&http_get(&op.metrics, "/metrics"));
        seen.push_str(&http_get(&op.metrics, "/health"));
        std::thread::sleep(Duration::from_millis(100));
    }
    (seen, None)
}

#[test]
fn tls_through_a_proxy_scores_and_a_wrong_ca_is_refused_clearly() {
    let dir = workdir();
    let d = dir.path();
    let pki = make_pki(d);
    let tls_port = free_port();
    let broker = Broker::start_with(
        d,
        BrokerOpts {
            advertised_port: Some(tls_port),
            ..Default::default()
        },
    );
    // Topics are created on the broker's own (plaintext) port: that is the cluster
    // owner's side. Every client below goes through TLS.
    broker.create_topic("tls-in", 2);
    broker.create_topic("tls-out", 2);
    let _proxy = Proxy::start(d, &pki, tls_port, &broker);
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let ca = pki.ca.to_str().unwrap();
    let tls = ["--security-protocol", "ssl", "--ssl-ca", ca];

    run_ok(
        produce_command(&tls_addr, "tls-in")
            .args(["--limit", "2000"])
            .args(tls),
    );

    let mut extra = vec![
        "--input-topic",
        "tls-in",
        "--output-topic",
        "tls-out",
        "--group",
        "tls",
    ];
    extra.extend_from_slice(&tls);
    let op = Operator::start_at(&tls_addr, d, "tls", &model(), &extra, &[]);
    op.wait_scored(2000.0, Duration::from_secs(90));
    assert!(op.terminate(), "operator did not stop cleanly");
    let scores = read_until_with(
        &tls_addr,
        &[("security.protocol", "ssl"), ("ssl.ca.location", ca)],
        "tls-out",
        Duration::from_secs(60),
        |r| r.len() >= 2000,
    );
    assert_eq!(sources(&scores).len(), 2000, "every input scored once");

    // A CA that did not sign the broker's certificate: a clear error, a non-zero exit
    // within seconds, not a retry loop.
    let (wrong_ca, _) = make_ca(d, "other-ca");
    let mut extra = vec![
        "--input-topic",
        "tls-in",
        "--output-topic",
        "tls-out",
        "--group",
        "tls-wrong",
        "--security-protocol",
        "ssl",
        "--ssl-ca",
    ];
    extra.push(wrong_ca.to_str().unwrap());
    let t = Instant::now();
    let mut bad = Operator::start_at(&tls_addr, d, "tls-wrong-ca", &model(), &extra, &[]);
    let status = wait_exit(&mut bad, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running with a wrong CA:\n{}", bad.log()));
    assert!(!status.success());
    let log = bad.log();
    assert!(
        log.contains("TLS handshake failed") && log.contains("certificate verify failed"),
        "{log}"
    );
    eprintln!("wrong CA: exit after {:.1} s", t.elapsed().as_secs_f64());

    // A plaintext client on the TLS port is not a hang either.
    let mut plain = Operator::start_at(
        &tls_addr,
        d,
        "tls-plain",
        &model(),
        &[
            "--input-topic",
            "tls-in",
            "--output-topic",
            "tls-out",
            "--unavailable-timeout",
            "10",
        ],
        &[],
    );
    let status = wait_exit(&mut plain, Duration::from_secs(40))
        .unwrap_or_else(|| panic!("plaintext client on a TLS port still running"));
    assert!(!status.success(), "{}", plain.log());
}

/// SASL against Tansu with `--authentication` and no users: every login is refused (this
/// Tansu build keeps SCRAM credentials only on PostgreSQL storage, see
/// docs/RELIABILITY.md). The operator and `mmnet produce` must stop within seconds with a
/// clear error, and the password, given through `${VAR}` in the config or a
/// `--secret-file`, must not appear in any log line, error or metric.
#[test]
fn refused_sasl_login_exits_fast_and_no_secret_is_printed() {
    let dir = workdir();
    let d = dir.path();
    let broker = Broker::start_with(
        d,
        BrokerOpts {
            authentication: true,
            ..Default::default()
        },
    );
    let env_secret = "env-Secret-7f3a9c";
    let file_secret = "file-Secret-41d2e8";
    let pw_file = d.join("kafka-password");
    std::fs::write(&pw_file, format!("{file_secret}\n")).unwrap();
    let config = d.join("pipeline.toml");
    std::fs::write(
        &config,
        "[kafka]\ninput_topic = \"in\"\noutput_topic = \"out\"\n\
         [security]\nprotocol = \"sasl_plaintext\"\nsasl_mechanism = \"SCRAM-SHA-256\"\n\
         sasl_username = \"mmnet\"\nsasl_password = \"${MMNET_TEST_KAFKA_PASSWORD}\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();

    // 1. Password from the environment through ${VAR}, debug logging on, librdkafka's
    //    security debug contexts too.
    let t = Instant::now();
    let mut op = Operator::start_at(
        &broker.addr,
        d,
        "sasl-env",
        &model(),
        &["--config", cfg, "-X", "debug=security,broker,protocol"],
        &[
            ("MMNET_TEST_KAFKA_PASSWORD", env_secret),
            ("MMNET_LOG", "debug"),
        ],
    );
    let (scraped, exited) = scrape_while_alive(&mut op, Duration::from_secs(30));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(exited, Some(false), "{}", op.log());
    let log = op.log();
    assert!(log.contains("refused the login"), "{log}");
    assert!(!log.contains(env_secret), "the password is in the log");
    assert!(!scraped.contains(env_secret), "the password is in /metrics");
    assert!(
        !scraped.is_empty(),
        "nothing scraped: the grep above proved nothing"
    );
    eprintln!(
        "refused login: operator exit after {secs:.1} s, {} log bytes",
        log.len()
    );

    // 2. The same from a --secret-file.
    let mut op = Operator::start_at(
        &broker.addr,
        d,
        "sasl-file",
        &model(),
        &[
            "--input-topic",
            "in",
            "--output-topic",
            "out",
            "--security-protocol",
            "sasl-plaintext",
            "--sasl-mechanism",
            "scram-sha-512",
            "--sasl-username",
            "mmnet",
            "--secret-file",
            pw_file.to_str().unwrap(),
            "-X",
            "debug=security,broker",
        ],
        &[("MMNET_LOG", "debug")],
    );
    let (scraped, exited) = scrape_while_alive(&mut op, Duration::from_secs(30));
    assert_eq!(exited, Some(false), "{}", op.log());
    let log = op.log();
    assert!(log.contains("refused the login"), "{log}");
    assert!(!log.contains(file_secret) && !scraped.contains(file_secret));

    // 3. `mmnet produce` with the same file: a clear error, not a 5-minute wait.
    let t = Instant::now();
    let out = produce_command(&broker.addr, "in")
        .args(["--limit", "10", "--config", cfg])
        .env("MMNET_TEST_KAFKA_PASSWORD", env_secret)
        .env("MMNET_LOG", "debug")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refused the login"), "{err}");
    assert!(!err.contains(env_secret));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "produce took {:?}",
        t.elapsed()
    );

    // 4. A password on the command line is refused before anything starts.
    let out = mmnet(&[
        "kafka",
        "--model",
        model().to_str().unwrap(),
        "--input-topic",
        "in",
        "--output-topic",
        "out",
        "-X",
        "sasl.password=cmdline-Secret-99",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--secret-file") && !err.contains("cmdline-Secret-99"),
        "{err}"
    );
    // 5. An unset variable names itself and the key.
    let out = Command::new(MMNET)
        .args([
            "kafka",
            "--model",
            model().to_str().unwrap(),
            "--config",
            cfg,
        ])
        .env_remove("MMNET_TEST_KAFKA_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MMNET_TEST_KAFKA_PASSWORD") && err.contains("security.sasl_password"),
        "{err}"
    );
}
