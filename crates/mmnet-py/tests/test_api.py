"""The Python API: round trips, inputs, scores, errors."""

import json
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import mmnet
from conftest import features_f32


def test_train_score_and_metadata(model, splits):
    _, test, _ = splits
    out = model.score(test)
    assert out.column_names == list(mmnet.SCORE_COLUMNS)
    assert out.num_rows == test.num_rows
    assert out.schema.field("mmnet_score").type == pa.float32()
    assert out.schema.field("is_anomaly").type == pa.bool_()
    s = out.column("mmnet_score").to_numpy()
    a = mmnet.auc_roc(s, test.column("label").to_numpy())
    assert a > 0.8, a
    flags = out.column("is_anomaly").to_numpy(zero_copy_only=False)
    assert (flags == (s > model.threshold)).all()
    assert len(model.features) == 57 and "label" not in model.features
    assert len(model.digest) == 64
    m = model.manifest
    assert m["features"] == model.features
    assert m["weights"]["sha256"] == model.digest
    assert m["score"]["variant"] == model.score_name
    assert "Model(57 features" in repr(model)
    # ~3,300 unlabeled rows: `ensemble="auto"` trains five networks.
    assert len(m["ensemble"]["members"]) == 4


def test_ensemble_option(splits):
    train, _, _ = splits
    one = mmnet.train(train, memory_size=8, epochs=2, seed=0, ensemble=1)
    assert "ensemble" not in one.manifest
    two = mmnet.train(train, memory_size=8, epochs=2, seed=0, ensemble="2")
    assert len(two.manifest["ensemble"]["members"]) == 1
    for bad in (0, 17, "many"):
        with pytest.raises(ValueError, match="ensemble"):
            mmnet.train(train, memory_size=8, epochs=2, ensemble=bad)


def test_save_load_round_trip(model, model_dir, splits):
    _, test, _ = splits
    back = mmnet.Model.load(model_dir)
    assert back.digest == model.digest
    assert back.features == model.features
    assert back.threshold == model.threshold
    assert back.manifest == model.manifest
    assert back.score(test).equals(model.score(test))
    # Loading by the manifest's own path works too.
    assert mmnet.Model.load(model_dir / "manifest.json").digest == model.digest


def test_bf16_precision_on_load(model_dir, splits):
    _, test, _ = splits
    f32 = mmnet.Model.load(model_dir)
    bf16 = mmnet.Model.load(model_dir, precision="bf16")
    assert (f32.precision, bf16.precision) == ("f32", "bf16")
    assert bf16.digest == f32.digest
    a = f32.score(test).column("mmnet_score").to_numpy()
    b = bf16.score(test).column("mmnet_score").to_numpy()
    assert not np.array_equal(a, b)
    assert np.allclose(a, b, rtol=0.05, atol=0.05)
    with pytest.raises(ValueError, match="precision `fp8`"):
        mmnet.Model.load(model_dir, precision="fp8")


def test_every_input_kind_scores_the_same(model, splits):
    _, test, d = splits
    want = model.score(test).column("mmnet_score")
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    inputs = {
        "pyarrow.Table": test,
        "pyarrow.RecordBatch": test.combine_chunks().to_batches()[0],
        "RecordBatchReader": pa.RecordBatchReader.from_batches(test.schema, test.to_batches(max_chunksize=100)),
        "pandas": test.to_pandas(),
        "polars": pl.from_arrow(test),
        "parquet path": str(d / "test.parquet"),
        "pathlib": d / "test.parquet",
    }
    for name, data in inputs.items():
        got = model.score(data).column("mmnet_score")
        assert got.equals(want), name
    # A pandas index is never a feature (pandas' capsule export would add it as a column).
    sub = test.to_pandas().iloc[::2]
    assert model.score(sub).column("mmnet_score").equals(model.score(pa.Table.from_pandas(sub, preserve_index=False)).column("mmnet_score"))
    trained = mmnet.train(sub.assign(label=(np.arange(len(sub)) < 30).astype(int)), epochs=1, score="mse")
    assert "__index_level_0__" not in trained.features
    # Other numeric types are cast: float64 features score the same as the file's.
    f64 = pa.table({n: test.column(n).cast(pa.float64()) for n in model.features})
    assert model.score(f64).column("mmnet_score").equals(want)


def test_append_keeps_the_input_columns(model, splits):
    _, test, _ = splits
    out = model.score(test, append=True)
    assert out.column_names == test.column_names + list(mmnet.SCORE_COLUMNS)
    assert out.column("label").equals(test.column("label"))
    assert out.column("mmnet_score").equals(model.score(test).column("mmnet_score"))


def test_threshold_override(model, splits):
    _, test, _ = splits
    out = model.score(test, threshold=-1e30)
    assert pc.all(out.column("is_anomaly")).as_py()


def test_f32_columns_are_read_in_place(model, splits):
    """The scoring kernel reads the caller's float32 buffers: no copy (the zero-copy check)."""
    _, test, _ = splits
    t = features_f32(test, model.features).combine_chunks()
    want = []
    for name in model.features:
        arr = t.column(name).chunk(0)
        want.append(arr.buffers()[1].address + arr.offset * 4)
    assert model._native._feature_addresses(t) == want
    # A slice is still read in place (offset honoured).
    s = t.slice(7, 100)
    got = model._native._feature_addresses(s)
    assert got == [a + 7 * 4 for a in want]
    # float64 columns are cast, so the kernel reads other memory: the check can fail.
    f64 = pa.table({n: t.column(n).cast(pa.float64()) for n in model.features})
    f64_addr = [f64.column(n).chunk(0).buffers()[1].address for n in model.features]
    assert not set(model._native._feature_addresses(f64)) & set(f64_addr)


def test_incomplete_rows_get_null_scores(model, splits):
    _, test, _ = splits
    t = features_f32(test, model.features).slice(0, 10).to_pydict()
    first = model.features[0]
    t[first][2] = float("nan")
    t[first][5] = None
    t[model.features[3]][7] = float("inf")
    table = pa.table({k: pa.array(v, pa.float32()) for k, v in t.items()})
    out = model.score(table)
    nulls = out.column("mmnet_score").is_null().to_pylist()
    assert nulls == [i in (2, 5, 7) for i in range(10)]
    assert out.column("is_anomaly").null_count == 3
    # The complete rows score as they do alone.
    clean = model.score(features_f32(test, model.features).slice(0, 10)).column("mmnet_score")
    for i in (0, 1, 3, 4, 6, 8, 9):
        assert out.column("mmnet_score")[i].as_py() == clean[i].as_py()


def test_decision_function_and_predict(model, splits):
    _, test, _ = splits
    X = np.column_stack([test.column(n).to_numpy() for n in model.features])
    s = model.decision_function(X)
    assert s.dtype == np.float32 and s.shape == (test.num_rows,)
    np.testing.assert_array_equal(s, model.score(test).column("mmnet_score").to_numpy())
    p = model.predict(X)
    np.testing.assert_array_equal(p, (s > model.threshold).astype(np.int64))
    X[3, 0] = np.nan
    assert np.isnan(model.decision_function(X)[3])
    with pytest.raises(ValueError, match="row 3"):
        model.predict(X)
    with pytest.raises(ValueError, match="57 columns"):
        model.decision_function(X[:, :5])


def test_explain(model, splits):
    _, test, d = splits
    e = model.explain(test, 4, top_features=3)
    assert set(e) >= {"mmnet_score", "is_anomaly", "s_sum", "s_kl", "mse", "memory", "features"}
    assert len(e["features"]) == 3
    score = model.score(test).column("mmnet_score")[4].as_py()
    assert abs(e["mmnet_score"] - score) <= 1e-5 * max(1.0, abs(score))
    assert model.explain(d / "test.parquet", 4) == model.explain(test, 4)
    with pytest.raises(mmnet.MmnetError, match="row 100000 does not exist"):
        model.explain(test, 100_000)


def test_errors_name_what_is_wrong(model, splits, tmp_path):
    train, test, _ = splits
    missing = test.drop_columns([model.features[5]])
    with pytest.raises(mmnet.MmnetError, match=f"column `{model.features[5]}` not found"):
        model.score(missing)
    with pytest.raises(TypeError, match="expected a path"):
        model.score(42)
    with pytest.raises(TypeError, match="decision_function"):
        model.score(np.zeros((3, 57)))
    with pytest.raises(mmnet.MmnetError, match="nope.parquet"):
        model.score(str(tmp_path / "nope.parquet"))
    with pytest.raises(mmnet.MmnetError, match="manifest"):
        mmnet.Model.load(tmp_path)
    # A corrupted weights file is refused by its digest.
    d = tmp_path / "m"
    model.save(d)
    w = d / "weights.safetensors"
    b = bytearray(w.read_bytes())
    b[-1] ^= 0xFF
    w.write_bytes(bytes(b))
    with pytest.raises(mmnet.MmnetError, match="SHA-256"):
        mmnet.Model.load(d)
    # Training: no labeled anomaly, a non-numeric column, a bad option.
    unlabeled = train.set_column(train.schema.get_field_index("label"), "label",
                                 pa.array(np.zeros(train.num_rows, dtype=np.int64)))
    with pytest.raises(mmnet.MmnetError, match="no labeled anomalies"):
        mmnet.train(unlabeled, epochs=1)
    texty = train.append_column("host", pa.array(["a"] * train.num_rows))
    with pytest.raises(mmnet.MmnetError, match="column `host`.*not numeric"):
        mmnet.train(texty, epochs=1)
    with pytest.raises(mmnet.MmnetError, match="unknown score `best`"):
        mmnet.train(train, epochs=1, score="best")
    with pytest.raises(mmnet.MmnetError, match="memory_size"):
        mmnet.train(train, epochs=1, memory_size=7)
    # `exclude` drops a column from the features.
    m = mmnet.train(texty, exclude=["host"], epochs=1, score="mse")
    assert "host" not in m.features and m.score_name == "mse"


def test_experiment_report(splits):
    train, test, _ = splits
    full = pa.concat_tables([test])  # true labels
    doc = mmnet.experiment(full, runs=2, epochs=3, memory_size=8, seed=3)
    assert doc["runs"] == 2 and doc["seed"] == 3 and doc["labeled"] == 30
    assert doc["memory_size"] == 8 and doc["epochs"] == 3 and doc["known_types"] is None
    assert len(doc["report"]["runs"]) == 2
    names = {s["variant"] for s in doc["report"]["summary"]}
    assert "default" in names and "mse" in names
    with pytest.raises(mmnet.MmnetError, match="known_types needs type_column"):
        mmnet.experiment(full, runs=1, epochs=1, known_types=[1])


def test_cli_scores_equal_python_scores(model_dir, splits, cli, tmp_path):
    """`mmnet score` and `Model.score` on the same model and rows agree to 1e-6 (they are the
    same engine; in practice bit-equal)."""
    _, _, d = splits
    out = tmp_path / "scored.parquet"
    subprocess.run([cli, "score", "--model", str(model_dir), "--input", str(d / "test.parquet"),
                    "--output", str(out)], check=True, capture_output=True)
    cli_scores = pq.read_table(out).column("mmnet_score").to_numpy()
    py = mmnet.Model.load(model_dir).score(d / "test.parquet").column("mmnet_score").to_numpy()
    assert np.max(np.abs(cli_scores - py)) <= 1e-6


def test_cli_trained_model_loads_in_python(splits, cli, tmp_path):
    _, _, d = splits
    m = tmp_path / "cli-model"
    subprocess.run([cli, "train", "--data", str(d / "train.parquet"), "--memory-size", "8",
                    "--epochs", "2", "--score", "mse", "--quiet", "--out", str(m)],
                   check=True, capture_output=True)
    model = mmnet.Model.load(m)
    manifest = json.loads((m / "manifest.json").read_text())
    assert model.digest == manifest["weights"]["sha256"]
    assert model.score_name == "mse"
    out = tmp_path / "s.csv"
    subprocess.run([cli, "score", "--model", str(m), "--input", str(d / "test.parquet"),
                    "--output", str(out)], check=True, capture_output=True)
    import pyarrow.csv as pacsv
    cli_scores = pacsv.read_csv(out).column("mmnet_score").to_numpy()
    py = model.score(d / "test.parquet").column("mmnet_score").to_numpy()
    np.testing.assert_allclose(py, cli_scores, rtol=1e-6, atol=1e-6)


def test_metrics_are_mmnet_cores():
    """The metrics `mmnet eval` reports: ties count one half; AUC-PR as scikit-learn's."""
    assert mmnet.auc_roc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert mmnet.auc_roc([0.5, 0.5], [0, 1]) == 0.5
    assert abs(mmnet.average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 5 / 6) < 1e-12
    assert mmnet.auc_roc([0.1, 0.2], [0, 0]) is None
    with pytest.raises(ValueError, match="2 scores but 3 labels"):
        mmnet.auc_roc([0.1, 0.2], [0, 1, 1])
