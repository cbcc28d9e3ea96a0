//! A trained model: everything needed to score raw rows, and nothing else.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::ensemble::{Ensemble, Member, stats_of};
use crate::error::{CoreError, Result};
use crate::kernel::{Precision, Prescale, Scorer, Threads};
use crate::loss::LossParts;
use crate::network::Weights;
use crate::params::{ModelParams, TrainParams};
use crate::scaler::MinMaxScaler;
use crate::score::{RawScores, ScoreConfig, ScoreVariant};
use crate::supervised::LogisticHead;

/// The anomaly threshold on `mmnet_score` and how it was obtained.
///
/// Calibrated on training data only: the `quantile`-quantile (linear interpolation, as
/// numpy's default) of the score over the unlabeled training rows D_u. D_u is mostly normal,
/// so the quantile is the share of training traffic the model would flag; 0.99 by default
/// flags about 1 % of data that looks like the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Rows with `mmnet_score > value` are anomalies.
    pub value: f32,
    /// How `value` was set, e.g. `quantile_of_unlabeled_training_scores`.
    pub method: String,
    /// The quantile used, when `method` is a quantile.
    pub quantile: Option<f64>,
}

/// Loss means of one epoch (per row for rec and mask, as L_KL already is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochLoss {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub learning_rate: f64,
    /// Mean loss terms per row over the epoch.
    pub loss: LossParts,
}

/// What happened during training, kept in the manifest for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    /// Rows in D_u.
    pub rows_unlabeled: usize,
    /// Rows in D_l.
    pub rows_labeled: usize,
    /// Optimisation hyperparameters used.
    pub params: TrainParams,
    /// Wall-clock training time in seconds.
    pub wall_seconds: f64,
    /// Per-epoch loss history.
    pub history: Vec<EpochLoss>,
    /// What the training data looked like, for drift signals (absent in models from before
    /// it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::profile::TrainingProfile>,
    /// The parent model, when warm-started from one (`mmnet train --init-from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<crate::warm::Lineage>,
}

/// A trained MMNet.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Feature names, in the order the network reads them.
    pub features: Vec<String>,
    /// Scaling fitted on the training data.
    pub scaler: MinMaxScaler,
    /// Architecture and loss hyperparameters.
    pub params: ModelParams,
    /// Learned weights.
    pub weights: Weights<f32>,
    /// Which score is `mmnet_score`.
    pub score: ScoreConfig,
    /// Anomaly threshold on `mmnet_score`.
    pub threshold: Threshold,
    /// Training record.
    pub training: TrainingSummary,
    /// The other members, when the model is an ensemble over seeds (see
    /// [`crate::ensemble`]); `None` = a single network.
    pub ensemble: Option<Ensemble>,
    /// The arithmetic of the scoring products: f32 (the default) or bf16, which is faster
    /// where the CPU has AMX or AVX-512 BF16 and moves scores by about 1e-3 (see
    /// [`crate::kernel::bf16`]). Change it with [`Model::with_precision`].
    pub precision: Precision,
    /// The packed scoring kernel, built from the fields above on first use.
    pub(crate) kernel: KernelCache,
}

/// The scoring kernel of a [`Model`], packed once on the first call to score (weights
/// packed into panels, scaling folded into the read of each row) and shared by clones.
/// It is derived data: it never takes part in equality, and a model whose `weights`,
/// `params` or `scaler` are changed after scoring must be rebuilt, not mutated.
#[derive(Debug, Clone, Default)]
pub(crate) struct KernelCache(pub(crate) std::sync::OnceLock<std::sync::Arc<Scorer>>);

impl PartialEq for KernelCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Scores of a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredBatch {
    /// The configured score, higher = more anomalous.
    pub score: Vec<f32>,
    /// Raw S_sum, S_KL and (if computed) MSE.
    pub raw: RawScores,
    /// `score > threshold`.
    pub is_anomaly: Vec<bool>,
}

impl Model {
    /// Number of input features.
    pub fn input_dim(&self) -> usize {
        self.features.len()
    }

    /// Scores raw (unscaled) rows whose columns are in [`Model::features`] order.
    /// `threshold` overrides the stored one. The decoder runs only when the configured
    /// variant or `with_mse` needs it.
    pub fn score(
        &self,
        x: ArrayView2<f32>,
        with_mse: bool,
        threshold: Option<f32>,
    ) -> Result<ScoredBatch> {
        self.check_width(x)?;
        let raw = self.kernel().score(x, self.needs_mse(with_mse));
        let others = self.member_raws(|k| k.score(x, self.member_needs_mse()));
        let head = self.head_log_odds(|h, p| h.log_odds_raw(p, x));
        self.finish(raw, others, head, threshold)
    }

    /// The supervised term's log-odds of the rows `of` computes them for (raw rows or
    /// columns, through the kernel's scaling), or `None` for a model without the term.
    pub(crate) fn head_log_odds(
        &self,
        of: impl FnOnce(&LogisticHead, &Prescale) -> Vec<f32>,
    ) -> Option<Vec<f32>> {
        let term = self.score.supervised.as_ref()?;
        let kernel = self.kernel();
        // The kernel of a model always carries its scaling (see `packed`).
        let prescale = kernel.prescale()?;
        Some(of(&term.head, prescale))
    }

    /// [`Model::score`] for rows given as one slice per feature, in [`Model::features`]
    /// order (`cols[j][i]` = feature `j` of row `i`): how Arrow holds a batch, scored without
    /// assembling a matrix first. `threads` says where (see [`Threads`]).
    pub fn score_columns(
        &self,
        cols: &[&[f32]],
        with_mse: bool,
        threshold: Option<f32>,
        threads: Threads,
    ) -> Result<ScoredBatch> {
        if cols.len() != self.input_dim() {
            return Err(CoreError::Shape {
                what: "feature columns to score".into(),
                expected: format!("{} columns", self.input_dim()),
                got: format!("{} columns", cols.len()),
            });
        }
        let n = cols.first().map_or(0, |c| c.len());
        if let Some((j, c)) = cols.iter().enumerate().find(|(_, c)| c.len() != n) {
            return Err(CoreError::Shape {
                what: format!("feature column `{}`", self.features[j]),
                expected: format!("{n} values (as the first column)"),
                got: format!("{} values", c.len()),
            });
        }
        let raw = self
            .kernel()
            .score_columns(cols, self.needs_mse(with_mse), threads);
        let others = self.member_raws(|k| k.score_columns(cols, self.member_needs_mse(), threads));
        let head = self.head_log_odds(|h, p| h.log_odds_columns(p, cols));
        self.finish(raw, others, head, threshold)
    }

    /// This model scoring with `precision` (its kernels are packed again on first use).
    pub fn with_precision(mut self, precision: Precision) -> Model {
        self.precision = precision;
        self.kernel = KernelCache::default();
        if let Some(e) = &mut self.ensemble {
            for m in &mut e.members {
                m.kernel = KernelCache::default();
            }
        }
        self
    }

    /// Members beyond the first (empty for a single network).
    pub fn members(&self) -> &[Member] {
        self.ensemble.as_ref().map_or(&[], |e| e.members.as_slice())
    }

    /// Number of networks whose scores make `mmnet_score` (1 for a single model).
    pub fn ensemble_size(&self) -> usize {
        self.ensemble.as_ref().map_or(1, Ensemble::len)
    }

    /// Whether the other members must run their decoder: only for the configured score
    /// (their raw outputs are not reported).
    pub(crate) fn member_needs_mse(&self) -> bool {
        self.score.variant.needs_decoder()
    }

    pub(crate) fn member_kernel<'a>(&self, m: &'a Member) -> &'a Scorer {
        m.kernel.0.get_or_init(|| self.packed(&m.weights))
    }

    /// The scoring kernel of `weights` for raw rows: this model's architecture, with its
    /// scaling folded into the read of each row.
    fn packed(&self, weights: &crate::network::Weights<f32>) -> std::sync::Arc<Scorer> {
        std::sync::Arc::new(
            Scorer::new(weights, &self.params)
                .with_prescale(self.scaler.prescale())
                .with_precision(self.precision),
        )
    }

    /// The raw scores of the members beyond the first, each from its own kernel through
    /// `score` (rows or columns; with the decoder when the configured score needs it).
    pub(crate) fn member_raws(&self, score: impl Fn(&Scorer) -> RawScores) -> Vec<RawScores> {
        self.members()
            .iter()
            .map(|m| score(self.member_kernel(m)))
            .collect()
    }

    /// Member `k` (0 = the model's own weights) as a single model: its weights and
    /// calibration with this model's features, scaling, score and threshold (the threshold
    /// is the ensemble's, on another scale: use it for its raw scores, not its flags).
    pub fn member(&self, k: usize) -> Option<Model> {
        if k == 0 {
            let mut m = self.clone();
            m.ensemble = None;
            return Some(m);
        }
        let mem = self.members().get(k - 1)?;
        let mut m = self.clone();
        m.ensemble = None;
        m.weights = mem.weights.clone();
        m.score.calibration = Some(mem.calibration);
        m.kernel = KernelCache::default();
        Some(m)
    }

    /// Whether scoring must run the decoder: asked for, or the configured score needs it.
    fn needs_mse(&self, with_mse: bool) -> bool {
        with_mse || self.score.variant.needs_decoder()
    }

    /// The scoring kernel for raw rows (scaling included), packed on first use.
    pub fn kernel(&self) -> &Scorer {
        self.kernel.0.get_or_init(|| self.packed(&self.weights))
    }

    fn check_width(&self, x: ArrayView2<f32>) -> Result<()> {
        if x.ncols() != self.input_dim() {
            return Err(CoreError::Shape {
                what: "rows to score".into(),
                expected: format!("{} feature columns", self.input_dim()),
                got: format!("{} columns", x.ncols()),
            });
        }
        Ok(())
    }

    /// Checks the width of raw rows and scales them as the network expects.
    pub(crate) fn scale(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.check_width(x)?;
        Ok(self.scaler.transform(x))
    }

    /// The configured score of `raw` (and of the other members' raw scores, for an
    /// ensemble; with the supervised term when the model has one, from the rows' `head`
    /// log-odds) and its flags at `threshold` (or the stored one).
    pub(crate) fn finish(
        &self,
        raw: RawScores,
        others: Vec<RawScores>,
        head: Option<Vec<f32>>,
        threshold: Option<f32>,
    ) -> Result<ScoredBatch> {
        let mut score = self.variant_score(self.score.variant, &raw, &others)?;
        match (&self.score.supervised, head) {
            (Some(term), Some(h)) if h.len() == score.len() => term.apply(&mut score, &h),
            (None, None) => {}
            _ => {
                return Err(CoreError::Internal(
                    "the supervised term's log-odds do not match the rows scored".into(),
                ));
            }
        }
        let t = threshold.unwrap_or(self.threshold.value);
        let is_anomaly = score.iter().map(|&s| s > t).collect();
        Ok(ScoredBatch {
            score,
            raw,
            is_anomaly,
        })
    }

    /// Score `variant` of rows whose raw scores are `raw` (first member) and `others` (the
    /// other members, in order): for a single model the variant itself, for an ensemble the
    /// mean of each member's variant standardised by its D_u statistics
    /// ([`crate::ensemble`]).
    pub(crate) fn variant_score(
        &self,
        variant: ScoreVariant,
        raw: &RawScores,
        others: &[RawScores],
    ) -> Result<Vec<f32>> {
        let missing = || {
            CoreError::Internal(format!(
                "score `{}` cannot be computed (missing calibration)",
                variant.name()
            ))
        };
        let mut score = raw.variant(variant, &self.score).ok_or_else(missing)?;
        let Some(e) = &self.ensemble else {
            return Ok(score);
        };
        if others.len() != e.members.len() {
            return Err(CoreError::Internal(format!(
                "{} member scores for {} members",
                others.len(),
                e.members.len()
            )));
        }
        let n = e.len() as f32;
        let first = stats_of(&e.first, variant).ok_or_else(missing)?;
        for s in &mut score {
            *s = first.z(*s) / n;
        }
        for (m, r) in e.members.iter().zip(others) {
            let st = stats_of(&m.stats, variant).ok_or_else(missing)?;
            let v = r
                .variant(variant, &m.score_config(&self.score))
                .ok_or_else(missing)?;
            for (s, x) in score.iter_mut().zip(v) {
                *s += st.z(x) / n;
            }
        }
        Ok(score)
    }

    /// Every variant's score for `x` (for evaluation; for an ensemble, each variant as the
    /// ensemble computes it).
    pub fn score_all_variants(&self, x: ArrayView2<f32>) -> Result<Vec<(ScoreVariant, Vec<f32>)>> {
        self.check_width(x)?;
        let raw = self.kernel().score(x, true);
        let others = self.member_raws(|k| k.score(x, true));
        Ok(ScoreVariant::ALL
            .into_iter()
            .filter_map(|v| self.variant_score(v, &raw, &others).ok().map(|s| (v, s)))
            .collect())
    }
}

/// Linear-interpolated quantile (numpy's default) of `values`; `q` in [0, 1].
pub fn quantile(values: &[f32], q: f64) -> Option<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = (pos - lo as f64) as f32;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantile_matches_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4], 0.9) = 3.7
        assert!((quantile(&[4.0, 1.0, 3.0, 2.0], 0.9).unwrap() - 3.7).abs() < 1e-6);
        assert_eq!(quantile(&[5.0], 0.99), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0, f32::NAN, 3.0], 1.0), Some(3.0));
    }
}
