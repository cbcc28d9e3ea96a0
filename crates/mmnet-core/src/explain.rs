//! Per-record explanations: which memory items a row attended to (normal part M_u or
//! anomaly part M_l) and which features its reconstruction error comes from.
//!
//! Why these two: the attention is what S_sum and S_KL are computed from, so its top items
//! say *why* the row scored as it did (mass on M_l = "looks like the labeled anomalies",
//! flat attention = "matches no prototype"); the per-feature squared error says *where*
//! the row differs from what the memory can reconstruct, in the features' own units.

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::model::{Model, ScoredBatch};
use crate::network::forward;
use crate::score::RawScores;

/// The two parts of the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryPart {
    /// M_u, prototypes of unlabeled (mostly normal) rows.
    Normal,
    /// M_l, prototypes of the labeled anomalies.
    Anomaly,
}

/// One attended memory item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryAttention {
    /// Item index in 0..K+L (items 0..K are M_u).
    pub item: usize,
    /// Which part the item belongs to.
    pub part: MemoryPart,
    /// Pre-shrink attention weight (the one S_sum and S_KL use).
    pub weight: f32,
}

/// One feature's share of the reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    /// Feature name.
    pub feature: String,
    /// The row's value, in the input's units.
    pub value: f32,
    /// The decoder's reconstruction, mapped back to the input's units.
    pub reconstruction: f32,
    /// This feature's share of the row's squared reconstruction error (in the scaled
    /// space the network sees), in [0, 1]; the shares of all features sum to 1.
    pub share: f32,
}

/// Why one row scored as it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The model's configured score.
    pub mmnet_score: f32,
    /// `mmnet_score > threshold`.
    pub is_anomaly: bool,
    /// Total attention on M_u (S_sum); 1 - s_sum is on M_l.
    pub s_sum: f32,
    /// S_KL.
    pub s_kl: f32,
    /// Reconstruction MSE (scaled space).
    pub mse: f32,
    /// The most attended memory items, highest weight first.
    pub memory: Vec<MemoryAttention>,
    /// The features with the largest share of the reconstruction error, largest first.
    pub features: Vec<FeatureContribution>,
}

impl Model {
    /// Explains every row of `x` (raw rows in [`Model::features`] order), keeping the
    /// `top_memory` most attended items and the `top_features` largest error shares.
    pub fn explain(
        &self,
        x: ArrayView2<f32>,
        top_memory: usize,
        top_features: usize,
    ) -> Result<Vec<Explanation>> {
        Ok(self.score_explained(x, None, top_memory, top_features)?.1)
    }

    /// Scores `x` as [`Model::score`] does (with the MSE; `threshold` overrides the stored
    /// one) and explains every row, from one scaling and one forward pass.
    pub fn score_explained(
        &self,
        x: ArrayView2<f32>,
        threshold: Option<f32>,
        top_memory: usize,
        top_features: usize,
    ) -> Result<(ScoredBatch, Vec<Explanation>)> {
        let scaled = self.scale(x)?;
        let fw = forward(&self.weights, scaled.view(), &self.params);
        // The score is the model's (the ensemble's, when it is one); the explanation is of
        // the first member's network (see crate::ensemble).
        let others = self.member_raws(|k| k.score(x, self.member_needs_mse()));
        let head = self.head_log_odds(|h, _| h.log_odds_scaled(scaled.view()));
        let scored = self.finish(
            RawScores::from_forward(&fw, &self.params),
            others,
            head,
            threshold,
        )?;
        let mse = scored
            .raw
            .mse
            .as_ref()
            .ok_or_else(|| CoreError::Internal("a full forward pass returned no MSE".into()))?;
        let k = self.params.memory_normal;
        let mut out = Vec::with_capacity(x.nrows());
        for (i, (w, (xs, xh))) in
            fw.w.axis_iter(Axis(0))
                .zip(scaled.axis_iter(Axis(0)).zip(fw.x_hat.axis_iter(Axis(0))))
                .enumerate()
        {
            let mut memory: Vec<MemoryAttention> = w
                .iter()
                .enumerate()
                .map(|(item, &weight)| MemoryAttention {
                    item,
                    part: if item < k {
                        MemoryPart::Normal
                    } else {
                        MemoryPart::Anomaly
                    },
                    weight,
                })
                .collect();
            memory.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            memory.truncate(top_memory);
            let sq: Vec<f32> = xs.iter().zip(xh).map(|(a, b)| (a - b) * (a - b)).collect();
            let total: f32 = sq.iter().sum();
            let mut features: Vec<FeatureContribution> = sq
                .iter()
                .enumerate()
                .map(|(j, &e)| FeatureContribution {
                    feature: self.features[j].clone(),
                    value: x[[i, j]],
                    reconstruction: self.scaler.inverse_value(j, xh[j]),
                    share: if total > 0.0 { e / total } else { 0.0 },
                })
                .collect();
            features.sort_by(|a, b| b.share.total_cmp(&a.share));
            features.truncate(top_features);
            out.push(Explanation {
                mmnet_score: scored.score[i],
                is_anomaly: scored.is_anomaly[i],
                s_sum: scored.raw.s_sum[i],
                s_kl: scored.raw.s_kl[i],
                mse: mse[i],
                memory,
                features,
            });
        }
        Ok((scored, out))
    }
}
