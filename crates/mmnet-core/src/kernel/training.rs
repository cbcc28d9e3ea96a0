//! One training step (forward, loss of eq. 11, backward) on packed weights, with every
//! buffer kept across steps: after the first step of a run nothing is allocated.
//!
//! It computes what `network::forward_train`, `network::loss` and `network::backward` compute
//! (tests compare the two, and those are checked by finite differences), with every matrix
//! product on the micro-kernel of [`super::packed`]:
//! - `y = x W^T` (forward) and `dx = dy W` (backward) on `W` or `W^T` packed once per step;
//! - weight gradients `dW = dy^T x` on the two activations as they lie in memory
//!   (`matmul_tn`), the reduction over the batch as the kernel's inner loop.
//!
//! Threads split the *batch*: every loss term is a sum over rows (L_KL's 1/B uses the whole
//! batch's B), so each thread runs forward and backward on its shard of rows, single-
//! threaded and cache-resident, and the shards' gradients are added at the end. One fork
//! and join per step instead of one per matrix product, and the row-wise work (softmax,
//! shrinkage, their backward passes, ReLU masks) runs in parallel too.
//!
//! Why not ndarray here: its products go through matrixmultiply, which packs both operands
//! into a freshly allocated buffer per call and, with threading on, spins waiting threads
//! (the profile of a step: 54 % in its kernel, 10 % packing, 5 % `sched_yield`).

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::grow;
use super::packed::{NR, PackedLinear, PackedNetwork, matmul, matmul_tn};
use crate::linear::relu_backward_inplace;
use crate::loss::{
    LossParts, foreign_part, kl_loss, kl_loss_backward, mask_loss, mask_loss_backward,
    rec_grad_scale, rec_loss,
};
use crate::network::Weights;
use crate::params::{MaskStrategy, ModelParams};
use crate::shrink::{shrink_backward_row, shrink_row};
use crate::softmax::{softmax_backward_row, softmax_row_inplace};

/// Fewest rows per shard: below this a thread's share is too small to pay for the fork.
const MIN_SHARD_ROWS: usize = 64;

/// The weights of one step, packed for the forward products (`W`) and for the backward
/// products `dx = dy W` (`W^T`).
#[derive(Debug, Default)]
struct Packed {
    net: PackedNetwork,
    enc2_t: PackedLinear,
    dec1_t: PackedLinear,
    dec2_t: PackedLinear,
}

/// Activations and gradients of one shard of rows.
#[derive(Debug, Default)]
struct Shard {
    x: Vec<f32>,
    h1: Vec<f32>,
    z: Vec<f32>,
    w: Vec<f32>,
    w_hat: Vec<f32>,
    norm: Vec<f32>,
    z_hat: Vec<f32>,
    h3: Vec<f32>,
    x_hat: Vec<f32>,
    dx_hat: Vec<f32>,
    dh3: Vec<f32>,
    dz_hat: Vec<f32>,
    dw_hat: Vec<f32>,
    dw: Vec<f32>,
    dd: Vec<f32>,
    dz: Vec<f32>,
    dh1: Vec<f32>,
    prod: Vec<f32>,
    /// This shard's share of dL/dθ.
    grads: Option<Weights<f32>>,
}

/// Packed weights and per-thread buffers of one training step, reused by the next.
#[derive(Debug, Default)]
pub struct StepScratch {
    packed: Packed,
    shards: Vec<Shard>,
}

/// `rows x cols` view of a row-major buffer with row stride `stride`.
fn view(buf: &[f32], rows: usize, cols: usize, stride: usize) -> ArrayView2<'_, f32> {
    let len = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    };
    ArrayView2::from_shape((rows, cols).strides((stride, 1)), &buf[..len])
        .expect("scratch buffers are sized for their views")
}

/// `rows x cols` mutable view of a row-major buffer with row stride `stride`.
fn view_mut(buf: &mut [f32], rows: usize, cols: usize, stride: usize) -> ArrayViewMut2<'_, f32> {
    let len = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    };
    ArrayViewMut2::from_shape((rows, cols).strides((stride, 1)), &mut buf[..len])
        .expect("scratch buffers are sized for their views")
}

/// `out = a^T b` (or `out += a^T b`): `a` is `n x p`, `b` is `n x q`, both row-major with
/// strides (`b`'s rows readable up to `q` rounded up to a panel); `out` is `p x q`. The
/// batch dimension `n` is the kernel's inner loop; nothing is transposed or packed.
#[allow(clippy::too_many_arguments)]
fn gemm_tn(
    a: &[f32],
    a_stride: usize,
    p: usize,
    b: &[f32],
    b_stride: usize,
    q: usize,
    n: usize,
    prod: &mut Vec<f32>,
    mut out: ArrayViewMut2<f32>,
    accumulate: bool,
) {
    let qs = q.next_multiple_of(NR);
    grow(prod, p * qs);
    matmul_tn(a, a_stride, p, b, b_stride, q, n, prod, qs);
    for (r, mut row) in out.rows_mut().into_iter().enumerate() {
        let src = &prod[r * qs..r * qs + q];
        for (o, &v) in row.iter_mut().zip(src) {
            *o = if accumulate { *o + v } else { v };
        }
    }
}

impl Packed {
    fn pack(&mut self, wt: &Weights<f32>) {
        self.net.pack_into(wt);
        self.enc2_t.pack_into(wt.enc2.t());
        self.dec1_t.pack_into(wt.dec1.t());
        self.dec2_t.pack_into(wt.dec2.t());
    }
}

impl StepScratch {
    /// Forward pass, loss (eq. 11) and backward pass of one batch (`labeled[i]` is l_i),
    /// writing dL/dθ into `grads` (overwriting). Returns the loss parts, as
    /// `network::loss` does. The gradients are not meaningful when the loss is not finite.
    pub fn forward_backward(
        &mut self,
        wt: &Weights<f32>,
        x: ArrayView2<f32>,
        labeled: &[bool],
        p: &ModelParams,
        grads: &mut Weights<f32>,
    ) -> LossParts {
        let (n, d) = x.dim();
        assert_eq!(labeled.len(), n, "one label flag per row");
        assert_eq!(d, wt.input_dim(), "input width");
        self.packed.pack(wt);
        let shards = (n / MIN_SHARD_ROWS).clamp(1, rayon::current_num_threads().max(1));
        let rows = n.div_ceil(shards);
        while self.shards.len() < shards {
            self.shards.push(Shard::default());
        }
        let packed = &self.packed;
        // Every shard writes its own gradients; no per-step allocation (a reduce, not a
        // collect, and each shard's buffers persist).
        let [rec, mask, kl] = self.shards[..shards]
            .par_iter_mut()
            .enumerate()
            .map(|(i, shard)| {
                let (r0, r1) = (i * rows, ((i + 1) * rows).min(n));
                shard.run(
                    packed,
                    wt,
                    x.slice(ndarray::s![r0..r1, ..]),
                    &labeled[r0..r1],
                    n,
                    p,
                )
            })
            .reduce(|| [0.0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
        for (i, shard) in self.shards[..shards].iter().enumerate() {
            let g = shard
                .grads
                .as_ref()
                .expect("every shard that ran has gradients");
            for (a, b) in grads.tensors_mut().into_iter().zip(g.tensors()) {
                if i == 0 {
                    a.assign(b);
                } else {
                    *a += b;
                }
            }
        }
        LossParts {
            rec,
            mask,
            kl,
            total: p.total_loss(rec, mask, kl),
        }
    }
}

impl Shard {
    /// Forward and backward of rows `x` of a batch of `batch` rows, on this thread. Writes
    /// this shard's share of dL/dθ into its `grads` and returns its share of (L_rec, L_mask,
    /// L_KL); both add up over shards.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        pk: &Packed,
        wt: &Weights<f32>,
        x: ArrayView2<f32>,
        labeled: &[bool],
        batch: usize,
        p: &ModelParams,
    ) -> [f64; 3] {
        let s = self;
        let stale = s.grads.as_ref().is_none_or(|g| {
            g.tensors()
                .iter()
                .zip(wt.tensors())
                .any(|(a, b)| a.dim() != b.dim())
        });
        if stale {
            s.grads = Some(wt.zeros_like());
        }
        let grads = s.grads.as_mut().expect("set just above");
        let (n, d) = x.dim();
        let (h, c, m, k) = (
            wt.enc1.nrows(),
            wt.enc2.nrows(),
            wt.memory.nrows(),
            p.memory_normal,
        );
        let (hs, zs, ms) = (
            pk.net.enc1.out_padded(),
            pk.net.enc2.out_padded(),
            pk.net.address.out_padded(),
        );
        let (rs, ds, xs) = (
            pk.net.read.out_padded(),
            pk.net.dec1.out_padded(),
            pk.net.dec2.out_padded(),
        );
        let (dh3s, dzhs, dh1s) = (
            pk.dec2_t.out_padded(),
            pk.dec1_t.out_padded(),
            pk.enc2_t.out_padded(),
        );
        // The input with rows padded to whole panels: `enc1`'s weight gradient reads it in
        // panels of NR columns.
        let xp = d.next_multiple_of(NR);
        for (buf, width) in [
            (&mut s.x, xp),
            (&mut s.h1, hs),
            (&mut s.z, zs),
            (&mut s.w, ms),
            (&mut s.w_hat, ms),
            (&mut s.z_hat, rs),
            (&mut s.h3, ds),
            (&mut s.x_hat, xs),
            (&mut s.dx_hat, d),
            (&mut s.dh3, dh3s),
            (&mut s.dz_hat, dzhs),
            (&mut s.dw_hat, ms),
            (&mut s.dw, m),
            (&mut s.dd, m),
            (&mut s.dz, rs),
            (&mut s.dh1, dh1s),
        ] {
            grow(buf, n * width);
        }
        s.norm.resize(n, 0.0);
        for (dst, row) in s.x.chunks_exact_mut(xp).zip(x.rows()) {
            for (o, &v) in dst.iter_mut().zip(row.iter()) {
                *o = v;
            }
        }
        let x: &[f32] = &s.x;

        // Forward.
        matmul(x, xp, n, &pk.net.enc1, &mut s.h1, hs, true);
        matmul(&s.h1, hs, n, &pk.net.enc2, &mut s.z, zs, false);
        matmul(&s.z, zs, n, &pk.net.address, &mut s.w, ms, false);
        let hard = p.mask == MaskStrategy::Hard;
        let (mut mask_sum, mut log_sum) = (0.0f64, 0.0f64);
        for (r, &lab) in labeled.iter().enumerate() {
            let row = &mut s.w[r * ms..r * ms + m];
            if hard {
                row[foreign_part(lab, k, m)].fill(f32::NEG_INFINITY);
            }
            softmax_row_inplace(ArrayViewMut1::from(&mut *row));
            // L_mask and L_KL's sums of this row while it is in cache; `kl_loss` divides by
            // the rows it is given (one), the batch's 1/B is applied below.
            let one = view(row, 1, m, m);
            mask_sum += mask_loss(one, &labeled[r..=r], k) as f64;
            log_sum += kl_loss(one, p.log_guard) as f64;
            let out = ArrayViewMut1::from(&mut s.w_hat[r * ms..r * ms + m]);
            s.norm[r] = shrink_row(
                ArrayView1::from(&*row),
                out,
                p.shrink_threshold,
                p.shrink_eps,
            );
        }
        matmul(&s.w_hat, ms, n, &pk.net.read, &mut s.z_hat, rs, false);
        matmul(&s.z_hat, rs, n, &pk.net.dec1, &mut s.h3, ds, true);
        matmul(&s.h3, ds, n, &pk.net.dec2, &mut s.x_hat, xs, false);
        // L_rec (eq. 12) and its gradient in one pass over the rows.
        let mut rec_sum = 0.0f64;
        for r in 0..n {
            let (a, b) = (&x[r * xp..r * xp + d], &s.x_hat[r * xs..r * xs + d]);
            let e = a
                .iter()
                .zip(b)
                .map(|(&u, &v)| (v - u) * (v - u))
                .sum::<f32>()
                .sqrt();
            rec_sum += rec_loss(&[e], &labeled[r..=r], p.margin) as f64;
            let scale = rec_grad_scale(e, labeled[r], p.margin);
            for ((o, &u), &v) in s.dx_hat[r * d..r * d + d].iter_mut().zip(a).zip(b) {
                *o = (v - u) * scale;
            }
        }

        // Backward: decoder.
        let prod = &mut s.prod;
        gemm_tn(
            &s.dx_hat,
            d,
            d,
            &s.h3,
            ds,
            h,
            n,
            prod,
            grads.dec2.view_mut(),
            false,
        );
        matmul(&s.dx_hat, d, n, &pk.dec2_t, &mut s.dh3, dh3s, false);
        relu_backward_inplace(view(&s.h3, n, h, ds), view_mut(&mut s.dh3, n, h, dh3s));
        gemm_tn(
            &s.dh3,
            dh3s,
            h,
            &s.z_hat,
            rs,
            c,
            n,
            prod,
            grads.dec1.view_mut(),
            false,
        );
        matmul(&s.dh3, dh3s, n, &pk.dec1_t, &mut s.dz_hat, dzhs, false);
        // Read-out z^ = w^ M.
        matmul(
            &s.dz_hat,
            dzhs,
            n,
            &pk.net.address,
            &mut s.dw_hat,
            ms,
            false,
        );
        gemm_tn(
            &s.w_hat,
            ms,
            m,
            &s.dz_hat,
            dzhs,
            c,
            n,
            prod,
            grads.memory.view_mut(),
            false,
        );
        // Shrinkage, the losses on w, softmax: row by row.
        let lambda_mask = p.mask.effective_lambda_mask(p.lambda_mask) as f32;
        // `kl_loss_backward` divides by the rows it is given; the batch is `batch` rows.
        let kl_scale = p.lambda_kl as f32 / batch as f32;
        for r in 0..n {
            let w = ArrayView1::from(&s.w[r * ms..r * ms + m]);
            let dw = &mut s.dw[r * m..r * m + m];
            shrink_backward_row(
                w,
                ArrayView1::from(&s.w_hat[r * ms..r * ms + m]),
                s.norm[r],
                ArrayView1::from(&s.dw_hat[r * ms..r * ms + m]),
                ArrayViewMut1::from(&mut *dw),
                p.shrink_threshold,
                p.shrink_eps,
            );
            let lab = &labeled[r..=r];
            mask_loss_backward(view_mut(dw, 1, m, m), lab, k, lambda_mask);
            kl_loss_backward(
                view_mut(dw, 1, m, m),
                view(&s.w[r * ms..], 1, m, ms),
                p.log_guard,
                kl_scale,
            );
            softmax_backward_row(
                w,
                ArrayView1::from(&*dw),
                ArrayViewMut1::from(&mut s.dd[r * m..r * m + m]),
            );
        }
        // Addressing d = z M^T.
        matmul(&s.dd, m, n, &pk.net.read, &mut s.dz, rs, false);
        gemm_tn(
            &s.dd,
            m,
            m,
            &s.z,
            zs,
            c,
            n,
            prod,
            grads.memory.view_mut(),
            true,
        );
        // Encoder.
        matmul(&s.dz, rs, n, &pk.enc2_t, &mut s.dh1, dh1s, false);
        relu_backward_inplace(view(&s.h1, n, h, hs), view_mut(&mut s.dh1, n, h, dh1s));
        gemm_tn(
            &s.dz,
            rs,
            c,
            &s.h1,
            hs,
            h,
            n,
            prod,
            grads.enc2.view_mut(),
            false,
        );
        gemm_tn(
            &s.dh1,
            dh1s,
            h,
            x,
            xp,
            d,
            n,
            prod,
            grads.enc1.view_mut(),
            false,
        );
        [rec_sum, mask_sum, log_sum / batch as f64]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{backward, forward_train, loss};
    use ndarray::Array2;
    use rand::SeedableRng;

    /// The packed step against the reference forward/loss/backward (which the gradient
    /// checks in tests/gradcheck.rs hold to finite differences), for each mask strategy and
    /// batch sizes that leave partial row blocks and panels, on one shard and on several
    /// (in a pool of 3 threads, so the split does not depend on the machine).
    #[test]
    fn matches_the_reference_step() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(check_against_reference);
    }

    fn check_against_reference() {
        for (mask, n, d) in [
            (MaskStrategy::Soft, 7, 13),
            (MaskStrategy::Soft, 100, 40),
            (MaskStrategy::Hard, 50, 29),
            (MaskStrategy::None, 64, 17),
            (MaskStrategy::Soft, 200, 21),
            (MaskStrategy::Hard, 130, 9),
        ] {
            let p = ModelParams {
                hidden_dim: 24,
                latent_dim: 10,
                memory_normal: 6,
                memory_anomaly: 5,
                mask,
                ..Default::default()
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
            let w: Weights<f32> = Weights::init(d, &p, &mut rng);
            let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * 17 + j * 5) % 11) as f32 / 11.0);
            let labeled: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
            let fw = forward_train(&w, x.view(), &labeled, &p);
            let want_loss = loss(&fw, &labeled, &p);
            let mut want = w.zeros_like();
            backward(&w, x.view(), &labeled, &fw, &p, &mut want);
            let mut scratch = StepScratch::default();
            let mut got = w.zeros_like();
            // Twice: the second step reuses every buffer.
            for _ in 0..2 {
                let l = scratch.forward_backward(&w, x.view(), &labeled, &p, &mut got);
                for (a, b) in [
                    (l.rec, want_loss.rec),
                    (l.mask, want_loss.mask),
                    (l.kl, want_loss.kl),
                ] {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{mask:?} loss {a} vs {b}"
                    );
                }
                for (name, (g, r)) in crate::network::TENSOR_NAMES
                    .iter()
                    .zip(got.tensors().into_iter().zip(want.tensors()))
                {
                    let scale = r.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
                    let worst = g
                        .iter()
                        .zip(r.iter())
                        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        worst <= 1e-4 * scale,
                        "{mask:?} n={n} {name}: {worst} vs scale {scale}"
                    );
                }
            }
        }
    }
}
