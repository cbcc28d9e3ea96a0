//! The scoring kernel: weights packed once per model, rows scored in cache-sized chunks
//! into caller-owned outputs, with per-thread scratch reused across calls.
//!
//! Per chunk of [`CHUNK`] rows the activations of every layer stay in L1/L2 and each layer
//! is one [`matmul`] over packed weights; addressing is fused per row ([`attend_row`]); the
//! decoder runs only when the MSE is asked for. Batches of [`PARALLEL_FROM`] rows or more
//! are split across rayon's threads; smaller ones (streaming micro-batches) run on the
//! calling thread, where latency is lowest. After the first call on a thread, scoring
//! allocates nothing: the scratch buffers live in a thread-local and only ever grow.

use std::cell::RefCell;

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::attend::{AttendParams, attend_row};
use super::bf16::{Bf16Kernel, PackedBf16, Precision, matmul_bf16, pack_layer};
use super::grow;
use super::packed::{PackedLinear, PackedNetwork, matmul};
use crate::network::Weights;
use crate::params::ModelParams;
use crate::score::RawScores;

/// Most rows per chunk (and per parallel task). 64 rows of the widest activation of the
/// default network (256 floats) are 64 KiB, which stays in L2 with the weights streaming
/// past it.
pub const CHUNK: usize = 64;

/// Fewest rows worth splitting across threads. Below this (a streaming micro-batch of a few
/// records) a rayon hand-off costs more latency than the second core saves; from here on
/// the batch is cut into one task per thread (at most [`CHUNK`] rows each), so batch 32-64
/// already runs on both cores. Measured: batch 64 of the NSL-KDD shape 162 us on one
/// thread (docs/BENCHMARKS.md).
pub const PARALLEL_FROM: usize = 32;

/// Rows per task for a batch of `n` rows on `threads` threads: an even share rounded up to
/// the micro-kernel's 6-row blocks, capped at [`CHUNK`].
fn task_rows(n: usize, threads: usize) -> usize {
    n.div_ceil(threads.max(1)).next_multiple_of(6).min(CHUNK)
}

/// Rows to score: a 2-D view in any layout, or one slice per feature (how Arrow holds a
/// batch, so the SQL functions score Arrow columns without first copying them into a
/// matrix; the copy into scratch that scaling needs anyway is the only one).
#[derive(Debug, Clone, Copy)]
enum Input<'a> {
    View(ArrayView2<'a, f32>),
    Columns {
        cols: &'a [&'a [f32]],
        start: usize,
        len: usize,
    },
}

impl<'a> Input<'a> {
    fn nrows(&self) -> usize {
        match self {
            Input::View(v) => v.nrows(),
            Input::Columns { len, .. } => *len,
        }
    }

    /// Rows `from..to` of this input.
    fn rows(&self, from: usize, to: usize) -> Input<'a> {
        match *self {
            Input::View(v) => Input::View(v.slice_move(ndarray::s![from..to, ..])),
            Input::Columns { cols, start, .. } => Input::Columns {
                cols,
                start: start + from,
                len: to - from,
            },
        }
    }
}

/// Where a batch is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// Batches of [`PARALLEL_FROM`] rows or more are split across rayon's threads.
    #[default]
    Rayon,
    /// On the calling thread only: for callers that already run one stream per core
    /// (DataFusion's partitions), where handing each batch to rayon would block the caller
    /// and leave its own next batch (decoding, I/O) waiting behind the scoring.
    Caller,
}

/// Per-row outputs, owned by the caller. All slices have one entry per input row.
#[derive(Debug)]
pub struct ScoreOut<'a> {
    /// S_sum (eq. 17).
    pub s_sum: &'a mut [f32],
    /// Attention mass on M_l, summed directly (see `score::logit_anomaly_mass`).
    pub m_l: &'a mut [f32],
    /// S_KL (eq. 18).
    pub s_kl: &'a mut [f32],
    /// Reconstruction MSE; `None` skips the decoder.
    pub mse: Option<&'a mut [f32]>,
}

/// The model's input scaling (`MinMaxScaler`) in the form applied row by row: per feature
/// `v -> ln-compress (if any) -> (v - lo) * scale`. The scorer applies it while a chunk is
/// copied into scratch; `MinMaxScaler::transform` applies it to whole arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct Prescale {
    /// Per feature: applied first when present.
    pub compress: Vec<Option<crate::scaler::LogCompress>>,
    /// Per feature offset.
    pub lo: Vec<f32>,
    /// Per feature multiplier.
    pub scale: Vec<f32>,
}

impl Prescale {
    /// Scales one row (one value per feature) in place.
    #[inline]
    pub fn apply_row<'a>(&self, row: impl IntoIterator<Item = &'a mut f32>) {
        for (((v, c), &lo), &scale) in row
            .into_iter()
            .zip(&self.compress)
            .zip(&self.lo)
            .zip(&self.scale)
        {
            *v = scale_value(c.as_ref(), lo, scale, *v);
        }
    }

    /// Scales one value of feature `j`.
    #[inline]
    pub fn value(&self, j: usize, v: f32) -> f32 {
        scale_value(self.compress[j].as_ref(), self.lo[j], self.scale[j], v)
    }
}

/// One feature value through the model's scaling: log-compression when the feature has it,
/// then `(v - lo) * scale`. The one place the rule is written; [`Prescale::apply_row`] and
/// [`copy_column`] both call it (inlined, so a constant `compress` folds away per column).
#[inline(always)]
fn scale_value(compress: Option<&crate::scaler::LogCompress>, lo: f32, scale: f32, v: f32) -> f32 {
    let t = match compress {
        Some(c) => c.apply(v),
        None => v,
    };
    (t - lo) * scale
}

/// Runs `fill` on freshly allocated outputs for `n` rows and returns them.
fn allocating(n: usize, with_mse: bool, fill: impl FnOnce(ScoreOut<'_>)) -> RawScores {
    let (mut s_sum, mut m_l, mut s_kl) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut mse = with_mse.then(|| vec![0.0; n]);
    fill(ScoreOut {
        s_sum: &mut s_sum,
        m_l: &mut m_l,
        s_kl: &mut s_kl,
        mse: mse.as_deref_mut(),
    });
    RawScores {
        s_sum,
        m_l,
        s_kl,
        mse,
    }
}

/// Copies feature `j` of a chunk (`col`, one value per row) into column `j` of the
/// row-major `dst` (`d` values per row), scaling on the way.
///
/// Used for column-major views and Arrow columns, column by column, because reading such a
/// chunk row by row touches one cache line per feature at a stride of the batch height; with
/// a power-of-two batch (DataFusion's 8192 rows = 32 KiB) every one of those lines maps to
/// the same L1 set and each read missed L1 (measured: 36 % of the chunk's non-product time on
/// one store). Here reads are sequential and the scattered writes land in a chunk-sized
/// row-major buffer.
fn copy_column<'c>(
    j: usize,
    col: impl Iterator<Item = &'c f32>,
    dst: &mut [f32],
    d: usize,
    prescale: Option<&Prescale>,
) {
    let out = dst[j..].iter_mut().step_by(d);
    let Some(p) = prescale else {
        out.zip(col).for_each(|(o, &v)| *o = v);
        return;
    };
    let (lo, scale) = (p.lo[j], p.scale[j]);
    // The branch on compression is taken once per column, not per value.
    match &p.compress[j] {
        Some(c) => out
            .zip(col)
            .for_each(|(o, &v)| *o = scale_value(Some(c), lo, scale, v)),
        None => out
            .zip(col)
            .for_each(|(o, &v)| *o = scale_value(None, lo, scale, v)),
    }
}

/// A model's network prepared for scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    net: PackedNetwork,
    /// The six products packed for bf16 (in [`PackedNetwork::layers`] order), when the
    /// scorer runs in [`Precision::Bf16`]; `net` still gives the shapes.
    bf16: Option<Box<[PackedBf16; 6]>>,
    attend: AttendParams,
    prescale: Option<Prescale>,
}

/// The products of [`PackedNetwork::layers`], by position.
#[derive(Debug, Clone, Copy)]
enum Layer {
    Enc1 = 0,
    Enc2,
    Address,
    Read,
    Dec1,
    Dec2,
}

/// Scratch for one chunk, grown on demand and reused.
#[derive(Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    h1: Vec<f32>,
    z: Vec<f32>,
    logits: Vec<f32>,
    w_hat: Vec<f32>,
    z_hat: Vec<f32>,
    h3: Vec<f32>,
    x_hat: Vec<f32>,
    /// Activations rounded to bf16 (bf16 products only).
    rounded: Vec<f32>,
}

fn outs<'a>(
    s_sum: &'a mut [f32],
    m_l: &'a mut [f32],
    s_kl: &'a mut [f32],
    mse: Option<&'a mut [f32]>,
) -> ScoreOut<'a> {
    ScoreOut {
        s_sum,
        m_l,
        s_kl,
        mse,
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scorer {
    /// Packs the weights of a network with architecture `p`.
    pub fn new(w: &Weights<f32>, p: &ModelParams) -> Self {
        let mut net = PackedNetwork::default();
        net.pack_into(w);
        Scorer {
            net,
            attend: AttendParams {
                k: p.memory_normal,
                guard: p.log_guard as f32,
                gamma: p.shrink_threshold as f32,
                eps: p.shrink_eps as f32,
            },
            prescale: None,
            bf16: None,
        }
    }

    /// Runs the products in `precision`: [`Precision::Bf16`] repacks every layer for bf16,
    /// for the fastest kernel this machine has ([`Bf16Kernel::detect`]).
    pub fn with_precision(self, precision: Precision) -> Self {
        self.with_precision_on(precision, Bf16Kernel::detect())
    }

    /// [`Scorer::with_precision`] with the given bf16 kernel (benchmarks compare them).
    ///
    /// # Panics
    /// When `kernel` does not run on this machine ([`Bf16Kernel::available`]).
    pub fn with_precision_on(mut self, precision: Precision, kernel: Bf16Kernel) -> Self {
        self.bf16 = match precision {
            Precision::F32 => None,
            Precision::Bf16 => Some(Box::new(
                self.net
                    .layers()
                    .map(|l: &PackedLinear| pack_layer(l, kernel)),
            )),
        };
        self
    }

    /// The arithmetic of the products.
    pub fn precision(&self) -> Precision {
        match self.bf16 {
            Some(_) => Precision::Bf16,
            None => Precision::F32,
        }
    }

    /// One product of the network on `rows` rows, in this scorer's precision.
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        layer: Layer,
        x: &[f32],
        xs: usize,
        rows: usize,
        y: &mut [f32],
        ys: usize,
        relu: bool,
        rounded: &mut Vec<f32>,
    ) {
        match &self.bf16 {
            Some(b) => matmul_bf16(x, xs, rows, &b[layer as usize], y, ys, relu, rounded),
            None => matmul(x, xs, rows, self.net.layers()[layer as usize], y, ys, relu),
        }
    }

    /// The scaling applied to raw rows as they are read, when there is one.
    pub fn prescale(&self) -> Option<&Prescale> {
        self.prescale.as_ref()
    }

    /// Applies `prescale` to raw rows as they are read (so scaling needs no copy of the batch).
    pub fn with_prescale(mut self, prescale: Prescale) -> Self {
        self.prescale = Some(prescale);
        self
    }

    /// Input features per row.
    pub fn input_dim(&self) -> usize {
        self.net.enc1.in_dim()
    }

    /// Multiply-adds per row of the matrix products: encoder and addressing, plus the
    /// decoder when `with_mse`. Twice this is the FLOP count used in benchmark reports.
    pub fn macs_per_row(&self, with_mse: bool) -> usize {
        self.net.macs_per_row(with_mse)
    }

    /// Bytes of packed f32 weights a row reads (see [`PackedNetwork::weight_bytes`]).
    pub fn weight_bytes(&self, with_mse: bool) -> usize {
        self.net.weight_bytes(with_mse)
    }

    /// Scores `x` (one row per record, [`Scorer::input_dim`] columns) into `out`.
    ///
    /// # Panics
    /// When `x` has the wrong width or an output slice the wrong length (caller bugs).
    pub fn score_into(&self, x: ArrayView2<f32>, out: ScoreOut<'_>) {
        assert_eq!(x.ncols(), self.input_dim(), "input width");
        self.score_input(Input::View(x), out, Threads::Rayon);
    }

    /// Scores rows given as one slice per feature (`cols[j][i]` = feature `j` of row `i`)
    /// into `out`, without assembling them into a matrix first, on `threads`.
    ///
    /// # Panics
    /// When there is not one slice per feature, the slices differ in length, or an output
    /// slice has the wrong length (caller bugs).
    pub fn score_columns_into(&self, cols: &[&[f32]], out: ScoreOut<'_>, threads: Threads) {
        assert_eq!(cols.len(), self.input_dim(), "one slice per feature");
        let len = cols.first().map_or(0, |c| c.len());
        assert!(
            cols.iter().all(|c| c.len() == len),
            "feature slices differ in length"
        );
        self.score_input(
            Input::Columns {
                cols,
                start: 0,
                len,
            },
            out,
            threads,
        );
    }

    fn score_input(&self, x: Input<'_>, out: ScoreOut<'_>, threads: Threads) {
        let n = x.nrows();
        assert!(
            out.s_sum.len() == n && out.m_l.len() == n && out.s_kl.len() == n,
            "output length"
        );
        assert!(out.mse.as_ref().is_none_or(|m| m.len() == n), "mse length");
        let ScoreOut {
            s_sum,
            m_l,
            s_kl,
            mut mse,
        } = out;
        let pool = match threads {
            Threads::Rayon => rayon::current_num_threads(),
            Threads::Caller => 1,
        };
        if n < PARALLEL_FROM || pool == 1 {
            // One thread: chunk by chunk on the calling thread.
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                self.chunk(
                    x.rows(start, end),
                    ScoreOut {
                        s_sum: &mut s_sum[start..end],
                        m_l: &mut m_l[start..end],
                        s_kl: &mut s_kl[start..end],
                        mse: mse.as_deref_mut().map(|m| &mut m[start..end]),
                    },
                );
            }
            return;
        }
        let t = task_rows(n, pool);
        let rows = |i: usize| x.rows(i * t, ((i + 1) * t).min(n));
        let triples = s_sum
            .par_chunks_mut(t)
            .zip(m_l.par_chunks_mut(t))
            .zip(s_kl.par_chunks_mut(t));
        match mse {
            Some(mse) => triples
                .zip(mse.par_chunks_mut(t))
                .enumerate()
                .for_each(|(i, (((a, l), b), e))| self.chunk(rows(i), outs(a, l, b, Some(e)))),
            None => triples
                .enumerate()
                .for_each(|(i, ((a, l), b))| self.chunk(rows(i), outs(a, l, b, None))),
        }
    }

    /// Scores `x`, allocating the outputs.
    pub fn score(&self, x: ArrayView2<f32>, with_mse: bool) -> RawScores {
        allocating(x.nrows(), with_mse, |out| self.score_into(x, out))
    }

    /// Scores one slice per feature (see [`Scorer::score_columns_into`]), allocating the
    /// outputs.
    pub fn score_columns(&self, cols: &[&[f32]], with_mse: bool, threads: Threads) -> RawScores {
        let n = cols.first().map_or(0, |c| c.len());
        allocating(n, with_mse, |out| {
            self.score_columns_into(cols, out, threads)
        })
    }

    /// One chunk of at most [`CHUNK`] rows on the calling thread.
    fn chunk(&self, x: Input<'_>, out: ScoreOut<'_>) {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            self.chunk_with(&mut scratch, x, out);
        });
    }

    fn chunk_with(&self, s: &mut Scratch, x: Input<'_>, out: ScoreOut<'_>) {
        let ScoreOut {
            s_sum,
            m_l,
            s_kl,
            mse,
        } = out;
        let (n, d) = (x.nrows(), self.input_dim());
        let (hs, zs, ms) = (
            self.net.enc1.out_padded(),
            self.net.enc2.out_padded(),
            self.net.address.out_padded(),
        );
        grow(&mut s.h1, n * hs);
        grow(&mut s.z, n * zs);
        grow(&mut s.logits, n * ms);
        grow(&mut s.w_hat, n * ms);
        // The input: read in place when it is contiguous and needs no scaling.
        let direct = match (&self.prescale, x) {
            (None, Input::View(v)) => v.to_slice(),
            _ => None,
        };
        let xin: &[f32] = match direct {
            Some(slice) => slice,
            None => {
                grow(&mut s.x, n * d);
                let dst = &mut s.x[..n * d];
                let p = self.prescale.as_ref();
                match x {
                    Input::Columns { cols, start, len } => {
                        for (j, col) in cols.iter().enumerate() {
                            copy_column(j, col[start..start + len].iter(), dst, d, p);
                        }
                    }
                    Input::View(v)
                        if v.strides()[0].unsigned_abs() < v.strides()[1].unsigned_abs() =>
                    {
                        for (j, col) in v.columns().into_iter().enumerate() {
                            copy_column(j, col.iter(), dst, d, p);
                        }
                    }
                    Input::View(v) => {
                        for (row, dst) in v.rows().into_iter().zip(dst.chunks_exact_mut(d)) {
                            for (o, &v) in dst.iter_mut().zip(row.iter()) {
                                *o = v;
                            }
                            if let Some(p) = p {
                                p.apply_row(dst.iter_mut());
                            }
                        }
                    }
                }
                &s.x[..n * d]
            }
        };
        let r = &mut s.rounded;
        self.product(Layer::Enc1, xin, d, n, &mut s.h1, hs, true, r);
        self.product(Layer::Enc2, &s.h1, hs, n, &mut s.z, zs, false, r);
        self.product(Layer::Address, &s.z, zs, n, &mut s.logits, ms, false, r);
        let m = self.net.address.out_dim();
        for (r, ((a, l), b)) in s_sum
            .iter_mut()
            .zip(m_l.iter_mut())
            .zip(s_kl.iter_mut())
            .enumerate()
        {
            let logits = &mut s.logits[r * ms..r * ms + m];
            let w_hat = &mut s.w_hat[r * ms..r * ms + m];
            (*a, *l, *b) = attend_row(logits, w_hat, &self.attend);
        }
        let Some(mse) = mse else { return };
        let (rs, ds, xs) = (
            self.net.read.out_padded(),
            self.net.dec1.out_padded(),
            self.net.dec2.out_padded(),
        );
        grow(&mut s.z_hat, n * rs);
        grow(&mut s.h3, n * ds);
        grow(&mut s.x_hat, n * xs);
        let r = &mut s.rounded;
        self.product(Layer::Read, &s.w_hat, ms, n, &mut s.z_hat, rs, false, r);
        self.product(Layer::Dec1, &s.z_hat, rs, n, &mut s.h3, ds, true, r);
        self.product(Layer::Dec2, &s.h3, ds, n, &mut s.x_hat, xs, false, r);
        for (r, out) in mse.iter_mut().enumerate() {
            let row = &xin[r * d..r * d + d];
            let rec = &s.x_hat[r * xs..r * xs + d];
            let sq: f32 = row.iter().zip(rec).map(|(&a, &b)| (b - a) * (b - a)).sum();
            *out = sq / d as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::forward;
    use ndarray::{Array2, ShapeBuilder};
    use rand::SeedableRng;

    fn close(got: &[f32], want: &[f32], rel: f32, what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= rel * w.abs().max(1.0),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// The kernel against the reference forward pass (`network::forward` +
    /// `RawScores::from_forward`), for batch sizes around the chunk and panel edges and for
    /// weights scaled up until attention saturates (tiny weights, guarded logs, shrinkage).
    #[test]
    fn matches_the_reference_forward_pass() {
        for (d, hidden, latent, k, l, sharpen) in [
            (7, 16, 8, 3, 2, 1.0f32),
            (29, 40, 17, 32, 32, 1.0),
            (122, 64, 32, 20, 12, 6.0),
        ] {
            let p = ModelParams {
                hidden_dim: hidden,
                latent_dim: latent,
                memory_normal: k,
                memory_anomaly: l,
                ..Default::default()
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d as u64);
            let mut w: Weights<f32> = Weights::init(d, &p, &mut rng);
            w.memory.mapv_inplace(|v| v * sharpen);
            let scorer = Scorer::new(&w, &p);
            for rows in [1, 5, 6, 63, 64, 65, 200] {
                let x = Array2::from_shape_fn((rows, d), |(i, j)| {
                    (((i * 131 + j * 71) % 97) as f32 / 97.0)
                        * if sharpen > 1.0 { 3.0 } else { 1.0 }
                });
                let want = RawScores::from_forward(&forward(&w, x.view(), &p), &p);
                let got = scorer.score(x.view(), true);
                let tag = format!("d={d} rows={rows}");
                close(&got.s_sum, &want.s_sum, 1e-5, &format!("s_sum {tag}"));
                close(&got.m_l, &want.m_l, 1e-5, &format!("m_l {tag}"));
                close(&got.s_kl, &want.s_kl, 1e-4, &format!("s_kl {tag}"));
                close(
                    got.mse.as_ref().unwrap(),
                    want.mse.as_ref().unwrap(),
                    1e-4,
                    &format!("mse {tag}"),
                );
                let fast = scorer.score(x.view(), false);
                assert!(fast.mse.is_none());
                assert_eq!((fast.s_sum, fast.s_kl), (got.s_sum, got.s_kl), "{tag}");
            }
        }
    }

    /// bf16 products against f32 on the default architecture with trained-like weights:
    /// close scores, the same order of rows, and the emulated path equal to the native one
    /// up to accumulation order.
    #[test]
    fn bf16_scores_stay_close_to_f32() {
        let (d, p) = (122, ModelParams::default());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        let mut w: Weights<f32> = Weights::init(d, &p, &mut rng);
        w.memory.mapv_inplace(|v| v * 4.0);
        let x = Array2::from_shape_fn((300, d), |(i, j)| {
            ((i * 131 + j * 71) % 97) as f32 / 97.0 * if i % 10 == 0 { 3.0 } else { 1.0 }
        });
        let f32s = Scorer::new(&w, &p);
        let want = f32s.score(x.view(), true);
        let bf = f32s.clone().with_precision(Precision::Bf16);
        assert_eq!(bf.precision(), Precision::Bf16);
        let got = bf.score(x.view(), true);
        let max_diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        assert!(max_diff(&got.s_sum, &want.s_sum) < 0.02, "s_sum");
        let (gm, wm) = (got.mse.as_ref().unwrap(), want.mse.as_ref().unwrap());
        for (g, w) in gm.iter().zip(wm) {
            assert!((g - w).abs() <= 0.03 * w.abs() + 1e-4, "mse {g} vs {w}");
        }
        // bf16 rounds, so the two differ: this is not the f32 path under another name.
        assert_ne!(got.s_sum, want.s_sum);
        let emulated = f32s
            .clone()
            .with_precision_on(Precision::Bf16, Bf16Kernel::Emulated);
        let emulated = emulated.score(x.view(), true);
        for kernel in [Bf16Kernel::Amx, Bf16Kernel::AvxDot] {
            if !kernel.available() {
                continue;
            }
            let other = f32s.clone().with_precision_on(Precision::Bf16, kernel);
            let other = other.score(x.view(), true);
            assert!(
                max_diff(&emulated.s_sum, &other.s_sum) < 1e-4,
                "{kernel:?} s_sum"
            );
            let mse = (emulated.mse.as_ref().unwrap(), other.mse.as_ref().unwrap());
            assert!(max_diff(mse.0, mse.1) < 1e-4, "{kernel:?} mse");
        }
    }

    #[test]
    fn tasks_cover_the_batch_in_six_row_blocks() {
        assert_eq!(task_rows(64, 2), 36);
        assert_eq!(task_rows(32, 2), 18);
        assert_eq!(task_rows(4096, 2), CHUNK);
        assert_eq!(task_rows(100, 1), CHUNK);
    }

    #[test]
    fn prescale_equals_scaling_first_and_strided_input_is_read_correctly() {
        use crate::scaler::{MinMaxScaler, Scaling};
        let p = ModelParams {
            hidden_dim: 24,
            latent_dim: 8,
            memory_normal: 4,
            memory_anomaly: 4,
            ..Default::default()
        };
        let d = 9;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let w: Weights<f32> = Weights::init(d, &p, &mut rng);
        // Skewed columns so `Scaling::Auto` log-compresses some of them.
        let raw = Array2::from_shape_fn((150, d), |(i, j)| {
            let v = ((i * 37 + j * 11) % 50) as f32;
            if j % 2 == 0 { v.powi(3) } else { v }
        });
        let scaler = MinMaxScaler::fit(&[raw.view()], Scaling::Auto).unwrap();
        assert!(scaler.log_compress.iter().any(Option::is_some));
        let plain = Scorer::new(&w, &p);
        let fused = plain.clone().with_prescale(scaler.prescale());
        let want = plain.score(scaler.transform(raw.view()).view(), true);
        let got = fused.score(raw.view(), true);
        assert_eq!(got, want);
        // A column-major (non-contiguous) view takes the copying path and agrees too.
        let mut fortran = Array2::zeros(raw.raw_dim().f());
        fortran.assign(&raw);
        assert!(fortran.as_slice().is_none());
        assert_eq!(fused.score(fortran.view(), true), want);
        // Column-major input without a prescale is copied column by column as well.
        let mut scaled = Array2::zeros(raw.raw_dim().f());
        scaled.assign(&scaler.transform(raw.view()));
        assert_eq!(plain.score(scaled.view(), true), want);
        // One slice per feature (Arrow's layout), split across rayon's threads, agrees too.
        let cols: Vec<Vec<f32>> = raw.columns().into_iter().map(|c| c.to_vec()).collect();
        let slices: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
        assert_eq!(fused.score_columns(&slices, true, Threads::Rayon), want);
        // On the calling thread alone: the same numbers.
        assert_eq!(fused.score_columns(&slices, true, Threads::Caller), want);
    }
}
