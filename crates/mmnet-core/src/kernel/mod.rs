//! The scoring kernel (issue 6): what every Kafka batch and SQL query runs.
//!
//! The ndarray forward pass in [`crate::network`] keeps every activation for the backward
//! pass and allocates each of them; scoring needs none of that. This module computes the
//! same S_sum, S_KL and MSE with weights packed once per model ([`packed`]), addressing
//! fused per row ([`attend`]) and scratch reused across calls ([`scorer`]). Tests check it
//! against the reference forward pass.

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod attend;
pub mod bf16;
pub mod packed;
pub mod peak;
pub mod scorer;
pub mod training;

/// Grows a scratch buffer to at least `len` (never shrinks: steady state allocates nothing).
pub(crate) fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

pub use bf16::{Bf16Kernel, Precision};
pub use scorer::{CHUNK, PARALLEL_FROM, Prescale, ScoreOut, Scorer, Threads};
