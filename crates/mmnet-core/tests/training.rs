//! Training end to end on synthetic data: it learns, it is reproducible, and bad input is
//! refused with a clear error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use mmnet_core::kernel::Threads;
use mmnet_core::metrics::auc_roc;
use mmnet_core::select::Selection;
use mmnet_core::{CoreError, FitConfig, ModelParams, ScoreVariant, TrainData, TrainParams, fit};
use ndarray::{Array2, Axis, concatenate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Normal rows near one centre, anomalies near another, in 8 dimensions.
fn blobs(n: usize, centre: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, 8), || centre + rng.random_range(-0.5f32..0.5))
}

fn features() -> Vec<String> {
    (0..8).map(|i| format!("x{i}")).collect()
}

fn cfg(epochs: usize, seed: u64) -> FitConfig {
    FitConfig {
        model: ModelParams::default().with_memory_size(16),
        train: TrainParams {
            epochs,
            batch_size: 128,
            seed,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A model trained on `u` (D_u) and `l` (D_l) with `cfg`, silently.
fn train_on(u: &Array2<f32>, l: &Array2<f32>, cfg: &FitConfig) -> mmnet_core::Model {
    let f = features();
    fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: l.view(),
        },
        cfg,
        &mut mmnet_core::train::Silent,
    )
    .unwrap()
}

#[test]
fn learns_to_separate_labeled_anomaly_type() {
    let normal = blobs(1500, 0.0, 1);
    let contam = blobs(20, 3.0, 2);
    let unlabeled = concatenate(Axis(0), &[normal.view(), contam.view()]).unwrap();
    let labeled = blobs(30, 3.0, 3);
    // The default score (`combined`) and its threshold.
    let model = train_on(&unlabeled, &labeled, &cfg(20, 0));
    let test = concatenate(
        Axis(0),
        &[blobs(200, 0.0, 4).view(), blobs(50, 3.0, 5).view()],
    )
    .unwrap();
    let labels: Vec<bool> = (0..250).map(|i| i >= 200).collect();
    let scores = model.score_all_variants(test.view()).unwrap();
    let get = |v: ScoreVariant| scores.iter().find(|(w, _)| *w == v).unwrap().1.clone();
    for v in [ScoreVariant::SSum, ScoreVariant::Combined] {
        let auc = auc_roc(&get(v), &labels).unwrap();
        assert!(auc > 0.95, "{} AUC {auc}", v.name());
    }
    assert_eq!(model.score.variant, ScoreVariant::Combined);
    // The loss went down.
    let h = &model.training.history;
    assert!(h.last().unwrap().loss.rec < h[0].loss.rec);
    // The threshold flags about 1 % of training-like data and most anomalies.
    let b = model.score(test.view(), false, None).unwrap();
    let flagged_normal = b.is_anomaly[..200].iter().filter(|&&a| a).count();
    let flagged_anom = b.is_anomaly[200..].iter().filter(|&&a| a).count();
    assert!(flagged_normal <= 10, "{flagged_normal} normal rows flagged");
    // "Most": 39 of 50 with the default scaling and score when this was written.
    assert!(
        flagged_anom >= 35,
        "only {flagged_anom} of 50 anomalies flagged"
    );
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let u = blobs(300, 0.0, 1);
    let l = blobs(10, 2.0, 2);
    let f = features();
    let data = TrainData {
        features: &f,
        unlabeled: u.view(),
        labeled: l.view(),
    };
    let silent = &mut mmnet_core::train::Silent;
    let a = fit(data, &cfg(3, 7), silent).unwrap();
    let b = fit(data, &cfg(3, 7), silent).unwrap();
    let c = fit(data, &cfg(3, 8), silent).unwrap();
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.threshold, b.threshold);
    assert_ne!(a.weights, c.weights);
}

/// `--score auto`: the score is chosen on held-out rows, and the returned model is the one
/// trained on everything, exactly as without selection.
#[test]
fn selection_chooses_on_held_out_rows_and_keeps_the_full_model() {
    let normal = blobs(600, 0.0, 1);
    let contam = blobs(8, 3.0, 2);
    let unlabeled = concatenate(Axis(0), &[normal.view(), contam.view()]).unwrap();
    let labeled = blobs(30, 3.0, 3);
    let f = features();
    let data = TrainData {
        features: &f,
        unlabeled: unlabeled.view(),
        labeled: labeled.view(),
    };
    let silent = &mut mmnet_core::train::Silent;
    let plain = fit(data, &cfg(4, 5), silent).unwrap();
    let mut with = cfg(4, 5);
    with.selection = Some(Selection::default());
    assert_eq!(with.trainings(608, 30), 2);
    let chosen = fit(data, &with, silent).unwrap();
    // The same network: selection only decides what `mmnet_score` is.
    assert_eq!(chosen.weights, plain.weights);
    assert_eq!(chosen.score.calibration, plain.score.calibration);
    let report = chosen.score.selection.clone().unwrap();
    // A fifth of D_u and a third of D_l held out.
    assert_eq!(report.validation_rows, [122, 10]);
    // The chosen score is the candidate with the best validation AUC-ROC (then AUC-PR).
    let val = |v: ScoreVariant| {
        let c = report.validation.iter().find(|c| c.variant == v).unwrap();
        (c.auc_roc, c.auc_pr)
    };
    // The chosen score is within the tolerance of the best candidate, and no candidate
    // before it in the order of preference is.
    let sel = Selection::default();
    let best = sel
        .candidates
        .iter()
        .map(|&v| val(v).0)
        .fold(f64::NEG_INFINITY, f64::max);
    let pos = sel
        .candidates
        .iter()
        .position(|&v| v == report.chosen)
        .unwrap();
    assert!(val(report.chosen).0 >= best - sel.tolerance, "{report:?}");
    assert!(
        sel.candidates[..pos]
            .iter()
            .all(|&v| val(v).0 < best - sel.tolerance),
        "{report:?}"
    );
    let want = report.chosen;
    assert_eq!(chosen.score.variant, want);
    // Held-out anomalies of the trained type are easy: the validation run saw it.
    assert!(val(ScoreVariant::Combined).0 > 0.9, "{report:?}");
    // The threshold is the chosen score's 99 % quantile over D_u.
    let on_u = chosen.score(unlabeled.view(), false, None).unwrap();
    let flagged = on_u.is_anomaly.iter().filter(|&&a| a).count();
    assert!(
        (5..=8).contains(&flagged),
        "{flagged} of 608 above the threshold"
    );
    // Too few labeled rows to hold any out: no selection, the configured score.
    let few = TrainData {
        labeled: labeled.slice(ndarray::s![..8, ..]),
        ..data
    };
    assert_eq!(with.trainings(608, 8), 1);
    let m = fit(few, &with, silent).unwrap();
    assert!(m.score.selection.is_none());
    assert_eq!(m.score.variant, ScoreVariant::Combined);
    // One unlabeled row cannot be split either.
    let one = TrainData {
        unlabeled: unlabeled.slice(ndarray::s![..1, ..]),
        ..data
    };
    assert!(fit(one, &with, silent).unwrap().score.selection.is_none());
}

#[test]
fn refuses_bad_training_data() {
    let f = features();
    let silent = &mut mmnet_core::train::Silent;
    let u = blobs(50, 0.0, 1);
    let l = blobs(5, 2.0, 2);
    let empty = Array2::<f32>::zeros((0, 8));
    let err = fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: empty.view(),
        },
        &cfg(1, 0),
        silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no labeled anomalies"), "{err}");

    let mut bad = u.clone();
    bad[[7, 3]] = f32::NAN;
    let err = fit(
        TrainData {
            features: &f,
            unlabeled: bad.view(),
            labeled: l.view(),
        },
        &cfg(1, 0),
        silent,
    )
    .unwrap_err();
    match err {
        CoreError::NonFinite { row, feature, .. } => assert_eq!((row, feature.as_str()), (7, "x3")),
        e => panic!("unexpected {e}"),
    }

    let narrow = Array2::<f32>::zeros((5, 7));
    assert!(matches!(
        fit(
            TrainData {
                features: &f,
                unlabeled: u.view(),
                labeled: narrow.view()
            },
            &cfg(1, 0),
            silent
        ),
        Err(CoreError::Shape { .. })
    ));
    let mut c = cfg(1, 0);
    c.train.epochs = 0;
    assert!(matches!(
        fit(
            TrainData {
                features: &f,
                unlabeled: u.view(),
                labeled: l.view()
            },
            &c,
            silent
        ),
        Err(CoreError::InvalidParam { name: "epochs", .. })
    ));
}

/// Rows given as one slice per feature (Arrow's layout, used by the SQL functions) score
/// exactly as the same rows in a matrix; a wrong column count or ragged columns are errors.
#[test]
fn scoring_feature_slices_equals_scoring_rows() {
    let u = blobs(200, 0.0, 1);
    let m = train_on(&u, &blobs(10, 2.0, 2), &cfg(2, 0));
    let x = concatenate(
        Axis(0),
        &[blobs(97, 0.0, 3).view(), blobs(3, 2.0, 4).view()],
    )
    .unwrap();
    let cols: Vec<Vec<f32>> = x.columns().into_iter().map(|c| c.to_vec()).collect();
    let slices: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    assert_eq!(
        m.score_columns(&slices, true, None, Threads::Caller)
            .unwrap(),
        m.score(x.view(), true, None).unwrap()
    );
    assert!(matches!(
        m.score_columns(&slices[..7], false, None, Threads::Rayon),
        Err(CoreError::Shape { .. })
    ));
    let mut ragged = slices.clone();
    ragged[3] = &cols[3][..50];
    let err = m
        .score_columns(&ragged, false, None, Threads::Rayon)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x3"), "{err}");
}

#[test]
fn scoring_skips_the_decoder_unless_asked() {
    let u = blobs(100, 0.0, 1);
    let l = blobs(10, 2.0, 2);
    let f = features();
    let m = fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: l.view(),
        },
        // A score that needs only the attention weights.
        &FitConfig {
            score: mmnet_core::ScoreConfig {
                variant: ScoreVariant::SSum,
                ..Default::default()
            },
            ..cfg(1, 0)
        },
        &mut mmnet_core::train::Silent,
    )
    .unwrap();
    let fast = m.score(u.view(), false, None).unwrap();
    assert!(fast.raw.mse.is_none());
    let full = m.score(u.view(), true, None).unwrap();
    assert_eq!(full.raw.mse.as_ref().unwrap().len(), 100);
    assert_eq!(fast.score, full.score);
    // Large batches take the parallel path and must agree with the serial one row by row.
    let big = blobs(5000, 0.0, 9);
    let whole = m.score(big.view(), true, None).unwrap();
    let part = m
        .score(big.slice(ndarray::s![4000..4100, ..]), true, None)
        .unwrap();
    assert_eq!(&whole.score[4000..4100], &part.score[..]);
    assert_eq!(
        &whole.raw.mse.unwrap()[4000..4100],
        &part.raw.mse.unwrap()[..]
    );
    // Threshold override.
    let none = m.score(u.view(), false, Some(f32::INFINITY)).unwrap();
    assert!(none.is_anomaly.iter().all(|&a| !a));
}

#[test]
fn explanations_point_at_the_anomaly_memory_and_the_odd_feature() {
    let u = blobs(1000, 0.0, 1);
    let l = blobs(30, 3.0, 2);
    let f = features();
    let m = fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: l.view(),
        },
        &cfg(20, 0),
        &mut mmnet_core::train::Silent,
    )
    .unwrap();
    use mmnet_core::explain::MemoryPart;
    // A known-type anomaly attends mostly to M_l; a normal row mostly to M_u.
    let rows = concatenate(Axis(0), &[blobs(1, 3.0, 7).view(), blobs(1, 0.0, 8).view()]).unwrap();
    let e = m.explain(rows.view(), 4, 8).unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0].memory[0].part,
        MemoryPart::Anomaly,
        "{:?}",
        e[0].memory
    );
    assert_eq!(e[1].memory[0].part, MemoryPart::Normal, "{:?}", e[1].memory);
    assert!(e[0].memory.windows(2).all(|w| w[0].weight >= w[1].weight));
    // With every feature kept, the shares sum to 1 and match the scorer's numbers.
    let total: f32 = e[1].features.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    let s = m.score(rows.view(), true, None).unwrap();
    assert_eq!(e[0].mmnet_score, s.score[0]);
    assert_eq!(e[1].s_sum, s.raw.s_sum[1]);
    // A normal row with one feature far off: that feature carries the most error.
    let mut odd = blobs(1, 0.0, 9);
    odd[[0, 5]] = 4.0;
    let e = m.explain(odd.view(), 2, 3).unwrap();
    assert_eq!(e[0].features.len(), 3);
    assert_eq!(e[0].features[0].feature, "x5", "{:?}", e[0].features);
    assert_eq!(e[0].features[0].value, 4.0);
}

#[test]
fn warm_start_continues_from_the_parent_and_grows_the_anomaly_memory() {
    use mmnet_core::warm::WarmStart;
    let normal = blobs(1500, 0.0, 1);
    let parent = train_on(&normal, &blobs(30, 3.0, 3), &cfg(10, 0));
    let (k, l) = (parent.params.memory_normal, parent.params.memory_anomaly);
    // New traffic on a wider range, and a new kind of anomaly (another centre).
    let newer = blobs(1500, 0.2, 4);
    let new_kind = blobs(30, -3.0, 5);
    let warm = |grow: usize, refit: bool, epochs: usize| {
        let mut c = cfg(epochs, 7);
        c.warm_start = Some(WarmStart {
            parent: parent.clone(),
            refit_scaling: refit,
            grow_anomaly_memory: grow,
            data: "new.parquet".into(),
        });
        train_on(&newer, &new_kind, &c)
    };
    // The initial weights are the parent's, plus the new items at encodings of new rows.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ws = WarmStart {
        parent: parent.clone(),
        refit_scaling: false,
        grow_anomaly_memory: 4,
        data: String::new(),
    };
    let scaled = parent.scaler.transform(new_kind.view());
    let w0 = ws.initial_weights(scaled.view(), &mut rng).unwrap();
    assert_eq!(w0.memory.nrows(), k + l + 4);
    assert_eq!(
        w0.memory.slice(ndarray::s![..k + l, ..]),
        parent.weights.memory
    );
    assert_eq!(w0.enc1, parent.weights.enc1);
    // Each new item points like an encoding of a new row, at the median length of the
    // parent's M_l items (a raw encoding is longer and would draw every row's attention).
    let z = mmnet_core::network::forward(&parent.weights, scaled.view(), &parent.params).z;
    let norm = |r: ndarray::ArrayView1<f32>| r.dot(&r).sqrt();
    let mut lengths: Vec<f32> = parent
        .weights
        .memory
        .rows()
        .into_iter()
        .skip(k)
        .map(norm)
        .collect();
    lengths.sort_by(f32::total_cmp);
    let target = lengths[lengths.len() / 2];
    for r in w0.memory.slice(ndarray::s![k + l.., ..]).rows() {
        assert!(
            (norm(r) - target).abs() <= 1e-4 * target,
            "{} vs {target}",
            norm(r)
        );
        let cos = |zr: ndarray::ArrayView1<f32>| zr.dot(&r) / (norm(zr) * norm(r));
        assert!(
            z.rows().into_iter().any(|zr| cos(zr) > 1.0 - 1e-5),
            "a new item does not point like an encoding"
        );
    }

    let child = warm(4, false, 3);
    assert_eq!(child.params.memory_anomaly, l + 4);
    assert_eq!(child.params.memory_normal, k);
    assert_eq!(child.weights.memory.nrows(), k + l + 4);
    assert_eq!(child.scaler, parent.scaler, "scaling kept by default");
    let lin = child.training.lineage.clone().unwrap();
    assert_eq!(
        lin.parent_digest,
        mmnet_core::artifact::model_digest(&parent).unwrap()
    );
    assert_eq!(
        (lin.epochs, lin.grown_anomaly_memory, lin.data.as_str()),
        (3, 4, "new.parquet")
    );
    // It learned the new kind: ranks it above the new normal traffic.
    let test = concatenate(
        Axis(0),
        &[blobs(200, 0.2, 8).view(), blobs(20, -3.0, 9).view()],
    )
    .unwrap();
    let s = child.score(test.view(), false, None).unwrap().score;
    let labels: Vec<bool> = (0..220).map(|i| i >= 200).collect();
    assert!(auc_roc(&s, &labels).unwrap() > 0.9);
    // --refit-scaling fits the scaler on the new data; the lineage says so.
    let refit = warm(0, true, 1);
    assert_ne!(refit.scaler, parent.scaler);
    assert!(refit.training.lineage.as_ref().unwrap().refit_scaling);
    assert!(parent.training.lineage.is_none());
    // The manifest keeps the lineage and the profile: a saved child loads equal.
    let dir = tempfile::tempdir().unwrap();
    mmnet_core::artifact::save(&child, dir.path()).unwrap();
    assert_eq!(mmnet_core::artifact::load(dir.path()).unwrap(), child);
    assert!(child.training.profile.is_some());
    // Other features than the parent's are refused, naming one.
    let mut c = cfg(1, 0);
    c.warm_start = Some(ws);
    let f: Vec<String> = (0..8).map(|i| format!("y{i}")).collect();
    let e = fit(
        TrainData {
            features: &f,
            unlabeled: newer.view(),
            labeled: new_kind.view(),
        },
        &c,
        &mut mmnet_core::train::Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing `x0`"), "{e}");
}

/// The supervised term (the default through `FitOptions`): a direction the labels show and
/// the network's few epochs have not learned is picked up, the threshold is recalibrated on
/// the score with the term (about 1 % of D_u flagged), and rows unlike both classes keep
/// what the network says about them (only the term's positive part is added).
#[test]
fn the_supervised_term_adds_what_the_labels_show() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // Normal rows: uniform in [0, 1]^8. Labeled anomalies: normal in every feature but one,
    // where they sit a little high: hard for a reconstruction, easy for a linear model.
    let normal = Array2::from_shape_simple_fn((1500, 8), || rng.random_range(0.0f32..1.0));
    let shifted = |rng: &mut ChaCha8Rng, n: usize| {
        Array2::from_shape_fn((n, 8), |(_, j)| {
            if j == 3 {
                rng.random_range(0.8f32..1.3)
            } else {
                rng.random_range(0.0f32..1.0)
            }
        })
    };
    let labeled = shifted(&mut rng, 30);
    let with = FitConfig {
        supervised: Some(Default::default()),
        ..cfg(3, 0)
    };
    let net = train_on(&normal, &labeled, &cfg(3, 0));
    let sup = train_on(&normal, &labeled, &with);
    assert!(net.score.supervised.is_none());
    let term = sup.score.supervised.as_ref().unwrap();
    // The network is the same one: the term is fitted after it.
    assert_eq!(net.weights, sup.weights);
    assert!(
        term.head.coef[3] > 0.0
            && term.head.coef[3] == term.head.coef.iter().cloned().fold(f32::MIN, f32::max)
    );
    let test = concatenate(
        Axis(0),
        &[
            Array2::from_shape_simple_fn((300, 8), || rng.random_range(0.0f32..1.0)).view(),
            shifted(&mut rng, 60).view(),
        ],
    )
    .unwrap();
    let labels: Vec<bool> = (0..360).map(|i| i >= 300).collect();
    let auc = |m: &mmnet_core::Model| {
        auc_roc(&m.score(test.view(), false, None).unwrap().score, &labels).unwrap()
    };
    let (a_net, a_sup) = (auc(&net), auc(&sup));
    assert!(
        a_sup > a_net + 0.05,
        "with the term {a_sup}, without {a_net}"
    );
    // The threshold is the 0.99 quantile of the final score over D_u.
    let flagged = sup
        .score(normal.view(), false, None)
        .unwrap()
        .is_anomaly
        .iter()
        .filter(|&&a| a)
        .count();
    assert!(
        (10..=20).contains(&flagged),
        "{flagged} of 1500 training rows flagged"
    );
    // A row far below everything (log-odds very negative) is not pulled below the
    // network's own standardised view of it.
    let odd = Array2::from_elem((1, 8), -2.0f32);
    let s_net = net.score(odd.view(), false, None).unwrap().score[0];
    let s_sup = sup.score(odd.view(), false, None).unwrap().score[0];
    assert!(
        (s_sup - term.base_stats.z(s_net)).abs() < 1e-4,
        "{s_sup} vs z {}",
        term.base_stats.z(s_net)
    );
}
