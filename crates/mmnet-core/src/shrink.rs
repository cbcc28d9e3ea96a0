//! Hard shrinkage (paper eq. 5) and L1 renormalisation (eq. 6), MemAE's form:
//! `w~ = max(w - g, 0) * w / (|w - g| + eps)`, `w^ = w~ / sum(w~)`.

use ndarray::{Array2, ArrayView2, Axis, Zip};

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
    let (g, eps, floor) = (F::c(g), F::c(eps), F::c(NORM_FLOOR));
    let mut w_hat = w.mapv(|v| shrink(v, g, eps));
    let mut norm = Vec::with_capacity(w.nrows());
    for mut row in w_hat.axis_iter_mut(Axis(0)) {
        let s = row.sum().max(floor);
        row.mapv_inplace(|v| v / s);
        norm.push(s);
    }
    Shrunk { w_hat, norm }
}

/// Backward: given `dL/dw^`, returns `dL/dw` (through renormalisation and shrinkage).
pub fn shrink_backward<F: Real>(
    w: ArrayView2<F>,
    shrunk: &Shrunk<F>,
    dw_hat: ArrayView2<F>,
    g: f64,
    eps: f64,
) -> Array2<F> {
    let (g, eps, floor) = (F::c(g), F::c(eps), F::c(NORM_FLOOR));
    let mut dw = Array2::zeros(w.raw_dim());
    Zip::from(dw.rows_mut())
        .and(w.rows())
        .and(shrunk.w_hat.rows())
        .and(dw_hat.rows())
        .and(&ndarray::ArrayView1::from(&shrunk.norm[..]))
        .for_each(|mut out, wr, hr, dr, &s| {
            // w^_j = w~_j / s  =>  dL/dw~_j = (dL/dw^_j - sum_k dL/dw^_k w^_k) / s,
            // unless the floor was active (then s does not depend on w~).
            let dot: F = if s > floor {
                hr.iter().zip(dr.iter()).map(|(&a, &b)| a * b).sum()
            } else {
                F::zero()
            };
            Zip::from(&mut out)
                .and(&wr)
                .and(&dr)
                .for_each(|o, &wv, &dv| *o = (dv - dot) / s * shrink_grad(wv, g, eps));
        });
    dw
}
