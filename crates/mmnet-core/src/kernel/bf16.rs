//! bf16 products: weights and activations rounded to bfloat16, multiplied with f32
//! accumulation (issue 20).
//!
//! Why: scoring is bound by the multiply-add rate at large batches and by streaming the
//! weights at small ones. AVX-512 BF16's `vdpbf16ps` multiplies 32 bf16 pairs into 16 f32
//! accumulators per instruction (twice the multiply-adds of `vfmadd231ps`) and bf16 weights
//! are half the bytes, which helps both bounds. bf16 keeps f32's exponent range, so nothing
//! overflows that did not before; it keeps 8 bits of mantissa, so each weight and activation
//! is off by at most 2^-9 relative, and the accumulation stays f32.
//!
//! Layout (AMX and `vdpbf16ps`): like [`PackedLinear`], output columns in panels of [`NR`]; within a
//! panel the inputs go in *pairs*: pair `q` stores, for each of the 16 columns, the two
//! weights `W[c, 2q]` and `W[c, 2q + 1]` next to each other (64 bytes, one zmm register),
//! because `vdpbf16ps` adds the products of adjacent bf16 pairs into one f32 lane. An odd
//! input width is padded with zero weights, to whole tiles of 16 pairs. Activations are rounded to bf16 once per
//! product (round to nearest even, as `vcvtne2ps2bf16` does) into a scratch of pairs, each
//! broadcast as one 32-bit value.
//!
//! Three kernels, chosen at run time ([`Bf16Kernel::detect`]): AMX tiles where the CPU and
//! the operating system offer them ([`super::amx`]: on the Xeon measured here `vdpbf16ps`
//! runs at half the FLOP rate of f32 FMAs, so only the tiles make arithmetic-bound batches
//! faster), `vdpbf16ps` on other CPUs with AVX-512 BF16, and elsewhere the f32 kernel
//! ([`matmul`]) on weights and activations rounded to bf16 ("emulated"): no faster than f32,
//! but the scores a bf16 model gives do not depend on the machine beyond accumulation order.

#![allow(unsafe_code)] // Only to call `#[target_feature]` functions after checking the CPU.

use ndarray::ArrayView2;

use super::grow;
use super::packed::{NR, PackedLinear, matmul};

/// Which arithmetic the scoring products use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 weights and activations (the default: the numbers training saw).
    #[default]
    F32,
    /// bf16 weights and activations, f32 accumulation: faster on CPUs with AVX-512 BF16.
    Bf16,
}

impl Precision {
    /// The name used on the command line, in TOML and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses [`Precision::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "f32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `v` rounded to bf16 (round to nearest, ties to even), as its 16 bits, the way
/// `vcvtne2ps2bf16` does it: NaN stays NaN (quiet), infinities stay infinite, values past
/// bf16's largest finite round to infinity, and subnormal inputs become zero of their sign.
#[inline]
pub fn to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) | 0x0040) as u16;
    }
    if v.is_subnormal() {
        return (b >> 16) as u16 & 0x8000;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// The f32 value of bf16 bits (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `v` rounded to the nearest bf16, as an f32.
#[inline]
pub fn round_bf16(v: f32) -> f32 {
    from_bf16(to_bf16(v))
}

/// How bf16 products run on this machine, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tiles (`tdpbf16ps`, see [`super::amx`]).
    Amx,
    /// AVX-512 BF16 dot products (`vdpbf16ps`).
    AvxDot,
    /// The f32 kernel on operands rounded to bf16: the same numbers, at f32's speed.
    Emulated,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU (and operating system) offers.
    pub fn detect() -> Bf16Kernel {
        [Bf16Kernel::Amx, Bf16Kernel::AvxDot]
            .into_iter()
            .find(|k| k.available())
            .unwrap_or(Bf16Kernel::Emulated)
    }

    /// Whether this kernel runs here.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        let avx = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        let avx = false;
        match self {
            Bf16Kernel::Emulated => true,
            Bf16Kernel::AvxDot => avx,
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Amx => avx && super::amx::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Bf16Kernel::Amx => false,
        }
    }

    /// Its name in benchmark reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Bf16Kernel::Amx => "amx-bf16",
            Bf16Kernel::AvxDot => "avx512-bf16",
            Bf16Kernel::Emulated => "emulated",
        }
    }
}

/// Fewest rows multiplied on AMX tiles (see [`matmul_bf16`]).
const AMX_FROM: usize = 4;

/// Pairs of inputs per tile of the reduction: every pair count is padded to a multiple of
/// this (zeros), so the AMX kernel reads whole tiles and the others need no tail.
const PAIR_TILE: usize = 16;

/// Pairs per row for `in_dim` inputs, padded to whole [`PAIR_TILE`]s.
fn padded_pairs(in_dim: usize) -> usize {
    in_dim.div_ceil(2).next_multiple_of(PAIR_TILE)
}

/// A weight matrix `W` (`out x in`) packed for bf16 products.
#[derive(Debug, Clone, PartialEq)]
pub enum PackedBf16 {
    /// Pairs of bf16 weights per column (see the module docs), for AMX or `vdpbf16ps`.
    Pairs {
        /// Which kernel multiplies them ([`Bf16Kernel::Amx`] or [`Bf16Kernel::AvxDot`]).
        kernel: Bf16Kernel,
        /// Inputs per row.
        in_dim: usize,
        /// Outputs per row.
        out_dim: usize,
        /// Panels of [`NR`] outputs.
        panels: usize,
        /// `panels * padded_pairs(in_dim) * NR * 2` bf16 values.
        data: Vec<u16>,
    },
    /// The weights rounded to bf16, stored as f32 for the f32 kernel.
    Emulated(PackedLinear),
}

impl PackedBf16 {
    /// Packs `w` (`out x in`) for the fastest kernel on this CPU.
    pub fn pack(w: ArrayView2<f32>) -> Self {
        Self::pack_for(w, Bf16Kernel::detect())
    }

    /// Packs `w` for `kernel`, which must be [`Bf16Kernel::available`] (tests and
    /// benchmarks run several on one machine).
    ///
    /// # Panics
    /// When `kernel` does not run on this machine.
    pub fn pack_for(w: ArrayView2<f32>, kernel: Bf16Kernel) -> Self {
        assert!(
            kernel.available(),
            "{} is not available here",
            kernel.as_str()
        );
        if kernel == Bf16Kernel::Emulated {
            return PackedBf16::Emulated(PackedLinear::pack(w.mapv(round_bf16).view()));
        }
        let (out_dim, in_dim) = w.dim();
        let (panels, pairs) = (out_dim.div_ceil(NR), padded_pairs(in_dim));
        let mut data = vec![0u16; panels * pairs * NR * 2];
        for ((o, j), &v) in w.indexed_iter() {
            let (p, t) = (o / NR, o % NR);
            data[((p * pairs + j / 2) * NR + t) * 2 + j % 2] = to_bf16(v);
        }
        PackedBf16::Pairs {
            kernel,
            in_dim,
            out_dim,
            panels,
            data,
        }
    }

    /// Inputs per row.
    pub fn in_dim(&self) -> usize {
        match self {
            PackedBf16::Pairs { in_dim, .. } => *in_dim,
            PackedBf16::Emulated(p) => p.in_dim(),
        }
    }

    /// Outputs per row.
    pub fn out_dim(&self) -> usize {
        match self {
            PackedBf16::Pairs { out_dim, .. } => *out_dim,
            PackedBf16::Emulated(p) => p.out_dim(),
        }
    }

    /// Outputs per row rounded up to whole panels: the width [`matmul_bf16`] writes.
    pub fn out_padded(&self) -> usize {
        match self {
            PackedBf16::Pairs { panels, .. } => panels * NR,
            PackedBf16::Emulated(p) => p.out_padded(),
        }
    }
}

/// The bf16 copy of a packed layer (see [`super::packed::PackedNetwork::layers`]).
pub fn pack_layer(l: &PackedLinear, kernel: Bf16Kernel) -> PackedBf16 {
    PackedBf16::pack_for(l.unpack().view(), kernel)
}

/// Pairs of inputs per block of the reduction: 256 pairs of one panel are 16 KiB, as
/// [`super::packed::KC`] floats are for the f32 kernel.
const KP: usize = 256;

/// `y[r, ..out_padded] = act(bf16(x[r, ..in]) bf16(W)^T)` for `r < rows`, accumulated in
/// f32, with `act` = ReLU when `relu`. Strides and buffers as for [`matmul`]; `scratch`
/// holds the rounded activations (grown on demand, reused across calls).
///
/// # Panics
/// When a slice is too short for `rows` rows of its stride.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bf16(
    x: &[f32],
    xs: usize,
    rows: usize,
    w: &PackedBf16,
    y: &mut [f32],
    ys: usize,
    relu: bool,
    scratch: &mut Vec<f32>,
) {
    if rows == 0 {
        return;
    }
    let d = w.in_dim();
    assert!(xs >= d && ys >= w.out_padded(), "matmul_bf16 strides");
    assert!(
        x.len() >= (rows - 1) * xs + d && y.len() >= (rows - 1) * ys + w.out_padded(),
        "matmul_bf16 buffers"
    );
    match w {
        PackedBf16::Emulated(p) => {
            grow(scratch, rows * d);
            for r in 0..rows {
                let (src, dst) = (&x[r * xs..r * xs + d], &mut scratch[r * d..r * d + d]);
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o = round_bf16(v);
                }
            }
            matmul(&scratch[..rows * d], d, rows, p, y, ys, relu);
        }
        PackedBf16::Pairs {
            kernel,
            in_dim,
            panels,
            data,
            ..
        } => {
            let pairs = padded_pairs(*in_dim);
            // The pairs as 32-bit words in an f32 buffer (the scratch every product shares;
            // only ever read back as bits), rows padded to whole tiles with zeros.
            #[cfg(target_arch = "x86_64")]
            let padded_rows = rows.next_multiple_of(super::amx::TM);
            #[cfg(not(target_arch = "x86_64"))]
            let padded_rows = rows;
            grow(scratch, padded_rows * pairs);
            let xb = &mut scratch[..padded_rows * pairs];
            for r in 0..rows {
                pack_pairs(&x[r * xs..r * xs + d], &mut xb[r * pairs..(r + 1) * pairs]);
            }
            xb[rows * pairs..].fill(0.0);
            let ops = Ops {
                x: xb,
                pairs,
                w: data,
                panels: *panels,
                relu,
            };
            match kernel {
                // A tile is 16 rows: below AMX_FROM rows most of it would multiply padding,
                // and `vdpbf16ps` on the same layout is faster (measured at batch 1).
                #[cfg(target_arch = "x86_64")]
                Bf16Kernel::Amx if rows < AMX_FROM => dot_blocked(ops, rows, y, ys),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Pairs` with `Amx` is only packed where `available()` held; the
                // activations are whole tiles of `pairs` words, the weights whole panels.
                Bf16Kernel::Amx => unsafe {
                    super::amx::matmul(xb, pairs, rows, data, *panels, y, ys, relu)
                },
                _ => dot_blocked(ops, rows, y, ys),
            }
        }
    }
}

/// Rounds `src` to bf16 pairs: word `q` of `dst` holds `src[2q]` in its low half and
/// `src[2q + 1]` in its high half (the order `vdpbf16ps` and `tdpbf16ps` read a pair in),
/// zero past the end of `src`.
fn pack_pairs(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Bf16Kernel::AvxDot.available() {
        // SAFETY: the CPU has AVX-512F and AVX-512 BF16 (checked just above).
        return unsafe { x86::pack_pairs(src, dst) };
    }
    for (q, out) in dst.iter_mut().enumerate() {
        let lo = src.get(2 * q).map_or(0, |&v| to_bf16(v));
        let hi = src.get(2 * q + 1).map_or(0, |&v| to_bf16(v));
        *out = f32::from_bits(u32::from(lo) | (u32::from(hi) << 16));
    }
}

/// One native product: rounded activations (`pairs` words per row) times packed weights.
#[derive(Debug, Clone, Copy)]
struct Ops<'a> {
    x: &'a [f32],
    pairs: usize,
    w: &'a [u16],
    panels: usize,
    relu: bool,
}

/// The reduction in blocks of [`KP`] pairs: the first block writes, later ones accumulate
/// into `y`, the ReLU applies with the last.
fn dot_blocked(ops: Ops<'_>, rows: usize, y: &mut [f32], ys: usize) {
    let mut q0 = 0;
    loop {
        let kb = KP.min(ops.pairs - q0);
        let last = q0 + kb >= ops.pairs;
        let block = Block {
            ops,
            q0,
            kb,
            relu: ops.relu && last,
            accumulate: q0 > 0,
        };
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `PackedBf16::Pairs` is only packed where AVX-512 BF16 is available.
            unsafe { x86::rows(block, rows, y, ys) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (block, rows, &y, ys);
            unreachable!("native bf16 products need x86_64 with AVX-512 BF16");
        }
        if last {
            break;
        }
        q0 += kb;
    }
}

/// Pairs `q0..q0 + kb` of a product.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Block<'a> {
    ops: Ops<'a>,
    q0: usize,
    kb: usize,
    relu: bool,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Block, NR};

    /// A 512-bit vector of bf16 pairs, seen as what `vdpbf16ps` reads.
    #[inline(always)]
    fn as_bh(v: __m512) -> __m512bh {
        // SAFETY: both are 512 bits of plain data; any bit pattern is valid for either.
        unsafe { std::mem::transmute::<__m512, __m512bh>(v) }
    }

    /// [`super::pack_pairs`] 32 floats at a time with `vcvtne2ps2bf16` (round to nearest
    /// even, like [`super::to_bf16`]); masked loads read nothing past the end of `src`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn pack_pairs(src: &[f32], dst: &mut [f32]) {
        for (c, out) in dst.chunks_mut(16).enumerate() {
            let j = 32 * c;
            let left = src.len().saturating_sub(j);
            let mask = |n: usize| -> u16 { if n >= 16 { !0 } else { (1u16 << n) - 1 } };
            let p = src.as_ptr().wrapping_add(j);
            // SAFETY: lanes past `src.len()` are masked off and not read.
            let (lo, hi) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask(left), p),
                    _mm512_maskz_loadu_ps(mask(left.saturating_sub(16)), p.wrapping_add(16)),
                )
            };
            // SAFETY: 512 bits of plain data either way.
            let words =
                unsafe { std::mem::transmute::<__m512bh, __m512>(_mm512_cvtne2ps_pbh(hi, lo)) };
            let m = mask(out.len());
            // SAFETY: lanes past `out.len()` are masked off and not written.
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), m, words) };
        }
    }

    /// Blocks of 6 rows x 4 panels (24 zmm accumulators, 4 weight vectors and a broadcast,
    /// as the f32 AVX-512 kernel), then the 1-5 leftover rows in one pass over the weights.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn rows(b: Block<'_>, rows: usize, y: &mut [f32], ys: usize) {
        let mut r = 0;
        while r + 6 <= rows {
            panels::<6, 4>(b, r, &mut y[r * ys..], ys);
            r += 6;
        }
        let y = &mut y[r * ys..];
        match rows - r {
            5 => panels::<5, 4>(b, r, y, ys),
            4 => panels::<4, 4>(b, r, y, ys),
            3 => panels::<3, 4>(b, r, y, ys),
            2 => panels::<2, 4>(b, r, y, ys),
            1 => panels::<1, 8>(b, r, y, ys),
            _ => {}
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    fn panels<const R: usize, const P: usize>(b: Block<'_>, r0: usize, y: &mut [f32], ys: usize) {
        let mut p = 0;
        while p + P <= b.ops.panels {
            tile::<R, P>(b, r0, p, y, ys);
            p += P;
        }
        while p < b.ops.panels {
            tile::<R, 1>(b, r0, p, y, ys);
            p += 1;
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    fn tile<const R: usize, const P: usize>(
        b: Block<'_>,
        r0: usize,
        p0: usize,
        y: &mut [f32],
        ys: usize,
    ) {
        let ops = b.ops;
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        if b.accumulate {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for (p, v) in acc_r.iter_mut().enumerate() {
                    let src = &y[r * ys + (p0 + p) * NR..][..NR];
                    // SAFETY: `src` holds NR = 16 floats; unaligned load.
                    *v = unsafe { _mm512_loadu_ps(src.as_ptr()) };
                }
            }
        }
        let panel_len = ops.pairs * NR * 2;
        for q in b.q0..b.q0 + b.kb {
            let mut wv = [_mm512_setzero_ps(); P];
            for (p, v) in wv.iter_mut().enumerate() {
                let src = &ops.w[(p0 + p) * panel_len + q * NR * 2..][..NR * 2];
                // SAFETY: `src` holds 32 bf16 = 64 bytes; unaligned load.
                *v = unsafe { _mm512_loadu_ps(src.as_ptr().cast()) };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(ops.x[(r0 + r) * ops.pairs + q]);
                for (p, a) in acc_r.iter_mut().enumerate() {
                    *a = _mm512_dpbf16_ps(*a, as_bh(xv), as_bh(wv[p]));
                }
            }
        }
        let zero = _mm512_setzero_ps();
        for (r, acc_r) in acc.iter().enumerate() {
            for (p, &v) in acc_r.iter().enumerate() {
                let out = &mut y[r * ys + (p0 + p) * NR..][..NR];
                // max(v, 0) is 0 for NaN too, like the scalar ReLU.
                let v = if b.relu { _mm512_max_ps(v, zero) } else { v };
                // SAFETY: `out` holds NR = 16 floats; unaligned store.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The product on bf16-rounded operands, in f64: what both paths approximate.
    fn reference(x: &Array2<f32>, w: &Array2<f32>, relu: bool) -> Array2<f32> {
        let xr = x.mapv(|v| f64::from(round_bf16(v)));
        let wr = w.mapv(|v| f64::from(round_bf16(v)));
        let mut y = xr.dot(&wr.t()).mapv(|v| v as f32);
        if relu {
            y.mapv_inplace(|v| v.max(0.0));
        }
        y
    }

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_specials() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6 (even).
        assert_eq!(
            from_bf16(to_bf16(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        assert_eq!(round_bf16(-2.5), -2.5);
        assert!(round_bf16(f32::NAN).is_nan());
        assert!(
            round_bf16(f32::from_bits(0x7f80_0001)).is_nan(),
            "a NaN with low bits only"
        );
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(
            round_bf16(-1e-40).to_bits(),
            (-0.0f32).to_bits(),
            "subnormal"
        );
        for v in [1e-30f32, 3.7, -123.456, 6.5e4] {
            assert!((round_bf16(v) - v).abs() <= v.abs() * 2f32.powi(-9), "{v}");
        }
        assert_eq!(Precision::parse("bf16"), Some(Precision::Bf16));
        assert_eq!(
            Precision::parse(Precision::F32.as_str()),
            Some(Precision::F32)
        );
        assert_eq!(Precision::parse("fp16"), None);
    }

    fn check(rows: usize, inp: usize, out: usize, kernel: Bf16Kernel) {
        let x = Array2::from_shape_fn((rows, inp), |(i, j)| {
            (((i * 31 + j * 7) % 13) as f32 - 6.0) * 0.37
        });
        let w = Array2::from_shape_fn((out, inp), |(i, j)| {
            (((i * 5 + j * 11) % 9) as f32 / 4.0 - 1.0) * 0.71
        });
        let packed = PackedBf16::pack_for(w.view(), kernel);
        let ys = packed.out_padded() + 3;
        let mut scratch = Vec::new();
        for relu in [false, true] {
            let mut y = vec![f32::NAN; rows * ys];
            matmul_bf16(
                x.as_slice().unwrap(),
                inp,
                rows,
                &packed,
                &mut y,
                ys,
                relu,
                &mut scratch,
            );
            let want = reference(&x, &w, relu);
            for r in 0..rows {
                for o in 0..packed.out_padded() {
                    let got = y[r * ys + o];
                    let exp = if o < out { want[[r, o]] } else { 0.0 };
                    // f32 accumulation in a different order from the f64 reference.
                    assert!(
                        (got - exp).abs() <= 1e-4 * (inp as f32).sqrt() * exp.abs().max(1.0),
                        "{kernel:?} {rows}x{inp}x{out} ({r},{o}): {got} vs {exp}"
                    );
                }
            }
        }
    }

    /// Both paths equal the product of the rounded operands, for every row-block tail,
    /// odd widths (a padded pair), partial panels and reductions longer than one block.
    #[test]
    fn both_paths_equal_the_rounded_product() {
        let shapes = [
            (1, 3, 1),
            (2, 9, 20),
            (3, 16, 17),
            (5, 17, 33),
            (6, 1, 16),
            (7, 122, 64),
            (13, 29, 256),
            (9, 1031, 40),
        ];
        for kernel in KERNELS.into_iter().filter(|k| k.available()) {
            for &(rows, inp, out) in &shapes {
                check(rows, inp, out, kernel);
            }
        }
    }

    const KERNELS: [Bf16Kernel; 3] = [Bf16Kernel::Amx, Bf16Kernel::AvxDot, Bf16Kernel::Emulated];

    /// Every kernel this machine runs gives the same numbers as emulation where the sums
    /// are exact, with row counts around the tile and row-block edges.
    #[test]
    fn every_kernel_here_agrees_with_emulation() {
        for rows in [1, 11, 16, 17, 40] {
            agree(rows);
        }
    }

    fn agree(rows: usize) {
        let (inp, out) = (123, 70);
        let x = Array2::from_shape_fn((rows, inp), |(i, j)| ((i + 2 * j) % 7) as f32 * 0.3);
        let w = Array2::from_shape_fn((out, inp), |(i, j)| ((3 * i + j) % 5) as f32 - 2.0);
        let run = |kernel| {
            let p = PackedBf16::pack_for(w.view(), kernel);
            let mut y = vec![0.0; rows * p.out_padded()];
            let mut s = Vec::new();
            let (xs, ys) = (inp, p.out_padded());
            matmul_bf16(
                x.as_slice().unwrap(),
                xs,
                rows,
                &p,
                &mut y,
                ys,
                true,
                &mut s,
            );
            y
        };
        let emulated = run(Bf16Kernel::Emulated);
        assert!(emulated.iter().any(|&v| v > 0.0) && emulated.contains(&0.0));
        for kernel in KERNELS.into_iter().filter(|k| k.available()) {
            // Small multiples of 0.3 rounded to bf16, times small integers: every product
            // and partial sum is exact in f32, so the order of accumulation cannot matter.
            assert_eq!(run(kernel), emulated, "{kernel:?} rows={rows}");
        }
        eprintln!("bf16 kernel here: {}", Bf16Kernel::detect().as_str());
    }
}
