//! # mmnet-fuzz
//!
//! One function per decoder of untrusted bytes: what a Kafka message, a model directory, a
//! pipeline file or a table can put in front of mmnet. Each takes arbitrary bytes, runs the
//! real decoder, and checks what must hold whatever the input: no panic, no hang, no
//! allocation the input's size does not justify, and for the message decoders the
//! invariants the operator relies on. An `Err` is a correct answer to bad bytes.
//!
//! The same targets run three ways: coverage-guided by AFL++ (`make fuzz`, the `fuzz/`
//! crate with afl.rs, on the stable toolchain), as property tests over arbitrary bytes and
//! mutated seeds in `cargo test` (tests/fuzz_targets.rs), and as regression tests replaying
//! every input a fuzzer ever found (`fuzz/regressions/<target>/`).

pub mod seeds;
pub mod targets;

pub use targets::{TARGETS, Target};
