"""Scoring a Spark DataFrame with mmnet on every executor, through ``DataFrame.mapInArrow``.

>>> from mmnet.spark import score
>>> scored = score(df, "/shared/models/mmnet-v3")      # df + mmnet_score, s_sum, s_kl, is_anomaly

Each Python worker loads the model once (cached per process, keyed by path and digest) and
scores its partitions' Arrow batches with the native engine; no row passes through Python
objects. The model directory must be readable at the same path on every executor (a shared
filesystem), or shipped with the job: ``score(df, path, ship=True)`` adds it with
``SparkContext.addFile`` and workers read their local copy.

Spark settings a user needs: ``PYSPARK_PYTHON`` pointing at a Python with ``mmnet`` and
``pyarrow`` installed on every executor; ``spark.sql.execution.arrow.maxRecordsPerBatch``
(default 10,000) sets the batch size the engine sees (larger batches score faster, 10k-100k).
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

from . import Model, SCORE_COLUMNS

# (path, digest) -> Model, per Python worker process. Never filled at import: Spark's worker
# daemon forks, and a model (or a thread pool) made before the fork would be shared badly.
_MODELS: Dict[Tuple[str, str], Model] = {}


def _worker_model(path: str, shipped: Optional[str], digest: str) -> Model:
    key = (path, digest)
    model = _MODELS.get(key)
    if model is None:
        local = path
        if shipped is not None:
            from pyspark import SparkFiles

            local = SparkFiles.get(shipped)
        model = Model.load(local)
        if model.digest != digest:
            # The directory changed between planning and running: never mix model versions.
            raise RuntimeError(
                f"the model at {local} has digest {model.digest}, but the job was planned "
                f"with {digest}; refusing to score with a different model"
            )
        _MODELS[key] = model
    return model


def score(
    df,
    model_dir: Union[str, "os.PathLike[str]"],
    columns: Optional[Union[Sequence[str], Dict[str, str]]] = None,
    *,
    threshold: Optional[float] = None,
    ship: bool = False,
):
    """``df`` with the score columns ``mmnet_score`` (float), ``s_sum``, ``s_kl`` (float)
    and ``is_anomaly`` (boolean) appended; NULL where a feature is null or not finite.

    ``columns`` maps the model's features to ``df``'s columns when the names differ: a list
    in ``Model.features`` order, or a dict ``{feature: column}``. The model is loaded on the
    driver first, so a missing column or a bad model fails before any task runs.
    """
    from pyspark.sql.types import BooleanType, FloatType, StructField, StructType

    path = os.path.abspath(os.fspath(model_dir))
    model = Model.load(path)
    feats = list(model.features)
    if columns is None:
        mapping = {f: f for f in feats}
    elif isinstance(columns, dict):
        mapping = {f: columns.get(f, f) for f in feats}
    else:
        if len(columns) != len(feats):
            raise ValueError(f"columns names {len(columns)} columns, the model has {len(feats)} features")
        mapping = dict(zip(feats, columns))
    missing = [c for c in mapping.values() if c not in df.columns]
    if missing:
        raise ValueError(
            f"column `{missing[0]}` not found in the DataFrame (the model needs: "
            f"{', '.join(mapping.values())})"
        )
    clash = [c for c in SCORE_COLUMNS if c in df.columns]
    if clash:
        raise ValueError(f"the DataFrame already has a column `{clash[0]}`; rename it first")
    shipped = None
    if ship:
        df.sparkSession.sparkContext.addFile(path, recursive=True)
        shipped = os.path.basename(path.rstrip(os.sep))
    digest = model.digest
    renames = {col: feat for feat, col in mapping.items() if col != feat}
    out_schema = StructType(
        list(df.schema.fields)
        + [
            StructField("mmnet_score", FloatType(), True),
            StructField("s_sum", FloatType(), True),
            StructField("s_kl", FloatType(), True),
            StructField("is_anomaly", BooleanType(), True),
        ]
    )

    def score_partition(batches):
        import pyarrow as pa

        m = _worker_model(path, shipped, digest)
        for batch in batches:
            view = batch
            if renames:
                # Features under the model's names, zero-copy (the same column arrays).
                names = [renames.get(n, n) for n in batch.schema.names]
                view = pa.RecordBatch.from_arrays(batch.columns, names=names)
            scores = m.score(view, threshold=threshold)
            cols = list(batch.columns) + [scores.column(c).combine_chunks() for c in SCORE_COLUMNS]
            yield pa.RecordBatch.from_arrays(cols, schema=pa.schema(
                list(batch.schema) + list(scores.schema)))

    return df.mapInArrow(score_partition, out_schema)
