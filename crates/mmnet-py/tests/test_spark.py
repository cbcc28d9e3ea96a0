"""mmnet.spark.score on a local Spark (local[2]): >= 100,000 rows in several partitions,
scores equal to scoring the same rows directly."""

import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

import mmnet

pyspark = pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime (scripts/install-python.sh installs one)")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    s = (
        SparkSession.builder.master("local[2]")
        .appName("mmnet-test")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "8192")
        .getOrCreate()
    )
    print(f"spark started in {time.perf_counter() - t0:.1f} s")
    yield s
    s.stop()


def _rows(test, n):
    """`n` rows cycled from the test split, with an id to join on."""
    reps = -(-n // test.num_rows)
    idx = np.tile(np.arange(test.num_rows), reps)[:n]
    t = test.take(pa.array(idx))
    return t.append_column("row_id", pa.array(np.arange(n, dtype=np.int64)))


def test_spark_scores_equal_direct_scoring(spark, splits, model_dir):
    from mmnet.spark import score

    _, test, _ = splits
    table = _rows(test, 100_000)
    df = spark.createDataFrame(table.to_pandas()).repartition(4)
    assert df.rdd.getNumPartitions() == 4
    t0 = time.perf_counter()
    scored = score(df, model_dir)
    got = scored.select("row_id", "mmnet_score", "is_anomaly").toPandas().sort_values("row_id")
    print(f"spark scored {len(got)} rows in {time.perf_counter() - t0:.1f} s")
    assert len(got) == 100_000
    direct = mmnet.Model.load(model_dir).score(table)
    np.testing.assert_array_equal(
        got["mmnet_score"].to_numpy(np.float32), direct.column("mmnet_score").to_numpy()
    )
    np.testing.assert_array_equal(
        got["is_anomaly"].to_numpy(bool), direct.column("is_anomaly").to_numpy(zero_copy_only=False)
    )
    assert scored.columns == df.columns + list(mmnet.SCORE_COLUMNS)


def test_spark_column_mapping_shipping_and_errors(spark, splits, model_dir):
    from mmnet.spark import score

    _, test, _ = splits
    model = mmnet.Model.load(model_dir)
    table = _rows(test, 2_000)
    renamed = table.rename_columns([f"c_{n}" if n in model.features else n for n in table.column_names])
    df = spark.createDataFrame(renamed.to_pandas()).repartition(2)
    mapping = {f: f"c_{f}" for f in model.features}
    got = score(df, model_dir, columns=mapping, ship=True).select("row_id", "mmnet_score")
    got = got.toPandas().sort_values("row_id")["mmnet_score"].to_numpy(np.float32)
    np.testing.assert_array_equal(got, model.score(table).column("mmnet_score").to_numpy())
    with pytest.raises(ValueError, match=f"column `{model.features[0]}` not found"):
        score(df, model_dir)
    with pytest.raises(mmnet.MmnetError, match="manifest"):
        score(df, os.path.dirname(model_dir))
