//! `y = x W^T` for the scoring path: the weight matrix packed once into column panels, a
//! register-blocked micro-kernel, and a run-time choice of instruction set.
//!
//! Why not `ndarray::dot` here: it calls matrixmultiply, which packs *both* operands and
//! allocates its packing buffer on every call. For a streaming micro-batch of one row that
//! copy of W costs as much as the product itself. The weights never change while a model
//! scores, so they are packed once (zero-padded to whole panels) and every call only reads.
//!
//! Layout: output columns are cut into panels of [`NR`]; panel `p` stores, for each input
//! `j`, the `NR` weights `W[p*NR .. p*NR+NR, j]` contiguously, so the micro-kernel streams
//! one panel front to back. The kernel keeps an `R x (P*NR)` block of outputs in registers
//! and, per input `j`, broadcasts `x[r, j]` and issues `R * P` fused multiply-adds.
//!
//! Instruction sets are picked at run time (`is_x86_feature_detected!`), so one binary runs
//! everywhere and still uses AVX2+FMA or AVX-512 where the CPU has them. The portable
//! fallback is the same code compiled without those features.

#![allow(unsafe_code)] // Only to call `#[target_feature]` functions after checking the CPU.

use ndarray::ArrayView2;

/// Output columns per panel: one AVX-512 register, two AVX2 registers of f32.
pub const NR: usize = 16;

/// A weight matrix `W` (`out x in`, PyTorch layout) packed for `y = x W^T`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedLinear {
    in_dim: usize,
    out_dim: usize,
    panels: usize,
    data: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (`out x in`). Output columns past `out` (up to the panel boundary) are zero.
    pub fn pack(w: ArrayView2<f32>) -> Self {
        let (out_dim, in_dim) = w.dim();
        let panels = out_dim.div_ceil(NR);
        let mut data = vec![0.0; panels * in_dim * NR];
        for ((o, j), &v) in w.indexed_iter() {
            data[((o / NR) * in_dim + j) * NR + o % NR] = v;
        }
        PackedLinear {
            in_dim,
            out_dim,
            panels,
            data,
        }
    }

    /// Inputs per row.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Outputs per row.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Outputs per row rounded up to whole panels: the width `matmul` writes.
    pub fn out_padded(&self) -> usize {
        self.panels * NR
    }

    fn panel(&self, p: usize) -> &[f32] {
        let len = self.in_dim * NR;
        &self.data[p * len..(p + 1) * len]
    }
}

/// `y[r, ..out_padded] = act(x[r, ..in] W^T)` for `r < rows`, with `act` = ReLU when
/// `relu`. `x` and `y` are row-major with strides `xs >= in` and `ys >= out_padded`.
///
/// # Panics
/// When a slice is too short for `rows` rows of its stride.
pub fn matmul(
    x: &[f32],
    xs: usize,
    rows: usize,
    w: &PackedLinear,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    if rows == 0 {
        return;
    }
    assert!(xs >= w.in_dim && ys >= w.out_padded(), "matmul strides");
    assert!(
        x.len() >= (rows - 1) * xs + w.in_dim && y.len() >= (rows - 1) * ys + w.out_padded(),
        "matmul buffers"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { matmul_avx512(x, xs, rows, w, y, ys, relu) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { matmul_avx2(x, xs, rows, w, y, ys, relu) };
        }
    }
    matmul_body::<false, 4, 1, 2>(x, xs, rows, w, y, ys, relu);
}

/// The instruction set `matmul` uses on this CPU (for benchmark reports).
pub fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
    }
    "portable"
}

#[cfg(target_arch = "x86_64")]
use x86::{matmul_avx2, matmul_avx512};

/// The x86 micro-kernels, written with intrinsics: the portable array code below is
/// correct but LLVM turned its accumulators into gathers and scatters through memory
/// (seen in the disassembly), which ran at ~2 GFLOP/s.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{NR, PackedLinear};

    /// Generates `$name`: blocks of 6 rows x `$pb` panels, then the leftover rows in one block
    /// (2 rows with `$p2` panels, 1 row with `$p1`: fewer rows need more panels in flight to
    /// hide the FMA latency), on vectors `$v` of which `$per` make one panel of [`NR`] floats.
    macro_rules! x86_matmul {
        ($name:ident, $panels:ident, $tile:ident, $feat:literal, $v:ty, $per:literal, $lanes:literal,
         $pb:literal, $p2:literal, $p1:literal, $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $max:ident) => {
            #[target_feature(enable = $feat)]
            pub(super) fn $name(
                x: &[f32],
                xs: usize,
                rows: usize,
                w: &PackedLinear,
                y: &mut [f32],
                ys: usize,
                relu: bool,
            ) {
                let mut r = 0;
                while r + 6 <= rows {
                    $panels::<6, $pb>(&x[r * xs..], xs, w, &mut y[r * ys..], ys, relu);
                    r += 6;
                }
                // The 1-5 leftover rows in one pass over the weights, not one pass per row
                // (batch 16 = 6 + 6 + 4 streams the weights three times, not six).
                let (x, y) = (&x[r * xs..], &mut y[r * ys..]);
                match rows - r {
                    5 => $panels::<5, $pb>(x, xs, w, y, ys, relu),
                    4 => $panels::<4, $pb>(x, xs, w, y, ys, relu),
                    3 => $panels::<3, $pb>(x, xs, w, y, ys, relu),
                    2 => $panels::<2, $p2>(x, xs, w, y, ys, relu),
                    1 => $panels::<1, $p1>(x, xs, w, y, ys, relu),
                    _ => {}
                }
            }

            #[target_feature(enable = $feat)]
            #[inline]
            fn $panels<const R: usize, const P: usize>(
                x: &[f32],
                xs: usize,
                w: &PackedLinear,
                y: &mut [f32],
                ys: usize,
                relu: bool,
            ) {
                let mut p = 0;
                while p + P <= w.panels {
                    $tile::<R, P>(x, xs, w, p, y, ys, relu);
                    p += P;
                }
                while p < w.panels {
                    $tile::<R, 1>(x, xs, w, p, y, ys, relu);
                    p += 1;
                }
            }

            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            fn $tile<const R: usize, const P: usize>(
                x: &[f32],
                xs: usize,
                w: &PackedLinear,
                p0: usize,
                y: &mut [f32],
                ys: usize,
                relu: bool,
            ) {
                let k = w.in_dim;
                let xr: [&[f32]; R] = std::array::from_fn(|r| &x[r * xs..r * xs + k]);
                let wp: [&[f32]; P] = std::array::from_fn(|p| w.panel(p0 + p));
                let mut acc: [[[$v; $per]; P]; R] = [[[$zero(); $per]; P]; R];
                for j in 0..k {
                    let mut wv: [[$v; $per]; P] = [[$zero(); $per]; P];
                    for p in 0..P {
                        let src = &wp[p][j * NR..j * NR + NR];
                        for h in 0..$per {
                            // SAFETY: `src` holds NR = $per * $lanes floats; unaligned load.
                            wv[p][h] = unsafe { $load(src.as_ptr().add(h * $lanes)) };
                        }
                    }
                    for r in 0..R {
                        let xv = $set1(xr[r][j]);
                        for p in 0..P {
                            for h in 0..$per {
                                acc[r][p][h] = $fmadd(xv, wv[p][h], acc[r][p][h]);
                            }
                        }
                    }
                }
                let zero = $zero();
                for (r, acc_r) in acc.iter().enumerate() {
                    for (p, acc_rp) in acc_r.iter().enumerate() {
                        let at = r * ys + (p0 + p) * NR;
                        let out = &mut y[at..at + NR];
                        for (h, &v) in acc_rp.iter().enumerate() {
                            // max(v, 0) is 0 for NaN too, like the scalar ReLU.
                            let v = if relu { $max(v, zero) } else { v };
                            // SAFETY: `out` holds NR = $per * $lanes floats; unaligned store.
                            unsafe { $store(out.as_mut_ptr().add(h * $lanes), v) };
                        }
                    }
                }
            }
        };
    }

    // 6 rows x 1 panel: 12 ymm accumulators + 2 weight vectors + a broadcast (15 of 16).
    x86_matmul!(
        matmul_avx2,
        panels_avx2,
        tile_avx2,
        "avx2,fma",
        __m256,
        2,
        8,
        1,
        2,
        4,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_max_ps
    );
    // 6 rows x 2 panels: 12 zmm accumulators of 32.
    x86_matmul!(
        matmul_avx512,
        panels_avx512,
        tile_avx512,
        "avx512f,avx2,fma",
        __m512,
        1,
        16,
        2,
        4,
        8,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_max_ps
    );
}

/// Blocks of `RB` rows with `PB` panels at a time; leftover rows one by one with `P1`
/// panels at a time (a single row needs several panels in flight to hide FMA latency).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matmul_body<const FMA: bool, const RB: usize, const PB: usize, const P1: usize>(
    x: &[f32],
    xs: usize,
    rows: usize,
    w: &PackedLinear,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    let mut r = 0;
    while r + RB <= rows {
        panels::<FMA, RB, PB>(&x[r * xs..], xs, w, &mut y[r * ys..], ys, relu);
        r += RB;
    }
    while r < rows {
        panels::<FMA, 1, P1>(&x[r * xs..], xs, w, &mut y[r * ys..], ys, relu);
        r += 1;
    }
}

/// All panels for `R` rows: groups of `P` panels, then the rest one at a time.
#[inline(always)]
fn panels<const FMA: bool, const R: usize, const P: usize>(
    x: &[f32],
    xs: usize,
    w: &PackedLinear,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    let mut p = 0;
    while p + P <= w.panels {
        tile::<FMA, R, P>(x, xs, w, p, y, ys, relu);
        p += P;
    }
    while p < w.panels {
        tile::<FMA, R, 1>(x, xs, w, p, y, ys, relu);
        p += 1;
    }
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The micro-kernel: an `R x (P*NR)` block of `y` from `R` rows of `x` and panels `p0..p0+P`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const FMA: bool, const R: usize, const P: usize>(
    x: &[f32],
    xs: usize,
    w: &PackedLinear,
    p0: usize,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    let k = w.in_dim;
    let xr: [&[f32]; R] = std::array::from_fn(|r| &x[r * xs..r * xs + k]);
    let wp: [&[f32]; P] = std::array::from_fn(|p| w.panel(p0 + p));
    let mut acc = [[[0.0f32; NR]; P]; R];
    for j in 0..k {
        let wv: [[f32; NR]; P] = std::array::from_fn(|p| {
            let mut v = [0.0; NR];
            v.copy_from_slice(&wp[p][j * NR..j * NR + NR]);
            v
        });
        for r in 0..R {
            let xv = xr[r][j];
            for p in 0..P {
                for t in 0..NR {
                    acc[r][p][t] = fmadd::<FMA>(xv, wv[p][t], acc[r][p][t]);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (p, acc_rp) in acc_r.iter().enumerate() {
            let at = r * ys + (p0 + p) * NR;
            let out = &mut y[at..at + NR];
            for (o, &a) in out.iter_mut().zip(acc_rp) {
                *o = if relu { a.max(0.0) } else { a };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn reference(x: &Array2<f32>, w: &Array2<f32>, relu: bool) -> Array2<f32> {
        let mut y = x.dot(&w.t());
        if relu {
            y.mapv_inplace(|v| v.max(0.0));
        }
        y
    }

    #[test]
    fn matches_ndarray_for_every_row_and_panel_tail() {
        for (rows, inp, out) in [
            (1, 3, 1),
            (2, 9, 20),
            (3, 16, 17),
            (4, 50, 100),
            (5, 17, 33),
            (6, 1, 16),
            (7, 122, 64),
            (8, 33, 40),
            (13, 29, 256),
        ] {
            let x =
                Array2::from_shape_fn((rows, inp), |(i, j)| ((i * 31 + j * 7) % 13) as f32 - 6.0);
            let w = Array2::from_shape_fn((out, inp), |(i, j)| {
                ((i * 5 + j * 11) % 9) as f32 / 4.0 - 1.0
            });
            let packed = PackedLinear::pack(w.view());
            let ys = packed.out_padded() + 3; // a stride wider than the output
            for relu in [false, true] {
                let mut y = vec![f32::NAN; rows * ys];
                matmul(x.as_slice().unwrap(), inp, rows, &packed, &mut y, ys, relu);
                let want = reference(&x, &w, relu);
                for r in 0..rows {
                    for o in 0..packed.out_padded() {
                        let got = y[r * ys + o];
                        let exp = if o < out { want[[r, o]] } else { 0.0 };
                        assert!(
                            (got - exp).abs() <= 1e-4 * exp.abs().max(1.0),
                            "{rows}x{inp}x{out} ({r},{o}): {got} vs {exp}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn portable_path_matches_the_dispatched_one() {
        let (rows, inp, out) = (11, 40, 50);
        let x = Array2::from_shape_fn((rows, inp), |(i, j)| ((i + 2 * j) % 7) as f32 * 0.3);
        let w = Array2::from_shape_fn((out, inp), |(i, j)| ((3 * i + j) % 5) as f32 - 2.0);
        let packed = PackedLinear::pack(w.view());
        let ys = packed.out_padded();
        let mut fast = vec![0.0; rows * ys];
        let mut slow = vec![0.0; rows * ys];
        matmul(
            x.as_slice().unwrap(),
            inp,
            rows,
            &packed,
            &mut fast,
            ys,
            true,
        );
        matmul_body::<false, 4, 1, 2>(
            x.as_slice().unwrap(),
            inp,
            rows,
            &packed,
            &mut slow,
            ys,
            true,
        );
        // Small integers times small integers: exact in f32 whatever the order.
        assert_eq!(fast, slow);
    }
}
