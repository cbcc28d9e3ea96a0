"""Does a plainly supervised score add to mmnet's default? (issue 19, session 14 study)

For each exported run (`mmnet experiment --export-splits DIR --export-only`): mmnet's default
model trained on the run's training rows (`mmnet train`, the CLI's defaults), scored on the
test rows and on D_u; a logistic regression (scikit-learn, balanced class weights, C = 1) on
the min-max scaled features, D_u = 0, D_l = 1; and fixed fusions of the two, each term
standardised over D_u as mmnet does (rules.robust: median and IQR, wider
ranges where the IQR is ~0). Prints test AUC-ROC per run and the means.
No choice is fitted here: the rules are fixed, the test labels only score them.

usage: supervised.py MMNET SPLITS_DIR MEMORY RUNS [extra mmnet train args...]
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules import robust  # noqa: E402  (mmnet's robust standardisation over D_u)


def main():
    mmnet, splits, memory, runs = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    extra = sys.argv[5:]
    rows = []
    for r in range(runs):
        d = splits / f"run{r}"
        model = d / "model"
        if not (model / "manifest.json").exists():
            subprocess.run([mmnet, "train", "--data", d / "train.parquet", "--exclude", "true_label",
                            "--memory-size", memory, "--seed", str(r), "--quiet", "--out", model, *extra],
                           check=True, capture_output=True)
        scored = {}
        for part in ("test", "unlabeled"):
            out = d / f"{part}_scored.parquet"
            subprocess.run([mmnet, "score", "--model", model, "--input", d / f"{part}.parquet",
                            "--output", out], check=True, capture_output=True)
            scored[part] = pq.read_table(out).to_pandas()
        tabs = {p: pq.read_table(d / f"{p}.parquet").to_pandas() for p in ("unlabeled", "labeled", "test")}
        feats = [c for c in tabs["test"].columns if c not in ("label", "true_label", "anomaly_type")]
        fit = np.vstack([tabs["unlabeled"][feats].to_numpy(float), tabs["labeled"][feats].to_numpy(float)])
        lo, hi = fit.min(0), fit.max(0)
        scale = lambda x: (x - lo) / np.where(hi > lo, hi - lo, 1.0)
        y_fit = np.r_[np.zeros(len(tabs["unlabeled"])), np.ones(len(tabs["labeled"]))]
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(scale(fit), y_fit)
        lr_u = lr.decision_function(scale(tabs["unlabeled"][feats].to_numpy(float)))
        lr_t = lr.decision_function(scale(tabs["test"][feats].to_numpy(float)))
        m_u, m_t = scored["unlabeled"]["mmnet_score"].to_numpy(), scored["test"]["mmnet_score"].to_numpy()
        zm, zl = robust(m_t, m_u), robust(lr_t, lr_u)
        y = tabs["test"]["label"].to_numpy()
        row = {"mmnet": roc_auc_score(y, m_t), "logreg": roc_auc_score(y, lr_t),
               "mmnet+logreg": roc_auc_score(y, zm + zl), "mmnet+0.5logreg": roc_auc_score(y, zm + 0.5 * zl),
               "mmnet+max(logreg,0)": roc_auc_score(y, zm + np.maximum(zl, 0))}
        rows.append(row)
        print(f"run {r}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    print("mean:  " + "  ".join(f"{k} {np.mean([x[k] for x in rows]):.4f}" for k in rows[0]))


if __name__ == "__main__":
    main()
