//! Anomaly scores from attention weights (paper Sec. III-G) and reconstruction error.
//!
//! Every *variant* is oriented so that higher = more anomalous, which is what AUC and the
//! threshold expect:
//! - `paper`: S = -(S_sum + lambda S_KL) (eq. 19);
//! - `s_sum`: -S_sum (S_sum = attention on the normal memory M_u, eq. 17);
//! - `s_kl`: -S_KL (S_KL = KL(u || w), eq. 18; low for unknown anomalies);
//! - `mse`: mean squared reconstruction error (needs the decoder);
//! - `combined` and the other fusions: robust z-scores of ln(MSE), the log-odds of
//!   addressing M_l and the positive part of -S_KL, with fixed weights (see [`Calibration`]
//!   and [`ScoreVariant::fusion_weights`]).
//!
//! The raw S_sum and S_KL are reported as they are defined in the paper.

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::network::{Forward, Weights};
use crate::params::ModelParams;
use crate::real::Real;
use crate::select::SelectionReport;
use crate::supervised::SupervisedTerm;

/// Which score `mmnet_score` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreVariant {
    /// The paper's S = -(S_sum + lambda S_KL).
    Paper,
    /// -S_sum alone.
    SSum,
    /// -S_KL alone.
    SKl,
    /// Reconstruction MSE.
    Mse,
    /// Robust z-scores of -S_sum and ln(MSE), each standardised with the median and IQR of
    /// the unlabeled training rows, summed (see [`Calibration`]).
    Calibrated,
    /// The default: robust z-scores of logit(1 - S_sum), ln(MSE) and -S_KL, each
    /// standardised with the median and IQR of the unlabeled training rows, summed with
    /// equal weights; the S_KL term counts only when positive (see [`Calibration`]).
    Combined,
    /// z(ln MSE) + max(z(-S_KL), 0): the error plus flat attention, nothing of what the
    /// labels taught (for anomalies unlike the labeled ones).
    MseKl,
    /// z(ln MSE) + z(logit(1 - S_sum)): `combined` without the S_KL term.
    MseLogit,
    /// z(ln MSE) + 0.5 z(logit(1 - S_sum)): the labels' evidence at half weight.
    MseHalfLogit,
    /// z(ln MSE) + 0.5 z(logit(1 - S_sum)) + max(z(-S_KL), 0).
    MseHalfLogitKl,
}

impl ScoreVariant {
    /// Every variant, in report order.
    pub const ALL: [ScoreVariant; 10] = [
        ScoreVariant::Combined,
        ScoreVariant::Paper,
        ScoreVariant::SSum,
        ScoreVariant::SKl,
        ScoreVariant::Mse,
        ScoreVariant::Calibrated,
        ScoreVariant::MseKl,
        ScoreVariant::MseLogit,
        ScoreVariant::MseHalfLogit,
        ScoreVariant::MseHalfLogitKl,
    ];

    /// The name used in the CLI, the manifest and reports.
    pub fn name(self) -> &'static str {
        match self {
            ScoreVariant::Paper => "paper",
            ScoreVariant::SSum => "s_sum",
            ScoreVariant::SKl => "s_kl",
            ScoreVariant::Mse => "mse",
            ScoreVariant::Calibrated => "calibrated",
            ScoreVariant::Combined => "combined",
            ScoreVariant::MseKl => "mse_kl",
            ScoreVariant::MseLogit => "mse_logit",
            ScoreVariant::MseHalfLogit => "mse_half_logit",
            ScoreVariant::MseHalfLogitKl => "mse_half_logit_kl",
        }
    }

    /// The weights (log-odds, S_KL) of a fusion z(ln MSE) + a z(logit) + b max(z(-S_KL), 0),
    /// or `None` for a variant that is not one. `combined` is (1, 1).
    pub fn fusion_weights(self) -> Option<(f32, f32)> {
        match self {
            ScoreVariant::Combined => Some((1.0, 1.0)),
            ScoreVariant::MseKl => Some((0.0, 1.0)),
            ScoreVariant::MseLogit => Some((1.0, 0.0)),
            ScoreVariant::MseHalfLogit => Some((0.5, 0.0)),
            ScoreVariant::MseHalfLogitKl => Some((0.5, 1.0)),
            _ => None,
        }
    }

    /// Parses a name produced by [`ScoreVariant::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }

    /// Whether computing this variant needs the decoder.
    pub fn needs_decoder(self) -> bool {
        matches!(self, ScoreVariant::Mse | ScoreVariant::Calibrated)
            || self.fusion_weights().is_some()
    }
}

/// Location and scale of one raw score over the unlabeled training rows D_u.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobustStats {
    /// Median.
    pub median: f32,
    /// Interquartile range (floored at a tiny positive value), or a wider range rescaled to
    /// it where the IQR is degenerate (see [`RobustStats::of`]).
    pub iqr: f32,
}

/// A spread below this (on the log scales the fusions use) counts as degenerate.
const DEGENERATE_SPREAD: f32 = 1e-6;

impl RobustStats {
    /// Median and spread of `v` (finite values only). The spread is the IQR, unless more
    /// than half the rows share one value (the IQR is then ~0 and a z-score would blow one
    /// term of a fusion up until it alone ranks every row): then the 5-95 % range, then the
    /// 1-99 % range, each rescaled to what the IQR of a normal distribution with that range
    /// would be, so the terms of a fusion keep comparable weights. Seen on nslkdd and
    /// unsw_nb15, where > 90 % of the unlabeled rows put (almost) no attention on M_l.
    pub fn of(v: &[f32]) -> Option<RobustStats> {
        let q = |p: f64| crate::model::quantile(v, p);
        let median = q(0.5)?;
        // Normal IQR / normal central range: 1.349 / 3.290 (5-95 %), 1.349 / 4.653 (1-99 %).
        let mut spread = q(0.75)? - q(0.25)?;
        for (lo, hi, ratio) in [(0.05, 0.95, 1.349 / 3.290), (0.01, 0.99, 1.349 / 4.653)] {
            if spread >= DEGENERATE_SPREAD {
                break;
            }
            spread = (q(hi)? - q(lo)?) * ratio;
        }
        Some(RobustStats {
            median,
            iqr: spread.max(1e-12),
        })
    }

    /// How many spreads `v` lies above the median.
    #[inline]
    pub fn z(&self, v: f32) -> f32 {
        (v - self.median) / self.iqr
    }
}

/// Training-data statistics that put the raw scores on one scale, computed at the end of
/// training from D_u only (never from test data or labels beyond D_u / D_l membership).
///
/// Why the default score (`combined`) is built the way it is (docs/ACCURACY.md has the
/// measurements):
/// - S_sum lies in [0, 1] while S_KL reaches ~27 and MSE depends on the feature count, so a
///   fixed weighted sum of raw scores is dominated by whichever has the widest range (SPEC
///   failure 3). Each score is therefore standardised by the median and IQR of the
///   unlabeled training rows: it counts by how unusual a row is *relative to training
///   traffic*, and no weight is fitted, so there is nothing to tune per dataset.
/// - Each score is first put on the scale where differences mean the same everywhere:
///   S_sum as log-odds of addressing M_l ([`logit_anomaly_mass`]), the reconstruction error
///   as a logarithm (errors are multiplicative: twice the error is equally surprising at
///   any level).
/// - The three carry different evidence: the log-odds what the labeled anomalies taught
///   (known anomalies), the error "unlike anything in training", low S_KL "attention spread
///   over the memory, matching no prototype" (the paper's argument for unknown anomalies).
///   Known anomalies concentrate their attention on M_l, so their S_KL is *high*; counting
///   -S_KL in both directions would pull exactly those rows down (the failure of eq. 19),
///   so only its positive part (flatter than typical training rows) is added.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Of -S_sum.
    pub neg_s_sum: RobustStats,
    /// Of -S_KL.
    pub neg_s_kl: RobustStats,
    /// Of ln(MSE + 1e-12).
    pub log_mse: RobustStats,
    /// Of logit(1 - S_sum) (absent in models from before the `combined` score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_anomaly_mass: Option<RobustStats>,
    /// The guard of [`logit_anomaly_mass`] these statistics were computed with (absent in
    /// models from before it was recorded: [`LEGACY_LOGIT_GUARD`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_guard: Option<f32>,
}

impl Calibration {
    /// The guard to score this model's log-odds with.
    pub fn logit_guard(&self) -> f32 {
        self.logit_guard.unwrap_or(LEGACY_LOGIT_GUARD)
    }
}

/// ln(MSE), guarded so a perfect reconstruction stays finite: the scale on which
/// `calibrated` and `combined` standardise the reconstruction error.
fn ln_mse(mse: f32) -> f32 {
    (mse + 1e-12).ln()
}

/// Smallest attention mass kept apart from 0 in [`logit_anomaly_mass`] in models trained
/// since the guard was lowered: the same 1e-12 as the paper's log guard of S_KL. A row's M_l
/// mass spans many orders of magnitude below 1e-7 (on nslkdd and unsw_nb15 most unlabeled
/// rows sit there), and those orders rank rows: the old 1e-7 folded > 90 % of them into one
/// value (docs/ACCURACY.md, "Session 8").
pub const LOGIT_GUARD: f32 = 1e-12;

/// The guard of models whose manifest does not record one (trained before it was lowered);
/// their calibration statistics were computed with it, so they are scored with it.
pub const LEGACY_LOGIT_GUARD: f32 = 1e-7;

/// ln(M_l mass / M_u mass) = logit(1 - S_sum): the log-odds that a row addresses the anomaly
/// memory M_l, each mass floored at `guard`. Why a logit: S_sum is a probability mass that
/// saturates near 1 for most normal rows, and the differences that rank rows (0.999 vs
/// 0.99999) are invisible on the raw scale but are orders of magnitude apart on the log-odds
/// scale.
///
/// Both masses are sums of their own attention weights, not `1 - S_sum`: in f32, 1 - S_sum
/// of a saturated row is a multiple of 6e-8, so a mass of 1e-6 carried 6 % rounding noise
/// that ranked rows and made two correct implementations disagree (seen: 0.17 in the
/// combined score between mmnet and numpy on the same weights).
pub fn logit_anomaly_mass(m_l: f32, s_sum: f32, guard: f32) -> f32 {
    m_l.max(guard).ln() - s_sum.max(guard).ln()
}

/// The configured score of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Variant reported as `mmnet_score`. Default `combined`.
    pub variant: ScoreVariant,
    /// lambda of eq. 19. Default 0.1.
    pub lambda: f64,
    /// Training statistics for the `calibrated` variant (absent in models from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// How `variant` was chosen on a validation split, when it was (see [`crate::select`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionReport>,
    /// The supervised term added to `variant` (see [`crate::supervised`]); absent in models
    /// trained without it (`--supervised off`, or before it existed), which report
    /// `variant` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised: Option<SupervisedTerm>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            variant: ScoreVariant::Combined,
            lambda: 0.1,
            calibration: None,
            selection: None,
            supervised: None,
        }
    }
}

impl ScoreConfig {
    /// What `mmnet_score` is, for people: the variant's name, with `+ supervised` when the
    /// supervised term is added to it.
    pub fn describe(&self) -> String {
        match self.supervised {
            Some(_) => format!("{} + supervised", self.variant.name()),
            None => self.variant.name().to_string(),
        }
    }
}

/// Raw per-row quantities every score variant is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawScores {
    /// S_sum: total pre-shrink attention on M_u, in [0, 1].
    pub s_sum: Vec<f32>,
    /// Total pre-shrink attention on M_l, summed over M_l's own weights (about 1 - S_sum,
    /// but exact where S_sum saturates; see [`logit_anomaly_mass`]).
    pub m_l: Vec<f32>,
    /// S_KL = KL(u || w) with the log guard, >= 0.
    pub s_kl: Vec<f32>,
    /// Reconstruction MSE (mean over features), when computed.
    pub mse: Option<Vec<f32>>,
}

impl RawScores {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.s_sum.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.s_sum.is_empty()
    }

    /// Computes the [`Calibration`] of these (D_u) scores; needs the MSE.
    pub fn calibration(&self) -> Option<Calibration> {
        let neg = |v: &[f32]| v.iter().map(|x| -x).collect::<Vec<f32>>();
        let log_mse: Vec<f32> = self.mse.as_ref()?.iter().map(|&m| ln_mse(m)).collect();
        Some(Calibration {
            neg_s_sum: RobustStats::of(&neg(&self.s_sum))?,
            neg_s_kl: RobustStats::of(&neg(&self.s_kl))?,
            log_mse: RobustStats::of(&log_mse)?,
            logit_anomaly_mass: RobustStats::of(
                &self
                    .m_l
                    .iter()
                    .zip(&self.s_sum)
                    .map(|(&a, &s)| logit_anomaly_mass(a, s, LOGIT_GUARD))
                    .collect::<Vec<_>>(),
            ),
            logit_guard: Some(LOGIT_GUARD),
        })
    }

    /// The anomaly score of `variant` (higher = more anomalous), or `None` when what it
    /// needs was not computed (the MSE) or is not known (the calibration).
    pub fn variant(&self, variant: ScoreVariant, cfg: &ScoreConfig) -> Option<Vec<f32>> {
        let l = cfg.lambda as f32;
        Some(match variant {
            ScoreVariant::Paper => self
                .s_sum
                .iter()
                .zip(&self.s_kl)
                .map(|(&s, &k)| -(s + l * k))
                .collect(),
            ScoreVariant::SSum => self.s_sum.iter().map(|&s| -s).collect(),
            ScoreVariant::SKl => self.s_kl.iter().map(|&s| -s).collect(),
            ScoreVariant::Mse => self.mse.clone()?,
            ScoreVariant::Calibrated => {
                let c = cfg.calibration?;
                self.s_sum
                    .iter()
                    .zip(self.mse.as_ref()?)
                    .map(|(&s, &m)| c.neg_s_sum.z(-s) + c.log_mse.z(ln_mse(m)))
                    .collect()
            }
            fused => {
                let (a, b) = fused.fusion_weights()?;
                let c = cfg.calibration?;
                let lg = c.logit_anomaly_mass?;
                let guard = c.logit_guard();
                let mse = self.mse.as_ref()?;
                (0..self.s_sum.len())
                    .map(|i| {
                        // A zero weight skips its term (no 0 * value arithmetic to reason about).
                        let mut v = c.log_mse.z(ln_mse(mse[i]));
                        if a != 0.0 {
                            v += a * lg.z(logit_anomaly_mass(self.m_l[i], self.s_sum[i], guard));
                        }
                        if b != 0.0 {
                            v += b * c.neg_s_kl.z(-self.s_kl[i]).max(0.0);
                        }
                        v
                    })
                    .collect()
            }
        })
    }

    /// S_sum, S_KL and the MSE of a full forward pass.
    pub fn from_forward(fw: &Forward<f32>, p: &ModelParams) -> RawScores {
        let (s_sum, m_l, s_kl) = attention_scores(fw.w.view(), p.memory_normal, p.log_guard);
        let d = fw.x_hat.ncols().max(1) as f32;
        RawScores {
            s_sum,
            m_l,
            s_kl,
            mse: Some(fw.err.iter().map(|&e| e * e / d).collect()),
        }
    }
}

/// S_sum, the M_l mass and S_KL of each row of the attention matrix `w` (`B x (K+L)`).
pub fn attention_scores<F: Real>(
    w: ArrayView2<F>,
    k: usize,
    guard: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = w.ncols();
    let g = F::c(guard);
    let log_m = F::c((m as f64).ln());
    let inv_m = F::c(1.0 / m as f64);
    let mut s_sum = Vec::with_capacity(w.nrows());
    let mut m_l = Vec::with_capacity(w.nrows());
    let mut s_kl = Vec::with_capacity(w.nrows());
    for row in w.axis_iter(Axis(0)) {
        let s: F = row.iter().take(k).copied().sum();
        let a: F = row.iter().skip(k).copied().sum();
        let logs: F = row.iter().map(|&v| (v + g).ln()).sum();
        s_sum.push(s.to_f32().unwrap_or(f32::NAN));
        m_l.push(a.to_f32().unwrap_or(f32::NAN));
        s_kl.push((-(logs * inv_m) - log_m).to_f32().unwrap_or(f32::NAN));
    }
    (s_sum, m_l, s_kl)
}

/// Scores rows that are already scaled. Computes the decoder only when `with_mse`. Packs
/// the weights on every call: hold a [`crate::kernel::Scorer`] to score repeatedly.
pub fn score_scaled(
    w: &Weights<f32>,
    p: &ModelParams,
    x: ArrayView2<f32>,
    with_mse: bool,
) -> RawScores {
    crate::kernel::Scorer::new(w, p).score(x, with_mse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn uniform_attention_has_zero_kl_and_half_sum() {
        let w = Array2::<f64>::from_elem((2, 4), 0.25);
        let (s, a, k) = attention_scores(w.view(), 2, 1e-12);
        assert!((s[0] - 0.5).abs() < 1e-6 && (a[0] - 0.5).abs() < 1e-6);
        assert!(k[0].abs() < 1e-5, "{}", k[0]);
    }

    #[test]
    fn peaky_attention_has_large_kl() {
        let w = array![[1.0f64, 0.0, 0.0, 0.0]];
        let (s, a, k) = attention_scores(w.view(), 2, 1e-12);
        assert_eq!((s[0], a[0]), (1.0, 0.0));
        // -(1/4)(log(1) + 3 log(1e-12)) - log 4 = 0.75 * 27.631 - 1.386
        assert!((k[0] as f64 - (0.75 * 27.631021 - 4f64.ln())).abs() < 1e-3);
    }

    #[test]
    fn variants_are_oriented_higher_is_anomalous() {
        let raw = RawScores {
            s_sum: vec![0.9, 0.1],
            m_l: vec![0.1, 0.9],
            s_kl: vec![2.0, 1.0],
            mse: None,
        };
        let cfg = ScoreConfig::default();
        assert_eq!(
            raw.variant(ScoreVariant::SSum, &cfg),
            Some(vec![-0.9, -0.1])
        );
        assert_eq!(raw.variant(ScoreVariant::SKl, &cfg), Some(vec![-2.0, -1.0]));
        let p = raw.variant(ScoreVariant::Paper, &cfg).unwrap();
        assert!((p[0] + 1.1).abs() < 1e-6 && (p[1] + 0.2).abs() < 1e-6);
        assert_eq!(raw.variant(ScoreVariant::Mse, &cfg), None);
        assert_eq!(raw.variant(ScoreVariant::Calibrated, &cfg), None);
        assert_eq!(raw.variant(ScoreVariant::Combined, &cfg), None);
    }

    #[test]
    fn combined_adds_three_standardised_scores() {
        let raw = RawScores {
            s_sum: vec![0.999_99, 0.9999, 0.999, 0.99, 0.9],
            m_l: vec![1e-5, 1e-4, 1e-3, 1e-2, 0.1],
            s_kl: vec![5.0, 4.0, 3.0, 2.0, 1.0],
            mse: Some(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        };
        let c = raw.calibration().unwrap();
        let lg = c.logit_anomaly_mass.unwrap();
        // logit(1 - 0.999) = ln(0.001 / 0.999) is the median.
        assert!((lg.median - (0.001f32 / 0.999).ln()).abs() < 1e-3, "{lg:?}");
        let cfg = ScoreConfig {
            calibration: Some(c),
            ..Default::default()
        };
        assert_eq!(cfg.variant, ScoreVariant::Combined);
        let v = raw.variant(ScoreVariant::Combined, &cfg).unwrap();
        // The middle row sits at all three medians.
        assert!(v[2].abs() < 1e-4, "{v:?}");
        // More attention on M_l, a larger error and flatter attention all raise the score.
        assert!(v.windows(2).all(|w| w[1] > w[0]), "{v:?}");
        // Without the logit statistics (a model from before `combined`) it is unavailable.
        let mut old = cfg.clone();
        old.calibration.as_mut().unwrap().logit_anomaly_mass = None;
        assert_eq!(raw.variant(ScoreVariant::Combined, &old), None);
    }

    #[test]
    fn fusions_weigh_their_three_terms() {
        let raw = RawScores {
            s_sum: vec![0.999, 0.99, 0.9, 0.5, 0.999_9],
            m_l: vec![1e-3, 1e-2, 0.1, 0.5, 1e-4],
            s_kl: vec![3.0, 5.0, 1.0, 2.0, 4.0],
            mse: Some(vec![2.0, 1.0, 5.0, 3.0, 4.0]),
        };
        let cfg = ScoreConfig {
            calibration: raw.calibration(),
            ..Default::default()
        };
        let c = cfg.calibration.unwrap();
        let lg = c.logit_anomaly_mass.unwrap();
        let fused = ScoreVariant::ALL
            .into_iter()
            .filter(|v| v.fusion_weights().is_some());
        let mut n = 0;
        for v in fused {
            let (a, b) = v.fusion_weights().unwrap();
            let got = raw.variant(v, &cfg).unwrap();
            for (i, g) in got.iter().enumerate() {
                let want = c.log_mse.z(ln_mse(raw.mse.as_ref().unwrap()[i]))
                    + a * lg.z(logit_anomaly_mass(raw.m_l[i], raw.s_sum[i], LOGIT_GUARD))
                    + b * c.neg_s_kl.z(-raw.s_kl[i]).max(0.0);
                assert!((g - want).abs() < 1e-5, "{} row {i}", v.name());
            }
            assert!(v.needs_decoder());
            n += 1;
        }
        assert_eq!(n, 5);
        // `mse_kl` never reads the attention mass: rows that differ only there tie.
        let mut twin = raw.clone();
        twin.m_l[0] = 0.4;
        twin.s_sum[0] = 0.6;
        assert_eq!(
            raw.variant(ScoreVariant::MseKl, &cfg).unwrap()[0],
            twin.variant(ScoreVariant::MseKl, &cfg).unwrap()[0]
        );
    }

    #[test]
    fn robust_spread_widens_where_most_rows_tie() {
        // An ordinary sample: the IQR.
        let v: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let st = RobustStats::of(&v).unwrap();
        let iqr =
            crate::model::quantile(&v, 0.75).unwrap() - crate::model::quantile(&v, 0.25).unwrap();
        assert_eq!(st.iqr, iqr);
        // 80 of 100 rows share one value: the IQR is 0, the 5-95 % range is not.
        let mut t = vec![-27.6f32; 80];
        t.extend((0..20).map(|i| -20.0 + i as f32));
        let st = RobustStats::of(&t).unwrap();
        let range =
            crate::model::quantile(&t, 0.95).unwrap() - crate::model::quantile(&t, 0.05).unwrap();
        assert!((st.iqr - range * 1.349 / 3.290).abs() < 1e-5, "{st:?}");
        // 97 of 100: the 1-99 % range.
        let mut u = vec![0.0f32; 97];
        u.extend([1.0, 2.0, 3.0]);
        let st = RobustStats::of(&u).unwrap();
        assert!(st.iqr > 1e-3, "{st:?}");
        // All equal: the floor, still finite.
        assert_eq!(RobustStats::of(&[5.0; 10]).unwrap().iqr, 1e-12);
    }

    #[test]
    fn models_without_a_recorded_guard_score_with_the_legacy_one() {
        let raw = RawScores {
            s_sum: vec![1.0, 1.0, 1.0, 0.9, 0.5],
            m_l: vec![1e-11, 1e-9, 1e-8, 0.1, 0.5],
            s_kl: vec![3.0, 5.0, 1.0, 2.0, 4.0],
            mse: Some(vec![1.0, 1.0, 1.0, 1.0, 1.0]),
        };
        let cal = raw.calibration().unwrap();
        assert_eq!(cal.logit_guard, Some(LOGIT_GUARD));
        let cfg = |c: Calibration| ScoreConfig {
            variant: ScoreVariant::MseLogit,
            calibration: Some(c),
            ..Default::default()
        };
        let now = raw.variant(ScoreVariant::MseLogit, &cfg(cal)).unwrap();
        // The first three rows differ below 1e-7: ranked apart now...
        assert!(now[0] < now[1] && now[1] < now[2], "{now:?}");
        // ...and tied under the legacy guard, as the model they came from scored them.
        let legacy = Calibration {
            logit_guard: None,
            ..cal
        };
        assert_eq!(legacy.logit_guard(), LEGACY_LOGIT_GUARD);
        let old = raw.variant(ScoreVariant::MseLogit, &cfg(legacy)).unwrap();
        assert!(old[0] == old[1] && old[1] == old[2], "{old:?}");
        // The field round-trips and is optional on reading.
        let json = serde_json::to_string(&cal).unwrap();
        assert_eq!(serde_json::from_str::<Calibration>(&json).unwrap(), cal);
        let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        doc.as_object_mut().unwrap().remove("logit_guard");
        let back: Calibration = serde_json::from_value(doc).unwrap();
        assert_eq!(back.logit_guard, None);
    }

    #[test]
    fn logit_separates_saturated_masses() {
        // On the raw scale these differ by < 1e-3; as log-odds by about 4.6.
        let g = LOGIT_GUARD;
        let a = logit_anomaly_mass(1e-3, 0.999, g);
        let b = logit_anomaly_mass(1e-5, 0.999_99, g);
        assert!((a - b - (100.0f32).ln()).abs() < 0.05, "{a} {b}");
        assert!(
            logit_anomaly_mass(0.0, 1.0, g).is_finite()
                && logit_anomaly_mass(1.0, 0.0, g).is_finite()
        );
        // A mass far below f32's resolution of 1 - S_sum (6e-8) still ranks: 1e-6 vs 2e-6,
        // and so does 1e-10 vs 2e-10, which the legacy guard folded into one value.
        let (c, d) = (
            logit_anomaly_mass(1e-6, 1.0, g),
            logit_anomaly_mass(2e-6, 1.0, g),
        );
        assert!((d - c - 2f32.ln()).abs() < 1e-4, "{c} {d}");
        let (e, f) = (
            logit_anomaly_mass(1e-10, 1.0, g),
            logit_anomaly_mass(2e-10, 1.0, g),
        );
        assert!((f - e - 2f32.ln()).abs() < 1e-3, "{e} {f}");
        let l = LEGACY_LOGIT_GUARD;
        assert_eq!(
            logit_anomaly_mass(1e-10, 1.0, l),
            logit_anomaly_mass(2e-10, 1.0, l)
        );
    }

    #[test]
    fn calibrated_is_a_sum_of_robust_z_scores() {
        let raw = RawScores {
            s_sum: vec![1.0, 0.9, 0.8, 0.7, 0.6],
            m_l: vec![0.0, 0.1, 0.2, 0.3, 0.4],
            s_kl: vec![1.0; 5],
            mse: Some(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        };
        let c = raw.calibration().unwrap();
        // -S_sum: median -0.8, IQR 0.2.
        assert!((c.neg_s_sum.median + 0.8).abs() < 1e-6 && (c.neg_s_sum.iqr - 0.2).abs() < 1e-6);
        let cfg = ScoreConfig {
            calibration: Some(c),
            ..Default::default()
        };
        let v = raw.variant(ScoreVariant::Calibrated, &cfg).unwrap();
        // The middle row is at both medians.
        assert!(v[2].abs() < 1e-5, "{v:?}");
        // Low attention on M_u and a high error both push the score up.
        assert!(v[4] > v[2] && v[2] > v[0]);
    }

    #[test]
    fn variant_names_round_trip() {
        for v in ScoreVariant::ALL {
            assert_eq!(ScoreVariant::from_name(v.name()), Some(v));
        }
        assert_eq!(ScoreVariant::from_name("nope"), None);
    }
}
