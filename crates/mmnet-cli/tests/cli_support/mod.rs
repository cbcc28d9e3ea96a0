//! Running the `mmnet` binary from integration tests (cli.rs, cluster.rs).

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::{Command, Output};

/// The binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mmnet")
}

/// `mmnet ARGS`, its output whatever the exit status.
pub fn mmnet(args: &[&str]) -> Output {
    mmnet_env(args, &[])
}

/// `mmnet ARGS` with extra environment variables.
pub fn mmnet_env(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run mmnet")
}

/// `mmnet ARGS`, which must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    ok_env(args, &[])
}

/// [`ok`] with extra environment variables.
pub fn ok_env(args: &[&str], env: &[(String, String)]) -> String {
    let out = mmnet_env(args, env);
    assert!(
        out.status.success(),
        "mmnet {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A path as the `&str` an argument list takes.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
