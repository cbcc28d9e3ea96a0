//! Matrix products for scoring and training: `y = x W^T` with the weight matrix packed once
//! into column panels, `y = a^T b` for weight gradients, one register-blocked micro-kernel
//! for both, and a run-time choice of instruction set.
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
//! The same micro-kernel computes `a^T b` (a reduction over the batch, for weight gradients)
//! without transposing or packing anything: it only needs the two operands' strides. Long
//! reductions are cut into blocks of [`KC`] so the streamed panel stays in L1.
//!
//! Instruction sets are picked at run time (`is_x86_feature_detected!`), so one binary runs
//! everywhere and still uses AVX2+FMA or AVX-512 where the CPU has them; elsewhere a plain
//! scalar loop computes the same products (and is what the tests compare the others with).
//! Threads split the work above this level (rows of a batch, shards of a training step).

#![allow(unsafe_code)] // Only to call `#[target_feature]` functions after checking the CPU.

use ndarray::ArrayView2;

/// Output columns per panel: one AVX-512 register, two AVX2 registers of f32.
pub const NR: usize = 16;

/// A weight matrix `W` (`out x in`, PyTorch layout) packed for `y = x W^T`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedLinear {
    in_dim: usize,
    out_dim: usize,
    panels: usize,
    data: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (`out x in`). Output columns past `out` (up to the panel boundary) are zero.
    pub fn pack(w: ArrayView2<f32>) -> Self {
        let mut p = PackedLinear::default();
        p.pack_into(w);
        p
    }

    /// Packs `w` (`out x in`) into this buffer, reusing its allocation (training repacks the
    /// weights every step). Reads `w` in memory order whether it is
    /// row-major or a transposed view of a row-major matrix.
    pub fn pack_into(&mut self, w: ArrayView2<f32>) {
        let (out_dim, in_dim) = w.dim();
        let panels = out_dim.div_ceil(NR);
        self.data.clear();
        self.data.resize(panels * in_dim * NR, 0.0);
        let data = &mut self.data;
        // In memory order of the source: row by row of `w`, or of `w^T` for a transposed
        // view (the weights of `dx = dy W` and the memory's read-out).
        if w.t().is_standard_layout() && !w.is_standard_layout() {
            for (j, col) in w.t().rows().into_iter().enumerate() {
                for (o, &v) in col.iter().enumerate() {
                    data[((o / NR) * in_dim + j) * NR + o % NR] = v;
                }
            }
        } else {
            for (o, row) in w.rows().into_iter().enumerate() {
                let base = (o / NR) * in_dim * NR + o % NR;
                for (j, &v) in row.iter().enumerate() {
                    data[base + j * NR] = v;
                }
            }
        }
        (self.in_dim, self.out_dim, self.panels) = (in_dim, out_dim, panels);
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

    /// The matrix `W` (`out x in`) this was packed from: the inverse of [`PackedLinear::pack`]
    /// (for repacking in another precision without keeping the source around).
    pub fn unpack(&self) -> ndarray::Array2<f32> {
        let in_dim = self.in_dim;
        ndarray::Array2::from_shape_fn((self.out_dim, in_dim), |(o, j)| {
            self.data[((o / NR) * in_dim + j) * NR + o % NR]
        })
    }
}

/// The six products of a network, packed: encoder, addressing `z M^T`, read-out `w^ M`,
/// decoder. Scoring packs them once per model, training once per step (into the same
/// buffers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedNetwork {
    /// Encoder layer 1.
    pub enc1: PackedLinear,
    /// Encoder layer 2.
    pub enc2: PackedLinear,
    /// `z M^T`: the memory as a linear layer from latent to items.
    pub address: PackedLinear,
    /// `w^ M`: the memory transposed, from items to latent.
    pub read: PackedLinear,
    /// Decoder layer 1.
    pub dec1: PackedLinear,
    /// Decoder layer 2.
    pub dec2: PackedLinear,
}

impl PackedNetwork {
    /// Packs `w` into these buffers, reusing their allocations.
    pub fn pack_into(&mut self, w: &crate::network::Weights<f32>) {
        self.enc1.pack_into(w.enc1.view());
        self.enc2.pack_into(w.enc2.view());
        self.address.pack_into(w.memory.view());
        self.read.pack_into(w.memory.t());
        self.dec1.pack_into(w.dec1.view());
        self.dec2.pack_into(w.dec2.view());
    }

    /// The six products in the order a row passes through them.
    pub fn layers(&self) -> [&PackedLinear; 6] {
        [
            &self.enc1,
            &self.enc2,
            &self.address,
            &self.read,
            &self.dec1,
            &self.dec2,
        ]
    }

    /// Multiply-adds per row of the matrix products: encoder and addressing, plus the
    /// decoder when `with_decoder`. Twice this is the FLOP count of benchmark reports.
    pub fn macs_per_row(&self, with_decoder: bool) -> usize {
        let mac = |l: &PackedLinear| l.in_dim() * l.out_dim();
        let attention = mac(&self.enc1) + mac(&self.enc2) + mac(&self.address);
        let decoder = mac(&self.read) + mac(&self.dec1) + mac(&self.dec2);
        attention + if with_decoder { decoder } else { 0 }
    }

    /// Bytes of packed f32 weights one row reads (padding included): at batch 1 every one
    /// is read once per row, so this over the cache's read bandwidth bounds batch-1 rows/s.
    pub fn weight_bytes(&self, with_decoder: bool) -> usize {
        let layers = self.layers();
        let used = if with_decoder {
            &layers[..]
        } else {
            &layers[..3]
        };
        used.iter().map(|l| l.data.len() * 4).sum()
    }
}

/// Inner-dimension block: a panel slice of `KC x NR` floats (16 KiB) stays in L1 while a
/// block of rows is multiplied with it; longer reductions accumulate block by block.
pub const KC: usize = 256;

/// One product for the micro-kernel: `y[r, c] (+)= sum_j x(r, j) w(j, c)` for `r < rows`,
/// `c < panels * NR`, where `x(r, j) = x[r * x_rs + j * x_cs]` and the `NR` columns of panel
/// `p` at `j` start at `w[p * w_ps + j * w_js]`.
#[derive(Debug, Clone, Copy)]
struct Operands<'a> {
    x: &'a [f32],
    x_rs: usize,
    x_cs: usize,
    w: &'a [f32],
    w_js: usize,
    w_ps: usize,
    panels: usize,
    k: usize,
    relu: bool,
    accumulate: bool,
}

impl<'a> Operands<'a> {
    /// The rows from `r` on.
    fn rows_from(self, r: usize) -> Self {
        Operands {
            x: &self.x[r * self.x_rs..],
            ..self
        }
    }

    /// The part of the reduction `j0..j0 + k`.
    fn k_block(self, j0: usize, k: usize) -> Self {
        Operands {
            x: &self.x[j0 * self.x_cs..],
            w: &self.w[j0 * self.w_js..],
            k,
            ..self
        }
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
    let ops = Operands {
        x,
        x_rs: xs,
        x_cs: 1,
        w: &w.data,
        w_js: NR,
        w_ps: w.in_dim * NR,
        panels: w.panels,
        k: w.in_dim,
        relu,
        accumulate: false,
    };
    run_blocked(ops, rows, y, ys);
}

/// `y = a^T b` for `a: n x p` and `b: n x q`, both row-major (strides `a_s`, `b_s`), into
/// `y` (`p` rows of stride `ys >= q` rounded up to [`NR`]). Reads `b` in whole panels, so
/// each of its rows must be readable up to `q` rounded up to `NR` (and those extra columns
/// are what lands in `y`'s padding).
///
/// # Panics
/// When a slice is too short for its shape and stride.
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn(
    a: &[f32],
    a_s: usize,
    p: usize,
    b: &[f32],
    b_s: usize,
    q: usize,
    n: usize,
    y: &mut [f32],
    ys: usize,
) {
    let panels = q.div_ceil(NR);
    if n == 0 || p == 0 || panels == 0 {
        y[..p * ys].fill(0.0);
        return;
    }
    assert!(
        a_s >= p && b_s >= panels * NR && ys >= panels * NR,
        "matmul_tn strides: a {a_s} >= {p}, b {b_s} and y {ys} >= {}",
        panels * NR
    );
    assert!(
        a.len() >= (n - 1) * a_s + p && b.len() >= (n - 1) * b_s + panels * NR,
        "matmul_tn buffers"
    );
    assert!(y.len() >= (p - 1) * ys + panels * NR, "matmul_tn output");
    let ops = Operands {
        x: a,
        x_rs: 1,
        x_cs: a_s,
        w: b,
        w_js: b_s,
        w_ps: NR,
        panels,
        k: n,
        relu: false,
        accumulate: false,
    };
    run_blocked(ops, p, y, ys);
}

/// The reduction in blocks of [`KC`]: the first block writes, later ones accumulate, the
/// activation applies with the last.
fn run_blocked(ops: Operands<'_>, rows: usize, y: &mut [f32], ys: usize) {
    let k = ops.k;
    let mut j0 = 0;
    loop {
        let kb = KC.min(k - j0);
        let last = j0 + kb >= k;
        let block = Operands {
            relu: ops.relu && last,
            accumulate: j0 > 0,
            ..ops.k_block(j0, kb)
        };
        dispatch(block, rows, y, ys);
        if last {
            break;
        }
        j0 += kb;
    }
}

fn dispatch(ops: Operands<'_>, rows: usize, y: &mut [f32], ys: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { x86::rows_avx512(ops, rows, y, ys) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { x86::rows_avx2(ops, rows, y, ys) };
        }
    }
    portable::rows(ops, rows, y, ys);
}

/// The instruction set the products use on this CPU (for benchmark reports).
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

/// Without SIMD intrinsics: correct everywhere, and the reference the tests compare with.
mod portable {
    use super::{NR, Operands};

    pub(super) fn rows(ops: Operands<'_>, rows: usize, y: &mut [f32], ys: usize) {
        for r in 0..rows {
            for p in 0..ops.panels {
                for t in 0..NR {
                    let mut acc = if ops.accumulate {
                        y[r * ys + p * NR + t]
                    } else {
                        0.0
                    };
                    for j in 0..ops.k {
                        acc += ops.x[r * ops.x_rs + j * ops.x_cs]
                            * ops.w[p * ops.w_ps + j * ops.w_js + t];
                    }
                    y[r * ys + p * NR + t] = if ops.relu { acc.max(0.0) } else { acc };
                }
            }
        }
    }
}

/// The x86 micro-kernels, written with intrinsics: portable code with arrays of
/// accumulators was correct but LLVM turned them into gathers and scatters through memory
/// (seen in the disassembly), which ran at ~2 GFLOP/s.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{NR, Operands};

    /// How many reduction steps ahead the one- and two-row tiles prefetch their weights.
    const PREFETCH: usize = 8;

    /// Generates `$name`: blocks of 6 rows x `$pb` panels, then the leftover rows in one block
    /// (2 rows with `$p2` panels, 1 row with `$p1`: fewer rows need more panels in flight to
    /// hide the FMA latency), on vectors `$v` of which `$per` make one panel of [`NR`] floats.
    macro_rules! x86_rows {
        ($name:ident, $panels:ident, $tile:ident, $feat:literal, $v:ty, $per:literal, $lanes:literal,
         $pb:literal, $p2:literal, $p1:literal, $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $max:ident) => {
            #[target_feature(enable = $feat)]
            pub(super) fn $name(ops: Operands<'_>, rows: usize, y: &mut [f32], ys: usize) {
                let mut r = 0;
                while r + 6 <= rows {
                    $panels::<6, $pb>(ops.rows_from(r), &mut y[r * ys..], ys);
                    r += 6;
                }
                // The 1-5 leftover rows in one pass over the weights, not one pass per row
                // (batch 16 = 6 + 6 + 4 streams the weights three times, not six).
                if r == rows {
                    return;
                }
                let (o, y) = (ops.rows_from(r), &mut y[r * ys..]);
                match rows - r {
                    5 => $panels::<5, $pb>(o, y, ys),
                    4 => $panels::<4, $pb>(o, y, ys),
                    3 => $panels::<3, $pb>(o, y, ys),
                    2 => $panels::<2, $p2>(o, y, ys),
                    1 => $panels::<1, $p1>(o, y, ys),
                    _ => {}
                }
            }

            #[target_feature(enable = $feat)]
            #[inline]
            fn $panels<const R: usize, const P: usize>(
                ops: Operands<'_>,
                y: &mut [f32],
                ys: usize,
            ) {
                let mut p = 0;
                while p + P <= ops.panels {
                    $tile::<R, P>(ops, p, y, ys);
                    p += P;
                }
                // Fewer panels left than a full tile: the widest tile that fits, so their
                // accumulators are independent chains in one pass over the reduction
                // rather than one dependent chain per panel. Measured at batch 1 on
                // f122_m64 (its 64-wide layers are 4 panels): 7.18 -> 7.02 us per row, as
                // out-of-order execution already overlapped much of the one-panel chains.
                if P > 4 && p + 4 <= ops.panels {
                    $tile::<R, 4>(ops, p, y, ys);
                    p += 4;
                }
                if P > 2 && p + 2 <= ops.panels {
                    $tile::<R, 2>(ops, p, y, ys);
                    p += 2;
                }
                while p < ops.panels {
                    $tile::<R, 1>(ops, p, y, ys);
                    p += 1;
                }
            }

            #[target_feature(enable = $feat)]
            #[inline]
            fn $tile<const R: usize, const P: usize>(
                ops: Operands<'_>,
                p0: usize,
                y: &mut [f32],
                ys: usize,
            ) {
                let mut acc: [[[$v; $per]; P]; R] = [[[$zero(); $per]; P]; R];
                if ops.accumulate {
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        for (p, acc_rp) in acc_r.iter_mut().enumerate() {
                            let at = r * ys + (p0 + p) * NR;
                            let src = &y[at..at + NR];
                            for (h, v) in acc_rp.iter_mut().enumerate() {
                                // SAFETY: `src` holds NR = $per * $lanes floats; unaligned load.
                                *v = unsafe { $load(src.as_ptr().add(h * $lanes)) };
                            }
                        }
                    }
                }
                for j in 0..ops.k {
                    if R <= 2 && j + PREFETCH < ops.k {
                        // One or two rows do one FMA per weight loaded: the loop is the
                        // weights' stream, P short strided streams that the hardware
                        // prefetcher picks up late. Ask for each panel's lines ahead.
                        for p in 0..P {
                            let at = (p0 + p) * ops.w_ps + (j + PREFETCH) * ops.w_js;
                            // SAFETY: a prefetch is a hint and never faults; `at` is in bounds.
                            unsafe { _mm_prefetch::<_MM_HINT_T0>(ops.w.as_ptr().add(at).cast()) };
                        }
                    }
                    let mut wv: [[$v; $per]; P] = [[$zero(); $per]; P];
                    for p in 0..P {
                        let at = (p0 + p) * ops.w_ps + j * ops.w_js;
                        let src = &ops.w[at..at + NR];
                        for h in 0..$per {
                            // SAFETY: `src` holds NR = $per * $lanes floats; unaligned load.
                            wv[p][h] = unsafe { $load(src.as_ptr().add(h * $lanes)) };
                        }
                    }
                    for r in 0..R {
                        let xv = $set1(ops.x[r * ops.x_rs + j * ops.x_cs]);
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
                            let v = if ops.relu { $max(v, zero) } else { v };
                            // SAFETY: `out` holds NR = $per * $lanes floats; unaligned store.
                            unsafe { $store(out.as_mut_ptr().add(h * $lanes), v) };
                        }
                    }
                }
            }
        };
    }

    // 6 rows x 1 panel: 12 ymm accumulators + 2 weight vectors + a broadcast (15 of 16).
    x86_rows!(
        rows_avx2,
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
    // 6 rows x 4 panels: 24 zmm accumulators, 4 weight vectors and a broadcast (29 of 32).
    x86_rows!(
        rows_avx512,
        panels_avx512,
        tile_avx512,
        "avx512f,avx2,fma",
        __m512,
        1,
        16,
        4,
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
            // Batch 1 and 2 with every leftover after full tiles: 4 + 2 + 1, 4, 2 + 1 panels,
            // and 8 + 4 + 2 + 1 (the 64-wide layers are 4 panels of 256 inputs).
            (1, 256, 64),
            (1, 40, 112),
            (1, 7, 48),
            (1, 300, 240),
            (2, 64, 112),
            (2, 5, 100),
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
    fn transposed_views_pack_like_their_copies_and_buffers_are_reused() {
        let a = Array2::from_shape_fn((37, 21), |(i, j)| (i * 21 + j) as f32);
        let mut p = PackedLinear::pack(a.t());
        assert_eq!(p, PackedLinear::pack(a.t().to_owned().view()));
        assert_eq!(p.unpack(), a.t());
        p.pack_into(a.view());
        assert_eq!(p, PackedLinear::pack(a.view()));
    }

    /// `a^T b` against ndarray, with a reduction longer than [`KC`] (blocks accumulate),
    /// widths that leave partial panels and row blocks.
    #[test]
    fn transposed_product_matches_ndarray() {
        for (n, p, q) in [
            (1usize, 1usize, 1usize),
            (7, 5, 17),
            (300, 37, 20),
            (600, 64, 122),
        ] {
            let a = Array2::from_shape_fn((n, p), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
            let qp = q.div_ceil(NR) * NR;
            let b = Array2::from_shape_fn((n, qp), |(i, j)| {
                if j < q {
                    ((i + 2 * j) % 9) as f32 / 8.0
                } else {
                    0.0
                }
            });
            let want = a.t().dot(&b);
            {
                let ys = qp + 5;
                let mut y = vec![f32::NAN; p * ys];
                let (a_s, b_s) = (p, qp);
                matmul_tn(
                    a.as_slice().unwrap(),
                    a_s,
                    p,
                    b.as_slice().unwrap(),
                    b_s,
                    q,
                    n,
                    &mut y,
                    ys,
                );
                for r in 0..p {
                    for c in 0..qp {
                        let (got, exp) = (y[r * ys + c], want[[r, c]]);
                        assert!(
                            (got - exp).abs() <= 1e-3 * exp.abs().max(1.0),
                            "{n}x{p}x{q} ({r},{c}): {got} vs {exp}"
                        );
                    }
                }
            }
        }
    }

    /// An input wider than [`KC`]: the ReLU applies once, after the last block.
    #[test]
    fn long_reductions_accumulate_before_the_relu() {
        for rows in [9, 12] {
            long_reduction(rows);
        }
    }

    /// `rows` rows of exactly-sized input (no slack after the last row).
    fn long_reduction(rows: usize) {
        let (inp, out) = (600, 20);
        let x = Array2::from_shape_fn(
            (rows, inp),
            |(i, j)| if j < 300 { 1.0 } else { -1.0 } * (1 + i % 3) as f32,
        );
        let w = Array2::from_shape_fn(
            (out, inp),
            |(o, j)| if j < 300 { -1.0 } else { -2.0 } * (1 + o % 2) as f32 / 100.0,
        );
        let packed = PackedLinear::pack(w.view());
        let ys = packed.out_padded();
        let mut y = vec![0.0; rows * ys];
        matmul(x.as_slice().unwrap(), inp, rows, &packed, &mut y, ys, true);
        let want = reference(&x, &w, true);
        for r in 0..rows {
            for o in 0..out {
                assert!((y[r * ys + o] - want[[r, o]]).abs() < 1e-3, "({r},{o})");
            }
        }
        // Every output is negative in the first block and positive overall.
        assert!(want.iter().all(|&v| v > 0.0));
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
        let ops = Operands {
            x: x.as_slice().unwrap(),
            x_rs: inp,
            x_cs: 1,
            w: &packed.data,
            w_js: NR,
            w_ps: inp * NR,
            panels: packed.panels,
            k: inp,
            relu: true,
            accumulate: false,
        };
        portable::rows(ops, rows, &mut slow, ys);
        // Small integers times small integers: exact in f32 whatever the order.
        assert_eq!(fast, slow);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        /// Any shape, exactly-sized buffers: both products equal ndarray's.
        #[test]
        fn any_shape_matches_ndarray(rows in 1usize..40, inp in 1usize..700, out in 1usize..260, seed in 0u32..1000) {
            let f = |i: usize, j: usize| (((i * 31 + j * 17 + seed as usize) % 23) as f32 - 11.0) / 8.0;
            let x = Array2::from_shape_fn((rows, inp), |(i, j)| f(i, j));
            let w = Array2::from_shape_fn((out, inp), |(i, j)| f(j, i + 3));
            let packed = PackedLinear::pack(w.view());
            let ys = packed.out_padded();
            let mut y = vec![0.0; (rows - 1) * ys + ys];
            matmul(x.as_slice().unwrap(), inp, rows, &packed, &mut y, ys, false);
            let want = reference(&x, &w, false);
            for r in 0..rows {
                for o in 0..out {
                    let (g, e) = (y[r * ys + o], want[[r, o]]);
                    proptest::prop_assert!((g - e).abs() <= 1e-3 * e.abs().max(1.0), "({r},{o}) {g} vs {e}");
                }
            }
            // a^T b with a = x (rows x inp) and b = w^T padded (rows... ) : reuse x as both.
            let qp = out.div_ceil(NR) * NR;
            let b = Array2::from_shape_fn((rows, qp), |(i, j)| if j < out { f(i, j + 7) } else { 0.0 });
            let mut t = vec![0.0; (inp - 1) * qp + qp];
            matmul_tn(x.as_slice().unwrap(), inp, inp, b.as_slice().unwrap(), qp, out, rows, &mut t, qp);
            let want = x.t().dot(&b);
            for r in 0..inp {
                for o in 0..out {
                    let (g, e) = (t[r * qp + o], want[[r, o]]);
                    proptest::prop_assert!((g - e).abs() <= 1e-3 * e.abs().max(1.0), "tn ({r},{o}) {g} vs {e}");
                }
            }
        }
    }
}
