//! The three loss terms of eq. 11 and their gradients.
//!
//! Reductions follow SPEC: L_rec (eq. 12) and L_mask (eq. 14) are *sums* over the batch rows,
//! L_KL (eq. 16) is the *mean* over rows of `sum_j log(w_ij + guard)`. Averaging every term
//! makes L_KL relatively B times stronger and training collapses (SPEC failure 1).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};

use crate::real::Real;

/// Loss values of one batch, in f64 for reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossParts {
    /// L_rec, summed over rows.
    pub rec: f64,
    /// L_mask, summed over rows.
    pub mask: f64,
    /// L_KL, averaged over rows (a negative number: sum of log weights).
    pub kl: f64,
    /// `rec + lambda_m mask + lambda_KL kl`.
    pub total: f64,
}

/// Reconstruction error e_i = ||x^_i - x_i||_2 (eq. 13; not squared).
pub fn reconstruction_error<F: Real>(x: ArrayView2<F>, x_hat: ArrayView2<F>) -> Vec<F> {
    x.rows()
        .into_iter()
        .zip(x_hat.rows())
        .map(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .map(|(&p, &q)| (q - p) * (q - p))
                .sum::<F>()
                .sqrt()
        })
        .collect()
}

/// L_rec (eq. 12): `sum_i (1 - l_i) e_i + l_i max(0, a - e_i)`.
pub fn rec_loss<F: Real>(err: &[F], labeled: &[bool], margin: f64) -> F {
    let a = F::c(margin);
    err.iter()
        .zip(labeled)
        .map(|(&e, &l)| if l { (a - e).max(F::zero()) } else { e })
        .sum()
}

/// dL_rec/de_i: +1 for unlabeled rows, -1 for labeled rows inside the margin, else 0.
pub fn rec_loss_grad<F: Real>(e: F, labeled: bool, margin: f64) -> F {
    if !labeled {
        F::one()
    } else if F::c(margin) - e > F::zero() {
        -F::one()
    } else {
        F::zero()
    }
}

/// `g_i / e_i`, the factor of `x^_i - x_i` in dL_rec/dx^ (zero where e_i = 0).
#[inline]
pub fn rec_grad_scale<F: Real>(e: F, labeled: bool, margin: f64) -> F {
    if e > F::zero() {
        rec_loss_grad(e, labeled, margin) / e
    } else {
        F::zero()
    }
}

/// dL_rec/dx^ for the whole batch: `g_i (x^_i - x_i) / e_i` (zero where e_i = 0).
pub fn rec_loss_backward<F: Real>(
    x: ArrayView2<F>,
    x_hat: ArrayView2<F>,
    err: &[F],
    labeled: &[bool],
    margin: f64,
) -> Array2<F> {
    let mut d = &x_hat - &x;
    for ((mut row, &e), &l) in d.axis_iter_mut(Axis(0)).zip(err).zip(labeled) {
        let s = rec_grad_scale(e, l, margin);
        row.mapv_inplace(|v| v * s);
    }
    d
}

/// L_mask (eq. 14): unlabeled rows pay their weight on M_l (items `k..`), labeled rows their
/// weight on M_u (items `..k`). `w` is the pre-shrink softmax.
pub fn mask_loss<F: Real>(w: ArrayView2<F>, labeled: &[bool], k: usize) -> F {
    w.rows()
        .into_iter()
        .zip(labeled)
        .map(|(row, &l)| row.slice(ndarray::s![foreign_part(l, k, row.len())]).sum())
        .sum()
}

/// The memory items a row must not address (L_mask's support, hard masking's -inf): M_l
/// (items `k..m`) for an unlabeled row, M_u (items `..k`) for a labeled one.
pub fn foreign_part(labeled: bool, k: usize, m: usize) -> std::ops::Range<usize> {
    if labeled { 0..k } else { k..m }
}

/// Adds `scale * dL_mask/dw` to `dw`.
pub fn mask_loss_backward<F: Real>(mut dw: ArrayViewMut2<F>, labeled: &[bool], k: usize, scale: F) {
    for (mut row, &l) in dw.axis_iter_mut(Axis(0)).zip(labeled) {
        let part = foreign_part(l, k, row.len());
        row.slice_mut(ndarray::s![part])
            .into_iter()
            .for_each(|v| *v += scale);
    }
}

/// L_KL (eq. 16), guarded: `mean_i sum_j log(w_ij + guard)`.
pub fn kl_loss<F: Real>(w: ArrayView2<F>, guard: f64) -> F {
    let g = F::c(guard);
    let b = F::c(w.nrows().max(1) as f64);
    w.iter().map(|&v| (v + g).ln()).sum::<F>() / b
}

/// Adds `scale * dL_KL/dw = scale / (B (w + guard))` to `dw`.
pub fn kl_loss_backward<F: Real>(dw: ArrayViewMut2<F>, w: ArrayView2<F>, guard: f64, scale: F) {
    let g = F::c(guard);
    let s = scale / F::c(w.nrows().max(1) as f64);
    Zip::from(dw).and(&w).for_each(|d, &v| *d += s / (v + g));
}
