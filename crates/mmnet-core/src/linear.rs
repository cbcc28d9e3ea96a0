//! Bias-free linear layer and ReLU (every Linear in the reference MCM code is bias-free).
//!
//! Weights use PyTorch's layout, `out x in`, so the safetensors file loads unchanged into
//! `torch.nn.Linear(in, out, bias=False)`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip, linalg::general_mat_mul};

use crate::real::Real;

/// `y = x W^T` for `x: B x in`, `w: out x in`.
pub fn linear_forward<F: Real>(x: ArrayView2<F>, w: ArrayView2<F>) -> Array2<F> {
    x.dot(&w.t())
}

/// `y = x W^T` into a caller-owned buffer (no allocation).
pub fn linear_forward_into<F: Real>(x: ArrayView2<F>, w: ArrayView2<F>, y: &mut ArrayViewMut2<F>) {
    general_mat_mul(F::one(), &x, &w.t(), F::zero(), y);
}

/// Backward of `y = x W^T`: returns `dx = dy W` and adds `dy^T x` to `dw`.
pub fn linear_backward<F: Real>(
    x: ArrayView2<F>,
    w: ArrayView2<F>,
    dy: ArrayView2<F>,
    dw: &mut Array2<F>,
) -> Array2<F> {
    general_mat_mul(F::one(), &dy.t(), &x, F::one(), dw);
    dy.dot(&w)
}

/// Weight gradient only, for the first layer where `dx` is not needed.
pub fn linear_backward_weight<F: Real>(x: ArrayView2<F>, dy: ArrayView2<F>, dw: &mut Array2<F>) {
    general_mat_mul(F::one(), &dy.t(), &x, F::one(), dw);
}

/// ReLU in place.
pub fn relu_inplace<F: Real>(a: &mut Array2<F>) {
    a.mapv_inplace(|v| if v > F::zero() { v } else { F::zero() });
}

/// Backward of ReLU given its *output* `h` (h > 0 exactly where the input was > 0):
/// zeroes `dh` where the unit was inactive.
pub fn relu_backward_inplace<F: Real>(h: ArrayView2<F>, dh: ArrayViewMut2<F>) {
    Zip::from(dh).and(&h).for_each(|d, &hv| {
        if hv <= F::zero() {
            *d = F::zero();
        }
    });
}
