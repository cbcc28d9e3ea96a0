//! Research tool behind docs/ACCURACY.md's "what was tried": trains the validation probe and
//! the final model of each protocol run and writes their raw scores (S_sum, M_l mass, S_KL,
//! MSE) on every set that a score-selection rule could look at, so rules are compared
//! offline on identical models instead of retraining per rule.
//!
//! Input: `PREFIX.x.f32` (row-major little-endian f32), `PREFIX.y.i8` (1 = anomaly),
//! optionally `PREFIX.t.i8` (anomaly type), and `PREFIX.json` `{"rows": n, "cols": d}`.
//! Usage: `score_dump PREFIX MEMORY RUNS KNOWN|- OUTDIR [EPOCHS]`.
//! Output: OUTDIR/run<N>.json.

use std::io::Write;

use mmnet_core::experiment::{run_seed, take_rows};
use mmnet_core::protocol::{KnownType, ProtocolConfig, split};
use mmnet_core::score::RawScores;
use mmnet_core::select::Selection;
use mmnet_core::train::{FitConfig, Silent, TrainData};
use mmnet_core::{ModelParams, TrainParams};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn read(path: &str) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}").into())
}

fn raw_json(r: &RawScores) -> serde_json::Value {
    serde_json::json!({
        "s_sum": r.s_sum, "m_l": r.m_l, "s_kl": r.s_kl, "mse": r.mse,
    })
}

/// Synthetic anomalies from held-out unlabeled rows, three kinds:
/// - `marginal`: every feature from an independently drawn row (dependencies broken);
/// - `partial`: a quarter of the features (at least one) from other rows;
/// - `range`: one to three features pushed 10-50 % of their range outside it.
fn synthetic(u: ArrayView2<f32>, seed: u64) -> Vec<(&'static str, Array2<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5717);
    let (n, d) = u.dim();
    let lo: Vec<f32> = (0..d)
        .map(|j| u.column(j).iter().copied().fold(f32::INFINITY, f32::min))
        .collect();
    let hi: Vec<f32> = (0..d)
        .map(|j| {
            u.column(j)
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect();
    let mut marginal = Array2::<f32>::zeros((n, d));
    let mut partial = u.to_owned();
    let mut range = u.to_owned();
    let k = (d / 4).max(1);
    for i in 0..n {
        for j in 0..d {
            marginal[[i, j]] = u[[rng.random_range(0..n), j]];
        }
        for _ in 0..k {
            let j = rng.random_range(0..d);
            partial[[i, j]] = u[[rng.random_range(0..n), j]];
        }
        for _ in 0..rng.random_range(1..=3usize) {
            let j = rng.random_range(0..d);
            let w = (hi[j] - lo[j]).max(1e-6) * rng.random_range(0.1f32..0.5);
            range[[i, j]] = if rng.random_bool(0.5) {
                hi[j] + w
            } else {
                lo[j] - w
            };
        }
    }
    vec![
        ("marginal", marginal),
        ("partial", partial),
        ("range", range),
    ]
}

fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        return Err("usage: score_dump PREFIX MEMORY RUNS KNOWN|- OUTDIR [EPOCHS]".into());
    }
    let (prefix, mem, runs, known, out) = (
        &a[1],
        a[2].parse::<usize>()?,
        a[3].parse::<usize>()?,
        &a[4],
        &a[5],
    );
    let epochs = match a.get(6) {
        Some(e) => e.parse()?,
        None => 200,
    };
    let meta: serde_json::Value = serde_json::from_slice(&read(&format!("{prefix}.json"))?)?;
    let (n, d) = (
        meta["rows"].as_u64().ok_or("meta: rows")? as usize,
        meta["cols"].as_u64().ok_or("meta: cols")? as usize,
    );
    let xb = read(&format!("{prefix}.x.f32"))?;
    let x = Array2::from_shape_vec(
        (n, d),
        xb.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )?;
    let labels: Vec<bool> = read(&format!("{prefix}.y.i8"))?
        .iter()
        .map(|&v| v == 1)
        .collect();
    let types: Vec<i64> = std::fs::read(format!("{prefix}.t.i8"))
        .map(|t| t.iter().map(|&v| v as i8 as i64).collect())
        .unwrap_or_default();
    let known_list: Vec<i64> = if known == "-" {
        Vec::new()
    } else {
        known
            .split(',')
            .map(|k| k.parse())
            .collect::<Result<_, _>>()?
    };
    let known = (!known_list.is_empty()).then(|| KnownType {
        types: &types,
        known: &known_list,
    });
    let features: Vec<String> = (0..d).map(|j| format!("f{j}")).collect();
    std::fs::create_dir_all(out)?;
    for run in 0..runs {
        let seed = run_seed(0, run);
        let s = split(&labels, known, &ProtocolConfig::default(), seed)?;
        let (xu, xl) = (
            take_rows(x.view(), &s.unlabeled),
            take_rows(x.view(), &s.labeled),
        );
        let cfg = FitConfig {
            model: ModelParams::default().with_memory_size(mem),
            train: TrainParams {
                epochs,
                seed,
                ..Default::default()
            },
            ..Default::default()
        };
        let sel = Selection::default();
        let h = sel.split(xu.nrows(), xl.nrows(), seed);
        let (ut, lt) = (
            take_rows(xu.view(), &h.u_train),
            take_rows(xl.view(), &h.l_train),
        );
        let (uv, lv) = (
            take_rows(xu.view(), &h.u_val),
            take_rows(xl.view(), &h.l_val),
        );
        let t0 = std::time::Instant::now();
        // The probe `--score auto` trains: the same rows, seed and settings.
        let probe = mmnet_core::fit(
            TrainData {
                features: &features,
                unlabeled: ut.view(),
                labeled: lt.view(),
            },
            &cfg,
            &mut Silent,
        )?;
        let probe_s = t0.elapsed().as_secs_f64();
        let raw = |m: &mmnet_core::Model, v: ArrayView2<f32>| -> Res<RawScores> {
            Ok(m.score(v, true, None)?.raw)
        };
        let mut pj = serde_json::json!({
            "u_train": raw_json(&raw(&probe, ut.view())?),
            "u_val": raw_json(&raw(&probe, uv.view())?),
            "l_val": raw_json(&raw(&probe, lv.view())?),
            "l_train": raw_json(&raw(&probe, lt.view())?),
        });
        for (name, sx) in synthetic(uv.view(), seed) {
            pj[format!("syn_{name}")] = raw_json(&raw(&probe, sx.view())?);
        }
        // FOLDS=F: F more probes, each holding out a disjoint F-th of D_l and a disjoint
        // fifth of D_u (cross-validated selection, studied in session 10).
        let folds: usize = std::env::var("FOLDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut fold_dumps = Vec::new();
        if let Some(kl) = xl.nrows().checked_div(folds) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf01d);
            let mut lp: Vec<usize> = (0..xl.nrows()).collect();
            let mut up: Vec<usize> = (0..xu.nrows()).collect();
            rand::seq::SliceRandom::shuffle(lp.as_mut_slice(), &mut rng);
            rand::seq::SliceRandom::shuffle(up.as_mut_slice(), &mut rng);
            let ku = xu.nrows() / 5;
            for f in 0..folds {
                let lv: Vec<usize> = lp[f * kl..(f + 1) * kl].to_vec();
                let uv: Vec<usize> = up[f * ku..(f + 1) * ku].to_vec();
                let lt: Vec<usize> = lp.iter().copied().filter(|i| !lv.contains(i)).collect();
                let ut: Vec<usize> = up.iter().copied().filter(|i| !uv.contains(i)).collect();
                let (ut, lt, uv, lv) = (
                    take_rows(xu.view(), &ut),
                    take_rows(xl.view(), &lt),
                    take_rows(xu.view(), &uv),
                    take_rows(xl.view(), &lv),
                );
                let p = mmnet_core::fit(
                    TrainData {
                        features: &features,
                        unlabeled: ut.view(),
                        labeled: lt.view(),
                    },
                    &cfg,
                    &mut Silent,
                )?;
                fold_dumps.push(serde_json::json!({
                    "u_train": raw_json(&raw(&p, ut.view())?),
                    "u_val": raw_json(&raw(&p, uv.view())?),
                    "l_val": raw_json(&raw(&p, lv.view())?),
                }));
            }
        }
        let t1 = std::time::Instant::now();
        let model = mmnet_core::fit(
            TrainData {
                features: &features,
                unlabeled: xu.view(),
                labeled: xl.view(),
            },
            &cfg,
            &mut Silent,
        )?;
        let final_s = t1.elapsed().as_secs_f64();
        let xt = take_rows(x.view(), &s.test);
        // ENSEMBLE=M: M - 1 more final models, other seeds, same split.
        let members: usize = std::env::var("ENSEMBLE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut extra = Vec::new();
        for k in 1..members {
            let mut c = cfg.clone();
            c.train.seed = seed + 1000 * k as u64;
            let m = mmnet_core::fit(
                TrainData {
                    features: &features,
                    unlabeled: xu.view(),
                    labeled: xl.view(),
                },
                &c,
                &mut Silent,
            )?;
            extra.push(serde_json::json!({
                "u": raw_json(&raw(&m, xu.view())?),
                "test": raw_json(&raw(&m, xt.view())?),
            }));
        }
        let doc = serde_json::json!({
            "extra": extra,
            "folds": fold_dumps,
            "run": run, "seed": seed, "probe_seconds": probe_s, "final_seconds": final_s,
            "split": {"unlabeled": s.unlabeled, "labeled": s.labeled, "test": s.test},
            "probe": pj,
            "final": {
                "u": raw_json(&raw(&model, xu.view())?),
                "l": raw_json(&raw(&model, xl.view())?),
                "test": raw_json(&raw(&model, xt.view())?),
                "test_label": s.test.iter().map(|&i| labels[i] as u8).collect::<Vec<_>>(),
                "test_type": s.test.iter().map(|&i| types.get(i).copied().unwrap_or(0)).collect::<Vec<_>>(),
            },
        });
        let mut f = std::fs::File::create(format!("{out}/run{run}.json"))?;
        f.write_all(serde_json::to_string(&doc)?.as_bytes())?;
        eprintln!("{out} run {run}: probe {probe_s:.1} s, final {final_s:.1} s");
    }
    Ok(())
}
