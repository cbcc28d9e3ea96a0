//! The model artifact: round trip, the committed v1 fixture, and refusal of damaged files.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fs;
use std::path::{Path, PathBuf};

use mmnet_core::artifact::{self, MANIFEST_FILE, WEIGHTS_FILE, sha256_hex, weights_to_safetensors};
use mmnet_core::select::{CandidateResult, SelectionReport};
use mmnet_core::{
    CoreError, FitConfig, Model, ModelParams, ScoreVariant, TrainData, TrainParams, fit,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn small_model() -> Model {
    model_of(11, 2.0..3.0, None)
}

/// A small model on 200 uniform unlabeled rows and 8 labeled ones drawn from `labeled`.
fn model_of(
    seed: u64,
    labeled: std::ops::Range<f32>,
    supervised: Option<mmnet_core::supervised::LogisticFit>,
) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let u = Array2::from_shape_simple_fn((200, 5), || rng.random_range(0.0f32..1.0));
    let l = Array2::from_shape_simple_fn((8, 5), || rng.random_range(labeled.clone()));
    let f: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    fit(
        TrainData {
            features: &f,
            unlabeled: u.view(),
            labeled: l.view(),
        },
        &FitConfig {
            model: ModelParams {
                hidden_dim: 16,
                latent_dim: 8,
                ..ModelParams::default()
            }
            .with_memory_size(8),
            train: TrainParams {
                epochs: 2,
                batch_size: 64,
                ..Default::default()
            },
            supervised,
            ..Default::default()
        },
        &mut mmnet_core::train::Silent,
    )
    .unwrap()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-v1")
}

/// Rows scored by the fixture test, fixed so expected scores can be stored.
fn fixture_rows() -> Array2<f32> {
    Array2::from_shape_fn((4, 5), |(i, j)| (i as f32) * 0.7 - (j as f32) * 0.3)
}

#[test]
fn round_trip_preserves_everything() {
    let mut m = small_model();
    // The fields newer than v1 are present: log compression (the 8 far labeled rows make
    // every column skewed), the logit statistics of `combined`, a non-default mask.
    assert!(m.scaler.log_compress.iter().any(Option::is_some));
    assert!(m.score.calibration.unwrap().logit_anomaly_mass.is_some());
    m.params.mask = mmnet_core::params::MaskStrategy::Hard;
    // A score chosen on a validation split carries its measurements.
    m.score.variant = ScoreVariant::Mse;
    m.score.selection = Some(SelectionReport {
        chosen: ScoreVariant::Mse,
        validation: vec![
            CandidateResult {
                variant: ScoreVariant::Combined,
                auc_roc: 0.81,
                auc_pr: 0.42,
            },
            CandidateResult {
                variant: ScoreVariant::Mse,
                auc_roc: 0.93,
                auc_pr: 0.6,
            },
        ],
        validation_rows: [40, 3],
    });
    let dir = tempfile::tempdir().unwrap();
    let manifest = artifact::save(&m, dir.path()).unwrap();
    assert_eq!(manifest.format_version, artifact::FORMAT_VERSION);
    // The in-memory manifest is the one written, digest included.
    assert_eq!(artifact::manifest(&m).unwrap(), manifest);
    assert_eq!(manifest.weights.sha256, artifact::model_digest(&m).unwrap());
    let back = artifact::load(dir.path()).unwrap();
    assert_eq!(back, m);
    // Loading by the manifest's path works too, and the loaded model scores identically.
    let back2 = artifact::load(&dir.path().join(MANIFEST_FILE)).unwrap();
    let x = fixture_rows();
    assert_eq!(
        back2.score(x.view(), true, None).unwrap(),
        m.score(x.view(), true, None).unwrap()
    );
}

/// A model set to score in bf16 keeps that setting through save and load, names the same
/// weights (same digest), and scores close to, but not exactly like, its f32 self.
#[test]
fn bf16_precision_round_trips_and_scores_close_to_f32() {
    use mmnet_core::kernel::Precision;
    let m = small_model();
    let bf = m.clone().with_precision(Precision::Bf16);
    let dir = tempfile::tempdir().unwrap();
    let manifest = artifact::save(&bf, dir.path()).unwrap();
    assert_eq!(manifest.precision, Precision::Bf16);
    assert_eq!(manifest.weights.sha256, artifact::model_digest(&m).unwrap());
    let text = fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
    assert!(text.contains("\"precision\": \"bf16\""), "{text}");
    let back = artifact::load(dir.path()).unwrap();
    assert_eq!(back.precision, Precision::Bf16);
    assert_eq!(back, bf);
    let x = Array2::from_shape_fn((40, 5), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 4.0);
    let (f, b) = (
        m.score(x.view(), true, None).unwrap(),
        back.score(x.view(), true, None).unwrap(),
    );
    assert_ne!(
        f.score, b.score,
        "bf16 rounds: not the f32 path under another name"
    );
    for (a, c) in f.score.iter().zip(&b.score) {
        assert!((a - c).abs() <= 0.05 * a.abs().max(1.0), "{a} vs {c}");
    }
    // An f32 model writes no `precision` key: manifests of earlier versions are unchanged.
    let dir32 = tempfile::tempdir().unwrap();
    artifact::save(&m, dir32.path()).unwrap();
    let text = fs::read_to_string(dir32.path().join(MANIFEST_FILE)).unwrap();
    assert!(!text.contains("precision"));
}

#[test]
fn committed_v1_fixture_still_loads_and_scores_the_same() {
    // Regenerate (only when the format version changes, as a new fixture directory):
    // MMNET_WRITE_FIXTURE=1 cargo test -p mmnet-core --test artifact committed_v1
    if std::env::var("MMNET_WRITE_FIXTURE").is_ok() {
        let m = small_model();
        artifact::save(&m, &fixture_dir()).unwrap();
        let s = m.score(fixture_rows().view(), true, None).unwrap();
        let doc = serde_json::json!({ "score": s.score, "s_sum": s.raw.s_sum, "s_kl": s.raw.s_kl, "mse": s.raw.mse });
        fs::write(fixture_dir().join("expected_scores.json"), doc.to_string()).unwrap();
    }
    let m = artifact::load(&fixture_dir()).unwrap();
    assert_eq!(m.features, ["a", "b", "c", "d", "e"]);
    let expected: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(fixture_dir().join("expected_scores.json")).unwrap(),
    )
    .unwrap();
    let s = m.score(fixture_rows().view(), true, None).unwrap();
    let check = |name: &str, got: &[f32]| {
        let want: Vec<f32> = serde_json::from_value(expected[name].clone()).unwrap();
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(got) {
            assert!(
                (w - g).abs() <= 1e-5 * w.abs().max(1.0),
                "{name}: {w} vs {g}"
            );
        }
    };
    check("score", &s.score);
    check("s_sum", &s.raw.s_sum);
    check("s_kl", &s.raw.s_kl);
    check("mse", s.raw.mse.as_ref().unwrap());
}

fn saved() -> (tempfile::TempDir, Model) {
    let m = small_model();
    let dir = tempfile::tempdir().unwrap();
    artifact::save(&m, dir.path()).unwrap();
    (dir, m)
}

fn expect_artifact_error(dir: &Path, needle: &str) {
    match artifact::load(dir) {
        Err(CoreError::Artifact { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "`{reason}` does not mention `{needle}`"
            )
        }
        Err(e) => panic!("expected an artifact error mentioning `{needle}`, got {e}"),
        Ok(_) => panic!("a damaged model loaded (expected `{needle}`)"),
    }
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(MANIFEST_FILE);
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn truncated_weights_are_refused() {
    let (dir, _) = saved();
    let p = dir.path().join(WEIGHTS_FILE);
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    expect_artifact_error(dir.path(), "does not match");
}

#[test]
fn corrupted_weights_are_refused() {
    let (dir, _) = saved();
    let p = dir.path().join(WEIGHTS_FILE);
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    fs::write(&p, &bytes).unwrap();
    expect_artifact_error(dir.path(), "SHA-256");
}

#[test]
fn garbage_with_matching_digest_is_refused() {
    let (dir, _) = saved();
    let junk = b"definitely not safetensors".to_vec();
    fs::write(dir.path().join(WEIGHTS_FILE), &junk).unwrap();
    edit_manifest(dir.path(), |v| {
        v["weights"]["sha256"] = sha256_hex(&junk).into()
    });
    expect_artifact_error(dir.path(), "not a valid safetensors file");
}

#[test]
fn wrong_version_is_refused() {
    let (dir, _) = saved();
    edit_manifest(dir.path(), |v| v["format_version"] = 99.into());
    expect_artifact_error(dir.path(), "format version 99 is not supported");
}

#[test]
fn foreign_or_invalid_manifest_is_refused() {
    let (dir, _) = saved();
    edit_manifest(dir.path(), |v| v["format"] = "something-else".into());
    expect_artifact_error(dir.path(), "not an mmnet model manifest");
    let (dir, _) = saved();
    fs::write(dir.path().join(MANIFEST_FILE), "{ not json").unwrap();
    expect_artifact_error(dir.path(), "not valid JSON");
    let (dir, _) = saved();
    edit_manifest(dir.path(), |v| {
        v.as_object_mut()
            .unwrap()
            .remove("scaler")
            .unwrap()
            .to_string()
            .truncate(0)
    });
    expect_artifact_error(dir.path(), "missing field `scaler`");
}

#[test]
fn shape_mismatch_is_refused() {
    // Weights of a model with another hidden width, with a correct digest: only the shape
    // check can catch it.
    let (dir, m) = saved();
    let mut other = m.weights.clone();
    other.enc1 = Array2::zeros((17, 5));
    let bytes = weights_to_safetensors(&other).unwrap();
    fs::write(dir.path().join(WEIGHTS_FILE), &bytes).unwrap();
    edit_manifest(dir.path(), |v| {
        v["weights"]["sha256"] = sha256_hex(&bytes).into()
    });
    expect_artifact_error(
        dir.path(),
        "tensor `encoder.0.weight` has shape [17, 5], expected [16, 5]",
    );
}

#[test]
fn scaler_feature_mismatch_is_refused() {
    let (dir, _) = saved();
    edit_manifest(dir.path(), |v| {
        v["features"].as_array_mut().unwrap().push("f".into())
    });
    expect_artifact_error(
        dir.path(),
        "scaler has 5 minima and 5 maxima for 6 features",
    );
}

#[test]
fn missing_directory_or_weights_is_refused() {
    expect_artifact_error(Path::new("/nonexistent/model"), "no such model directory");
    let (dir, _) = saved();
    fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
    expect_artifact_error(dir.path(), "cannot read the weights");
}

/// Sizes read from a model file are bounded before anything is allocated from them: a
/// manifest claiming 10^12 memory items or hidden units is an error naming the field, and
/// a weights file larger than the manifest's tensors is refused before it is read.
#[test]
fn sizes_from_the_file_are_capped_before_allocating() {
    for field in ["hidden_dim", "memory_normal", "latent_dim"] {
        let (dir, _) = saved();
        edit_manifest(dir.path(), |v| {
            v["model"][field] = serde_json::json!(1_000_000_000_000u64)
        });
        expect_artifact_error(dir.path(), &format!("`{field}`: 1000000000000 exceeds"));
    }
    let (dir, _) = saved();
    edit_manifest(dir.path(), |v| {
        v["model"]["memory_normal"] = serde_json::json!(u64::MAX);
        v["model"]["memory_anomaly"] = serde_json::json!(u64::MAX);
    });
    expect_artifact_error(dir.path(), "exceeds the supported maximum");

    // 64 MiB of zeros after a valid file: refused from its size alone.
    let (dir, _) = saved();
    let p = dir.path().join(WEIGHTS_FILE);
    let mut bytes = fs::read(&p).unwrap();
    bytes.resize(bytes.len() + (64 << 20), 0);
    fs::write(&p, &bytes).unwrap();
    expect_artifact_error(dir.path(), "not this model's weights");

    // A manifest beyond any mmnet writes is not read at all.
    let (dir, _) = saved();
    let f = fs::File::create(dir.path().join(MANIFEST_FILE)).unwrap();
    f.set_len(artifact::MAX_MANIFEST_BYTES + 1).unwrap();
    expect_artifact_error(dir.path(), "larger than any manifest");
}

/// A model trained with the supervised term: the term is part of the score, survives the
/// round trip exactly, and a damaged term is refused with a reason.
fn supervised_model() -> Model {
    model_of(12, 0.8..1.5, Some(Default::default()))
}

#[test]
fn the_supervised_term_round_trips_and_is_checked() {
    let m = supervised_model();
    let term = m.score.supervised.clone().expect("trained with the term");
    assert_eq!(term.head.coef.len(), 5);
    assert!(term.head.converged, "{:?}", term.head);
    let dir = tempfile::tempdir().unwrap();
    artifact::save(&m, dir.path()).unwrap();
    let back = artifact::load(dir.path()).unwrap();
    assert_eq!(back, m);
    let x = fixture_rows();
    assert_eq!(
        back.score(x.view(), false, None).unwrap(),
        m.score(x.view(), false, None).unwrap()
    );
    // One coefficient too few, a non-finite one, a zero spread: each refused by name.
    edit_manifest(dir.path(), |v| {
        v["score"]["supervised"]["head"]["coef"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    expect_artifact_error(dir.path(), "supervised term coefficients");
    artifact::save(&m, dir.path()).unwrap();
    edit_manifest(dir.path(), |v| {
        v["score"]["supervised"]["base_stats"]["iqr"] = serde_json::json!(0.0);
    });
    expect_artifact_error(dir.path(), "supervised term");
    // Without the field (a model from before the term) it loads and scores the network alone.
    artifact::save(&m, dir.path()).unwrap();
    edit_manifest(dir.path(), |v| {
        v["score"].as_object_mut().unwrap().remove("supervised");
    });
    let old = artifact::load(dir.path()).unwrap();
    assert!(old.score.supervised.is_none());
    let net = old.score(x.view(), false, None).unwrap();
    let with = m.score(x.view(), false, None).unwrap();
    // The term changes the score (standardised and shifted), not the raw outputs.
    assert_eq!(net.raw, with.raw);
    assert_ne!(net.score, with.score);
}
