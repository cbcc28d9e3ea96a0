//! Choosing `mmnet_score` from training data: a validation split carved from D_u and D_l.
//!
//! Why: no fixed fusion of the raw scores wins on every dataset (docs/ACCURACY.md). Where the
//! few labeled anomalies are representative of the anomalies to come, the attention on the
//! anomaly memory carries the ranking and `combined` is best; where they are not (NSL-KDD:
//! 30 labeled attacks out of many attack kinds; UNSW-NB15 with one attack category
//! labeled), the log-odds term ranks unseen kinds *below* normal traffic and the
//! reconstruction error, alone or with the paper's flat-attention signal (S_KL), is better.
//! Which case a dataset is in can be measured without test labels, up to a point: hold out
//! part of D_l (labeled anomalies the model has not seen, drawn like the rest) and part of
//! D_u, train on the remainder, and see which candidate separates the held-out anomalies
//! from the held-out unlabeled rows best. The model is then trained on all of D_u and D_l
//! (the same run as without selection: the choice changes only which score is reported and
//! its threshold).
//!
//! The candidates are one family, z(ln MSE) + a z(logit) + b max(z(-S_KL), 0) with
//! a in {0, 0.5, 1} and b in {0, 1}: the reconstruction error is always in, because it is
//! the one signal that does not depend on what the labels cover, and the validation split
//! decides how much of what the labels taught (a) and of the flat-attention signal (b) to
//! add. A held-out *known* anomaly that the log-odds rank poorly (UNSW-NB15: 0.74-0.77)
//! means the labels do not generalise even within their own kind, and the choice falls on
//! `mse_kl`, which is what also ranks the unseen kinds best there. What validation cannot
//! see is an unseen kind that only the log-odds catch; docs/ACCURACY.md has the settings
//! where that happens and what it costs.
//!
//! The rule is the same for every dataset and uses nothing but the training data; its
//! measurements are kept in the model manifest ([`SelectionReport`]) so a user can see why a
//! score was chosen.

use ndarray::{Array2, ArrayView2, Axis, concatenate};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::metrics::{auc_roc, average_precision};
use crate::model::Model;
use crate::score::ScoreVariant;

/// How the validation split is carved and which scores compete.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Share of D_l held out for validation. Default 1/3 (10 of the protocol's 30).
    pub labeled_fraction: f64,
    /// Share of D_u held out for validation. Default 0.2.
    pub unlabeled_fraction: f64,
    /// Candidates, in order of preference on ties. Default: the six fusions of the module
    /// doc, from the one that leans least on the labels to the one that leans most: `mse`,
    /// `mse_kl`, `mse_half_logit`, `mse_half_logit_kl`, `mse_logit`, `combined`.
    pub candidates: Vec<ScoreVariant>,
    /// Candidates whose validation AUC-ROC is within this of the best are tied, and the
    /// earliest of them wins. Default 0: the strict best, exact ties (which happen: where the
    /// log-odds term dominates, several fusions rank the held-out rows identically) going to
    /// the candidate that leans least on the labels. A tolerance of 0.002 looked better in
    /// an offline study (UNSW-NB15 with `Generic` known), but that came from an f64
    /// recomputation of the log-odds z-scores; with mmnet's own scores the strict best was
    /// as good or better on every setting measured (docs/ACCURACY.md, session 7).
    pub tolerance: f64,
    /// Below this many labeled rows there is too little to validate on and the first
    /// candidate is used without a validation run. Default 9 (3 held out).
    pub min_labeled: usize,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            labeled_fraction: 1.0 / 3.0,
            unlabeled_fraction: 0.2,
            candidates: vec![
                ScoreVariant::Mse,
                ScoreVariant::MseKl,
                ScoreVariant::MseHalfLogit,
                ScoreVariant::MseHalfLogitKl,
                ScoreVariant::MseLogit,
                ScoreVariant::Combined,
            ],
            tolerance: 0.0,
            min_labeled: 9,
        }
    }
}

/// One candidate's validation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateResult {
    /// The score.
    pub variant: ScoreVariant,
    /// AUC-ROC of held-out labeled anomalies against held-out unlabeled rows.
    pub auc_roc: f64,
    /// Average precision on the same rows.
    pub auc_pr: f64,
}

/// What the selection measured and chose; stored in the model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionReport {
    /// The score chosen as `mmnet_score`.
    pub chosen: ScoreVariant,
    /// Every score's validation result (the candidates and the others, for reports).
    pub validation: Vec<CandidateResult>,
    /// Held-out rows of D_u and of D_l.
    pub validation_rows: [usize; 2],
}

impl Selection {
    /// Checks the fractions and the candidate list.
    pub fn check(&self) -> Result<()> {
        for (name, f) in [
            ("selection.labeled_fraction", self.labeled_fraction),
            ("selection.unlabeled_fraction", self.unlabeled_fraction),
        ] {
            if !(f > 0.0 && f < 1.0) {
                return Err(CoreError::param(
                    name,
                    format!("must be in (0, 1), got {f}"),
                ));
            }
        }
        if !(self.tolerance >= 0.0 && self.tolerance < 1.0) {
            return Err(CoreError::param(
                "selection.tolerance",
                format!("must be in [0, 1), got {}", self.tolerance),
            ));
        }
        if self.candidates.is_empty() {
            return Err(CoreError::param(
                "selection.candidates",
                "needs at least one score",
            ));
        }
        Ok(())
    }

    /// Whether `labeled` rows are enough to validate on.
    pub fn applies(&self, labeled: usize) -> bool {
        labeled >= self.min_labeled.max(2)
    }

    /// Splits D_u and D_l rows into (train, validation) index sets, seeded. Each side keeps
    /// at least one row.
    pub fn split(&self, unlabeled: usize, labeled: usize, seed: u64) -> HoldOut {
        // A stream apart from training's own (which is seeded with `seed` itself).
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e1e_c7ed_0000_0000);
        let mut cut = |n: usize, f: f64| {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.shuffle(&mut rng);
            let k = ((n as f64 * f).round() as usize).clamp(1, n.saturating_sub(1).max(1));
            let (val, train) = idx.split_at(k);
            let (mut val, mut train) = (val.to_vec(), train.to_vec());
            val.sort_unstable();
            train.sort_unstable();
            (train, val)
        };
        let (u_train, u_val) = cut(unlabeled, self.unlabeled_fraction);
        let (l_train, l_val) = cut(labeled, self.labeled_fraction);
        HoldOut {
            u_train,
            u_val,
            l_train,
            l_val,
        }
    }

    /// Scores the held-out rows with `model` (trained without them) and picks the earliest
    /// candidate whose AUC-ROC is within [`Selection::tolerance`] of the best candidate's
    /// (by default: the best, exact ties to the earliest).
    pub fn choose(
        &self,
        model: &Model,
        u_val: ArrayView2<f32>,
        l_val: ArrayView2<f32>,
    ) -> Result<SelectionReport> {
        let x: Array2<f32> = concatenate(Axis(0), &[u_val, l_val])
            .map_err(|e| CoreError::Internal(format!("validation rows: {e}")))?;
        let labels: Vec<bool> = (0..x.nrows()).map(|i| i >= u_val.nrows()).collect();
        let mut validation = Vec::new();
        for (variant, scores) in model.score_all_variants(x.view())? {
            let (Some(auc_roc), Some(auc_pr)) = (
                auc_roc(&scores, &labels),
                average_precision(&scores, &labels),
            ) else {
                return Err(CoreError::Internal(
                    "validation set lacks one of its two classes".into(),
                ));
            };
            validation.push(CandidateResult {
                variant,
                auc_roc,
                auc_pr,
            });
        }
        let chosen = self.pick(&validation)?;
        Ok(SelectionReport {
            chosen,
            validation,
            validation_rows: [u_val.nrows(), l_val.nrows()],
        })
    }
}

impl Selection {
    /// The earliest candidate whose validation AUC-ROC is within the tolerance of the best.
    pub fn pick(&self, validation: &[CandidateResult]) -> Result<ScoreVariant> {
        let results = self
            .candidates
            .iter()
            .map(|v| {
                validation
                    .iter()
                    .find(|c| c.variant == *v)
                    .ok_or_else(|| CoreError::Internal(format!("score `{}` missing", v.name())))
            })
            .collect::<Result<Vec<&CandidateResult>>>()?;
        let best = results
            .iter()
            .map(|c| c.auc_roc)
            .fold(f64::NEG_INFINITY, f64::max);
        results
            .iter()
            .find(|c| c.auc_roc >= best - self.tolerance)
            .map(|c| c.variant)
            .ok_or_else(|| {
                CoreError::Internal("no candidate has a finite validation AUC-ROC".into())
            })
    }
}

/// Row indices (into D_u and D_l) of the training and validation parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOut {
    /// D_u rows trained on.
    pub u_train: Vec<usize>,
    /// D_u rows held out.
    pub u_val: Vec<usize>,
    /// D_l rows trained on.
    pub l_train: Vec<usize>,
    /// D_l rows held out.
    pub l_val: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_complete_and_seeded() {
        let s = Selection::default();
        let h = s.split(100, 30, 4);
        assert_eq!(h.l_val.len(), 10);
        assert_eq!(h.u_val.len(), 20);
        for (a, b, n) in [(&h.u_train, &h.u_val, 100), (&h.l_train, &h.l_val, 30)] {
            let mut all: Vec<usize> = a.iter().chain(b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(h, s.split(100, 30, 4));
        assert_ne!(h, s.split(100, 30, 5));
        // Tiny sets still leave a row on each side.
        let t = s.split(2, 2, 0);
        assert_eq!((t.u_train.len(), t.u_val.len()), (1, 1));
        assert_eq!((t.l_train.len(), t.l_val.len()), (1, 1));
    }

    fn results(aucs: &[(ScoreVariant, f64)]) -> Vec<CandidateResult> {
        aucs.iter()
            .map(|&(variant, auc_roc)| CandidateResult {
                variant,
                auc_roc,
                auc_pr: 0.5,
            })
            .collect()
    }

    #[test]
    fn the_best_wins_and_ties_go_to_the_label_free_end() {
        use ScoreVariant::*;
        let s = Selection::default();
        // A clear winner that leans on the labels (spambase-like).
        let v = results(&[
            (Mse, 0.84),
            (MseKl, 0.88),
            (MseHalfLogit, 0.89),
            (MseHalfLogitKl, 0.90),
            (MseLogit, 0.92),
            (Combined, 0.933),
            (SSum, 0.99), // not a candidate: ignored
        ]);
        assert_eq!(s.pick(&v).unwrap(), Combined);
        // Exact ties (the log-odds term dominating every fusion that has it): the error
        // alone, which does not depend on what the labels cover.
        let tied = results(&[
            (Mse, 0.9914),
            (MseKl, 0.8867),
            (MseHalfLogit, 0.9914),
            (MseHalfLogitKl, 0.9914),
            (MseLogit, 0.9914),
            (Combined, 0.9914),
        ]);
        assert_eq!(s.pick(&tied).unwrap(), Mse);
        // Near ties: the strict best by default, the earliest within a tolerance if set.
        let near = results(&[
            (Mse, 0.991),
            (MseKl, 0.887),
            (MseHalfLogit, 0.993),
            (MseHalfLogitKl, 0.992),
            (MseLogit, 0.993),
            (Combined, 0.992),
        ]);
        assert_eq!(s.pick(&near).unwrap(), MseHalfLogit);
        let tolerant = Selection {
            tolerance: 0.002,
            ..Default::default()
        };
        assert_eq!(tolerant.pick(&near).unwrap(), Mse);
        // A missing candidate is an internal error, not a silent skip.
        assert!(s.pick(&near[..3]).is_err());
    }

    #[test]
    fn bad_settings_are_rejected() {
        let mut s = Selection {
            labeled_fraction: 1.0,
            ..Default::default()
        };
        assert!(s.check().is_err());
        s.labeled_fraction = 0.3;
        s.candidates.clear();
        assert!(s.check().is_err());
        assert!(Selection::default().check().is_ok());
        let t = Selection {
            tolerance: -0.1,
            ..Default::default()
        };
        assert!(t.check().is_err());
        assert!(!Selection::default().applies(8));
        assert!(Selection::default().applies(9));
    }
}
