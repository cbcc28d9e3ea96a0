#!/usr/bin/env bash
# make peers: DevNet, DeepSAD, DeepSVDD (deepod) and IsolationForest (pyod) on exactly the splits
# `mmnet experiment` trains on (same seeds), one JSON per dataset under OUT.
#   RUNS (default 10), NSLKDD_RUNS (default 3: the deep peers take minutes per run there),
#   EPOCHS for DevNet/DeepSAD/DeepSVDD (default 100, deepod's default), UNKNOWN_RUNS (default
#   10), UNSW_RUNS (default 5) and UNSW_KNOWN (default "3 4 6") as in experiment.sh,
#   KEEP=1 to skip datasets whose JSON exists, PEERS_ONLY="name ..." to run only those
#   (names as in the JSON files: spambase, annthyroid-known1, unsw-known3, ...).
set -euo pipefail
MMNET=${1:-target/release/mmnet}
DATA=${2:-../shared/data}
OUT=${3:-benches/results/accuracy}
RUNS=${RUNS:-10}
NSLKDD_RUNS=${NSLKDD_RUNS:-3}
EPOCHS=${EPOCHS:-100}
PY=.tools/peers-venv/bin/python
bash scripts/install-peers.sh
mkdir -p "$OUT" out/splits
peers() { # name runs file [extra args...]
  local name=$1 runs=$2 file=$3; shift 3
  if [ ! -f "$DATA/$file" ]; then echo "skip $name: $DATA/$file not found"; return; fi
  if [ "${KEEP:-0}" = 1 ] && [ -f "$OUT/peers-$name.json" ]; then echo "keep peers $name"; return; fi
  if [ -n "${PEERS_ONLY:-}" ]; then case " $PEERS_ONLY " in *" $name "*) ;; *) return;; esac; fi
  echo "== peers $name"
  "$MMNET" experiment --data "$DATA/$file" --runs "$runs" --export-splits "out/splits/$name" \
    --export-only --quiet "$@" >/dev/null
  "$PY" benches/peers.py "out/splits/$name" "$OUT/peers-$name.json" --runs "$runs" --epochs "$EPOCHS"
}
peers spambase "$RUNS" spambase.npz
peers arrhythmia "$RUNS" arrhythmia.npz
peers annthyroid "$RUNS" annthyroid_typed.npz --type-column anomaly_type
for t in 1 2; do
  peers "annthyroid-known$t" "${UNKNOWN_RUNS:-10}" annthyroid_typed.npz --type-column anomaly_type --known-type "$t"
done
for t in ${UNSW_KNOWN:-3 4 6}; do
  peers "unsw-known$t" "${UNSW_RUNS:-5}" unsw_nb15_typed.parquet --type-column anomaly_type --known-type "$t"
done
if [ "$NSLKDD_RUNS" -gt 0 ]; then peers nslkdd "$NSLKDD_RUNS" nslkdd.parquet; fi
peers unsw "${UNSW_RUNS:-5}" unsw_nb15_typed.parquet --type-column anomaly_type
