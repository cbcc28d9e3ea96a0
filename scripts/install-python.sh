#!/usr/bin/env bash
# Python environment for the mmnet Python package's tests (make test-python) and the Python
# part of the demo: a venv with maturin, pytest, pyarrow, numpy, pandas, polars, pyspark
# (a 456 MB sdist that pip builds once, ~2 min), and Java 17 for the local Spark test
# (Debian's openjdk-17-jre-headless, installed with apt when `java` is missing and we are
# root). Idempotent: a complete environment is left alone. The mmnet wheel itself is
# (re)built by `make python` (maturin, incremental after the first ~5 min build).
set -euo pipefail
VENV=${1:-.tools/py-venv}
PY=${PYTHON:-python3}
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Java 17 for the Spark test (openjdk-17-jre-headless)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "warning: no java on PATH; the Spark test will be skipped (install a JRE 17)" >&2
  fi
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import maturin, pytest, pyarrow, numpy, pandas, polars, pyspark" 2>/dev/null; then
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "maturin>=1.16,<1.17" "pytest>=7" "pyarrow>=14" "numpy>=1.22" "pandas>=1.5,<3" "polars>=1" "pyspark>=3.5"
"$VENV/bin/python" -c "import pyspark, pyarrow, polars, pandas; print('python env: pyspark', pyspark.__version__, 'pyarrow', pyarrow.__version__, 'polars', polars.__version__, 'pandas', pandas.__version__)"
