//! SASL with good credentials, against a broker that really checks them: Tansu 0.6.0 on
//! PostgreSQL storage (the only storage where it keeps SCRAM credentials), in a scratch
//! PostgreSQL the test starts. That broker is built from source (~15 min, once per machine:
//! scripts/install-tansu-sasl.sh), too long for CI's budget, so these tests are ignored by
//! `cargo test` and run by `make test-sasl`. The refused-login path runs in every
//! `make test` (tests/kafka_security.rs).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod kafka_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_support::*;

fn sasl_tansu() -> PathBuf {
    let p = std::env::var_os("MMNET_TANSU_SASL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/mmnet/tansu-sasl-0.6.0/bin/tansu")
        });
    assert!(
        p.exists(),
        "the SASL-capable Tansu is not at {}: run scripts/install-tansu-sasl.sh (or make test-sasl)",
        p.display()
    );
    p
}

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (Debian: postgresql) are needed")
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.pop().unwrap().join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Runs a PostgreSQL binary as the `postgres` user when we are root (PostgreSQL refuses
/// to run as root), else as ourselves.
fn pg_cmd(name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(name));
        c
    } else {
        Command::new(pg_bin(name))
    }
}

/// A scratch PostgreSQL cluster holding Tansu's schema; stopped on drop.
struct Postgres {
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        let data = dir.join("pg");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            let _ = Command::new("chmod")
                .args(["755", dir.to_str().unwrap()])
                .status();
            assert!(
                Command::new("chown")
                    .args(["postgres", data.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let ok = |c: &mut Command, what: &str| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(
            pg_cmd("initdb").args(["-D", data.to_str().unwrap(), "-U", "tansu", "--auth=trust"]),
            "initdb",
        );
        let port = free_port();
        ok(
            pg_cmd("pg_ctl").args([
                "-D",
                data.to_str().unwrap(),
                "-o",
                &format!("-p {port} -k /tmp -c listen_addresses=127.0.0.1"),
                "-l",
                data.join("log").to_str().unwrap(),
                "-w",
                "start",
            ]),
            "pg_ctl start",
        );
        let pg = Postgres { data, port };
        let schema = root().join("tests/fixtures/tansu-0.6.0-pg-schema.sql");
        ok(
            Command::new("psql").args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "tansu",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                schema.to_str().unwrap(),
            ]),
            "loading Tansu's schema",
        );
        pg
    }

    fn url(&self) -> String {
        format!("postgres://tansu@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_cmd("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

struct SaslBroker {
    child: Child,
}

impl SaslBroker {
    fn start(dir: &Path, pg: &Postgres, port: u16, authentication: bool) -> SaslBroker {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut c = Command::new(sasl_tansu());
        c.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            &pg.url(),
        ]);
        if authentication {
            c.arg("--authentication");
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("tansu-{authentication}.log"))).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "SASL Tansu did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        SaslBroker { child }
    }

    fn tansu(&self, args: &[&str]) {
        let out = Command::new(sasl_tansu()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tansu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the SASL-capable Tansu built from source: make test-sasl"]
fn sasl_scram_with_good_credentials_scores_and_wrong_ones_exit() {
    let dir = workdir();
    let d = dir.path();
    let pg = Postgres::start(d);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let password = "good-Scram-pw-5e1b";
    // Users and topics are created while the broker runs without authentication (Tansu's
    // own CLI has no SASL), then it restarts requiring it, on the same database.
    let open = SaslBroker::start(d, &pg, port, false);
    let broker = format!("tcp://{addr}");
    for m in ["scram256", "scram512"] {
        open.tansu(&[
            "user",
            "create",
            "mmnet",
            password,
            "--mechanism",
            m,
            "--broker",
            &broker,
        ]);
    }
    for t in ["s-in", "s-out"] {
        open.tansu(&[
            "topic",
            "create",
            "--broker",
            &broker,
            "--partitions",
            "2",
            t,
        ]);
    }
    open.stop();
    let _broker = SaslBroker::start(d, &pg, port, true);

    let pw = d.join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    // `mmnet produce` logs in with SCRAM-SHA-256 from a --secret-file ...
    run_ok(produce_command(&addr, "s-in").args([
        "--limit",
        "1000",
        "--security-protocol",
        "sasl-plaintext",
        "--sasl-mechanism",
        "scram-sha-256",
        "--sasl-username",
        "mmnet",
        "--secret-file",
        pw.to_str().unwrap(),
    ]));
    // ... the operator with SCRAM-SHA-512 and the password through ${VAR}.
    let config = d.join("sasl.toml");
    std::fs::write(
        &config,
        "[security]\nprotocol = \"sasl_plaintext\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         sasl_username = \"mmnet\"\nsasl_password = \"${MMNET_TEST_SASL_PW}\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let op = Operator::start_at(
        &addr,
        d,
        "sasl-good",
        &model(),
        &[
            "--config",
            cfg,
            "--input-topic",
            "s-in",
            "--output-topic",
            "s-out",
            "--group",
            "sasl",
        ],
        &[("MMNET_TEST_SASL_PW", password), ("MMNET_LOG", "debug")],
    );
    op.wait_scored(1000.0, Duration::from_secs(90));
    let metrics = http_get(&op.metrics, "/metrics");
    assert!(op.terminate());
    let scores = read_until_with(
        &addr,
        &[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "mmnet"),
            ("sasl.password", password),
        ],
        "s-out",
        Duration::from_secs(60),
        |r| sources(r).len() >= 1000,
    );
    assert_eq!(sources(&scores).len(), 1000);
    let log = std::fs::read_to_string(d.join("sasl-good.log")).unwrap();
    assert!(!log.contains(password) && !metrics.contains(password));

    // The same user with a wrong password: refused by the broker's real SCRAM check.
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let mut bad = Operator::start_at(
        &addr,
        d,
        "sasl-wrong",
        &model(),
        &[
            "--input-topic",
            "s-in",
            "--output-topic",
            "s-out",
            "--security-protocol",
            "sasl-plaintext",
            "--sasl-username",
            "mmnet",
            "--secret-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    let t = Instant::now();
    let status = wait_exit(&mut bad, Duration::from_secs(30)).expect("wrong password: no exit");
    assert!(!status.success());
    assert!(bad.log().contains("refused the login"), "{}", bad.log());
    eprintln!(
        "good credentials: 1000 records scored; wrong password: exit after {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
