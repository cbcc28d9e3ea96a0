"""mmnet: MMNet (Masked Memory Network) anomaly scoring, the same engine as the ``mmnet`` CLI.

Data is anything that speaks the Arrow PyCapsule interface (a pyarrow Table or RecordBatch,
a polars or pandas DataFrame) or a path to a .parquet, .csv or .npz file. Arrow data is
read in place: float32 feature columns are never copied, other numeric types are cast once.

>>> model = mmnet.train(df, label_column="label", epochs=100)
>>> scores = model.score(df)                 # pyarrow.Table: mmnet_score, s_sum, s_kl, is_anomaly
>>> model.decision_function(X)               # numpy, PyOD style (higher = more anomalous)
>>> model.save("model/"); mmnet.Model.load("model/")
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from . import _mmnet
from ._mmnet import MmnetError, __version__

__all__ = ["Model", "MmnetError", "train", "experiment", "auc_roc", "average_precision",
           "__version__"]


def auc_roc(scores: Any, labels: Any) -> Optional[float]:
    """AUC-ROC (ties averaged) of scores against 0/1 labels: mmnet-core's metric, the one
    ``mmnet eval`` and ``mmnet experiment`` report. ``None`` when one class is absent."""
    return _mmnet.auc_roc(np.asarray(scores, dtype=np.float32).tolist(),
                          (np.asarray(labels) == 1).tolist())


def average_precision(scores: Any, labels: Any) -> Optional[float]:
    """Average precision (AUC-PR as scikit-learn defines it), as ``mmnet eval`` reports it."""
    return _mmnet.average_precision(np.asarray(scores, dtype=np.float32).tolist(),
                                    (np.asarray(labels) == 1).tolist())

PathLike = Union[str, "os.PathLike[str]"]

#: Score columns of :meth:`Model.score`, in order.
SCORE_COLUMNS = ("mmnet_score", "s_sum", "s_kl", "is_anomaly")


def _data(data: Any) -> Any:
    """A path or an object the native module can read through the Arrow PyCapsule interface.

    pandas DataFrames go through ``pyarrow.Table.from_pandas(preserve_index=False)`` (numeric
    columns shared where pandas allows): pandas' own capsule export carries a non-default
    index as a column `__index_level_0__`, which would become a feature (row numbers!).
    """
    if isinstance(data, (str, os.PathLike)):
        return data
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return data
    if isinstance(data, np.ndarray):
        raise TypeError(
            "a bare numpy array has no column names; use Model.decision_function(X) / "
            "predict(X), which take features in Model.features order, or a DataFrame"
        )
    return data  # the native module names the type it cannot read


def _options(
    memory_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    score: str,
    lambda_: float,
    scaling: str,
    mask: str,
    threshold_quantile: float,
    seed: int,
    ensemble: Union[str, int],
    supervised: bool,
) -> dict:
    return dict(
        memory_size=memory_size,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        score=score,
        lambda_=lambda_,
        scaling=scaling,
        mask=mask,
        threshold_quantile=threshold_quantile,
        seed=seed,
        ensemble=str(ensemble),
        supervised=bool(supervised),
    )


class Model:
    """A trained MMNet model: the CLI's artifact (``manifest.json`` + ``weights.safetensors``)."""

    __slots__ = ("_native",)

    def __init__(self, native: "_mmnet.Model") -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike, precision: Optional[str] = None) -> "Model":
        """Loads a model directory (or its ``manifest.json``); a corrupt or foreign model is refused.

        ``precision`` ("f32" or "bf16") overrides the scoring precision stored in the manifest:
        bf16 products are faster where the CPU has AMX and move scores by about 1e-3.
        """
        return cls(_mmnet.Model.load(os.fspath(path), precision))

    @property
    def precision(self) -> str:
        """Arithmetic of the scoring products: ``"f32"`` or ``"bf16"``."""
        return self._native.precision

    def save(self, path: PathLike) -> None:
        """Writes the model to directory ``path`` (created if needed), readable by the CLI."""
        self._native.save(os.fspath(path))

    @property
    def features(self) -> list:
        """Feature columns the model reads, in order."""
        return self._native.features

    @property
    def threshold(self) -> float:
        """``is_anomaly`` is ``mmnet_score > threshold``."""
        return self._native.threshold

    @property
    def digest(self) -> str:
        """SHA-256 of the weights, as in the manifest and in every Kafka score record."""
        return self._native.digest

    @property
    def score_name(self) -> str:
        """The score reported as ``mmnet_score`` (chosen at training time)."""
        return self._native.score_name

    @property
    def manifest(self) -> dict:
        """The manifest, as ``manifest.json`` holds it."""
        return json.loads(self._native.manifest_json)

    def score(
        self, data: Any, *, threshold: Optional[float] = None, append: bool = False
    ) -> pa.Table:
        """Scores every row: a ``pyarrow.Table`` with ``mmnet_score``, ``s_sum``, ``s_kl``,
        ``is_anomaly`` (after the input's own columns with ``append=True``).

        Features are matched by name (``Model.features``); a missing one raises
        :class:`MmnetError` naming it. Rows with a null, NaN or infinite feature get NULL
        scores, as in SQL. The GIL is released while scoring.
        """
        return self._native.score(_data(data), threshold, append)

    def decision_function(self, X: Any) -> np.ndarray:
        """PyOD-style anomaly scores (higher = more anomalous) of a 2-D array whose columns
        are ``Model.features`` in order; rows with a NaN or infinity score NaN."""
        return self._score_matrix(X).column("mmnet_score").to_numpy(zero_copy_only=False)

    def predict(self, X: Any) -> np.ndarray:
        """PyOD-style labels of a 2-D array (1 = anomaly, 0 = normal). Every row must be
        complete: a NaN or infinity raises ``ValueError`` naming the row."""
        t = self._score_matrix(X)
        flags = t.column("is_anomaly")
        if flags.null_count:
            row = int(np.flatnonzero(flags.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(
                f"row {row} has a missing or non-finite feature; predict needs complete rows "
                "(decision_function returns NaN for them)"
            )
        return flags.to_numpy(zero_copy_only=False).astype(np.int64)

    def explain(self, data: Any, row: int, *, top_memory: int = 5, top_features: int = 5) -> dict:
        """Why row ``row`` (0-based) of ``data`` scored as it did: the score, S_sum, S_KL,
        the MSE, the most attended memory items and the features with the largest share of
        the reconstruction error (as ``mmnet explain --json``)."""
        return json.loads(self._native.explain_json(_data(data), row, top_memory, top_features))

    def _score_matrix(self, X: Any) -> pa.Table:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(
                f"expected a 2-D array with {len(self.features)} columns (Model.features), "
                f"got shape {X.shape}"
            )
        # Column-major float32: each feature is one contiguous run that Arrow wraps in place.
        F = np.asfortranarray(X, dtype=np.float32)
        cols = [pa.array(F[:, j]) for j in range(F.shape[1])]
        return self.score(pa.Table.from_arrays(cols, names=list(self.features)))

    def __repr__(self) -> str:
        return repr(self._native)


def train(
    data: Any,
    *,
    label_column: str = "label",
    exclude: Iterable[str] = (),
    memory_size: int = 64,
    epochs: int = 200,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    seed: int = 0,
    score: str = "auto",
    lambda_: float = 0.1,
    scaling: str = "auto",
    mask: str = "soft",
    threshold_quantile: float = 0.99,
    ensemble: Union[str, int] = "auto",
    supervised: bool = True,
) -> Model:
    """Trains MMNet on ``data``: rows with ``label_column`` = 1 are the few labeled anomalies,
    every other row is unlabeled (mostly normal) traffic. Every other numeric column except
    ``exclude`` is a feature. Options are ``mmnet train``'s flags (``lambda_`` is
    ``--lambda``); ``score="auto"`` chooses the score on a validation split of the training
    data; ``ensemble`` is ``--ensemble`` (``"auto"``, or 1 to 16 networks averaged);
    ``supervised`` is ``--supervised on|off``. The GIL is released while training."""
    opts = _options(memory_size, epochs, batch_size, learning_rate, score, lambda_, scaling,
                    mask, threshold_quantile, seed, ensemble, supervised)
    return Model(_mmnet.train(_data(data), label_column, list(exclude), opts))


def experiment(
    data: Any,
    *,
    label_column: str = "label",
    exclude: Iterable[str] = (),
    runs: int = 10,
    labeled: int = 30,
    contamination: float = 0.02,
    type_column: Optional[str] = None,
    known_types: Optional[Sequence[int]] = None,
    memory_size: int = 64,
    epochs: int = 200,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    seed: int = 0,
    score: str = "auto",
    lambda_: float = 0.1,
    scaling: str = "auto",
    mask: str = "soft",
    threshold_quantile: float = 0.99,
    ensemble: Union[str, int] = "auto",
    supervised: bool = True,
) -> dict:
    """The paper's protocol on a fully labeled table (``label_column`` = true labels),
    ``runs`` times: the same report as ``mmnet experiment --json`` (per run and summary,
    AUC-ROC and AUC-PR of the default score and every variant). With ``known_types``, the
    known/unknown-type protocol: only those types of ``type_column`` are labeled, and the
    test set holds the other types, reported type by type."""
    opts = _options(memory_size, epochs, batch_size, learning_rate, score, lambda_, scaling,
                    mask, threshold_quantile, seed, ensemble, supervised)
    doc = _mmnet.experiment(
        _data(data), label_column, list(exclude), type_column,
        None if known_types is None else [int(k) for k in known_types],
        runs, labeled, contamination, opts,
    )
    return json.loads(doc)
