//! Row-wise softmax over memory logits (paper eq. 4) and its backward pass.
//!
//! Saturated tails underflow to subnormal floats, which are very slow on x86 (SPEC failure
//! 4): anything below the smallest normal float is flushed to zero. The log guard of
//! L_KL / S_KL keeps `log(w + guard)` finite for those zeros.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis, Zip};

use crate::real::Real;

/// Softmax of one row in place, with flush-to-zero of subnormal results.
#[inline]
pub fn softmax_row_inplace<F: Real>(mut row: ArrayViewMut1<F>) {
    let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
    let mut sum = F::zero();
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = F::one() / sum;
    let tiny = F::min_positive_value();
    for v in row.iter_mut() {
        let w = *v * inv;
        *v = if w < tiny { F::zero() } else { w };
    }
}

/// Row-wise softmax of `logits` in place.
pub fn softmax_inplace<F: Real>(logits: &mut Array2<F>) {
    for row in logits.axis_iter_mut(Axis(0)) {
        softmax_row_inplace(row);
    }
}

/// Backward of softmax: `dd_j = w_j (dw_j - sum_k dw_k w_k)`, row by row.
pub fn softmax_backward<F: Real>(w: ArrayView2<F>, dw: ArrayView2<F>) -> Array2<F> {
    let mut dd = Array2::zeros(w.raw_dim());
    Zip::from(dd.rows_mut())
        .and(w.rows())
        .and(dw.rows())
        .for_each(|out, wr, dr| softmax_backward_row(wr, dr, out));
    dd
}

/// One row of [`softmax_backward`], into `out`.
#[inline]
pub fn softmax_backward_row<F: Real>(
    w: ArrayView1<F>,
    dw: ArrayView1<F>,
    mut out: ArrayViewMut1<F>,
) {
    let dot: F = w.iter().zip(dw.iter()).map(|(&a, &b)| a * b).sum();
    Zip::from(&mut out)
        .and(&w)
        .and(&dw)
        .for_each(|o, &wv, &dv| *o = wv * (dv - dot));
}
