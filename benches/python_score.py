#!/usr/bin/env python3
"""Rows/s of `mmnet.Model.score` on a 1M x 122 pyarrow Table (the NSL-KDD shape) next to the
Rust kernel it calls (crates/mmnet-core/examples/score_columns.rs, same model, same rows)
and PyTorch running the same weights from Python (benches/torch_baseline.py's network), in
one run. Each figure is the best of REPEATS; the machine is noisy, so read the ratios.

usage: python_score.py [ROWS]   (run by `make bench-python`; needs the py and peers venvs)
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

import mmnet

REPO = Path(__file__).resolve().parents[1]
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
D = 122
REPEATS = 5
TORCH_PY = REPO / ".tools" / "peers-venv" / "bin" / "python"

TORCH_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from torch_baseline import MMNet
from safetensors.torch import load_file
model_dir, raw, rows, repeats = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
m = json.load(open(f"{model_dir}/manifest.json"))
p = m["model"]
case = dict(features=len(m["features"]), hidden=p["hidden_dim"], latent=p["latent_dim"],
            memory=p["memory_normal"] + p["memory_anomaly"], memory_normal=p["memory_normal"],
            shrink_threshold=p["shrink_threshold"], shrink_eps=p["shrink_eps"], log_guard=p["log_guard"])
net = MMNet(case, load_file(f"{model_dir}/weights.safetensors"))
torch.set_num_threads(2)
x = torch.from_numpy(np.fromfile(raw, dtype="<f4").reshape(case["features"], rows).T.copy())
best = float("inf")
with torch.inference_mode():
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for i in range(0, rows, 65536):
            net(x[i:i + 65536])
        if r:  # the first pass is a warm-up
            best = min(best, time.perf_counter() - t0)
print(json.dumps({"rows": rows, "seconds": best, "rows_per_s": rows / best}))
"""


def main():
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.random((ROWS, D), dtype=np.float32))
    names = [f"f{j}" for j in range(D)]
    table = pa.Table.from_arrays([pa.array(X[:, j]) for j in range(D)], names=names)
    with tempfile.TemporaryDirectory() as tmp:
        # A model of the NSL-KDD shape (memory 64); its weights do not change the cost.
        n = 20_000
        lab = np.zeros(n, dtype=np.int64)
        lab[:30] = 1
        train = pa.Table.from_arrays([pa.array(X[:n, j]) for j in range(D)] + [pa.array(lab)],
                                     names=names + ["label"])
        model = mmnet.train(train, memory_size=64, epochs=1, score="mse_logit")
        model.save(tmp + "/model")
        raw = tmp + "/x.f32"
        X.T.astype("<f4").tofile(raw)  # column-major
        results = {}
        model.score(table)  # warm-up
        best = float("inf")
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            model.score(table)
            best = min(best, time.perf_counter() - t0)
        results["python"] = ROWS / best
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "mmnet-core", "--example",
                        "score_columns"], cwd=REPO, check=True)
        out = subprocess.run([str(REPO / "target/release/examples/score_columns"), tmp + "/model",
                              raw, str(ROWS), str(REPEATS)], check=True, capture_output=True,
                             text=True).stdout
        results["kernel"] = json.loads(out)["rows_per_s"]
        if TORCH_PY.exists():
            out = subprocess.run([str(TORCH_PY), "-c", TORCH_SCRIPT, str(REPO / "benches"),
                                  tmp + "/model", raw, str(ROWS), str(REPEATS)], check=True,
                                 capture_output=True, text=True).stdout
            results["torch"] = json.loads(out)["rows_per_s"]
    print(f"{ROWS} rows x {D} float32 features, memory 64, score mse_logit, best of {REPEATS}")
    print(f"{'path':<36} {'rows/s':>12} {'vs kernel':>10}")
    k = results["kernel"]
    labels = {"kernel": "Rust kernel (Model::score_columns)",
              "python": "Python mmnet.Model.score(pa.Table)",
              "torch": "PyTorch, same weights (2 threads)"}
    for key in ("kernel", "python", "torch"):
        if key in results:
            print(f"{labels[key]:<36} {results[key]:>12,.0f} {results[key] / k:>9.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
