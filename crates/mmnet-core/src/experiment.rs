//! The paper's experiment end to end: for each run, split (protocol.rs), train on D_u and
//! D_l, score the test set and compute AUC-ROC and AUC-PR of every score variant.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::metrics::{auc_roc, average_precision};
use crate::protocol::{KnownType, ProtocolConfig, split};
use crate::score::ScoreVariant;
use crate::select::SelectionReport;
use crate::train::{FitConfig, TrainData, TrainObserver, fit};

/// AUC-ROC and AUC-PR of one score variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantMetrics {
    /// Score variant name.
    pub variant: String,
    /// Area under the ROC curve.
    pub auc_roc: f64,
    /// Average precision.
    pub auc_pr: f64,
}

/// One run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Run index, 0-based.
    pub run: usize,
    /// Seed used for the split and for training.
    pub seed: u64,
    /// Rows in D_u, D_l and test.
    pub sizes: [usize; 3],
    /// Anomalies in the test set.
    pub test_anomalies: usize,
    /// Training wall time.
    pub train_seconds: f64,
    /// Networks averaged into the model's score (1 = a single network; see
    /// [`crate::ensemble`]). Absent in reports from before ensembles: 1.
    #[serde(default = "one")]
    pub members: usize,
    /// Of `train_seconds`, the time spent fitting the supervised term (absent without one,
    /// and in reports from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervised_seconds: Option<f64>,
    /// Metrics of every variant, then `selected` (the network's configured variant: the one
    /// chosen on the validation split when `fit` selects it) and `default` (the model's own
    /// score: `selected` with the supervised term when the model has one).
    pub metrics: Vec<VariantMetrics>,
    /// The validation split's measurements and choice, when the score was selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionReport>,
    /// With anomaly types: every variant on the test normals against each type's test
    /// anomalies alone, because an average over types hides the type that is missed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_type: Vec<TypeMetrics>,
    /// The default score with the other scoring precision than the model's (bf16 for an
    /// f32 model), on the same test rows: what switching precision costs in ranking.
    /// Absent in reports from before bf16 scoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_precision: Option<PrecisionMetrics>,
}

/// The default score's metrics at one scoring precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionMetrics {
    /// `f32` or `bf16`.
    pub precision: crate::kernel::Precision,
    /// AUC-ROC.
    pub auc_roc: f64,
    /// Average precision.
    pub auc_pr: f64,
}

fn one() -> usize {
    1
}

/// Metrics of the test normals against the test anomalies of one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeMetrics {
    /// The anomaly type.
    pub anomaly_type: i64,
    /// Its anomalies in the test set.
    pub anomalies: usize,
    /// Every variant, then `default`, as in [`RunResult::metrics`].
    pub metrics: Vec<VariantMetrics>,
}

/// Summary of one anomaly type over all runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeSummary {
    /// The anomaly type.
    pub anomaly_type: i64,
    /// Test anomalies of the type, summed over runs.
    pub anomalies: usize,
    /// Per-variant mean and std over the runs whose test set held the type.
    pub variants: Vec<VariantSummary>,
}

/// Mean and standard deviation (population, as numpy's default) of a metric over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Mean and population standard deviation of `v`.
    pub fn of(v: &[f64]) -> MeanStd {
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Summary of a variant over all runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    /// Score variant name.
    pub variant: String,
    /// AUC-ROC over runs.
    pub auc_roc: MeanStd,
    /// AUC-PR over runs.
    pub auc_pr: MeanStd,
}

/// All runs and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// Per-run results.
    pub runs: Vec<RunResult>,
    /// Per-variant mean and std.
    pub summary: Vec<VariantSummary>,
    /// Per anomaly type of the test sets (with anomaly types only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_type: Vec<TypeSummary>,
}

/// One experiment setting as a document: the protocol's parameters and its report. What
/// `mmnet experiment --json` writes per setting and the Python `mmnet.experiment` returns,
/// so a report reads the same whichever surface produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentDoc<'a> {
    /// The table the rows came from (a path, or a description of in-memory data).
    pub data: String,
    /// Runs.
    pub runs: usize,
    /// Seed of run 0.
    pub seed: u64,
    /// Labeled anomalies in D_l.
    pub labeled: usize,
    /// Share of anomalies in D_u.
    pub contamination: f64,
    /// Memory size K + L.
    pub memory_size: usize,
    /// Training epochs.
    pub epochs: usize,
    /// The anomaly-type column, if any.
    pub type_column: Option<String>,
    /// The single known type (a number, as in reports written before several were
    /// possible), or `None`.
    pub known_type: Option<i64>,
    /// The known types, or `None` for the usual protocol.
    pub known_types: Option<Vec<i64>>,
    /// Every run and the summary.
    pub report: &'a ExperimentReport,
}

impl<'a> ExperimentDoc<'a> {
    /// The document of `report`, run with `protocol` and `fit` on `data`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data: String,
        runs: usize,
        seed: u64,
        protocol: &ProtocolConfig,
        fit: &FitConfig,
        type_column: Option<String>,
        known: Option<KnownType<'_>>,
        report: &'a ExperimentReport,
    ) -> Self {
        ExperimentDoc {
            data,
            runs,
            seed,
            labeled: protocol.labeled,
            contamination: protocol.contamination,
            memory_size: fit.model.memory_normal + fit.model.memory_anomaly,
            epochs: fit.train.epochs,
            type_column,
            known_type: known.and_then(|k| (k.known.len() == 1).then(|| k.known[0])),
            known_types: known.map(|k| k.known.to_vec()),
            report,
        }
    }
}

/// Name of the metrics entry holding the model's configured score (`mmnet_score`).
pub const DEFAULT: &str = "default";

/// Name of the metrics entry holding the network's configured variant alone (`mmnet_score`
/// without the supervised term; equal to [`DEFAULT`] for a model without one).
pub const SELECTED: &str = "selected";

/// Seed of run `run` in an experiment starting at `base_seed`: used for the split and the
/// training run alike, so exported splits are exactly the ones trained on.
pub fn run_seed(base_seed: u64, run: usize) -> u64 {
    base_seed + run as u64
}

/// Selects rows of `x` by index.
pub fn take_rows(x: ArrayView2<f32>, rows: &[usize]) -> Array2<f32> {
    x.select(Axis(0), rows)
}

/// Runs `runs` repetitions of the protocol; `on_run` sees each result as it completes and
/// `observer` sees training progress. With `types` (each row's anomaly type), every run is
/// also evaluated per type of its test anomalies; `known` restricts training anomalies to
/// some types (the unknown-type protocol).
#[allow(clippy::too_many_arguments)]
pub fn run_experiment(
    x: ArrayView2<f32>,
    labels: &[bool],
    features: &[String],
    types: Option<&[i64]>,
    known: Option<KnownType<'_>>,
    protocol: &ProtocolConfig,
    fit_cfg: &FitConfig,
    runs: usize,
    base_seed: u64,
    observer: &mut dyn TrainObserver,
    on_run: &mut dyn FnMut(&RunResult),
) -> Result<ExperimentReport> {
    if x.nrows() != labels.len() {
        return Err(CoreError::Shape {
            what: "labels".into(),
            expected: format!("{} rows", x.nrows()),
            got: format!("{} rows", labels.len()),
        });
    }
    let mut results = Vec::with_capacity(runs);
    for run in 0..runs {
        let seed = run_seed(base_seed, run);
        let s = split(labels, known, protocol, seed)?;
        let xu = take_rows(x, &s.unlabeled);
        let xl = take_rows(x, &s.labeled);
        let xt = take_rows(x, &s.test);
        let yt: Vec<bool> = s.test.iter().map(|&i| labels[i]).collect();
        let mut cfg = fit_cfg.clone();
        cfg.train.seed = seed;
        let model = fit(
            TrainData {
                features,
                unlabeled: xu.view(),
                labeled: xl.view(),
            },
            &cfg,
            observer,
        )?;
        let scores = model.score_all_variants(xt.view())?;
        let default = model.score(xt.view(), false, None)?.score;
        let chosen = model.score.variant.name();
        let metrics = with_default(evaluate_variants(&scores, &yt)?, &default, &yt, chosen)?;
        let per_type = match types {
            Some(t) => per_type_metrics(&scores, &default, &yt, &take_types(t, &s.test), chosen)?,
            None => Vec::new(),
        };
        let other_precision = other_precision(&model, xt.view(), &yt)?;
        let r = RunResult {
            run,
            seed,
            sizes: [s.unlabeled.len(), s.labeled.len(), s.test.len()],
            test_anomalies: yt.iter().filter(|&&b| b).count(),
            train_seconds: model.training.wall_seconds,
            members: model.ensemble_size(),
            supervised_seconds: model.score.supervised.as_ref().map(|t| t.head.fit_seconds),
            metrics,
            selection: model.score.selection.clone(),
            per_type,
            other_precision: Some(other_precision),
        };
        on_run(&r);
        results.push(r);
    }
    let summary = summarise(results.iter().map(|r| r.metrics.as_slice()));
    let mut seen: Vec<i64> = results
        .iter()
        .flat_map(|r| r.per_type.iter().map(|t| t.anomaly_type))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let per_type = seen
        .into_iter()
        .map(|ty| {
            let of_type = || {
                results
                    .iter()
                    .flat_map(|r| r.per_type.iter().filter(|t| t.anomaly_type == ty))
            };
            TypeSummary {
                anomaly_type: ty,
                anomalies: of_type().map(|t| t.anomalies).sum(),
                variants: summarise(of_type().map(|t| t.metrics.as_slice())),
            }
        })
        .collect();
    Ok(ExperimentReport {
        runs: results,
        summary,
        per_type,
    })
}

/// The default score of `model` on `x` at the precision it does not use, against `labels`.
fn other_precision(
    model: &crate::Model,
    x: ArrayView2<f32>,
    labels: &[bool],
) -> Result<PrecisionMetrics> {
    use crate::kernel::Precision;
    let precision = match model.precision {
        Precision::F32 => Precision::Bf16,
        Precision::Bf16 => Precision::F32,
    };
    let scored = model
        .clone()
        .with_precision(precision)
        .score(x, false, None)?;
    match (
        auc_roc(&scored.score, labels),
        average_precision(&scored.score, labels),
    ) {
        (Some(auc_roc), Some(auc_pr)) => Ok(PrecisionMetrics {
            precision,
            auc_roc,
            auc_pr,
        }),
        _ => Err(CoreError::Data(
            "evaluation needs both normal and anomalous rows in the labels".into(),
        )),
    }
}

/// Mean and std over runs of every variant (and `default`) found in `runs`.
fn summarise<'a>(runs: impl Iterator<Item = &'a [VariantMetrics]> + Clone) -> Vec<VariantSummary> {
    ScoreVariant::ALL
        .iter()
        .map(|v| v.name())
        .chain([SELECTED, DEFAULT])
        .filter_map(|name| {
            let pick = |f: fn(&VariantMetrics) -> f64| -> Vec<f64> {
                runs.clone()
                    .filter_map(|m| m.iter().find(|m| m.variant == name).map(f))
                    .collect()
            };
            let roc = pick(|m| m.auc_roc);
            (!roc.is_empty()).then(|| VariantSummary {
                variant: name.into(),
                auc_roc: MeanStd::of(&roc),
                auc_pr: MeanStd::of(&pick(|m| m.auc_pr)),
            })
        })
        .collect()
}

/// `metrics` with the [`SELECTED`] entry (a copy of the `chosen` variant's) and the
/// [`DEFAULT`] one (of `default`, the model's own score of the same rows).
pub fn with_default(
    mut metrics: Vec<VariantMetrics>,
    default: &[f32],
    labels: &[bool],
    chosen: &str,
) -> Result<Vec<VariantMetrics>> {
    let configured = metrics
        .iter()
        .find(|m| m.variant == chosen)
        .cloned()
        .ok_or_else(|| CoreError::Internal("configured score not evaluated".into()))?;
    metrics.push(VariantMetrics {
        variant: SELECTED.into(),
        ..configured
    });
    let (Some(auc_roc), Some(auc_pr)) =
        (auc_roc(default, labels), average_precision(default, labels))
    else {
        return Err(CoreError::Data(
            "evaluation needs both normal and anomalous rows in the labels".into(),
        ));
    };
    metrics.push(VariantMetrics {
        variant: DEFAULT.into(),
        auc_roc,
        auc_pr,
    });
    Ok(metrics)
}

fn take_types(types: &[i64], rows: &[usize]) -> Vec<i64> {
    rows.iter().map(|&i| types[i]).collect()
}

/// Distinct anomaly types of the anomalous rows (`labels[i]`), sorted.
pub fn anomaly_types(types: &[i64], labels: &[bool]) -> Vec<i64> {
    let mut v: Vec<i64> = types
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(&t, _)| t)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Every variant's metrics on the normals of the test set against each anomaly type's rows
/// alone (`labels` and `types` are per test row).
pub fn per_type_metrics(
    scores: &[(ScoreVariant, Vec<f32>)],
    default: &[f32],
    labels: &[bool],
    types: &[i64],
    chosen: &str,
) -> Result<Vec<TypeMetrics>> {
    anomaly_types(types, labels)
        .into_iter()
        .map(|ty| {
            let rows: Vec<usize> = (0..labels.len())
                .filter(|&i| !labels[i] || types[i] == ty)
                .collect();
            let sub: Vec<(ScoreVariant, Vec<f32>)> = scores
                .iter()
                .map(|(v, s)| (*v, rows.iter().map(|&i| s[i]).collect()))
                .collect();
            let y: Vec<bool> = rows.iter().map(|&i| labels[i]).collect();
            let d: Vec<f32> = rows.iter().map(|&i| default[i]).collect();
            Ok(TypeMetrics {
                anomaly_type: ty,
                anomalies: y.iter().filter(|&&b| b).count(),
                metrics: with_default(evaluate_variants(&sub, &y)?, &d, &y, chosen)?,
            })
        })
        .collect()
}

/// AUC-ROC and AUC-PR of each (variant, scores) pair against `labels`.
pub fn evaluate_variants(
    scores: &[(ScoreVariant, Vec<f32>)],
    labels: &[bool],
) -> Result<Vec<VariantMetrics>> {
    scores
        .iter()
        .map(|(v, s)| {
            let roc = auc_roc(s, labels);
            let pr = average_precision(s, labels);
            match (roc, pr) {
                (Some(auc_roc), Some(auc_pr)) => Ok(VariantMetrics {
                    variant: v.name().into(),
                    auc_roc,
                    auc_pr,
                }),
                _ => Err(CoreError::Data(
                    "evaluation needs both normal and anomalous rows in the labels".into(),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_type_metrics_rank_each_type_against_the_normals_alone() {
        // Four normals at 0..4; type 1 scores above every normal, type 2 below every one.
        let labels = [false, false, false, false, true, true, true];
        let types = [0, 0, 0, 0, 1, 1, 2];
        let s = vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, -1.0];
        let scores = vec![
            (ScoreVariant::Mse, s.clone()),
            (ScoreVariant::SSum, s.iter().map(|v| -v).collect()),
        ];
        // The model's own score: the reverse of `mse`, as a supervised term could make it.
        let own: Vec<f32> = s.iter().map(|v| -v).collect();
        let t = per_type_metrics(&scores, &own, &labels, &types, "mse").unwrap();
        assert_eq!(t.iter().map(|t| t.anomaly_type).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((t[0].anomalies, t[1].anomalies), (2, 1));
        let roc =
            |t: &TypeMetrics, v: &str| t.metrics.iter().find(|m| m.variant == v).unwrap().auc_roc;
        assert_eq!(roc(&t[0], "mse"), 1.0);
        assert_eq!(roc(&t[1], "mse"), 0.0);
        assert_eq!(roc(&t[1], "s_sum"), 1.0);
        // `selected` copies the configured variant; `default` is the model's own score.
        assert_eq!(roc(&t[0], SELECTED), roc(&t[0], "mse"));
        assert_eq!(roc(&t[0], DEFAULT), 0.0);
        assert_eq!(roc(&t[1], DEFAULT), 1.0);
        // Over all anomalies the two types average out, which is what the table avoids.
        let all = evaluate_variants(&scores, &labels).unwrap();
        assert!((all[0].auc_roc - 2.0 / 3.0).abs() < 1e-12, "{all:?}");
    }
}
