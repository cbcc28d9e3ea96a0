//! A plainly supervised term beside the memory network's score: a logistic regression on the
//! model's scaled features, D_u as class 0 and D_l as class 1, added to `mmnet_score` where
//! it says "more anomalous than typical training traffic".
//!
//! Why (issue 19; docs/ACCURACY.md has the measurements): on fully labeled data a linear
//! model of "looks like the labeled anomalies" ranks them better than the network's log-odds
//! of addressing M_l alone (arrhythmia 0.832 -> 0.842, spambase 0.945 -> 0.953, UNSW-NB15
//! 0.919 -> 0.938 with the term), and because only its positive part is added, rows that are
//! unusual in a way the labels never showed keep what the reconstruction error and S_KL say
//! about them. It is what DevNet and DeepSAD get from their labels and MMNet's memory does
//! not: a direction in feature space, fitted to the labels directly.
//!
//! The fit is the textbook one, with nothing chosen per dataset: balanced class weights
//! (each class carries half the total weight, as scikit-learn's `class_weight="balanced"`),
//! an L2 penalty of 1/2 ||w||^2 against the summed weighted log-loss (its `C = 1`; the
//! intercept is not penalised), minimised to convergence with argmin's L-BFGS. The objective
//! is strictly convex, so the result does not depend on the optimiser or a seed.
//!
//! How it joins the score: both the network's score (the configured variant, averaged over an
//! ensemble's members) and the regression's log-odds are standardised by their median and
//! spread over D_u ([`RobustStats`]), and
//! `mmnet_score = z(network) + max(z(log-odds), 0)`.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::kernel::Prescale;
use crate::score::RobustStats;

/// How the regression is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticFit {
    /// Inverse penalty strength, as scikit-learn's `C`: the objective is
    /// `1/2 ||w||^2 + C * sum_i s_i logloss_i`. Default 1.
    pub c: f64,
    /// L-BFGS iterations at most. Default 1000.
    pub max_iters: u64,
    /// Stop when the gradient norm of the objective divided by the row count falls below
    /// this. Default 1e-6 (scikit-learn's lbfgs stops at a largest gradient entry of 1e-4 on
    /// the same scale).
    pub tol_grad: f64,
}

impl Default for LogisticFit {
    fn default() -> Self {
        LogisticFit {
            c: 1.0,
            max_iters: 1000,
            tol_grad: 1e-6,
        }
    }
}

/// A fitted logistic regression on scaled features: log-odds = `coef . x + intercept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticHead {
    /// One weight per feature, in the model's feature order, on the scaled features.
    pub coef: Vec<f32>,
    /// The unpenalised intercept.
    pub intercept: f32,
    /// L-BFGS iterations the fit took.
    pub iterations: u64,
    /// Whether the gradient tolerance was reached (otherwise the iteration cap stopped it).
    pub converged: bool,
    /// Wall-clock seconds the fit took (what the term adds to training).
    #[serde(default)]
    pub fit_seconds: f64,
}

/// The supervised term of a model's score: the regression and the two standardisations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedTerm {
    /// The regression.
    pub head: LogisticHead,
    /// Of the regression's log-odds over D_u.
    pub head_stats: RobustStats,
    /// Of the network's score (the configured variant) over D_u.
    pub base_stats: RobustStats,
}

impl SupervisedTerm {
    /// `z(network) + max(z(log-odds), 0)` in place of `base`, row by row.
    pub fn apply(&self, base: &mut [f32], log_odds: &[f32]) {
        for (b, &h) in base.iter_mut().zip(log_odds) {
            *b = self.base_stats.z(*b) + self.head_stats.z(h).max(0.0);
        }
    }
}

/// The weighted, penalised log-loss of a logistic regression over two classes of scaled
/// rows, divided by the row count (same minimiser, gradients of order 1 whatever the size).
/// The parameter vector is the coefficients followed by the intercept.
struct Objective<'a> {
    negatives: ArrayView2<'a, f32>,
    positives: ArrayView2<'a, f32>,
    /// Per-row weight of each class over the row count: 1/(2 n_class).
    weight: [f64; 2],
    /// Penalty on 1/2 ||w||^2 over the row count: 1 / (C n).
    penalty: f64,
}

/// Rows per parallel chunk of the objective; the partial sums are added in chunk order, so
/// the result is the same on any number of threads.
const CHUNK: usize = 2048;

/// ln(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn log_odds_of(p: &[f64], row: ndarray::ArrayView1<f32>) -> f64 {
    let d = p.len() - 1;
    let mut z = p[d];
    for (&x, &w) in row.iter().zip(&p[..d]) {
        z += x as f64 * w;
    }
    z
}

impl Objective<'_> {
    fn new<'a>(
        negatives: ArrayView2<'a, f32>,
        positives: ArrayView2<'a, f32>,
        c: f64,
    ) -> Objective<'a> {
        let n = (negatives.nrows() + positives.nrows()) as f64;
        Objective {
            negatives,
            positives,
            weight: [
                1.0 / (2.0 * negatives.nrows() as f64),
                1.0 / (2.0 * positives.nrows() as f64),
            ],
            penalty: 1.0 / (c * n),
        }
    }

    /// Sum over `rows` (all of class `y`) of `per_row(z, y)` times the row, accumulated
    /// into `grad` when given, and of `loss(z, y)`; chunked in parallel, summed in order.
    fn pass(&self, p: &[f64], rows: ArrayView2<f32>, y: f64, with_grad: bool) -> (f64, Vec<f64>) {
        let d = p.len() - 1;
        let parts: Vec<(f64, Vec<f64>)> = rows
            .axis_chunks_iter(Axis(0), CHUNK)
            .into_par_iter()
            .map(|chunk| {
                let mut loss = 0.0;
                let mut g = if with_grad {
                    vec![0.0; d + 1]
                } else {
                    Vec::new()
                };
                for row in chunk.rows() {
                    let z = log_odds_of(p, row);
                    loss += softplus(z) - y * z;
                    if with_grad {
                        let r = sigmoid(z) - y;
                        for (gj, &x) in g.iter_mut().zip(row) {
                            *gj += r * x as f64;
                        }
                        g[d] += r;
                    }
                }
                (loss, g)
            })
            .collect();
        let mut loss = 0.0;
        let mut grad = if with_grad {
            vec![0.0; d + 1]
        } else {
            Vec::new()
        };
        for (l, g) in parts {
            loss += l;
            for (a, b) in grad.iter_mut().zip(g) {
                *a += b;
            }
        }
        (loss, grad)
    }

    fn value_and_gradient(&self, p: &[f64], with_grad: bool) -> (f64, Vec<f64>) {
        let d = p.len() - 1;
        let (l0, g0) = self.pass(p, self.negatives, 0.0, with_grad);
        let (l1, g1) = self.pass(p, self.positives, 1.0, with_grad);
        let w2: f64 = p[..d].iter().map(|w| w * w).sum();
        let value = self.weight[0] * l0 + self.weight[1] * l1 + 0.5 * self.penalty * w2;
        if !with_grad {
            return (value, Vec::new());
        }
        let mut grad: Vec<f64> = g0
            .iter()
            .zip(&g1)
            .map(|(a, b)| self.weight[0] * a + self.weight[1] * b)
            .collect();
        for (g, w) in grad[..d].iter_mut().zip(&p[..d]) {
            *g += self.penalty * w;
        }
        (value, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.value_and_gradient(p, false).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, p: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.value_and_gradient(p, true).1)
    }
}

impl LogisticHead {
    /// Fits on scaled rows: `negatives` (D_u) as class 0, `positives` (D_l) as class 1.
    pub fn fit(
        negatives: ArrayView2<f32>,
        positives: ArrayView2<f32>,
        cfg: &LogisticFit,
    ) -> Result<LogisticHead> {
        let d = negatives.ncols();
        if positives.ncols() != d {
            return Err(CoreError::Shape {
                what: "labeled rows of the supervised term".into(),
                expected: format!("{d} columns"),
                got: format!("{} columns", positives.ncols()),
            });
        }
        if negatives.nrows() == 0 || positives.nrows() == 0 {
            return Err(CoreError::Data(
                "the supervised term needs unlabeled and labeled rows".into(),
            ));
        }
        if !(cfg.c > 0.0 && cfg.c.is_finite()) {
            return Err(CoreError::param(
                "supervised.c",
                format!("must be a positive number, got {}", cfg.c),
            ));
        }
        let start = std::time::Instant::now();
        let objective = Objective::new(negatives, positives, cfg.c);
        // Curvature pairs kept: scipy's (and so scikit-learn's) L-BFGS-B default.
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(cfg.tol_grad)
            .and_then(|s| s.with_tolerance_cost(0.0))
            .map_err(|e| CoreError::Internal(format!("L-BFGS settings: {e}")))?;
        let res = Executor::new(objective, solver)
            .configure(|state| state.param(vec![0.0; d + 1]).max_iters(cfg.max_iters))
            .run()
            .map_err(|e| CoreError::Internal(format!("fitting the supervised term: {e}")))?;
        let state = res.state();
        let p = state
            .get_best_param()
            .ok_or_else(|| CoreError::Internal("L-BFGS returned no parameters".into()))?;
        if p.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::Data(
                "the supervised term's fit diverged (non-finite coefficients)".into(),
            ));
        }
        let converged = matches!(
            state.get_termination_reason(),
            Some(argmin::core::TerminationReason::SolverConverged)
        );
        Ok(LogisticHead {
            coef: p[..d].iter().map(|&w| w as f32).collect(),
            intercept: p[d] as f32,
            iterations: state.get_iter(),
            converged,
            fit_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.coef.len()
    }

    /// Log-odds of rows already scaled.
    pub fn log_odds_scaled(&self, x: ArrayView2<f32>) -> Vec<f32> {
        x.rows()
            .into_iter()
            .map(|row| {
                let z: f64 = row
                    .iter()
                    .zip(&self.coef)
                    .map(|(&v, &w)| v as f64 * w as f64)
                    .sum();
                (z + self.intercept as f64) as f32
            })
            .collect()
    }

    /// Log-odds of raw rows, scaled on the fly by `prescale` (the model's scaling).
    pub fn log_odds_raw(&self, prescale: &Prescale, x: ArrayView2<f32>) -> Vec<f32> {
        x.rows()
            .into_iter()
            .map(|row| {
                let z: f64 = row
                    .iter()
                    .enumerate()
                    .zip(&self.coef)
                    .map(|((j, &v), &w)| prescale.value(j, v) as f64 * w as f64)
                    .sum();
                (z + self.intercept as f64) as f32
            })
            .collect()
    }

    /// Log-odds of raw rows given as one slice per feature (`cols[j][i]`), scaled on the fly.
    pub fn log_odds_columns(&self, prescale: &Prescale, cols: &[&[f32]]) -> Vec<f32> {
        let n = cols.first().map_or(0, |c| c.len());
        let mut z = vec![self.intercept as f64; n];
        for (j, (col, &w)) in cols.iter().zip(&self.coef).enumerate() {
            if w == 0.0 {
                continue;
            }
            for (zi, &v) in z.iter_mut().zip(col.iter()) {
                *zi += prescale.value(j, v) as f64 * w as f64;
            }
        }
        z.into_iter().map(|v| v as f32).collect()
    }

    /// Checks a head read from disk against the model's feature count.
    pub fn check(&self, features: usize) -> Result<()> {
        if self.coef.len() != features {
            return Err(CoreError::Shape {
                what: "supervised term coefficients".into(),
                expected: format!("{features} (one per feature)"),
                got: format!("{}", self.coef.len()),
            });
        }
        if self.coef.iter().any(|v| !v.is_finite()) || !self.intercept.is_finite() {
            return Err(CoreError::Data(
                "supervised term: a coefficient is not finite".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn two_classes(seed: u64) -> (Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let neg = Array2::from_shape_fn((300, 4), |_| rng.random_range(0.0..0.6f32));
        let pos = Array2::from_shape_fn((12, 4), |(_, j)| {
            if j == 1 {
                rng.random_range(0.5..1.0f32)
            } else {
                rng.random_range(0.0..0.6f32)
            }
        });
        (neg, pos)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (neg, pos) = two_classes(1);
        let obj = Objective::new(neg.view(), pos.view(), 0.7);
        let p = vec![0.3, -1.2, 0.8, 0.05, -0.4];
        let (_, g) = obj.value_and_gradient(&p, true);
        let h = 1e-6;
        for j in 0..p.len() {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[j] += h;
            b[j] -= h;
            let fd = (obj.value_and_gradient(&a, false).0 - obj.value_and_gradient(&b, false).0)
                / (2.0 * h);
            assert!(
                (fd - g[j]).abs() < 1e-7 * (1.0 + fd.abs()),
                "param {j}: analytic {} vs finite difference {fd}",
                g[j]
            );
        }
    }

    #[test]
    fn fit_reaches_the_stationary_point_and_finds_the_direction() {
        let (neg, pos) = two_classes(2);
        let head = LogisticHead::fit(neg.view(), pos.view(), &LogisticFit::default()).unwrap();
        assert!(head.converged, "{head:?}");
        // The labeled rows differ in feature 1 only: its weight dominates.
        let w1 = head.coef[1];
        assert!(
            head.coef
                .iter()
                .enumerate()
                .all(|(j, w)| j == 1 || w.abs() < w1),
            "{head:?}"
        );
        // At the optimum the full gradient vanishes (the tolerance is on its norm).
        let obj = Objective::new(neg.view(), pos.view(), 1.0);
        let mut p: Vec<f64> = head.coef.iter().map(|&w| w as f64).collect();
        p.push(head.intercept as f64);
        let (_, g) = obj.value_and_gradient(&p, true);
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm < 1e-4, "gradient norm {norm}");
        // Labeled rows get higher log-odds than unlabeled ones, on average by far.
        let mean = |v: Vec<f32>| v.iter().sum::<f32>() / v.len() as f32;
        assert!(
            mean(head.log_odds_scaled(pos.view())) > mean(head.log_odds_scaled(neg.view())) + 1.0
        );
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_coefficients() {
        let (neg, pos) = two_classes(3);
        let norm = |h: &LogisticHead| h.coef.iter().map(|w| w * w).sum::<f32>();
        let loose = LogisticHead::fit(neg.view(), pos.view(), &LogisticFit::default()).unwrap();
        let tight = LogisticHead::fit(
            neg.view(),
            pos.view(),
            &LogisticFit {
                c: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(norm(&tight) < norm(&loose), "{tight:?} vs {loose:?}");
    }

    #[test]
    fn raw_and_column_log_odds_match_the_scaled_ones() {
        let (neg, pos) = two_classes(4);
        let head = LogisticHead::fit(neg.view(), pos.view(), &LogisticFit::default()).unwrap();
        // Raw rows in other units; the scaler maps them back onto the fitted ones.
        let raw = neg.mapv(|v| v * 10.0 + 3.0);
        let scaler =
            crate::scaler::MinMaxScaler::fit(&[raw.view()], crate::scaler::Scaling::Auto).unwrap();
        let scaled = scaler.transform(raw.view());
        let pre = scaler.prescale();
        let want = head.log_odds_scaled(scaled.view());
        assert_eq!(head.log_odds_raw(&pre, raw.view()), want);
        let cols: Vec<Vec<f32>> = raw.columns().into_iter().map(|c| c.to_vec()).collect();
        let slices: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
        let got = head.log_odds_columns(&pre, &slices);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let (neg, pos) = two_classes(5);
        let none = Array2::<f32>::zeros((0, 4));
        let err = LogisticHead::fit(neg.view(), none.view(), &LogisticFit::default()).unwrap_err();
        assert!(err.to_string().contains("labeled rows"), "{err}");
        let narrow = Array2::<f32>::zeros((3, 2));
        assert!(LogisticHead::fit(neg.view(), narrow.view(), &LogisticFit::default()).is_err());
        let bad_c = LogisticFit {
            c: 0.0,
            ..Default::default()
        };
        assert!(LogisticHead::fit(neg.view(), pos.view(), &bad_c).is_err());
        let head = LogisticHead::fit(neg.view(), pos.view(), &LogisticFit::default()).unwrap();
        assert!(head.check(4).is_ok() && head.check(5).is_err());
        let mut nan = head.clone();
        nan.coef[0] = f32::NAN;
        assert!(nan.check(4).is_err());
    }

    #[test]
    fn the_term_adds_only_the_positive_part() {
        let term = SupervisedTerm {
            head: LogisticHead {
                coef: vec![],
                intercept: 0.0,
                iterations: 0,
                converged: true,
                fit_seconds: 0.0,
            },
            head_stats: RobustStats {
                median: 1.0,
                iqr: 2.0,
            },
            base_stats: RobustStats {
                median: 10.0,
                iqr: 5.0,
            },
        };
        let mut base = vec![10.0, 20.0, 10.0];
        term.apply(&mut base, &[5.0, -100.0, 1.0]);
        // z(base) = 0, 2, 0; z(log-odds) = 2, < 0, 0.
        assert_eq!(base, vec![2.0, 2.0, 0.0]);
    }
}
