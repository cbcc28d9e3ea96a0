//! `mmnet report`: a model's quality as pictures. ROC and PR curves of every score variant,
//! the default score's distribution for normal vs anomalous rows, the training losses, and
//! an index.html that shows them next to the numbers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use mmnet_core::experiment::evaluate_variants;
use mmnet_core::metrics::{pr_curve, roc_curve};
use plotters::prelude::SeriesLabelPosition;

use crate::cmd_eval::LabeledArgs;
use crate::plots::{LineChart, Series, score_histogram};

/// Arguments of `mmnet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: LabeledArgs,
    /// Output directory (created; files in it are overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `mmnet report`.
pub fn run(a: ReportArgs) -> Result<()> {
    let (model, ds) = a.input.load()?;
    let anomalies = ds.labels.iter().filter(|&&l| l).count();
    anyhow::ensure!(
        anomalies > 0 && anomalies < ds.labels.len(),
        "{}: column `{}` must hold both normal (0) and anomalous (1) rows for a report ({} of {} are anomalous)",
        a.input.data.display(),
        a.input.label_column,
        anomalies,
        ds.labels.len()
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let scores = model.score_all_variants(ds.x.view())?;
    let metrics = evaluate_variants(&scores, &ds.labels)?;

    let curves = |f: CurveFn| -> Vec<(String, Curve)> {
        scores
            .iter()
            .zip(&metrics)
            .filter_map(|((v, s), m)| {
                let label = format!(
                    "{} (AUC-ROC {:.3}, AUC-PR {:.3})",
                    v.name(),
                    m.auc_roc,
                    m.auc_pr
                );
                f(s, &ds.labels).map(|c| (label, c))
            })
            .collect()
    };
    let roc = curves(roc_curve);
    LineChart {
        title: "ROC curve per score",
        x_label: "false-positive rate",
        y_label: "true-positive rate",
        x: (0.0, 1.0),
        y: (0.0, 1.0),
        diagonal: true,
        log_y: false,
        legend: SeriesLabelPosition::LowerRight,
    }
    .draw(&a.out.join("roc.png"), &as_series(&roc))?;
    let pr = curves(pr_curve);
    let base = anomalies as f64 / ds.labels.len() as f64;
    LineChart {
        title: &format!("Precision-recall curve per score (anomaly share {base:.3})"),
        x_label: "recall",
        y_label: "precision",
        x: (0.0, 1.0),
        y: (0.0, 1.02),
        diagonal: false,
        log_y: false,
        legend: SeriesLabelPosition::LowerLeft,
    }
    .draw(&a.out.join("pr.png"), &as_series(&pr))?;

    let default = scores
        .iter()
        .find(|(v, _)| *v == model.score.variant)
        .map(|(_, s)| s)
        .context("the model's score was not computed")?;
    let (mut normal, mut anomalous) = (Vec::new(), Vec::new());
    for (&s, &l) in default.iter().zip(&ds.labels) {
        if l { anomalous.push(s) } else { normal.push(s) }
    }
    score_histogram(
        &a.out.join("scores.png"),
        &format!("mmnet_score ({}) by true label", model.score.describe()),
        &format!(
            "mmnet_score ({}), higher = more anomalous",
            model.score.describe()
        ),
        &normal,
        &anomalous,
        model.threshold.value,
    )?;

    let h = &model.training.history;
    anyhow::ensure!(!h.is_empty(), "the model has no training history to plot");
    let pick = |f: fn(&mmnet_core::loss::LossParts) -> f64| -> Vec<(f64, f64)> {
        h.iter()
            .map(|e| ((e.epoch + 1) as f64, f(&e.loss)))
            .collect()
    };
    // L_rec, L_mask and the total are positive and span decades: log scale. L_KL (eq. 16)
    // is a sum of log-weights, negative and unbounded below (SPEC failure 1): its own
    // linear panel.
    let positive = [
        (
            "total (eq. 11)".to_string(),
            pick(|l| l.total.max(LOSS_FLOOR)),
        ),
        (
            "reconstruction L_rec".to_string(),
            pick(|l| l.rec.max(LOSS_FLOOR)),
        ),
        ("mask L_mask".to_string(), pick(|l| l.mask.max(LOSS_FLOOR))),
    ];
    let kl = [(
        "KL L_KL (enters the total x lambda_KL)".to_string(),
        pick(|l| l.kl),
    )];
    let range = |c: &[(String, Vec<(f64, f64)>)]| {
        c.iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let epochs = (1.0, h.len().max(2) as f64);
    let (p0, p1) = range(&positive);
    let (k0, k1) = range(&kl);
    let pad = ((k1 - k0) * 0.08).max(1e-6);
    crate::plots::stacked(
        &a.out.join("loss.png"),
        &[
            (
                LineChart {
                    title: "Training loss per epoch (mean per row)",
                    x_label: "epoch",
                    y_label: "loss (log scale)",
                    x: epochs,
                    y: (p0 * 0.8, p1 * 1.25),
                    diagonal: false,
                    log_y: true,
                    legend: SeriesLabelPosition::UpperRight,
                },
                as_series(&positive),
            ),
            (
                LineChart {
                    title: "KL term per epoch (mean per row)",
                    x_label: "epoch",
                    y_label: "L_KL",
                    x: epochs,
                    y: (k0 - pad, k1 + pad),
                    diagonal: false,
                    log_y: false,
                    legend: SeriesLabelPosition::UpperRight,
                },
                as_series(&kl),
            ),
        ],
    )?;

    let html = index_html(
        &a,
        &model,
        &metrics,
        ds.labels.len(),
        anomalies,
        &normal,
        &anomalous,
    );
    let index = a.out.join("index.html");
    std::fs::write(&index, html).with_context(|| format!("writing {}", index.display()))?;
    println!(
        "report for {} on {} ({} rows, {} anomalous) written to {}",
        a.input.model.display(),
        a.input.data.display(),
        ds.labels.len(),
        anomalies,
        index.display()
    );
    Ok(())
}

/// Points of one curve.
type Curve = Vec<(f64, f64)>;
/// `roc_curve` or `pr_curve`.
type CurveFn = fn(&[f32], &[bool]) -> Option<Curve>;

/// Smallest loss drawn on the log-scale panel (a loss of exactly 0 has no logarithm).
const LOSS_FLOOR: f64 = 1e-8;

fn as_series(c: &[(String, Vec<(f64, f64)>)]) -> Vec<Series<'_>> {
    c.iter()
        .map(|(l, p)| Series {
            label: l.clone(),
            points: p,
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn path_text(p: &Path) -> String {
    esc(&p.display().to_string())
}

#[allow(clippy::too_many_arguments)]
fn index_html(
    a: &ReportArgs,
    model: &mmnet_core::Model,
    metrics: &[mmnet_core::experiment::VariantMetrics],
    rows: usize,
    anomalies: usize,
    normal: &[f32],
    anomalous: &[f32],
) -> String {
    let t = model.threshold.value;
    let flagged_normal = normal.iter().filter(|&&s| s > t).count();
    let flagged_anom = anomalous.iter().filter(|&&s| s > t).count();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mmnet report</title>\n\
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%;border:1px solid #ddd;margin:0.5em 0}}</style>\n\
</head><body>\n<h1>mmnet report</h1>\n<p>Model <code>{}</code> evaluated on <code>{}</code>: {rows} rows, {anomalies} anomalous (column <code>{}</code>).</p>\n",
        path_text(&a.input.model),
        path_text(&a.input.data),
        esc(&a.input.label_column)
    );
    let _ = write!(
        h,
        "<h2>Model</h2>\n<table><tr><th>property</th><th>value</th></tr>\n\
<tr><td>features</td><td>{}</td></tr>\n<tr><td>memory K + L</td><td>{} + {}</td></tr>\n\
<tr><td>mmnet_score</td><td>{}</td></tr>\n<tr><td>threshold</td><td>{:.4} ({})</td></tr>\n\
<tr><td>trained on</td><td>{} unlabeled + {} labeled rows, {} epochs, {:.1} s</td></tr>\n</table>\n",
        model.features.len(),
        model.params.memory_normal,
        model.params.memory_anomaly,
        model.score.describe(),
        t,
        match model.threshold.quantile {
            Some(q) => format!("{q} quantile of the unlabeled training rows' scores"),
            None => esc(&model.threshold.method),
        },
        model.training.rows_unlabeled,
        model.training.rows_labeled,
        model.training.history.len(),
        model.training.wall_seconds
    );
    h.push_str(
        "<h2>Ranking quality</h2>\n<table><tr><th>score</th><th>AUC-ROC</th><th>AUC-PR</th></tr>\n",
    );
    for m in metrics {
        let mark = if m.variant == model.score.variant.name() {
            " (mmnet_score)"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr><td>{}{mark}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            esc(&m.variant),
            m.auc_roc,
            m.auc_pr
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<p>At the stored threshold: {flagged_anom} of {} anomalous rows flagged ({:.1} %), \
{flagged_normal} of {} normal rows flagged ({:.2} %).</p>",
        anomalous.len(),
        100.0 * flagged_anom as f64 / anomalous.len().max(1) as f64,
        normal.len(),
        100.0 * flagged_normal as f64 / normal.len().max(1) as f64
    );
    for (file, caption) in [
        (
            "roc.png",
            "ROC curve of every score variant; the diagonal is a random ranking.",
        ),
        ("pr.png", "Precision-recall curve of every score variant."),
        (
            "scores.png",
            "Distribution of mmnet_score for normal and anomalous rows, with the threshold.",
        ),
        (
            "loss.png",
            "Training losses per epoch, from the model's manifest.",
        ),
    ] {
        let _ = writeln!(
            h,
            "<figure><img src=\"{file}\" alt=\"{caption}\"><figcaption>{caption}</figcaption></figure>"
        );
    }
    h.push_str("</body></html>\n");
    h
}
