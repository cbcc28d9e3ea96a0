#!/usr/bin/env python3
"""Train on the shipped Spambase data with 30 labeled anomalies, score the held-out rows,
print AUC-ROC, and check the scores against `mmnet score` on the same model and rows.

usage: spambase_auc.py [MMNET_CLI]   (from the repository root; without the CLI only the AUC)
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import mmnet

REPO = Path(__file__).resolve().parents[3]


t = pq.read_table(REPO / "data" / "spambase.parquet")
y = t.column("label").to_numpy()
rng = np.random.default_rng(0)
idx = rng.permutation(len(y))
test_idx, train_idx = np.sort(idx[: len(y) // 5]), np.sort(idx[len(y) // 5 :])
train, test = t.take(pa.array(train_idx)), t.take(pa.array(test_idx))
known = rng.choice(np.flatnonzero(train.column("label").to_numpy() == 1), 30, replace=False)
lab = np.zeros(train.num_rows, dtype=np.int64)
lab[known] = 1
train = train.set_column(train.schema.get_field_index("label"), "label", pa.array(lab))

model = mmnet.train(train, memory_size=32, epochs=200, seed=0)
scores = model.score(test).column("mmnet_score").to_numpy()
print(f"score {model.score_name}, AUC-ROC on {test.num_rows} held-out rows: "
      f"{mmnet.auc_roc(scores, test.column('label').to_numpy()):.4f}")

if len(sys.argv) > 1:
    with tempfile.TemporaryDirectory() as d:
        model.save(f"{d}/model")
        pq.write_table(test, f"{d}/test.parquet")
        subprocess.run([sys.argv[1], "score", "--model", f"{d}/model", "--input",
                        f"{d}/test.parquet", "--output", f"{d}/out.parquet"], check=True,
                       capture_output=True)
        cli = pq.read_table(f"{d}/out.parquet").column("mmnet_score").to_numpy()
    diff = float(np.max(np.abs(cli - scores)))
    print(f"max |Python - mmnet score| = {diff:.3g} over {len(cli)} rows")
    sys.exit(0 if diff <= 1e-6 else 1)
