//! Ensembles over seeds (src/ensemble.rs): what the averaged score is, that the first member
//! is the single model it would have been, persistence, refusal of damaged ensembles, and
//! warm starts that keep the members.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fs;

use mmnet_core::artifact::{
    self, MANIFEST_FILE, WEIGHTS_FILE, model_to_safetensors, weights_to_safetensors,
};
use mmnet_core::ensemble::{Members, stats_of};
use mmnet_core::kernel::Threads;
use mmnet_core::warm::WarmStart;
use mmnet_core::{
    FitConfig, FitOptions, Model, ModelParams, ScoreVariant, TrainData, TrainParams, fit,
};
use ndarray::{Array2, Axis, concatenate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn blobs(n: usize, centre: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, 6), || centre + rng.random_range(-0.5f32..0.5))
}

fn features() -> Vec<String> {
    (0..6).map(|i| format!("x{i}")).collect()
}

fn cfg(members: Option<Members>) -> FitConfig {
    FitConfig {
        model: ModelParams {
            hidden_dim: 16,
            latent_dim: 8,
            ..ModelParams::default()
        }
        .with_memory_size(8),
        train: TrainParams {
            epochs: 6,
            batch_size: 64,
            seed: 3,
            ..Default::default()
        },
        ensemble: members,
        ..Default::default()
    }
}

fn data() -> (Array2<f32>, Array2<f32>) {
    let u = concatenate(
        Axis(0),
        &[blobs(300, 0.0, 1).view(), blobs(6, 2.0, 2).view()],
    )
    .unwrap();
    (u, blobs(12, 2.0, 3))
}

fn train(u: &Array2<f32>, l: &Array2<f32>, cfg: &FitConfig) -> Model {
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

fn median_iqr(v: &[f32]) -> (f32, f32) {
    let q = |p| mmnet_core::model::quantile(v, p).unwrap();
    (q(0.5), q(0.75) - q(0.25))
}

#[test]
fn the_score_is_the_mean_of_standardised_member_scores() {
    let (u, l) = data();
    let single = train(&u, &l, &cfg(None));
    let m = train(&u, &l, &cfg(Some(Members::Fixed(3))));
    assert_eq!(m.ensemble_size(), 3);
    assert_eq!(single.ensemble_size(), 1);
    // The first member is exactly the single model the same seed gives.
    assert_eq!(m.weights, single.weights);
    assert_eq!(m.score.calibration, single.score.calibration);
    // The others are other networks.
    assert_ne!(m.members()[0].weights, m.weights);
    assert_ne!(m.members()[0].weights, m.members()[1].weights);

    // Recomputed by hand from each member scored as a single model: each member's score,
    // standardised by its median and IQR over D_u, averaged.
    let x = concatenate(
        Axis(0),
        &[blobs(50, 0.0, 9).view(), blobs(10, 2.0, 10).view()],
    )
    .unwrap();
    let v = m.score.variant;
    let mut want = vec![0.0f32; x.nrows()];
    for k in 0..3 {
        let member = m.member(k).unwrap();
        let on_u = member.score(u.view(), true, None).unwrap().score;
        let (med, iqr) = median_iqr(&on_u);
        let s = member.score(x.view(), true, None).unwrap().score;
        for (w, s) in want.iter_mut().zip(s) {
            *w += (s - med) / iqr / 3.0;
        }
    }
    let got = m.score(x.view(), false, None).unwrap();
    for (g, w) in got.score.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
    // The raw outputs are the first member's.
    let first = single.score(x.view(), true, None).unwrap();
    assert_eq!(got.raw.s_sum, first.raw.s_sum);
    // The stats behind it are stored per member and variant.
    let e = m.ensemble.as_ref().unwrap();
    assert!(stats_of(&e.first, v).is_some());
    assert!(stats_of(&e.members[1].stats, ScoreVariant::Mse).is_some());

    // The threshold is the averaged score's 99 % quantile over D_u: about 1 % flagged.
    let on_u = m.score(u.view(), false, None).unwrap();
    let flagged = on_u.is_anomaly.iter().filter(|&&a| a).count();
    assert!((2..=4).contains(&flagged), "{flagged} of 306 flagged");
    // And the anomalies rank above the normal rows.
    let labels: Vec<bool> = (0..x.nrows()).map(|i| i >= 50).collect();
    assert!(mmnet_core::metrics::auc_roc(&got.score, &labels).unwrap() > 0.9);

    // Column-wise scoring (how Arrow batches are scored) agrees.
    let cols: Vec<Vec<f32>> = x.columns().into_iter().map(|c| c.to_vec()).collect();
    let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
    let by_col = m
        .score_columns(&refs, false, None, Threads::Caller)
        .unwrap();
    for (a, b) in by_col.score.iter().zip(&got.score) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // Every variant is reported as the ensemble computes it.
    let all = m.score_all_variants(x.view()).unwrap();
    let (_, mine) = all.iter().find(|(w, _)| *w == v).unwrap();
    assert_eq!(mine, &got.score);
}

#[test]
fn auto_is_the_default_for_users_and_resolves_by_the_size_of_d_u() {
    let c = FitOptions::default().fit_config().unwrap();
    assert_eq!(c.ensemble, Some(Members::Auto));
    assert_eq!(c.members(360), 5);
    assert_eq!(c.members(100_000), 1);
    // Probe + five members.
    assert_eq!(c.trainings(360, 30), 6);
    assert!(
        FitOptions {
            ensemble: Members::Fixed(0),
            ..Default::default()
        }
        .fit_config()
        .is_err()
    );
}

#[test]
fn round_trip_keeps_every_member_and_a_single_model_file_is_unchanged() {
    let (u, l) = data();
    let m = train(&u, &l, &cfg(Some(Members::Fixed(2))));
    let dir = tempfile::tempdir().unwrap();
    let manifest = artifact::save(&m, dir.path()).unwrap();
    assert_eq!(manifest.ensemble.as_ref().unwrap().members.len(), 1);
    let back = artifact::load(dir.path()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.members()[0].weights, m.members()[0].weights);
    let x = blobs(20, 1.0, 4);
    assert_eq!(
        back.score(x.view(), true, None).unwrap(),
        m.score(x.view(), true, None).unwrap()
    );
    // The digest covers every member.
    let first_only = m.member(0).unwrap();
    assert_ne!(
        artifact::model_digest(&m).unwrap(),
        artifact::model_digest(&first_only).unwrap()
    );
    // A single model's file is exactly its weights (older readers and digests unchanged).
    assert_eq!(
        model_to_safetensors(&first_only).unwrap(),
        weights_to_safetensors(&first_only.weights).unwrap()
    );
}

#[test]
fn damaged_ensembles_are_refused_naming_what_is_wrong() {
    let (u, l) = data();
    let m = train(&u, &l, &cfg(Some(Members::Fixed(2))));
    let dir = tempfile::tempdir().unwrap();
    artifact::save(&m, dir.path()).unwrap();
    let mpath = dir.path().join(MANIFEST_FILE);
    let text = fs::read_to_string(&mpath).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
        f(&mut j);
        fs::write(&mpath, serde_json::to_string(&j).unwrap()).unwrap();
        artifact::load(dir.path()).unwrap_err().to_string()
    };
    // A member the weights file does not hold.
    let e = edit(&|j| {
        let mem = j["ensemble"]["members"][0].clone();
        j["ensemble"]["members"].as_array_mut().unwrap().push(mem);
    });
    assert!(e.contains("bytes") || e.contains("member2."), "{e}");
    // More members than supported.
    let e = edit(&|j| {
        let mem = j["ensemble"]["members"][0].clone();
        j["ensemble"]["members"] = serde_json::Value::Array(vec![mem; 16]);
    });
    assert!(e.contains("16 members beyond the first"), "{e}");
    // A member without the statistics of the model's score.
    let e = edit(&|j| j["ensemble"]["members"][0]["stats"] = serde_json::json!([]));
    assert!(e.contains("ensemble member 2 has no statistics"), "{e}");
    // The first member's weights alone under the ensemble's manifest: the digest says so.
    fs::write(&mpath, &text).unwrap();
    let wpath = dir.path().join(WEIGHTS_FILE);
    let bytes = fs::read(&wpath).unwrap();
    fs::write(&wpath, weights_to_safetensors(&m.weights).unwrap()).unwrap();
    let e = artifact::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("SHA-256"), "{e}");
    fs::write(&wpath, bytes).unwrap();
    assert_eq!(artifact::load(dir.path()).unwrap(), m);
}

#[test]
fn a_warm_start_continues_every_member() {
    let (u, l) = data();
    let parent = train(&u, &l, &cfg(Some(Members::Fixed(2))));
    let mut c = cfg(Some(Members::Fixed(5)));
    c.train.epochs = 2;
    c.warm_start = Some(WarmStart {
        parent: parent.clone(),
        refit_scaling: false,
        grow_anomaly_memory: 0,
        data: "test".into(),
    });
    let child = train(&u, &l, &c);
    // The parent's count, not the configured one.
    assert_eq!(child.ensemble_size(), 2);
    // Each member moved on from its own parent member, not from a fresh start.
    let dist = |a: &Array2<f32>, b: &Array2<f32>| (a - b).mapv(|v| v * v).sum();
    let (p1, c1) = (&parent.members()[0].weights, &child.members()[0].weights);
    assert!(dist(&c1.enc1, &p1.enc1) < dist(&c1.enc1, &parent.weights.enc1));
    assert_eq!(
        child.training.lineage.as_ref().unwrap().parent_digest,
        artifact::model_digest(&parent).unwrap()
    );
}
