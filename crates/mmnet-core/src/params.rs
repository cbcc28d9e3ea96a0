//! Hyperparameters: unchecked builder in, validated values out (the linfa pattern).
//!
//! Every default is the value pinned in the project's SPEC (paper Section III plus the
//! details the paper leaves open); each field's doc says where it comes from.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Largest width of any layer, memory part or input a model may declare (2^24): far above
/// any real model, far below what would overflow a tensor's element count.
pub const MAX_DIM: usize = 1 << 24;

/// Architecture and loss hyperparameters: what a trained model needs to be rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// Width of the hidden layer of encoder and decoder. Default 256 (MCM `hidden_dim`).
    pub hidden_dim: usize,
    /// Memory item dimension C (= latent dimension). Default 64 (paper, Fig. 8).
    pub latent_dim: usize,
    /// K, memory items for normal prototypes (M_u). Default 32 (K + L = 64).
    pub memory_normal: usize,
    /// L, memory items for anomaly prototypes (M_l). Default 32.
    pub memory_anomaly: usize,
    /// Hard-shrinkage threshold gamma of eq. 5. Default 0.0025 (MemAE).
    pub shrink_threshold: f64,
    /// Epsilon of eq. 5. Default 1e-12 (MemAE).
    pub shrink_eps: f64,
    /// Guard in log(w + guard) for L_KL and S_KL. Default 1e-12 (see SPEC, failure 1).
    pub log_guard: f64,
    /// Margin a of eq. 12. Default 5.
    pub margin: f64,
    /// lambda_m, weight of L_mask. Default 1.
    pub lambda_mask: f64,
    /// lambda_KL, weight of L_KL. Default 1e-4.
    pub lambda_kl: f64,
    /// How training separates M_u from M_l. Default `soft` (the paper's method); `hard`
    /// and `none` exist for the ablation of the paper's Table III.
    #[serde(default)]
    pub mask: MaskStrategy,
}

/// How training keeps unlabeled rows on M_u and labeled anomalies on M_l (paper Sec. IV-D-1).
/// Scoring always addresses all K + L items; only training differs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStrategy {
    /// Every row addresses all items and L_mask (weight `lambda_mask`) pulls its attention
    /// onto its own part: the paper's soft masking.
    #[default]
    Soft,
    /// Unlabeled rows address only M_u and labeled rows only M_l (the other part's logits
    /// are -inf in training); no L_mask.
    Hard,
    /// No masking and no L_mask: a plain memory autoencoder (MemAE-like) with the margin
    /// reconstruction loss.
    None,
}

impl MaskStrategy {
    /// Every strategy.
    pub const ALL: [MaskStrategy; 3] = [MaskStrategy::Soft, MaskStrategy::Hard, MaskStrategy::None];

    /// Parses [`MaskStrategy::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            MaskStrategy::Soft => "soft",
            MaskStrategy::Hard => "hard",
            MaskStrategy::None => "none",
        }
    }

    /// Weight L_mask actually gets under this strategy.
    pub fn effective_lambda_mask(self, lambda_mask: f64) -> f64 {
        match self {
            MaskStrategy::Soft => lambda_mask,
            MaskStrategy::Hard | MaskStrategy::None => 0.0,
        }
    }
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            hidden_dim: 256,
            latent_dim: 64,
            memory_normal: 32,
            memory_anomaly: 32,
            shrink_threshold: 0.0025,
            shrink_eps: 1e-12,
            log_guard: 1e-12,
            margin: 5.0,
            lambda_mask: 1.0,
            lambda_kl: 1e-4,
            mask: MaskStrategy::Soft,
        }
    }
}

impl ModelParams {
    /// Sets K + L, split in halves (paper Sec. IV-A-3: K = L). `size` must be even.
    pub fn with_memory_size(mut self, size: usize) -> Self {
        self.memory_normal = size / 2;
        self.memory_anomaly = size - size / 2;
        self
    }

    /// The loss of eq. 11 from its terms, with L_mask weighted as this masking strategy
    /// weights it (one formula for the batch loss and the epoch means).
    pub fn total_loss(&self, rec: f64, mask: f64, kl: f64) -> f64 {
        rec + self.mask.effective_lambda_mask(self.lambda_mask) * mask + self.lambda_kl * kl
    }

    /// Total number of memory items K + L.
    pub fn memory_size(&self) -> usize {
        // Both are at most MAX_DIM once checked; saturating keeps an unchecked value from
        // overflowing on the way to its error.
        self.memory_normal.saturating_add(self.memory_anomaly)
    }

    /// Checks every rule; returns the first violation.
    pub fn check(&self) -> Result<()> {
        // Bounds before anything multiplies or allocates with these (a model file is
        // untrusted input: a manifest claiming 10^12 memory items is an error, not an
        // allocation or an overflow).
        for (name, v) in [
            ("hidden_dim", self.hidden_dim),
            ("latent_dim", self.latent_dim),
            ("memory_normal", self.memory_normal),
            ("memory_anomaly", self.memory_anomaly),
        ] {
            if v > MAX_DIM {
                return Err(CoreError::param(
                    name,
                    format!("{v} exceeds the supported maximum {MAX_DIM}"),
                ));
            }
        }
        if self.hidden_dim == 0 {
            return Err(CoreError::param("hidden_dim", "must be at least 1"));
        }
        if self.latent_dim == 0 {
            return Err(CoreError::param("latent_dim", "must be at least 1"));
        }
        if self.memory_normal == 0 || self.memory_anomaly == 0 {
            return Err(CoreError::param(
                "memory_size",
                format!(
                    "needs at least one normal and one anomaly item, got K = {}, L = {}",
                    self.memory_normal, self.memory_anomaly
                ),
            ));
        }
        // Shrinkage must leave at least one weight alive: the largest softmax weight is at
        // least 1/(K+L), so gamma must stay below that.
        let m = self.memory_size() as f64;
        if !(self.shrink_threshold >= 0.0 && self.shrink_threshold < 1.0 / m) {
            return Err(CoreError::param(
                "shrink_threshold",
                format!(
                    "must be in [0, 1/(K+L)) = [0, {:.5}), got {}",
                    1.0 / m,
                    self.shrink_threshold
                ),
            ));
        }
        for (name, v) in [
            ("shrink_eps", self.shrink_eps),
            ("log_guard", self.log_guard),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(CoreError::param(name, format!("must be > 0, got {v}")));
            }
        }
        for (name, v) in [
            ("margin", self.margin),
            ("lambda_mask", self.lambda_mask),
            ("lambda_kl", self.lambda_kl),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(CoreError::param(name, format!("must be >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// Optimisation hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// Epochs (one shuffled pass over D_u each). Default 200 (MCM).
    pub epochs: usize,
    /// Unlabeled rows per mini-batch; every batch adds as many labeled rows, drawn with
    /// replacement from D_l, as it has unlabeled ones (50/50 batches, SPEC failure 2).
    /// Default 512.
    pub batch_size: usize,
    /// Adam learning rate. Default 1e-3 (MCM's 0.05 was unstable).
    pub learning_rate: f64,
    /// Learning-rate decay factor per epoch. Default 0.98 (MCM `sche_gamma`).
    pub lr_decay: f64,
    /// Adam L2 weight decay (added to the gradient, as torch.optim.Adam). Default 1e-5.
    pub weight_decay: f64,
    /// Adam beta1. Default 0.9.
    pub beta1: f64,
    /// Adam beta2. Default 0.999.
    pub beta2: f64,
    /// Adam epsilon. Default 1e-8.
    pub adam_eps: f64,
    /// Seed for initialisation, shuffling and labeled draws. Default 0.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            epochs: 200,
            batch_size: 512,
            learning_rate: 1e-3,
            lr_decay: 0.98,
            weight_decay: 1e-5,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            seed: 0,
        }
    }
}

impl TrainParams {
    /// Checks every rule; returns the first violation.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(CoreError::param("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(CoreError::param("batch_size", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(CoreError::param(
                "learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            ));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(CoreError::param(
                "lr_decay",
                format!("must be in (0, 1], got {}", self.lr_decay),
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(CoreError::param(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            ));
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(CoreError::param(
                    name,
                    format!("must be in [0, 1), got {v}"),
                ));
            }
        }
        if self.adam_eps.is_nan() || self.adam_eps <= 0.0 {
            return Err(CoreError::param(
                "adam_eps",
                format!("must be > 0, got {}", self.adam_eps),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ModelParams::default().check().unwrap();
        TrainParams::default().check().unwrap();
    }

    #[test]
    fn memory_size_splits_in_halves() {
        let p = ModelParams::default().with_memory_size(128);
        assert_eq!((p.memory_normal, p.memory_anomaly), (64, 64));
    }

    #[test]
    fn each_model_rule_rejects() {
        let bad = [
            ModelParams {
                hidden_dim: 0,
                ..Default::default()
            },
            ModelParams {
                latent_dim: 0,
                ..Default::default()
            },
            ModelParams {
                memory_anomaly: 0,
                ..Default::default()
            },
            ModelParams {
                shrink_threshold: 0.5,
                ..Default::default()
            },
            ModelParams {
                shrink_eps: 0.0,
                ..Default::default()
            },
            ModelParams {
                log_guard: -1.0,
                ..Default::default()
            },
            ModelParams {
                margin: f64::NAN,
                ..Default::default()
            },
            ModelParams {
                lambda_mask: -1.0,
                ..Default::default()
            },
            ModelParams {
                lambda_kl: f64::INFINITY,
                ..Default::default()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.check(), Err(CoreError::InvalidParam { .. })),
                "{p:?}"
            );
        }
    }

    #[test]
    fn each_train_rule_rejects() {
        let bad = [
            TrainParams {
                epochs: 0,
                ..Default::default()
            },
            TrainParams {
                batch_size: 0,
                ..Default::default()
            },
            TrainParams {
                learning_rate: 0.0,
                ..Default::default()
            },
            TrainParams {
                lr_decay: 1.5,
                ..Default::default()
            },
            TrainParams {
                weight_decay: -1.0,
                ..Default::default()
            },
            TrainParams {
                beta1: 1.0,
                ..Default::default()
            },
            TrainParams {
                beta2: -0.1,
                ..Default::default()
            },
            TrainParams {
                adam_eps: 0.0,
                ..Default::default()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.check(), Err(CoreError::InvalidParam { .. })),
                "{p:?}"
            );
        }
    }
}
