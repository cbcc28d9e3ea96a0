//! moto's S3-compatible server for tests (PyPI `moto[server]`, installed by
//! scripts/install-deps.sh into .tools/moto-venv): Tansu's durable storage in the Kafka
//! fault tests, the object store of the `s3://` table tests.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's S3 server on a free port with one bucket; killed on drop.
pub struct S3(Child, pub u16);

impl S3 {
    /// Starts moto, logging into `dir/moto.log`, and creates `bucket`.
    pub fn start(dir: &Path, bucket: &str) -> S3 {
        let bin = root().join(".tools/moto-venv/bin/moto_server");
        assert!(
            bin.exists(),
            "moto not found at {}: run scripts/install-deps.sh",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("moto.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // CreateBucket: PUT /BUCKET (moto does not check signatures).
            let r = http_request(&format!("127.0.0.1:{port}"), "PUT", &format!("/{bucket}"));
            if r.contains(" 200 ") {
                break;
            }
            assert!(Instant::now() < deadline, "moto did not start: {r}");
            std::thread::sleep(Duration::from_millis(200));
        }
        S3(child, port)
    }

    /// The AWS environment of a client of this server (what a user exports).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.1)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plain HTTP/1.0 request; the whole response, or "" if nothing listens.
pub fn http_request(addr: &str, method: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
