//! Scoring and training kernels (issue 6), with criterion.
//!
//! `make bench` runs this, then `benches/torch_baseline.py` on the cases it exports, then
//! `benches/bench_report.py` to write docs/BENCHMARKS.md. Before benchmarking, this binary
//! writes into `$MMNET_BENCH_DIR` (default `target/bench-cases`):
//! - per network shape: `weights.safetensors`, 256 input rows (`x.f32`, little-endian) and
//!   mmnet's S_sum / S_KL / MSE for them, so the PyTorch baseline runs the *same* weights
//!   and proves its scores match before it is timed;
//! - `cases.json`: shapes, batch sizes, multiply-adds per row, the training batch;
//! - `peak.json`: the measured FP32 FMA peak on 1 and 2 threads.
//!
//! Groups: `score/f{D}_m{M}/{batch}` (the default score: encoder, addressing and decoder),
//! `score_attention/...` (S_sum and S_KL only: no decoder), `score_bf16/...` (the default
//! score with bf16 products, NSL-KDD's shape, on the fastest bf16 kernel here; and
//! `score_bf16_avx512/...` with `vdpbf16ps` where that is not the fastest), `score_reference/...` (the
//! ndarray forward pass the kernel replaced), `train_step/...` (one Adam step).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use mmnet_core::adam::Adam;
use mmnet_core::artifact::weights_to_safetensors;
use mmnet_core::kernel::peak::{bf16_dot_peak_gflops, fma_peak_gflops, read_gbps};
use mmnet_core::kernel::training::StepScratch;
use mmnet_core::kernel::{Bf16Kernel, Precision, ScoreOut, Scorer};
use mmnet_core::network::{Weights, forward};
use mmnet_core::score::RawScores;
use mmnet_core::train::train_step;
use mmnet_core::{ModelParams, TrainParams};
use ndarray::{Array2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCHES: [usize; 5] = [1, 16, 64, 256, 4096];
/// (features, memory items): NSL-KDD's 122 x 64 and one axis varied at a time.
const SHAPES: [(usize, usize); 5] = [(122, 64), (29, 64), (500, 64), (122, 32), (122, 128)];
/// Rows exported for the score-equality check.
const CHECK_ROWS: usize = 256;
/// The training step: 512 unlabeled + 512 labeled rows, as `fit`'s default batches.
const TRAIN_BATCH: usize = 1024;
/// D_u rows of one NSL-KDD epoch in the paper's protocol (70 % of the 77,054 normal rows
/// plus 70 % of the 71,463 attacks that are not held out as labeled = rows / batch).
const NSLKDD_DU_ROWS: usize = 103_000;

fn params(memory: usize) -> ModelParams {
    ModelParams {
        memory_normal: memory / 2,
        memory_anomaly: memory - memory / 2,
        ..Default::default()
    }
}

fn rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, d), || rng.random::<f32>())
}

fn weights(d: usize, p: &ModelParams) -> Weights<f32> {
    Weights::init(
        d,
        p,
        &mut ChaCha8Rng::seed_from_u64(d as u64 * 1000 + p.memory_size() as u64),
    )
}

fn case_name(d: usize, m: usize) -> String {
    format!("f{d}_m{m}")
}

fn export(dir: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cases = Vec::new();
    // Bytes of packed weights one row of the first shape reads, for the batch-1 bound below.
    let mut first_bytes = None;
    for (d, m) in SHAPES {
        let p = params(m);
        let w = weights(d, &p);
        let scorer = Scorer::new(&w, &p);
        first_bytes.get_or_insert(scorer.weight_bytes(true));
        let x = rows(CHECK_ROWS, d, 7);
        let raw = scorer.score(x.view(), true);
        let case = dir.join(case_name(d, m));
        std::fs::create_dir_all(&case)?;
        let st = weights_to_safetensors(&w).map_err(std::io::Error::other)?;
        std::fs::write(case.join("weights.safetensors"), st)?;
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(case.join("x.f32"), bytes)?;
        let scores = serde_json::json!({
            "s_sum": raw.s_sum, "s_kl": raw.s_kl, "mse": raw.mse,
        });
        std::fs::write(case.join("scores.json"), scores.to_string())?;
        cases.push(serde_json::json!({
            "name": case_name(d, m), "features": d, "memory": m,
            "memory_normal": p.memory_normal, "hidden": p.hidden_dim, "latent": p.latent_dim,
            "shrink_threshold": p.shrink_threshold, "shrink_eps": p.shrink_eps,
            "log_guard": p.log_guard, "margin": p.margin, "lambda_mask": p.lambda_mask,
            "lambda_kl": p.lambda_kl,
            "macs_full": scorer.macs_per_row(true), "macs_attention": scorer.macs_per_row(false),
            "weight_bytes_full": scorer.weight_bytes(true),
            "weight_bytes_attention": scorer.weight_bytes(false),
        }));
    }
    let tp = TrainParams::default();
    let doc = serde_json::json!({
        "batches": BATCHES, "cases": cases, "isa": mmnet_core::kernel::packed::isa(),
        "train": {"case": case_name(122, 64), "batch": TRAIN_BATCH,
                  "steps_per_epoch": NSLKDD_DU_ROWS.div_ceil(tp.batch_size),
                  "du_rows": NSLKDD_DU_ROWS, "learning_rate": tp.learning_rate,
                  "weight_decay": tp.weight_decay},
    });
    std::fs::write(dir.join("cases.json"), serde_json::to_string_pretty(&doc)?)?;
    // What bounds batch 1: the read bandwidth of one thread over exactly the bytes of packed
    // weights one row of the first shape reads (f32, and half of it for bf16), ~0.3 s a try.
    let (d0, m0) = SHAPES[0];
    let bytes = first_bytes.unwrap_or(0);
    let read = |b: usize| read_gbps(b, (3e10 / b as f64) as usize, 5);
    // The peak: long enough (~0.3 s per try) to be past clock ramp-up, best of 5.
    let peak = serde_json::json!({
        "read_gbps_1_thread": {"case": case_name(d0, m0), "bytes": bytes,
                               "f32_weights": read(bytes), "bf16_weights": read(bytes / 2)},
        "gflops_1_thread": fma_peak_gflops(1, 20_000_000, 5),
        "gflops_2_threads": fma_peak_gflops(2, 20_000_000, 5),
        "threads_available": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        // vdpbf16ps, where the CPU has it: whether bf16 dot products beat f32 FMAs here.
        "bf16_dot_gflops_1_thread": bf16_dot_peak_gflops(1, 10_000_000, 5),
        "bf16_kernel": Bf16Kernel::detect().as_str(),
    });
    std::fs::write(dir.join("peak.json"), serde_json::to_string_pretty(&peak)?)?;
    eprintln!("bench cases and peak written to {}: {peak}", dir.display());
    Ok(())
}

fn score(c: &mut Criterion) {
    // bf16 with the fastest kernel here, and with `vdpbf16ps` when that is a different one.
    let bf16 = Bf16Kernel::detect();
    let dot = (bf16 == Bf16Kernel::Amx && Bf16Kernel::AvxDot.available()).then_some((
        "score_bf16_avx512",
        true,
        &SHAPES[..1],
        Precision::Bf16,
        Bf16Kernel::AvxDot,
    ));
    for (group, with_mse, shapes, precision, kernel) in [
        ("score", true, &SHAPES[..], Precision::F32, bf16),
        ("score_attention", false, &SHAPES[..1], Precision::F32, bf16),
        ("score_bf16", true, &SHAPES[..1], Precision::Bf16, bf16),
    ]
    .into_iter()
    .chain(dot)
    {
        let mut g = c.benchmark_group(group);
        for &(d, m) in shapes {
            let p = params(m);
            let scorer = Scorer::new(&weights(d, &p), &p).with_precision_on(precision, kernel);
            let x = rows(*BATCHES.iter().max().unwrap_or(&1), d, 11);
            let n = x.nrows();
            let (mut a, mut l, mut b, mut e) =
                (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            for batch in BATCHES {
                g.throughput(Throughput::Elements(batch as u64));
                g.bench_with_input(
                    BenchmarkId::new(case_name(d, m), batch),
                    &batch,
                    |bch, &k| {
                        bch.iter(|| {
                            scorer.score_into(
                                x.slice(s![..k, ..]),
                                ScoreOut {
                                    s_sum: &mut a[..k],
                                    m_l: &mut l[..k],
                                    s_kl: &mut b[..k],
                                    mse: with_mse.then_some(&mut e[..k]),
                                },
                            )
                        })
                    },
                );
            }
        }
        g.finish();
    }
    // What the kernel replaced: ndarray's forward pass (allocating, every activation kept).
    let mut g = c.benchmark_group("score_reference");
    let (d, m) = SHAPES[0];
    let p = params(m);
    let w = weights(d, &p);
    let x = rows(4096, d, 11);
    for batch in BATCHES {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(
            BenchmarkId::new(case_name(d, m), batch),
            &batch,
            |bch, &k| {
                bch.iter(|| RawScores::from_forward(&forward(&w, x.slice(s![..k, ..]), &p), &p))
            },
        );
    }
    g.finish();
}

fn train(c: &mut Criterion) {
    let (d, m) = SHAPES[0];
    let p = params(m);
    let tp = TrainParams::default();
    let mut w = weights(d, &p);
    let mut grads = w.zeros_like();
    let mut adam = Adam::new(&w, &tp);
    let mut scratch = StepScratch::default();
    let x = rows(TRAIN_BATCH, d, 13);
    let labeled: Vec<bool> = (0..TRAIN_BATCH).map(|i| i >= TRAIN_BATCH / 2).collect();
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(TRAIN_BATCH as u64));
    g.sample_size(20);
    g.bench_function(BenchmarkId::new(case_name(d, m), TRAIN_BATCH), |bch| {
        bch.iter(|| {
            train_step(
                &mut w,
                &mut grads,
                &mut adam,
                &mut scratch,
                x.view(),
                &labeled,
                &p,
                tp.learning_rate,
            )
        })
    });
    g.finish();
}

fn main() {
    let dir = std::env::var_os("MMNET_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-cases"));
    // `cargo bench` runs from the package directory; put the cases at the workspace root.
    let dir = if dir.is_relative() {
        PathBuf::from("../..").join(dir)
    } else {
        dir
    };
    if let Err(e) = export(&dir) {
        eprintln!("error: cannot write bench cases to {}: {e}", dir.display());
        std::process::exit(1);
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    score(&mut c);
    train(&mut c);
    c.final_summary();
}
