//! Min-max scaling to [0, 1], fitted on training data (D_u and D_l together) and applied
//! unclipped to anything scored later (SPEC, data protocol). Constant columns map to 0.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
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
}

impl MinMaxScaler {
    /// Fits on the rows of all `parts` (which must share the column count).
    pub fn fit(parts: &[ArrayView2<f32>]) -> Result<Self> {
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
        Ok(MinMaxScaler { min, max })
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Scales `x` in place.
    pub fn transform_inplace(&self, mut x: ArrayViewMut2<f32>) {
        let (lo, scale) = self.offsets();
        for mut row in x.axis_iter_mut(Axis(0)) {
            Zip::from(&mut row)
                .and(&lo[..])
                .and(&scale[..])
                .for_each(|v, &l, &s| *v = (*v - l) * s);
        }
    }

    /// Returns a scaled copy of `x`.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        self.transform_inplace(out.view_mut());
        out
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
        let s = MinMaxScaler::fit(&[a.view(), b.view()]).unwrap();
        assert_eq!(s.min, vec![0.0, 5.0, 1.0]);
        assert_eq!(s.max, vec![4.0, 5.0, 3.0]);
        let t = s.transform(array![[2.0f32, 5.0, 2.0], [8.0, 9.0, 0.0]].view());
        // Unclipped outside the training range; the constant column is always 0.
        assert_eq!(t, array![[0.5f32, 0.0, 0.5], [2.0, 0.0, -0.5]]);
    }

    #[test]
    fn rejects_empty_and_ragged_input() {
        assert!(MinMaxScaler::fit(&[]).is_err());
        let empty = Array2::<f32>::zeros((0, 3));
        assert!(MinMaxScaler::fit(&[empty.view()]).is_err());
        let a = Array2::<f32>::zeros((1, 3));
        let b = Array2::<f32>::zeros((1, 2));
        assert!(MinMaxScaler::fit(&[a.view(), b.view()]).is_err());
    }
}
