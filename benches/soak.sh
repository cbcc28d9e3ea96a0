#!/usr/bin/env bash
# make soak: a benchmark, not a test. Tansu + `mmnet produce --rate R` + `mmnet kafka` for
# MINUTES, sampling the operator's RSS and CPU, consumer lag, p99 batch latency and
# throughput every 10 s into OUT/soak.csv, then OUT/soak.png and OUT/summary.md.
#   usage: benches/soak.sh MMNET_BIN MINUTES RATE OUT
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/mmnet}
MINUTES=${2:-30}
RATE=${3:-4000}
OUT=${4:-out/soak}
PY=.tools/py-venv
if [[ ! -x $PY/bin/python ]]; then
  bash scripts/install-python.sh "$PY"
fi
"$PY/bin/python" -c 'import matplotlib' 2>/dev/null || "$PY/bin/pip" install -q matplotlib
mkdir -p "$OUT"
exec "$PY/bin/python" benches/soak.py --mmnet "$BIN" --minutes "$MINUTES" --rate "$RATE" --out "$OUT"
