//! Min-max scaling to [0, 1], fitted on training data (D_u and D_l together) and applied
//! unclipped to anything scored later (SPEC, data protocol). Constant columns map to 0.
//!
//! Optionally, strongly right-skewed features are log-compressed before the min-max step
//! ([`Scaling::Auto`], the default for new models). Why: telemetry counters, byte counts and
//! word frequencies have a few huge values; min-max maps them to [0, 1] by their maximum,
//! so almost every row lands within a hair of 0 and the network cannot tell typical rows
//! apart (spambase: reconstruction-error AUC-ROC 0.82 with plain min-max, 0.86 with
//! compression; docs/ACCURACY.md). Which features are compressed is decided from the
//! training rows alone (sample skewness > [`SKEW_LIMIT`]) and stored with the model.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Per-feature minimum and maximum of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMaxScaler {
    /// Column minima.
    pub min: Vec<f32>,
    /// Column maxima.
    pub max: Vec<f32>,
    /// Per-feature log compression applied before min-max (empty = none; `min`/`max` are
    /// then of the compressed values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_compress: Vec<Option<LogCompress>>,
}

/// How features are scaled before the network sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// Log-compress features whose training skewness exceeds [`SKEW_LIMIT`], then min-max.
    #[default]
    Auto,
    /// Plain min-max, the paper's protocol read literally.
    MinMax,
}

impl Scaling {
    /// Name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scaling::Auto => "auto",
            Scaling::MinMax => "minmax",
        }
    }

    /// Parses [`Scaling::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        [Scaling::Auto, Scaling::MinMax]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

/// Sample skewness above which [`Scaling::Auto`] compresses a feature. 1 is the usual
/// textbook line for "highly skewed"; fixed, never tuned per dataset.
pub const SKEW_LIMIT: f64 = 1.0;

/// x -> sign(d) ln(1 + |d|) with d = (x - origin) / scale: `origin` is the training minimum
/// and `scale` the training mean's distance from it, so typical values land around
/// ln 2 and the tail is compressed. Signed so values below the training minimum stay finite
/// and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogCompress {
    /// Training minimum of the raw feature.
    pub origin: f32,
    /// Training mean minus minimum (> 0).
    pub scale: f32,
}

impl LogCompress {
    #[inline]
    pub(crate) fn apply(&self, v: f32) -> f32 {
        let d = (v - self.origin) / self.scale;
        // Skewed columns sit mostly at their minimum (word counts, packet flags: 0; 77 % of
        // Spambase's values), where the result is d itself (+-0): no `ln_1p` call there.
        // Bit-identical, sign of zero included.
        if d == 0.0 {
            return d;
        }
        d.signum() * d.abs().ln_1p()
    }

    /// The inverse of [`LogCompress::apply`].
    fn invert(&self, t: f32) -> f32 {
        self.origin + self.scale * t.signum() * t.abs().exp_m1()
    }
}

/// Sample skewness of column `j` over all parts, or `None` for a constant column.
fn skewness(parts: &[ArrayView2<f32>], j: usize) -> Option<(f64, f64)> {
    let n: f64 = parts.iter().map(|p| p.nrows() as f64).sum();
    let col = || {
        parts
            .iter()
            .flat_map(move |p| p.column(j).into_iter().map(|&v| v as f64))
    };
    let mean = col().sum::<f64>() / n;
    let var = col().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if var <= 0.0 {
        return None;
    }
    let m3 = col().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
    Some((m3 / var.powf(1.5), mean))
}

impl MinMaxScaler {
    /// Fits on the rows of all `parts` (which must share the column count).
    pub fn fit(parts: &[ArrayView2<f32>], scaling: Scaling) -> Result<Self> {
        let d = parts
            .first()
            .map(|p| p.ncols())
            .ok_or_else(|| CoreError::Data("no data to fit the scaler on".into()))?;
        let mut min = vec![f32::INFINITY; d];
        let mut max = vec![f32::NEG_INFINITY; d];
        for part in parts {
            if part.ncols() != d {
                return Err(CoreError::Shape {
                    what: "scaler input".into(),
                    expected: format!("{d} columns"),
                    got: format!("{} columns", part.ncols()),
                });
            }
            for row in part.rows() {
                for ((lo, hi), &v) in min.iter_mut().zip(max.iter_mut()).zip(row) {
                    *lo = lo.min(v);
                    *hi = hi.max(v);
                }
            }
        }
        if min.iter().any(|v| v.is_infinite()) {
            return Err(CoreError::Data("no rows to fit the scaler on".into()));
        }
        let mut log_compress = vec![None; d];
        if scaling == Scaling::Auto {
            for (j, slot) in log_compress.iter_mut().enumerate() {
                let Some((skew, mean)) = skewness(parts, j) else {
                    continue;
                };
                let scale = (mean - min[j] as f64) as f32;
                if skew > SKEW_LIMIT && scale > 0.0 && scale.is_finite() {
                    let c = LogCompress {
                        origin: min[j],
                        scale,
                    };
                    min[j] = c.apply(min[j]);
                    max[j] = c.apply(max[j]);
                    *slot = Some(c);
                }
            }
        }
        if log_compress.iter().all(Option::is_none) {
            log_compress.clear();
        }
        Ok(MinMaxScaler {
            min,
            max,
            log_compress,
        })
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Scales `x` in place (row by row, as the scoring kernel does: [`Self::prescale`]).
    pub fn transform_inplace(&self, mut x: ArrayViewMut2<f32>) {
        let p = self.prescale();
        for mut row in x.axis_iter_mut(Axis(0)) {
            p.apply_row(row.iter_mut());
        }
    }

    /// The transform in the form applied row by row (also while the scoring kernel reads rows).
    pub fn prescale(&self) -> crate::kernel::Prescale {
        let (lo, scale) = self.offsets();
        crate::kernel::Prescale {
            // An empty list means no column is compressed (see `fit`).
            compress: if self.log_compress.is_empty() {
                vec![None; self.dim()]
            } else {
                self.log_compress.clone()
            },
            lo,
            scale,
        }
    }

    /// Returns a scaled copy of `x`.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        self.transform_inplace(out.view_mut());
        out
    }

    /// Maps a scaled value of feature `j` back to the input's units (inverse of min-max,
    /// then of the log compression). Used to show reconstructions to people.
    pub fn inverse_value(&self, j: usize, v: f32) -> f32 {
        let (lo, hi) = (self.min[j], self.max[j]);
        let t = if hi > lo { v * (hi - lo) + lo } else { lo };
        match self.log_compress.get(j).copied().flatten() {
            Some(c) => c.invert(t),
            None => t,
        }
    }

    /// Per-feature offset and multiplier: (x - min) * 1/(max - min), or 0 for constant columns.
    pub fn offsets(&self) -> (Vec<f32>, Vec<f32>) {
        let scale = self
            .min
            .iter()
            .zip(&self.max)
            .map(|(&lo, &hi)| if hi > lo { 1.0 / (hi - lo) } else { 0.0 })
            .collect();
        (self.min.clone(), scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fits_across_parts_and_maps_constant_columns_to_zero() {
        let a = array![[0.0f32, 5.0, 1.0], [2.0, 5.0, 3.0]];
        let b = array![[4.0f32, 5.0, 2.0]];
        let s = MinMaxScaler::fit(&[a.view(), b.view()], Scaling::MinMax).unwrap();
        assert!(s.log_compress.is_empty());
        assert_eq!(s.min, vec![0.0, 5.0, 1.0]);
        assert_eq!(s.max, vec![4.0, 5.0, 3.0]);
        let t = s.transform(array![[2.0f32, 5.0, 2.0], [8.0, 9.0, 0.0]].view());
        // Unclipped outside the training range; the constant column is always 0.
        assert_eq!(t, array![[0.5f32, 0.0, 0.5], [2.0, 0.0, -0.5]]);
    }

    #[test]
    fn log_compress_at_the_origin_is_the_same_bits() {
        let c = LogCompress {
            origin: 0.0,
            scale: 0.25,
        };
        for v in [0.0_f32, -0.0, 1e-30, -1e-30, 0.5, -3.0] {
            let d = (v - c.origin) / c.scale;
            let full = d.signum() * d.abs().ln_1p();
            assert_eq!(c.apply(v).to_bits(), full.to_bits(), "at {v}");
        }
    }

    #[test]
    fn auto_compresses_only_skewed_columns() {
        // Column 0: one huge value among small ones (skewed); column 1: symmetric.
        let mut a = Array2::<f32>::zeros((100, 2));
        for i in 0..100 {
            a[[i, 0]] = (i % 5) as f32;
            a[[i, 1]] = (i % 10) as f32;
        }
        a[[0, 0]] = 10_000.0;
        let s = MinMaxScaler::fit(&[a.view()], Scaling::Auto).unwrap();
        assert!(s.log_compress[0].is_some() && s.log_compress[1].is_none());
        let t = s.transform(a.view());
        // Still [0, 1] on the training rows, order kept, and typical rows are no longer
        // squashed against 0 by the outlier.
        assert!((t[[0, 0]] - 1.0).abs() < 1e-6);
        assert!(t.column(0).iter().all(|&v| (0.0..=1.0 + 1e-6).contains(&v)));
        assert!(t[[4, 0]] > t[[3, 0]] && t[[3, 0]] > t[[1, 0]]);
        // Plain min-max puts row 4 at 4 / 10000; compressed it is ~20 times further from 0.
        assert!(t[[4, 0]] > 10.0 * 4.0 / 10_000.0, "{}", t[[4, 0]]);
        // Scaling and its inverse round-trip, compressed or not.
        for (j, v) in [(0usize, 3.0f32), (0, 10_000.0), (1, 7.0)] {
            let mut row = ndarray::Array2::from_elem((1, 2), 0.0f32);
            row[[0, j]] = v;
            let t = s.transform(row.view());
            let back = s.inverse_value(j, t[[0, j]]);
            assert!(
                (back - v).abs() <= 1e-3 * v.abs().max(1.0),
                "{j}: {v} -> {back}"
            );
        }
        // Below the training minimum: finite, and below 0.
        let below = s.transform(ndarray::array![[-3.0f32, 0.0]].view());
        assert!(below[[0, 0]].is_finite() && below[[0, 0]] < 0.0);
    }

    #[test]
    fn rejects_empty_and_ragged_input() {
        assert!(MinMaxScaler::fit(&[], Scaling::Auto).is_err());
        let empty = Array2::<f32>::zeros((0, 3));
        assert!(MinMaxScaler::fit(&[empty.view()], Scaling::Auto).is_err());
        let a = Array2::<f32>::zeros((1, 3));
        let b = Array2::<f32>::zeros((1, 2));
        assert!(MinMaxScaler::fit(&[a.view(), b.view()], Scaling::Auto).is_err());
    }
}
