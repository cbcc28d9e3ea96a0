//! Warm-start retraining: continue from a trained model on new data (new labeled anomalies,
//! newer traffic) instead of a random initialisation, for fewer epochs; optionally with fresh
//! anomaly-memory items for a newly labeled kind of anomaly (the paper's future work:
//! updating the memory for new anomaly types).
//!
//! The parent's architecture and, unless asked otherwise, its scaling are kept, so the
//! child reads features exactly as the parent did and its first epoch starts where the parent
//! ended. Grown items are appended to M_l (M_u stays items `..K`, M_l items `K..`), each
//! initialised in the direction of the encoding of a newly labeled anomaly, at the typical
//! length of the parent's M_l items: they start where the new kind lives, without drawing
//! the attention of rows of other kinds, and the existing items are not moved at the start.

use ndarray::{Array2, Axis, concatenate};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::model::Model;
use crate::network::{Weights, forward};
use crate::params::ModelParams;

/// Where a warm-started model came from, kept in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// Weights digest of the parent model.
    pub parent_digest: String,
    /// The data the child was trained on (as the caller named it, e.g. a path).
    pub data: String,
    /// Epochs of the child's training.
    pub epochs: usize,
    /// Anomaly-memory items added to the parent's.
    pub grown_anomaly_memory: usize,
    /// Whether the scaling was fitted again on the new data (else the parent's).
    pub refit_scaling: bool,
}

/// Continue training from `parent`.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmStart {
    /// The model to start from.
    pub parent: Model,
    /// Fit the scaling again on the new data instead of keeping the parent's.
    pub refit_scaling: bool,
    /// Fresh anomaly-memory items to add.
    pub grow_anomaly_memory: usize,
    /// The new data, for the lineage.
    pub data: String,
}

impl WarmStart {
    /// The child's architecture: the parent's, with the grown M_l.
    pub fn params(&self) -> ModelParams {
        let mut p = self.parent.params.clone();
        p.memory_anomaly += self.grow_anomaly_memory;
        p
    }

    /// Checks the new data's features against the parent's (same names, same order).
    pub fn check_features(&self, features: &[String]) -> Result<()> {
        if features != self.parent.features.as_slice() {
            let missing: Vec<&String> = self
                .parent
                .features
                .iter()
                .filter(|f| !features.contains(f))
                .collect();
            return Err(CoreError::Data(format!(
                "warm start: the new data's features differ from the parent model's ({} vs {}{})",
                features.len(),
                self.parent.features.len(),
                missing
                    .first()
                    .map_or(String::new(), |f| format!("; missing `{f}`"))
            )));
        }
        Ok(())
    }

    /// The child's initial weights: the parent's, with `grow_anomaly_memory` rows appended
    /// to the memory at the encodings of rows of `labeled_scaled` (scaled D_l), drawn with
    /// `rng` (cycling if there are fewer rows than items).
    pub fn initial_weights<R: Rng>(
        &self,
        labeled_scaled: ndarray::ArrayView2<'_, f32>,
        rng: &mut R,
    ) -> Result<Weights<f32>> {
        let mut w = self.parent.weights.clone();
        let n = self.grow_anomaly_memory;
        if n == 0 {
            return Ok(w);
        }
        if labeled_scaled.nrows() == 0 {
            return Err(CoreError::Data(
                "warm start: growing the anomaly memory needs labeled rows".into(),
            ));
        }
        let z = forward(&w, labeled_scaled, &self.parent.params).z;
        let mut rows: Vec<usize> = (0..z.nrows()).collect();
        rand::seq::SliceRandom::shuffle(rows.as_mut_slice(), rng);
        let picked: Vec<usize> = (0..n).map(|i| rows[i % rows.len()]).collect();
        let mut fresh: Array2<f32> = z.select(Axis(0), &picked);
        // Items picked twice (fewer rows than items) must not stay identical.
        if n > rows.len() {
            for v in fresh.iter_mut() {
                *v += rng.random_range(-1e-3f32..1e-3);
            }
        }
        // In the direction of the encoding, at the length of the parent's M_l items: the
        // addressing is a dot product, and encodings are several times longer than trained
        // items (NSL-KDD: ~10 against ~2), so an item placed at a raw encoding drew the
        // attention of *every* row, normal ones included, and the child's first epochs
        // undid the parent (reconstruction error 20x the parent's at the start, L_mask stuck
        // at 0.5). At the parent's length a new item wins only the rows that point its way.
        let k = self.parent.params.memory_normal;
        let mut lengths: Vec<f32> = w
            .memory
            .rows()
            .into_iter()
            .skip(k)
            .map(|r| r.dot(&r).sqrt())
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        lengths.sort_by(f32::total_cmp);
        if let Some(&target) = lengths.get(lengths.len() / 2) {
            for mut r in fresh.rows_mut() {
                let len = r.dot(&r).sqrt();
                if len > 0.0 && len.is_finite() {
                    r *= target / len;
                }
            }
        }
        w.memory = concatenate(Axis(0), &[w.memory.view(), fresh.view()])
            .map_err(|e| CoreError::Internal(format!("growing the memory: {e}")))?;
        Ok(w)
    }
}
