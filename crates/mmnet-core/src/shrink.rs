//! Hard shrinkage (paper eq. 5) and L1 renormalisation (eq. 6), MemAE's form:
//! `w~ = max(w - g, 0) * w / (|w - g| + eps)`, `w^ = w~ / sum(w~)`.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Zip};

use crate::real::Real;

/// Floor of the renormalisation denominator (as `F.normalize`'s 1e-12), unreachable while
/// gamma < 1/(K+L) but kept so no input can divide by zero.
const NORM_FLOOR: f64 = 1e-12;

/// Shrinkage of one weight.
#[inline]
fn shrink<F: Real>(w: F, g: F, eps: F) -> F {
    let u = w - g;
    if u > F::zero() {
        u * w / (u + eps)
    } else {
        F::zero()
    }
}

/// Derivative of [`shrink`] with respect to `w`. For `u = w - g > 0`:
/// `d/dw [u w / (u + eps)] = (u^2 + u eps + w eps) / (u + eps)^2`; zero below the threshold.
#[inline]
fn shrink_grad<F: Real>(w: F, g: F, eps: F) -> F {
    let u = w - g;
    if u > F::zero() {
        let den = u + eps;
        (u * u + u * eps + w * eps) / (den * den)
    } else {
        F::zero()
    }
}

/// Output of the shrink + renormalise step, kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Shrunk<F> {
    /// Renormalised weights w^ (B x M).
    pub w_hat: Array2<F>,
    /// Row sums of the shrunk weights, sum(w~) (floored), one per row.
    pub norm: Vec<F>,
}

/// Forward: shrinks and renormalises each row of `w`.
pub fn shrink_forward<F: Real>(w: ArrayView2<F>, g: f64, eps: f64) -> Shrunk<F> {
    let mut w_hat = Array2::zeros(w.raw_dim());
    let norm = Zip::from(w.rows())
        .and(w_hat.rows_mut())
        .map_collect(|wr, out| shrink_row(wr, out, g, eps))
        .to_vec();
    Shrunk { w_hat, norm }
}

/// One row of [`shrink_forward`]: writes w^ into `out`, returns the floored sum(w~).
#[inline]
pub fn shrink_row<F: Real>(w: ArrayView1<F>, mut out: ArrayViewMut1<F>, g: f64, eps: f64) -> F {
    let (g, eps, floor) = (F::c(g), F::c(eps), F::c(NORM_FLOOR));
    let mut sum = F::zero();
    Zip::from(&mut out).and(&w).for_each(|o, &v| {
        *o = shrink(v, g, eps);
        sum += *o;
    });
    let s = sum.max(floor);
    out.mapv_inplace(|v| v / s);
    s
}

/// Backward: given `dL/dw^`, returns `dL/dw` (through renormalisation and shrinkage).
pub fn shrink_backward<F: Real>(
    w: ArrayView2<F>,
    shrunk: &Shrunk<F>,
    dw_hat: ArrayView2<F>,
    g: f64,
    eps: f64,
) -> Array2<F> {
    let mut dw = Array2::zeros(w.raw_dim());
    Zip::from(dw.rows_mut())
        .and(w.rows())
        .and(shrunk.w_hat.rows())
        .and(dw_hat.rows())
        .and(&ndarray::ArrayView1::from(&shrunk.norm[..]))
        .for_each(|out, wr, hr, dr, &s| shrink_backward_row(wr, hr, s, dr, out, g, eps));
    dw
}

/// One row of [`shrink_backward`]: `dL/dw` into `out` from the row's w, w^, floored norm
/// and `dL/dw^`.
#[inline]
pub fn shrink_backward_row<F: Real>(
    w: ArrayView1<F>,
    w_hat: ArrayView1<F>,
    norm: F,
    dw_hat: ArrayView1<F>,
    mut out: ArrayViewMut1<F>,
    g: f64,
    eps: f64,
) {
    let (g, eps, floor) = (F::c(g), F::c(eps), F::c(NORM_FLOOR));
    // w^_j = w~_j / s  =>  dL/dw~_j = (dL/dw^_j - sum_k dL/dw^_k w^_k) / s,
    // unless the floor was active (then s does not depend on w~).
    let dot: F = if norm > floor {
        w_hat.iter().zip(dw_hat.iter()).map(|(&a, &b)| a * b).sum()
    } else {
        F::zero()
    };
    Zip::from(&mut out)
        .and(&w)
        .and(&dw_hat)
        .for_each(|o, &wv, &dv| *o = (dv - dot) / norm * shrink_grad(wv, g, eps));
}
