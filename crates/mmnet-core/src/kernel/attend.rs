//! One row of memory addressing for scoring, fused: softmax (eq. 4), S_sum (eq. 17),
//! S_KL (eq. 18) and the shrunk, renormalised read-out weights (eqs. 5-6), in three short
//! passes over the row instead of four full-matrix passes and their temporaries.
//!
//! It computes exactly what `softmax`, `attention_scores` and `shrink_forward` compute, in
//! the same order of operations where it matters (flush-to-zero of subnormal weights, the
//! log guard), with one change of form: `ln(w + guard)` is taken in the log domain,
//! `(l - max) - ln(sum)`, whenever `w` is large enough that the guard cannot change it in
//! f32. That drops the logarithm for the weights that carry the mass, and is closer to the
//! exact value than the log of a rounded quotient.

/// Weights at or above this take the log-domain path: `guard / w <= 1e-7` for the default
/// guard of 1e-12, below f32's resolution of a logarithm of that size.
const LOG_DOMAIN_FROM: f32 = 1e-5;

/// Renormalisation floor, as in `shrink_forward`.
const NORM_FLOOR: f32 = 1e-12;

/// Constants of the addressing step, converted once per model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttendParams {
    /// K: the first `k` items are the normal memory M_u.
    pub k: usize,
    /// Log guard of S_KL.
    pub guard: f32,
    /// Shrinkage threshold gamma.
    pub gamma: f32,
    /// Shrinkage epsilon.
    pub eps: f32,
}

/// Addresses one row. `logits` (length m) holds `z M^T` on entry and `l - max` on return;
/// `w_hat` (length m) receives the read-out weights. Returns `(S_sum, M_l mass, S_KL)`.
#[inline]
pub fn attend_row(logits: &mut [f32], w_hat: &mut [f32], a: &AttendParams) -> (f32, f32, f32) {
    let m = logits.len();
    debug_assert_eq!(w_hat.len(), m);
    let max = logits.iter().fold(f32::NEG_INFINITY, |acc, &v| acc.max(v));
    let mut sum = 0.0f32;
    for (l, e) in logits.iter_mut().zip(w_hat.iter_mut()) {
        *l -= max;
        *e = l.exp();
        sum += *e;
    }
    let inv = 1.0 / sum;
    let ln_sum = sum.ln();
    let mut s_sum = 0.0f32;
    let mut m_l = 0.0f32;
    let mut logs = 0.0f32;
    let mut norm = 0.0f32;
    for (j, (&d, e)) in logits.iter().zip(w_hat.iter_mut()).enumerate() {
        let mut w = *e * inv;
        if w < f32::MIN_POSITIVE {
            w = 0.0;
        }
        if j < a.k {
            s_sum += w;
        } else {
            m_l += w;
        }
        logs += if w >= LOG_DOMAIN_FROM {
            d - ln_sum
        } else {
            (w + a.guard).ln()
        };
        let u = w - a.gamma;
        let shrunk = if u > 0.0 { u * w / (u + a.eps) } else { 0.0 };
        norm += shrunk;
        *e = shrunk;
    }
    let inv_norm = 1.0 / norm.max(NORM_FLOOR);
    for v in w_hat.iter_mut() {
        *v *= inv_norm;
    }
    let s_kl = -(logs / m as f32) - (m as f32).ln();
    (s_sum, m_l, s_kl)
}
