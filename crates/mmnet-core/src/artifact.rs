//! The model artifact: a directory holding `weights.safetensors` (tensors by name, PyTorch
//! layout, f32) beside `manifest.json` (everything else, versioned).
//!
//! Loading trusts nothing: format and version, the SHA-256 of the weights, every tensor's
//! name, dtype and shape, the scaler's length and the finiteness of every number are checked,
//! and each failure says which file and what is wrong.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ensemble::{
    Ensemble, EnsembleInfo, MAX_MEMBERS, Member, MemberInfo, stats_of, tensor_name,
};
use crate::error::{CoreError, Result};
use crate::kernel::Precision;
use crate::model::{Model, Threshold, TrainingSummary};
use crate::network::{TENSOR_NAMES, Weights, tensor_shapes};
use crate::params::ModelParams;
use crate::scaler::MinMaxScaler;
use crate::score::ScoreConfig;

/// Value of the manifest's `format` field.
pub const FORMAT: &str = "mmnet-model";
/// The manifest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Reference from the manifest to the weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsRef {
    /// File name, relative to the model directory.
    pub file: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Element type of every tensor (`F32`).
    pub dtype: String,
}

/// `manifest.json`: everything about a model except the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    /// Version of mmnet-core that wrote the model.
    pub crate_version: String,
    /// Feature names in input order.
    pub features: Vec<String>,
    /// Min-max scaling statistics of the training data.
    pub scaler: MinMaxScaler,
    /// Architecture and loss hyperparameters (K = memory_normal, L = memory_anomaly).
    pub model: ModelParams,
    /// Score variant reported as `mmnet_score` and its parameters.
    pub score: ScoreConfig,
    /// Anomaly threshold and how it was calibrated.
    pub threshold: Threshold,
    /// Training record.
    pub training: TrainingSummary,
    /// The weights file and its digest.
    pub weights: WeightsRef,
    /// The other members of an ensemble over seeds (absent for a single network; their
    /// weights are in the same file, see [`crate::ensemble::tensor_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleInfo>,
    /// The arithmetic of the scoring products (absent = f32). The weights file stays f32
    /// either way: bf16 is a repacking at load time, so the digest names the same weights.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub precision: Precision,
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |cause| CoreError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Digest identifying a model's weights: the hex SHA-256 of their safetensors bytes (the
/// value stored in the manifest of a saved model; every member's weights for an ensemble).
pub fn model_digest(model: &Model) -> Result<String> {
    Ok(sha256_hex(&model_to_safetensors(model)?))
}

/// Serialises the weights to safetensors bytes.
pub fn weights_to_safetensors(w: &Weights<f32>) -> Result<Vec<u8>> {
    tensors_to_safetensors(&[w])
}

/// Serialises every member's weights to one safetensors file: the first member's under the
/// plain tensor names (a single model's file is unchanged), member k's as `member{k}.NAME`.
pub fn model_to_safetensors(model: &Model) -> Result<Vec<u8>> {
    let mut all = vec![&model.weights];
    all.extend(model.members().iter().map(|m| &m.weights));
    tensors_to_safetensors(&all)
}

fn tensors_to_safetensors(members: &[&Weights<f32>]) -> Result<Vec<u8>> {
    let mut named: Vec<(String, &Array2<f32>, Vec<u8>)> = Vec::new();
    for (k, w) in members.iter().enumerate() {
        for (name, t) in TENSOR_NAMES.iter().zip(w.tensors()) {
            let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            named.push((tensor_name(k, name), t, bytes));
        }
    }
    let mut views = Vec::with_capacity(named.len());
    for (name, t, b) in &named {
        let view = TensorView::new(Dtype::F32, t.shape().to_vec(), b)
            .map_err(|e| CoreError::Internal(format!("safetensors view of {name}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let meta = HashMap::from([("format".to_string(), "mmnet-weights".to_string())]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| CoreError::Internal(format!("safetensors serialisation: {e}")))
}

/// The manifest `save` writes for `model` (its weights digest included), without writing
/// anything: what a caller shows as "the model" before or without saving it.
pub fn manifest(model: &Model) -> Result<Manifest> {
    Ok(manifest_for(model, &model_to_safetensors(model)?))
}

fn manifest_for(model: &Model, weights: &[u8]) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").into(),
        features: model.features.clone(),
        scaler: model.scaler.clone(),
        model: model.params.clone(),
        score: model.score.clone(),
        threshold: model.threshold.clone(),
        training: model.training.clone(),
        weights: WeightsRef {
            file: WEIGHTS_FILE.into(),
            sha256: sha256_hex(weights),
            dtype: "F32".into(),
        },
        precision: model.precision,
        ensemble: model.ensemble.as_ref().map(|e| EnsembleInfo {
            first: e.first.clone(),
            members: e
                .members
                .iter()
                .map(|m| MemberInfo {
                    seed: m.seed,
                    calibration: m.calibration,
                    stats: m.stats.clone(),
                })
                .collect(),
        }),
    }
}

/// Writes `model` into directory `dir` (created if needed). The manifest is written last,
/// through a temporary file, so a crash never leaves a manifest pointing at missing weights.
pub fn save(model: &Model, dir: &Path) -> Result<Manifest> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let bytes = model_to_safetensors(model)?;
    let wpath = dir.join(WEIGHTS_FILE);
    fs::write(&wpath, &bytes).map_err(io_err(&wpath))?;
    let manifest = manifest_for(model, &bytes);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CoreError::Internal(format!("manifest serialisation: {e}")))?;
    let mpath = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    fs::write(&tmp, json).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &mpath).map_err(io_err(&mpath))?;
    Ok(manifest)
}

/// The model directory for `path`, which may name the directory or its manifest.
fn model_dir(path: &Path) -> PathBuf {
    if path.is_file() && path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    }
}

/// Reads and checks the manifest of the model at `path` (directory or manifest file).
pub fn load_manifest(path: &Path) -> Result<(PathBuf, Manifest)> {
    let dir = model_dir(path);
    if !dir.is_dir() {
        return Err(CoreError::artifact(
            &dir,
            "no such model directory (a model is a directory with manifest.json and weights.safetensors, written by `mmnet train`)",
        ));
    }
    let mpath = dir.join(MANIFEST_FILE);
    let size = fs::metadata(&mpath)
        .map_err(|e| CoreError::artifact(&mpath, format!("cannot read the manifest: {e}")))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        return Err(CoreError::artifact(
            &mpath,
            format!(
                "{size} bytes: larger than any manifest mmnet writes (at most {MAX_MANIFEST_BYTES})"
            ),
        ));
    }
    let text = fs::read_to_string(&mpath)
        .map_err(|e| CoreError::artifact(&mpath, format!("cannot read the manifest: {e}")))?;
    Ok((dir, parse_manifest(&mpath, &text)?))
}

/// A manifest file larger than this is refused before it is read (mmnet's are a few KB to
/// a few hundred KB with a training profile).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Parses and checks a manifest's text (`mpath` names it in errors). Every size it
/// declares is bounded before anything is allocated from it.
pub fn parse_manifest(mpath: &Path, text: &str) -> Result<Manifest> {
    // Check the format and version before the full schema, so an old or foreign file is
    // reported as such rather than as a missing field.
    let head: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CoreError::artifact(mpath, format!("not valid JSON: {e}")))?;
    let format = head.get("format").and_then(|v| v.as_str());
    if format != Some(FORMAT) {
        return Err(CoreError::artifact(
            mpath,
            format!("not an mmnet model manifest (format = {format:?}, expected \"{FORMAT}\")"),
        ));
    }
    let version = head.get("format_version").and_then(|v| v.as_u64());
    if version != Some(FORMAT_VERSION as u64) {
        return Err(CoreError::artifact(
            mpath,
            format!(
                "format version {} is not supported by this mmnet {} (it reads version {FORMAT_VERSION}); retrain or use a matching mmnet",
                version.map_or("missing".to_string(), |v| v.to_string()),
                env!("CARGO_PKG_VERSION"),
            ),
        ));
    }
    let manifest: Manifest = serde_json::from_value(head)
        .map_err(|e| CoreError::artifact(mpath, format!("invalid manifest: {e}")))?;
    check_manifest(mpath, &manifest)?;
    Ok(manifest)
}

/// The exact size of the tensor data a model with `input_dim` features and params `p`
/// stores (f32), or `None` if it overflows.
pub fn weights_data_bytes(input_dim: usize, p: &ModelParams) -> Option<u64> {
    tensor_shapes(input_dim, p)
        .iter()
        .try_fold(0u64, |acc, [r, c]| {
            (*r as u64)
                .checked_mul(*c as u64)?
                .checked_mul(4)?
                .checked_add(acc)
        })
}

fn check_manifest(mpath: &Path, m: &Manifest) -> Result<()> {
    let bad = |r: String| Err(CoreError::artifact(mpath, r));
    m.model
        .check()
        .map_err(|e| CoreError::artifact(mpath, format!("invalid hyperparameters: {e}")))?;
    let d = m.features.len();
    if d == 0 {
        return bad("the model has no features".into());
    }
    if d > crate::params::MAX_DIM {
        return bad(format!(
            "{d} features exceed the supported maximum {}",
            crate::params::MAX_DIM
        ));
    }
    if m.scaler.min.len() != d || m.scaler.max.len() != d {
        return bad(format!(
            "scaler has {} minima and {} maxima for {d} features",
            m.scaler.min.len(),
            m.scaler.max.len()
        ));
    }
    if let Some(i) = m
        .scaler
        .min
        .iter()
        .zip(&m.scaler.max)
        .position(|(a, b)| !a.is_finite() || !b.is_finite() || a > b)
    {
        return bad(format!(
            "scaler statistics for feature `{}` are invalid (min {}, max {})",
            m.features[i], m.scaler.min[i], m.scaler.max[i]
        ));
    }
    let lc = &m.scaler.log_compress;
    if !lc.is_empty() && lc.len() != d {
        return bad(format!(
            "scaler has {} log-compression entries for {d} features",
            lc.len()
        ));
    }
    if let Some(i) = lc.iter().position(|c| {
        c.is_some_and(|c| !(c.origin.is_finite() && c.scale > 0.0 && c.scale.is_finite()))
    }) {
        return bad(format!(
            "scaler log compression for feature `{}` is invalid",
            m.features[i]
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = m.features.iter().find(|f| !seen.insert(f.as_str())) {
        return bad(format!("feature `{dup}` appears twice"));
    }
    if !m.threshold.value.is_finite() {
        return bad(format!("threshold {} is not finite", m.threshold.value));
    }
    {
        use crate::score::ScoreVariant;
        let cal = m.score.calibration.as_ref();
        let missing = match m.score.variant {
            ScoreVariant::Calibrated => cal.is_none(),
            v if v.fusion_weights().is_some() => cal.is_none_or(|c| c.logit_anomaly_mass.is_none()),
            _ => false,
        };
        if missing {
            return bad(format!(
                "score `{}` needs the training statistics in the manifest's score.calibration, which are missing (retrain, or pick another score with --score)",
                m.score.variant.name()
            ));
        }
    }
    if !m.score.lambda.is_finite() {
        return bad(format!("score lambda {} is not finite", m.score.lambda));
    }
    if let Some(t) = &m.score.supervised {
        if let Err(e) = t.head.check(m.features.len()) {
            return bad(e.to_string());
        }
        for (what, st) in [("log-odds", t.head_stats), ("score", t.base_stats)] {
            if !(st.median.is_finite() && st.iqr.is_finite() && st.iqr > 0.0) {
                return bad(format!(
                    "supervised term: the training statistics of its {what} are not finite and positive ({st:?})"
                ));
            }
        }
    }
    if let Some(e) = &m.ensemble {
        if e.members.is_empty() || e.members.len() >= MAX_MEMBERS {
            return bad(format!(
                "ensemble lists {} members beyond the first; between 1 and {} are supported",
                e.members.len(),
                MAX_MEMBERS - 1
            ));
        }
        let v = m.score.variant;
        let firsts = std::iter::once(&e.first).chain(e.members.iter().map(|x| &x.stats));
        if let Some(k) = firsts.clone().position(|st| stats_of(st, v).is_none()) {
            return bad(format!(
                "ensemble member {} has no statistics for its score `{}`",
                k + 1,
                v.name()
            ));
        }
        let finite = |st: &Vec<crate::ensemble::VariantStats>| {
            st.iter()
                .all(|s| s.stats.median.is_finite() && s.stats.iqr.is_finite() && s.stats.iqr > 0.0)
        };
        if let Some(k) = firsts.clone().position(|st| !finite(st)) {
            return bad(format!(
                "ensemble member {} has invalid score statistics",
                k + 1
            ));
        }
    }
    if m.weights.dtype != "F32" {
        return bad(format!(
            "weights dtype {} is not supported (F32 only)",
            m.weights.dtype
        ));
    }
    if m.weights.file.contains('/') || m.weights.file.contains("..") {
        return bad(format!(
            "weights file name `{}` must be a plain file name",
            m.weights.file
        ));
    }
    Ok(())
}

/// Loads and fully checks the model at `path` (directory or manifest file).
pub fn load(path: &Path) -> Result<Model> {
    let (dir, m) = load_manifest(path)?;
    let wpath = dir.join(&m.weights.file);
    // The manifest fixes the tensors' size: a larger file is refused before it is read.
    let members = 1 + m.ensemble.as_ref().map_or(0, |e| e.members.len()) as u64;
    let expected = weights_data_bytes(m.features.len(), &m.model)
        .and_then(|b| b.checked_mul(members))
        .unwrap_or(u64::MAX);
    let on_disk = fs::metadata(&wpath)
        .map_err(|e| CoreError::artifact(&wpath, format!("cannot read the weights: {e}")))?
        .len();
    if on_disk > expected.saturating_add(MAX_SAFETENSORS_HEADER) {
        return Err(CoreError::artifact(
            &wpath,
            format!(
                "{on_disk} bytes, but the manifest's model stores {expected} bytes of tensors (plus a header of at most {MAX_SAFETENSORS_HEADER}): not this model's weights"
            ),
        ));
    }
    let bytes = fs::read(&wpath)
        .map_err(|e| CoreError::artifact(&wpath, format!("cannot read the weights: {e}")))?;
    let digest = sha256_hex(&bytes);
    if digest != m.weights.sha256 {
        return Err(CoreError::artifact(
            &wpath,
            format!(
                "SHA-256 {digest} does not match the manifest's {} ({} bytes on disk): the file is corrupted, truncated or from another model",
                m.weights.sha256,
                bytes.len()
            ),
        ));
    }
    // Parsed once; every member's tensors are read from it.
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| CoreError::artifact(&wpath, format!("not a valid safetensors file: {e}")))?;
    let weights = member_weights(&wpath, &st, 0, m.features.len(), &m.model)?;
    let ensemble = match &m.ensemble {
        None => None,
        Some(info) => {
            let mut members = Vec::with_capacity(info.members.len());
            for (i, mi) in info.members.iter().enumerate() {
                members.push(Member {
                    seed: mi.seed,
                    weights: member_weights(&wpath, &st, i + 1, m.features.len(), &m.model)?,
                    calibration: mi.calibration,
                    stats: mi.stats.clone(),
                    kernel: Default::default(),
                });
            }
            Some(Ensemble {
                first: info.first.clone(),
                members,
            })
        }
    };
    Ok(Model {
        features: m.features,
        scaler: m.scaler,
        params: m.model,
        weights,
        score: m.score,
        threshold: m.threshold,
        training: m.training,
        ensemble,
        precision: m.precision,
        kernel: Default::default(),
    })
}

/// Room for the safetensors header (tensor names, shapes, offsets, metadata) beyond the
/// tensor data itself.
pub const MAX_SAFETENSORS_HEADER: u64 = 1 << 20;

/// Parses and checks weights for a model with `input_dim` features and params `p`.
pub fn weights_from_safetensors(
    path: &Path,
    bytes: &[u8],
    input_dim: usize,
    p: &ModelParams,
) -> Result<Weights<f32>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| CoreError::artifact(path, format!("not a valid safetensors file: {e}")))?;
    member_weights(path, &st, 0, input_dim, p)
}

/// The weights of member `k` (0 = the plain tensor names) from a parsed weights file.
fn member_weights(
    path: &Path,
    st: &SafeTensors<'_>,
    k: usize,
    input_dim: usize,
    p: &ModelParams,
) -> Result<Weights<f32>> {
    let shapes = tensor_shapes(input_dim, p);
    let mut out: Vec<Array2<f32>> = Vec::with_capacity(5);
    for (plain, [r, c]) in TENSOR_NAMES.iter().zip(shapes) {
        let name = tensor_name(k, plain);
        let t = st
            .tensor(&name)
            .map_err(|_| CoreError::artifact(path, format!("tensor `{name}` is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(CoreError::artifact(
                path,
                format!("tensor `{name}` has dtype {:?}, expected F32", t.dtype()),
            ));
        }
        if t.shape() != [r, c] {
            return Err(CoreError::artifact(
                path,
                format!(
                    "tensor `{name}` has shape {:?}, expected [{r}, {c}] for {input_dim} features, hidden {}, latent {}, memory {}",
                    t.shape(),
                    p.hidden_dim,
                    p.latent_dim,
                    p.memory_size()
                ),
            ));
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::artifact(
                path,
                format!("tensor `{name}` holds a non-finite value at element {i}"),
            ));
        }
        let a = Array2::from_shape_vec((r, c), values)
            .map_err(|e| CoreError::artifact(path, format!("tensor `{name}`: {e}")))?;
        out.push(a);
    }
    let mut it = out.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| CoreError::Internal("tensor count".into()))
    };
    Ok(Weights {
        enc1: next()?,
        enc2: next()?,
        memory: next()?,
        dec1: next()?,
        dec2: next()?,
    })
}
