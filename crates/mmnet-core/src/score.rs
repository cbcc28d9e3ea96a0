//! Anomaly scores from attention weights (paper Sec. III-G) and reconstruction error.
//!
//! Every *variant* is oriented so that higher = more anomalous, which is what AUC and the
//! threshold expect:
//! - `paper`: S = -(S_sum + lambda S_KL) (eq. 19);
//! - `s_sum`: -S_sum (S_sum = attention on the normal memory M_u, eq. 17);
//! - `s_kl`: -S_KL (S_KL = KL(u || w), eq. 18; low for unknown anomalies);
//! - `mse`: mean squared reconstruction error (needs the decoder).
//!
//! The raw S_sum and S_KL are reported as they are defined in the paper.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::network::{Weights, attention, forward};
use crate::params::ModelParams;
use crate::real::Real;

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
}

impl ScoreVariant {
    /// Every variant, in report order.
    pub const ALL: [ScoreVariant; 4] = [
        ScoreVariant::Paper,
        ScoreVariant::SSum,
        ScoreVariant::SKl,
        ScoreVariant::Mse,
    ];

    /// The name used in the CLI, the manifest and reports.
    pub fn name(self) -> &'static str {
        match self {
            ScoreVariant::Paper => "paper",
            ScoreVariant::SSum => "s_sum",
            ScoreVariant::SKl => "s_kl",
            ScoreVariant::Mse => "mse",
        }
    }

    /// Parses a name produced by [`ScoreVariant::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }

    /// Whether computing this variant needs the decoder.
    pub fn needs_decoder(self) -> bool {
        matches!(self, ScoreVariant::Mse)
    }
}

/// The configured score of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Variant reported as `mmnet_score`. Default `paper`.
    pub variant: ScoreVariant,
    /// lambda of eq. 19. Default 0.1.
    pub lambda: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            variant: ScoreVariant::Paper,
            lambda: 0.1,
        }
    }
}

/// Raw per-row quantities every score variant is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawScores {
    /// S_sum: total pre-shrink attention on M_u, in [0, 1].
    pub s_sum: Vec<f32>,
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

    /// The anomaly score of `variant` (higher = more anomalous), or `None` for `mse` when
    /// the reconstruction was not computed.
    pub fn variant(&self, variant: ScoreVariant, lambda: f64) -> Option<Vec<f32>> {
        let l = lambda as f32;
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
        })
    }

    fn append(&mut self, other: RawScores) {
        self.s_sum.extend(other.s_sum);
        self.s_kl.extend(other.s_kl);
        match (&mut self.mse, other.mse) {
            (Some(a), Some(b)) => a.extend(b),
            (None, b) if self.s_sum.len() == b.as_ref().map_or(0, |v| v.len()) => self.mse = b,
            _ => {}
        }
    }
}

/// S_sum and S_KL of each row of the attention matrix `w` (`B x (K+L)`).
pub fn attention_scores<F: Real>(w: ArrayView2<F>, k: usize, guard: f64) -> (Vec<f32>, Vec<f32>) {
    let m = w.ncols();
    let g = F::c(guard);
    let log_m = F::c((m as f64).ln());
    let inv_m = F::c(1.0 / m as f64);
    let mut s_sum = Vec::with_capacity(w.nrows());
    let mut s_kl = Vec::with_capacity(w.nrows());
    for row in w.axis_iter(Axis(0)) {
        let s: F = row.iter().take(k).copied().sum();
        let logs: F = row.iter().map(|&v| (v + g).ln()).sum();
        s_sum.push(s.to_f32().unwrap_or(f32::NAN));
        s_kl.push((-(logs * inv_m) - log_m).to_f32().unwrap_or(f32::NAN));
    }
    (s_sum, s_kl)
}

/// Rows per parallel chunk when scoring large batches. Smaller batches run on the calling
/// thread: for streaming micro-batches latency matters more than the second core.
const PAR_CHUNK: usize = 1024;

/// Scores rows that are already scaled. Computes the decoder only when `with_mse`.
pub fn score_scaled(
    w: &Weights<f32>,
    p: &ModelParams,
    x: ArrayView2<f32>,
    with_mse: bool,
) -> RawScores {
    use rayon::prelude::*;
    if x.nrows() <= PAR_CHUNK {
        return score_chunk(w, p, x, with_mse);
    }
    let parts: Vec<RawScores> = x
        .axis_chunks_iter(Axis(0), PAR_CHUNK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|c| score_chunk(w, p, c, with_mse))
        .collect();
    let mut out = RawScores {
        mse: with_mse.then(Vec::new),
        ..Default::default()
    };
    for part in parts {
        out.append(part);
    }
    out
}

fn score_chunk(w: &Weights<f32>, p: &ModelParams, x: ArrayView2<f32>, with_mse: bool) -> RawScores {
    if with_mse {
        let fw = forward(w, x, p);
        let (s_sum, s_kl) = attention_scores(fw.w.view(), p.memory_normal, p.log_guard);
        let d = x.ncols().max(1) as f32;
        let mse = fw.err.iter().map(|&e| e * e / d).collect();
        RawScores {
            s_sum,
            s_kl,
            mse: Some(mse),
        }
    } else {
        let (_, _, att): (Array2<f32>, Array2<f32>, Array2<f32>) = attention(w, x);
        let (s_sum, s_kl) = attention_scores(att.view(), p.memory_normal, p.log_guard);
        RawScores {
            s_sum,
            s_kl,
            mse: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn uniform_attention_has_zero_kl_and_half_sum() {
        let w = Array2::<f64>::from_elem((2, 4), 0.25);
        let (s, k) = attention_scores(w.view(), 2, 1e-12);
        assert!((s[0] - 0.5).abs() < 1e-6);
        assert!(k[0].abs() < 1e-5, "{}", k[0]);
    }

    #[test]
    fn peaky_attention_has_large_kl() {
        let w = array![[1.0f64, 0.0, 0.0, 0.0]];
        let (s, k) = attention_scores(w.view(), 2, 1e-12);
        assert_eq!(s[0], 1.0);
        // -(1/4)(log(1) + 3 log(1e-12)) - log 4 = 0.75 * 27.631 - 1.386
        assert!((k[0] as f64 - (0.75 * 27.631021 - 4f64.ln())).abs() < 1e-3);
    }

    #[test]
    fn variants_are_oriented_higher_is_anomalous() {
        let raw = RawScores {
            s_sum: vec![0.9, 0.1],
            s_kl: vec![2.0, 1.0],
            mse: None,
        };
        assert_eq!(raw.variant(ScoreVariant::SSum, 0.1), Some(vec![-0.9, -0.1]));
        assert_eq!(raw.variant(ScoreVariant::SKl, 0.1), Some(vec![-2.0, -1.0]));
        let p = raw.variant(ScoreVariant::Paper, 0.1).unwrap();
        assert!((p[0] + 1.1).abs() < 1e-6 && (p[1] + 0.2).abs() < 1e-6);
        assert_eq!(raw.variant(ScoreVariant::Mse, 0.1), None);
    }

    #[test]
    fn variant_names_round_trip() {
        for v in ScoreVariant::ALL {
            assert_eq!(ScoreVariant::from_name(v.name()), Some(v));
        }
        assert_eq!(ScoreVariant::from_name("nope"), None);
    }
}
