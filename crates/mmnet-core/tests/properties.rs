//! Property tests of the building blocks.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use mmnet_core::metrics::{auc_roc, average_precision};
use mmnet_core::shrink::shrink_forward;
use mmnet_core::softmax::softmax_inplace;
use ndarray::Array2;
use proptest::prelude::*;

proptest! {
    /// Reversing the ranking mirrors the AUC, ties included: AUC(s) + AUC(-s) = 1.
    #[test]
    fn auc_of_negated_scores_mirrors(v in prop::collection::vec((0u8..5, any::<bool>()), 2..60)) {
        let s: Vec<f32> = v.iter().map(|(x, _)| *x as f32).collect();
        let l: Vec<bool> = v.iter().map(|(_, b)| *b).collect();
        let neg: Vec<f32> = s.iter().map(|x| -x).collect();
        if let (Some(a), Some(b)) = (auc_roc(&s, &l), auc_roc(&neg, &l)) {
            prop_assert!((a + b - 1.0).abs() < 1e-12);
        }
        if let Some(ap) = average_precision(&s, &l) {
            let prevalence = l.iter().filter(|&&b| b).count() as f64 / l.len() as f64;
            prop_assert!(ap > 0.0 && ap <= 1.0 + 1e-12, "AP {ap} (prevalence {prevalence})");
        }
    }

    /// Softmax rows are distributions, and shrinkage + renormalisation keeps them so while
    /// zeroing exactly the weights at or below the threshold.
    #[test]
    fn softmax_and_shrink_give_distributions(
        logits in prop::collection::vec(-30.0f64..30.0, 16),
        g in 0.0f64..0.0625,
    ) {
        let mut w = Array2::from_shape_vec((2, 8), logits).unwrap();
        softmax_inplace(&mut w);
        for row in w.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-9);
            prop_assert!(row.iter().all(|&v| v >= 0.0));
        }
        let s = shrink_forward(w.view(), g, 1e-12);
        for (row, orig) in s.w_hat.rows().into_iter().zip(w.rows()) {
            prop_assert!((row.sum() - 1.0).abs() < 1e-9);
            for (&a, &b) in row.iter().zip(orig.iter()) {
                prop_assert_eq!(a == 0.0, b <= g);
            }
        }
    }
}
