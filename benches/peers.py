#!/usr/bin/env python3
"""Peers on mmnet's own splits: DevNet and DeepSAD (semi-supervised), DeepSVDD (unsupervised
deep; all three PyPI `deepod`) and IsolationForest (PyPI `pyod`), trained on exactly the D_u / D_l / test splits that `mmnet experiment
--export-splits DIR` wrote, so their AUCs sit in the same rows as mmnet's.

Usage: peers.py SPLITS_DIR OUT.json [--runs N] [--epochs E]

Every detector gets the same input mmnet gets: raw features min-max scaled with statistics
of D_u + D_l only (the protocol), D_u rows labeled 0 (unlabeled), D_l rows labeled 1.
IsolationForest and DeepSVDD are unsupervised and see D_u + D_l without labels. `true_label`
(and `anomaly_type`, where the split has one) in the exported files is read for the test set
only: with types, every detector is also scored per test anomaly type (that type's anomalies
against the test normals), as `mmnet experiment` does. deepod's defaults are kept (MLP 100-50,
rep_dim 128, batch 64, Adam 1e-3) except the device (CPU) and the epochs (--epochs,
default 50) for CPU time; the seed of run r is the split's seed.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score, roc_auc_score


NOT_FEATURES = ("label", "true_label", "anomaly_type")


def load(path):
    t = pq.read_table(path)
    cols = [c for c in t.column_names if c not in NOT_FEATURES]
    x = np.column_stack([t.column(c).to_numpy().astype(np.float32) for c in cols])
    types = t.column("anomaly_type").to_numpy().astype(int) if "anomaly_type" in t.column_names else None
    return x, t.column("label").to_numpy().astype(int), t.column("true_label").to_numpy().astype(int), types


def per_type(y, s, types):
    """AUC-ROC / AUC-PR of each anomaly type's test rows against the test normals."""
    if types is None:
        return []
    out = []
    for k in sorted(set(types[y == 1].tolist())):
        keep = (y == 0) | (types == k)
        out.append({"anomaly_type": int(k), "anomalies": int(((y == 1) & (types == k)).sum()),
                    "auc_roc": float(roc_auc_score(y[keep], s[keep])),
                    "auc_pr": float(average_precision_score(y[keep], s[keep]))})
    return out


def minmax(train, *others):
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    f = lambda a: np.where(hi > lo, (a - lo) / span, 0.0).astype(np.float32)
    return [f(train)] + [f(o) for o in others]


# torch's threads: two by default (this machine's cores); MMNET_PEERS_THREADS=1 when the peers
# share the machine with an mmnet run: torch's OpenMP workers spin-wait, and two of them beside
# a busy core ran ~30x slower here; one kept going (~50 s for the four peers of one annthyroid
# run, beside an mmnet experiment). The count changes the order of torch's sums, and with it
# the deep peers' AUCs (as we read it: arrhythmia's DeepSAD gave 0.8390 at 2 threads in session
# 17 and 0.8347 at 1 in session 18, 10 runs, same splits and versions); each JSON records it.
THREADS = int(os.environ.get("MMNET_PEERS_THREADS", "2"))


def detectors(seed, epochs):
    import torch
    from deepod.models.tabular import DeepSAD, DeepSVDD, DevNet
    from pyod.models.iforest import IForest

    torch.set_num_threads(THREADS)
    return {
        "devnet": lambda: DevNet(epochs=epochs, device="cpu", verbose=0, random_state=seed),
        "deepsad": lambda: DeepSAD(epochs=epochs, device="cpu", verbose=0, random_state=seed),
        "deepsvdd": lambda: DeepSVDD(epochs=epochs, device="cpu", verbose=0, random_state=seed),
        "iforest": lambda: IForest(random_state=seed),
    }


UNSUPERVISED = ("iforest", "deepsvdd")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("splits")
    ap.add_argument("out")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=50)
    a = ap.parse_args()
    runs = sorted(
        (d for d in os.listdir(a.splits) if d.startswith("run")), key=lambda d: int(d[3:])
    )
    if a.runs is not None:
        runs = runs[: a.runs]
    results = []
    for rd in runs:
        meta = json.load(open(os.path.join(a.splits, rd, "split.json")))
        xtr, ytr, _, _ = load(os.path.join(a.splits, rd, "train.parquet"))
        xte, _, yte, tte = load(os.path.join(a.splits, rd, "test.parquet"))
        xtr, xte = minmax(xtr, xte)
        row = {"run": meta["run"], "seed": meta["seed"], "metrics": []}
        for name, make in detectors(meta["seed"], a.epochs).items():
            t0 = time.time()
            det = make()
            if name in UNSUPERVISED:
                det.fit(xtr)
            else:
                det.fit(xtr, ytr)
            s = det.decision_function(xte)
            m = {
                "variant": name,
                "auc_roc": float(roc_auc_score(yte, s)),
                "auc_pr": float(average_precision_score(yte, s)),
                "seconds": time.time() - t0,
            }
            types = per_type(yte, np.asarray(s), tte)
            if types:
                m["per_type"] = types
            row["metrics"].append(m)
            print(f"{rd} {name:8s} AUC-ROC {m['auc_roc']:.4f} AUC-PR {m['auc_pr']:.4f} ({m['seconds']:.1f} s)",
                  flush=True)
        results.append(row)
    summary = []
    for name in ["devnet", "deepsad", "deepsvdd", "iforest"]:
        roc = [m["auc_roc"] for r in results for m in r["metrics"] if m["variant"] == name]
        pr = [m["auc_pr"] for r in results for m in r["metrics"] if m["variant"] == name]
        summary.append({
            "variant": name,
            "auc_roc": {"mean": float(np.mean(roc)), "std": float(np.std(roc))},
            "auc_pr": {"mean": float(np.mean(pr)), "std": float(np.std(pr))},
        })
    json.dump({"splits": a.splits, "epochs": a.epochs, "torch_threads": THREADS, "runs": results,
               "summary": summary},
              open(a.out, "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
