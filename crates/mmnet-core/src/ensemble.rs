//! Ensembles over seeds: several models trained on the same data from different
//! initialisations, their scores averaged.
//!
//! Why: one MMNet's test AUC moves a lot from seed to seed where the data is small (arrhythmia,
//! 360 training rows: AUC-ROC 0.825 +- 0.065 over ten runs), and much of that is the
//! initialisation, not the split: the same split trained from five seeds gives five different
//! rankings. Averaging standardised scores of models that err differently is the oldest cure
//! for that variance (deep ensembles), it needs no label and no validation, and it cannot
//! make a score much worse than its members' mean. It costs a training run per member, so the
//! default (`auto`) spends it where it pays: many members for small data, where variance is
//! large and training takes seconds; one for large data, where a single run is already stable
//! and costs minutes (docs/ACCURACY.md has the measurements).
//!
//! How members combine: every member computes the configured score with its own calibration
//! (each member's raw scores live on their own scale), standardises it by the median and
//! spread of that score over the unlabeled training rows D_u ([`RobustStats`]), and the
//! ensemble's score is the mean of those. The threshold is then a quantile of the ensemble's
//! score over D_u, as for a single model. A model with one member is scored exactly as before
//! (no standardisation), so single models and their thresholds are unchanged.
//!
//! The raw outputs (S_sum, S_KL, the reconstruction error, explanations) are the first
//! member's: they describe one network, and an average of attention weights over networks
//! whose memories are unrelated would describe none.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::model::KernelCache;
use crate::network::Weights;
use crate::score::{Calibration, RobustStats, ScoreVariant};

/// Most members an ensemble may have (a bound for files read from disk, too).
pub const MAX_MEMBERS: usize = 16;

/// `auto`: members such that members x D_u rows stays within this budget...
pub const AUTO_ROW_BUDGET: usize = 20_000;

/// ...and at most this many.
pub const AUTO_MAX_MEMBERS: usize = 5;

/// How many models to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Members {
    /// From the size of D_u ([`Members::resolve`]). The default.
    #[default]
    Auto,
    /// Exactly this many (1 = a single model).
    Fixed(usize),
}

impl Members {
    /// The number of members for a D_u of `unlabeled_rows` rows. `auto`: as many as fit
    /// [`AUTO_ROW_BUDGET`] rows of D_u in total, between 1 and [`AUTO_MAX_MEMBERS`]: 5 members
    /// up to 4,000 rows, 2 up to 10,000, one above. A cost rule, not a fitted one: an
    /// ensemble never trains on more rows than one model on 20,000 rows does.
    pub fn resolve(self, unlabeled_rows: usize) -> usize {
        match self {
            Members::Fixed(n) => n,
            Members::Auto => (AUTO_ROW_BUDGET / unlabeled_rows.max(1)).clamp(1, AUTO_MAX_MEMBERS),
        }
    }

    /// Checks a fixed count.
    pub fn check(self) -> Result<()> {
        match self {
            Members::Fixed(n) if n == 0 || n > MAX_MEMBERS => Err(CoreError::param(
                "ensemble",
                format!("must be between 1 and {MAX_MEMBERS} members, or auto; got {n}"),
            )),
            _ => Ok(()),
        }
    }

    /// Parses `auto` or a count.
    pub fn parse(s: &str) -> Result<Members> {
        let m = match s {
            "auto" => Members::Auto,
            n => Members::Fixed(n.parse().map_err(|_| {
                CoreError::param(
                    "ensemble",
                    format!("expected `auto` or a number of members, got `{s}`"),
                )
            })?),
        };
        m.check()?;
        Ok(m)
    }
}

/// The seed of member `k` (0 = the first member, trained with the run's own seed): far
/// apart, so no two members of any two runs share an initialisation by accident.
pub fn member_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// One score's location and spread over D_u, for one member.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantStats {
    /// The score.
    pub variant: ScoreVariant,
    /// Its median and spread over D_u.
    pub stats: RobustStats,
}

/// What a member's score is standardised with: every score variant it can compute (so
/// reports can show each variant as the ensemble computes it, not only `mmnet_score`).
pub type MemberStats = Vec<VariantStats>;

/// The stats of `variant` among `stats`.
pub fn stats_of(stats: &[VariantStats], variant: ScoreVariant) -> Option<RobustStats> {
    stats.iter().find(|s| s.variant == variant).map(|s| s.stats)
}

/// A member after the first: its own weights and calibration (same features, scaling and
/// architecture as the model it belongs to).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its training seed.
    pub seed: u64,
    /// Its weights.
    pub weights: Weights<f32>,
    /// Its calibration of the raw scores (D_u statistics).
    pub calibration: Calibration,
    /// Its standardisation.
    pub stats: MemberStats,
    /// Its packed scoring kernel, built on first use.
    pub(crate) kernel: KernelCache,
}

impl Member {
    /// The score configuration of this member: the model's score and lambda with this
    /// member's calibration (the selection report and the supervised term stay with the
    /// model: the term is added once to the averaged score, and neither is cloned per batch).
    pub fn score_config(&self, model: &crate::score::ScoreConfig) -> crate::score::ScoreConfig {
        crate::score::ScoreConfig {
            variant: model.variant,
            lambda: model.lambda,
            calibration: Some(self.calibration),
            selection: None,
            supervised: None,
        }
    }
}

/// The members of a model beyond its own weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// Standardisation of the first member (the model's own weights).
    pub first: MemberStats,
    /// The other members.
    pub members: Vec<Member>,
}

impl Ensemble {
    /// Number of members, the first included.
    pub fn len(&self) -> usize {
        1 + self.members.len()
    }

    /// Never empty: the first member always exists.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How the manifest records an ensemble (the weights of members 2.. are in the weights file,
/// named `member{k}.{tensor}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleInfo {
    /// Standardisation of the first member.
    pub first: MemberStats,
    /// Members 2.., in order.
    pub members: Vec<MemberInfo>,
}

/// One member after the first, in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInfo {
    /// Training seed.
    pub seed: u64,
    /// Calibration of its raw scores.
    pub calibration: Calibration,
    /// Standardisation of its scores.
    pub stats: MemberStats,
}

/// The safetensors name of tensor `name` of member `k`: member 0 keeps the plain names, so
/// a single model's file is what it always was; member k >= 1 is `member{k}.{name}`.
pub fn tensor_name(k: usize, name: &str) -> String {
    if k == 0 {
        name.to_string()
    } else {
        format!("member{k}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_gives_small_data_more_members() {
        assert_eq!(Members::Auto.resolve(360), 5);
        assert_eq!(Members::Auto.resolve(4_000), 5);
        assert_eq!(Members::Auto.resolve(5_000), 4);
        assert_eq!(Members::Auto.resolve(9_000), 2);
        assert_eq!(Members::Auto.resolve(10_001), 1);
        assert_eq!(Members::Auto.resolve(500_000), 1);
        assert_eq!(Members::Auto.resolve(0), 5);
        assert_eq!(Members::Fixed(3).resolve(500_000), 3);
    }

    #[test]
    fn parse_and_bounds() {
        assert_eq!(Members::parse("auto").unwrap(), Members::Auto);
        assert_eq!(Members::parse("4").unwrap(), Members::Fixed(4));
        for bad in ["0", "17", "x", "-1"] {
            let e = Members::parse(bad).unwrap_err().to_string();
            assert!(e.contains("ensemble"), "{bad}: {e}");
        }
    }

    #[test]
    fn member_seeds_differ() {
        let s: std::collections::HashSet<u64> = (0..4)
            .flat_map(|run| (0..MAX_MEMBERS).map(move |k| member_seed(run, k)))
            .collect();
        assert_eq!(s.len(), 4 * MAX_MEMBERS);
        assert_eq!(member_seed(7, 0), 7);
    }
}
