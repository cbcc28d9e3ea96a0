//! The FP32 peak of this CPU, measured: independent fused multiply-add chains that keep every
//! FMA unit busy and touch no memory. Benchmark reports put the kernels' GFLOP/s next to it,
//! so the distance to the roofline is a measurement, not a data-sheet figure.

#![allow(unsafe_code)] // Only to call `#[target_feature]` functions after checking the CPU.

use std::time::Instant;

/// Floating-point operations (2 per FMA) and seconds of `iters` rounds on one thread.
pub fn fma_run(iters: usize) -> (f64, f64) {
    let t = Instant::now();
    let (flops, sink) = fma_dispatch(iters);
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    (flops, secs)
}

/// Peak GFLOP/s on `threads` threads running [`fma_run`] at once (best of `repeats`).
pub fn fma_peak_gflops(threads: usize, iters: usize, repeats: usize) -> f64 {
    peak_gflops(fma_dispatch, threads, iters, repeats)
}

/// Peak GFLOP/s of `vdpbf16ps` (2 FLOPs per bf16 multiply-add) on `threads` threads, best
/// of `repeats`; `None` without AVX-512 BF16. Next to [`fma_peak_gflops`] it says whether
/// bf16 dot products are faster than f32 FMAs on this CPU at all (on the Xeon measured
/// here they run at half the FLOP rate, which is why bf16 scoring uses AMX tiles there).
pub fn bf16_dot_peak_gflops(threads: usize, iters: usize, repeats: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if super::bf16::Bf16Kernel::AvxDot.available() {
            // SAFETY (in the closure): the CPU supports AVX-512F and AVX-512 BF16.
            let run = |n| unsafe { dot_avx512bf16(n) };
            return Some(peak_gflops(run, threads, iters, repeats));
        }
    }
    let _ = (threads, iters, repeats);
    None
}

/// Read bandwidth in GB/s of one thread summing a buffer of `bytes` over and over (`passes`
/// times, best of `repeats`). With `bytes` = the weights a row reads, this is the bound on
/// batch-1 scoring: a single row uses every weight once, so it cannot run faster than its
/// weights stream from wherever they fit (L2 for the NSL-KDD shape), whatever the FMA units
/// could do. The sum is of integers so the compiler may split it into independent vector
/// accumulators (a float sum must stay in order and would measure the add latency instead).
pub fn read_gbps(bytes: usize, passes: usize, repeats: usize) -> f64 {
    let words = (bytes / 4).max(16);
    let buf: Vec<u32> = (0..words as u32).collect();
    (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            let mut sink = 0u32;
            for _ in 0..passes.max(1) {
                sink = sink.wrapping_add(sum_dispatch(std::hint::black_box(&buf)));
            }
            std::hint::black_box(sink);
            (words * 4 * passes.max(1)) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn sum_dispatch(buf: &[u32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { sum_avx512(buf) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { sum_avx2(buf) };
        }
    }
    sum_words(buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sum_avx512(buf: &[u32]) -> u32 {
    sum_words(buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sum_avx2(buf: &[u32]) -> u32 {
    sum_words(buf)
}

/// Eight lanes of 16 words: the loads, not the adds, are what this measures.
#[inline(always)]
fn sum_words(buf: &[u32]) -> u32 {
    let mut acc = [0u32; 128];
    let mut blocks = buf.chunks_exact(128);
    for b in &mut blocks {
        for (a, &v) in acc.iter_mut().zip(b) {
            *a = a.wrapping_add(v);
        }
    }
    let tail = blocks
        .remainder()
        .iter()
        .fold(0u32, |a, &v| a.wrapping_add(v));
    acc.iter().fold(tail, |a, &v| a.wrapping_add(v))
}

fn peak_gflops(
    run: impl Fn(usize) -> (f64, f32) + Copy + Send,
    threads: usize,
    iters: usize,
    repeats: usize,
) -> f64 {
    (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            let flops: f64 = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads.max(1))
                    .map(|_| s.spawn(move || run(iters).0))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
            });
            flops / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn fma_dispatch(iters: usize) -> (f64, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { fma_avx512(iters) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { fma_avx2(iters) };
        }
    }
    fma_chains(iters)
}

/// 12 chains of 16 lanes: 12 of 32 zmm registers, enough to cover 2 units x 4 cycles latency.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn fma_avx512(iters: usize) -> (f64, f32) {
    use std::arch::x86_64::*;
    let seed = std::hint::black_box(1e-3f32);
    let mut acc: [__m512; 12] = std::array::from_fn(|a| _mm512_set1_ps(seed * a as f32));
    let m = _mm512_set1_ps(std::hint::black_box(0.999));
    let c = _mm512_set1_ps(seed);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, m, c);
        }
    }
    let sink = acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum();
    ((iters * 12 * 16 * 2) as f64, sink)
}

/// 12 chains of `vdpbf16ps`, each 16 lanes x 2 bf16 multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn dot_avx512bf16(iters: usize) -> (f64, f32) {
    use std::arch::x86_64::*;
    let bits = |v: f32| _mm512_set1_ps(std::hint::black_box(v));
    // SAFETY: 512 bits of plain data either way.
    let (a, b) = unsafe {
        (
            std::mem::transmute::<__m512, __m512bh>(bits(1e-3)),
            std::mem::transmute::<__m512, __m512bh>(bits(0.999)),
        )
    };
    let mut acc: [__m512; 12] = std::array::from_fn(|_| _mm512_setzero_ps());
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbf16_ps(*v, a, b);
        }
    }
    let sink = acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum();
    ((iters * 12 * 32 * 2) as f64, sink)
}

/// 12 chains of 8 lanes: 12 of 16 ymm registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_avx2(iters: usize) -> (f64, f32) {
    use std::arch::x86_64::*;
    let seed = std::hint::black_box(1e-3f32);
    let mut acc: [__m256; 12] = std::array::from_fn(|a| _mm256_set1_ps(seed * a as f32));
    let m = _mm256_set1_ps(std::hint::black_box(0.999));
    let c = _mm256_set1_ps(seed);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, c);
        }
    }
    let mut sink = 0.0;
    for v in acc {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats; unaligned store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        sink += lanes.iter().sum::<f32>();
    }
    ((iters * 12 * 8 * 2) as f64, sink)
}

/// Portable fallback: whatever the compiler makes of independent scalar chains.
fn fma_chains(iters: usize) -> (f64, f32) {
    let seed = std::hint::black_box(1e-3f32);
    let mut acc: [f32; 32] = std::array::from_fn(|a| seed * a as f32);
    let m = std::hint::black_box(0.999f32);
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * m + seed;
        }
    }
    ((iters * 32 * 2) as f64, acc.iter().sum())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_two_flops_per_fma_and_stays_finite() {
        let (flops, sink) = super::fma_dispatch(1000);
        assert!(
            [12.0 * 16.0, 12.0 * 8.0, 32.0].contains(&(flops / 2000.0)),
            "{flops}"
        );
        assert!(sink.is_finite());
        if let Some(g) = super::bf16_dot_peak_gflops(1, 1000, 1) {
            assert!(g.is_finite() && g > 0.0, "{g}");
        }
    }

    #[test]
    fn the_read_probe_reads_every_word_tail_included() {
        // The sum of 0..n is the arithmetic series: nothing skipped, nothing read twice.
        let words: Vec<u32> = (0..1000).collect();
        assert_eq!(super::sum_dispatch(&words), 999 * 1000 / 2);
        assert_eq!(super::sum_dispatch(&words[..130]), 129 * 130 / 2);
        assert_eq!(super::sum_words(&words[..5]), 10);
        let g = super::read_gbps(64 << 10, 4, 1);
        assert!(g.is_finite() && g > 0.0, "{g}");
    }
}
