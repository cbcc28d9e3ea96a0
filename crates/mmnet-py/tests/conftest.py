"""Shared fixtures: the shipped Spambase data split as the paper's protocol would (held-out
test rows; 30 labeled anomalies among the training rows) and one model trained on it."""

import os
import pathlib
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mmnet

REPO = pathlib.Path(__file__).resolve().parents[3]
SPAMBASE = REPO / "data" / "spambase.parquet"


@pytest.fixture(scope="session")
def splits(tmp_path_factory):
    """(train, test) pyarrow Tables: train has `label` = 1 on 30 anomalies only (the rest 0),
    test keeps the true labels; both also written to Parquet (`.paths`)."""
    t = pq.read_table(SPAMBASE)
    y = t.column("label").to_numpy()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    n_test = len(y) // 5
    test_idx, train_idx = np.sort(idx[:n_test]), np.sort(idx[n_test:])
    train = t.take(pa.array(train_idx))
    anomalies = np.flatnonzero(train.column("label").to_numpy() == 1)
    keep = set(rng.choice(anomalies, 30, replace=False).tolist())
    # The other training anomalies stay in as unlabeled contamination, as in the protocol.
    lab = np.array([1 if i in keep else 0 for i in range(train.num_rows)], dtype=np.int64)
    train = train.set_column(train.schema.get_field_index("label"), "label", pa.array(lab))
    test = t.take(pa.array(test_idx))
    d = tmp_path_factory.mktemp("splits")
    pq.write_table(train, d / "train.parquet")
    pq.write_table(test, d / "test.parquet")
    return train, test, d


@pytest.fixture(scope="session")
def model(splits):
    train, _, _ = splits
    return mmnet.train(train, memory_size=32, epochs=30, seed=0)


@pytest.fixture(scope="session")
def model_dir(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    model.save(d)
    return d


@pytest.fixture(scope="session")
def cli():
    """The `mmnet` binary (MMNET_CLI, else the workspace's debug build), or skip."""
    path = os.environ.get("MMNET_CLI") or str(REPO / "target" / "debug" / "mmnet")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        if os.environ.get("MMNET_REQUIRE_CLI"):
            pytest.fail(f"MMNET_REQUIRE_CLI is set but {path} is not an executable")
        pytest.skip("no mmnet CLI binary (set MMNET_CLI)")
    return path


def features_f32(table, names):
    """`table`'s `names` columns as float32 (what the model reads), other columns dropped."""
    return pa.table({n: table.column(n).cast(pa.float32()) for n in names})
