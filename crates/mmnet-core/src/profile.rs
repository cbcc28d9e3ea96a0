//! What the training data looked like, kept in the manifest so a scorer can tell when live
//! traffic drifts away from it: deciles of `mmnet_score` and S_sum over D_u, and each
//! feature's training range in input units. Cheap to check per batch (a binary search per
//! row, two comparisons per value).

use serde::{Deserialize, Serialize};

use crate::model::quantile;

/// Bins of the score histogram: deciles of the training scores, so each holds 10 % of D_u.
pub const BINS: usize = 10;

/// Training-data profile for drift signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingProfile {
    /// Deciles 0.1..0.9 of `mmnet_score` over D_u (nine edges, ten bins).
    pub score_deciles: Vec<f32>,
    /// Deciles of S_sum over D_u.
    pub s_sum_deciles: Vec<f32>,
    /// Per feature (model order): smallest training value, input units.
    pub feature_min: Vec<f32>,
    /// Per feature: largest training value.
    pub feature_max: Vec<f32>,
}

fn deciles(v: &[f32]) -> Option<Vec<f32>> {
    (1..BINS)
        .map(|i| quantile(v, i as f64 / BINS as f64))
        .collect()
}

impl TrainingProfile {
    /// The profile of D_u's scores and S_sum and of the raw training rows (`parts`: D_u and
    /// D_l, features in model order).
    pub fn new(
        scores: &[f32],
        s_sum: &[f32],
        parts: &[ndarray::ArrayView2<'_, f32>],
    ) -> Option<TrainingProfile> {
        let d = parts.first()?.ncols();
        let mut lo = vec![f32::INFINITY; d];
        let mut hi = vec![f32::NEG_INFINITY; d];
        for p in parts {
            for row in p.rows() {
                for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                    *l = l.min(v);
                    *h = h.max(v);
                }
            }
        }
        Some(TrainingProfile {
            score_deciles: deciles(scores)?,
            s_sum_deciles: deciles(s_sum)?,
            feature_min: lo,
            feature_max: hi,
        })
    }

    /// The decile bin (0..BINS) of a score: how many training deciles lie below it.
    pub fn score_bin(&self, score: f32) -> usize {
        self.score_deciles.partition_point(|&e| e < score)
    }

    /// Whether feature `j`'s value lies outside its training range.
    pub fn out_of_range(&self, j: usize, v: f32) -> bool {
        v < self.feature_min[j] || v > self.feature_max[j]
    }
}

/// Population stability index of a score histogram over the training deciles against the
/// 10 % per bin that training had: sum over bins of (a - e) ln(a / e), with shares floored
/// at 1e-4 so an empty bin counts as very unusual rather than infinite. Usual reading:
/// < 0.1 stable, 0.1-0.25 a shift worth a look, > 0.25 a shift. `None` without rows.
pub fn psi(counts: &[u64]) -> Option<f64> {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return None;
    }
    let e = 1.0 / counts.len() as f64;
    Some(
        counts
            .iter()
            .map(|&c| {
                let a = (c as f64 / n as f64).max(1e-4);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn deciles_bins_and_ranges() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let x = array![[1.0f32, -2.0], [3.0, 5.0]];
        let l = array![[0.5f32, 9.0]];
        let p = TrainingProfile::new(&scores, &scores, &[x.view(), l.view()]).unwrap();
        assert_eq!(p.score_deciles.len(), 9);
        assert_eq!(p.score_bin(-1.0), 0);
        assert_eq!(p.score_bin(550.0), 5);
        assert_eq!(p.score_bin(1e9), 9);
        assert_eq!(
            (p.feature_min.clone(), p.feature_max.clone()),
            (vec![0.5, -2.0], vec![3.0, 9.0])
        );
        assert!(!p.out_of_range(0, 0.5) && p.out_of_range(0, 3.5) && p.out_of_range(1, -2.5));
        // Training-like scores fill the bins evenly: PSI ~ 0.
        let mut counts = [0u64; BINS];
        for s in &scores {
            counts[p.score_bin(*s + 0.5)] += 1;
        }
        assert!(psi(&counts).unwrap() < 0.01, "{counts:?}");
        // Everything in the top bin: a large PSI.
        let mut shifted = [0u64; BINS];
        shifted[9] = 1000;
        assert!(psi(&shifted).unwrap() > 1.0);
        assert_eq!(psi(&[0; BINS]), None);
    }

    #[test]
    fn round_trips() {
        let p = TrainingProfile {
            score_deciles: vec![0.1; 9],
            s_sum_deciles: vec![0.9; 9],
            feature_min: vec![0.0, 1.0],
            feature_max: vec![2.0, 3.0],
        };
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<TrainingProfile>(&s).unwrap(), p);
    }
}
