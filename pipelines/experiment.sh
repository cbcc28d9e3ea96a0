#!/usr/bin/env bash
# make experiment: the detection-quality protocol on each shared dataset that is present,
# with the paper's memory sizes (Sec. IV-A-3). Writes one JSON (and the console table) per
# experiment under OUT; benches/accuracy_report.py turns them into docs/ACCURACY.md.
#   RUNS          runs per dataset (default 10)
#   UNKNOWN_RUNS  runs per known anomaly type on annthyroid (default 10)
#   UNSW_RUNS     runs per known attack category on unsw_nb15 (default 5; ~4 min each)
#   UNSW_KNOWN    attack categories known in turn on unsw_nb15 (default "3 4 6": DoS,
#                 Exploits, Generic; `mmnet experiment --known-type all` runs every one)
#   NSLKDD_RUNS   runs on nslkdd (default RUNS; ~3 min each)
#   ABLATION_RUNS runs per masking strategy on nslkdd (default 3; a run takes ~3 min)
#   ONLY          space-separated subset of: main minmax unknown ablation (default all)
#   KEEP=1        skip experiments whose JSON already exists (resume an interrupted run)
set -euo pipefail
MMNET=${1:-target/release/mmnet}
DATA=${2:-../shared/data}
OUT=${3:-benches/results/accuracy}
RUNS=${RUNS:-10}
UNKNOWN_RUNS=${UNKNOWN_RUNS:-10}
UNSW_RUNS=${UNSW_RUNS:-5}
UNSW_KNOWN=${UNSW_KNOWN:-3 4 6}
ABLATION_RUNS=${ABLATION_RUNS:-3}
NSLKDD_RUNS=${NSLKDD_RUNS:-$RUNS}
ONLY=${ONLY:-main minmax unknown ablation}
mkdir -p "$OUT"
run() { # name runs file memory [extra args...]
  local name=$1 runs=$2 file=$3 mem=$4; shift 4
  if [ ! -f "$DATA/$file" ]; then echo "skip $name: $DATA/$file not found"; return; fi
  if [ "${KEEP:-0}" = 1 ] && [ -f "$OUT/$name.json" ]; then echo "keep $name: $OUT/$name.json exists"; return; fi
  echo "== $name"
  "$MMNET" experiment --data "$DATA/$file" --runs "$runs" --memory-size "$mem" --quiet \
    --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
}
want() { case " $ONLY " in *" $1 "*) return 0;; *) return 1;; esac; }
if want main; then
  run spambase "$RUNS" spambase.npz 32
  run arrhythmia "$RUNS" arrhythmia.npz 128
  run annthyroid "$RUNS" annthyroid_typed.npz 128 --type-column anomaly_type
fi
if want minmax; then
  # The literal recipe beside the default: plain min-max scaling.
  run spambase-minmax "$RUNS" spambase.npz 32 --scaling minmax
  run arrhythmia-minmax "$RUNS" arrhythmia.npz 128 --scaling minmax
  run annthyroid-minmax "$RUNS" annthyroid_typed.npz 128 --exclude anomaly_type --scaling minmax
fi
if want unknown; then
  # Paper Sec. IV-E: one anomaly type labeled, the test set holds normals and the other type.
  for t in 1 2; do
    run "annthyroid-known$t" "$UNKNOWN_RUNS" annthyroid_typed.npz 128 \
      --type-column anomaly_type --known-type "$t"
  done
  # One attack category of UNSW-NB15 labeled; the test set holds normal traffic and the
  # other eight categories, each reported on its own.
  for t in $UNSW_KNOWN; do
    run "unsw-known$t" "$UNSW_RUNS" unsw_nb15_typed.parquet 64 \
      --type-column anomaly_type --known-type "$t"
  done
fi
if want main; then
  run nslkdd "$NSLKDD_RUNS" nslkdd.parquet 64
  # Every attack category labeled (30 labeled attacks drawn from all nine).
  run unsw "$UNSW_RUNS" unsw_nb15_typed.parquet 64 --type-column anomaly_type
fi
# shuttle_typed is not in the accuracy tables; the bf16 comparison (make accuracy-bf16) runs it.
if want shuttle; then
  run shuttle "$RUNS" shuttle_typed.npz 64 --type-column anomaly_type
fi
if want ablation; then
  # Paper Table III on nslkdd: soft mask (the nslkdd run above, first ABLATION_RUNS runs),
  # hard mask, no mask.
  run nslkdd-hard "$ABLATION_RUNS" nslkdd.parquet 64 --mask hard
  run nslkdd-none "$ABLATION_RUNS" nslkdd.parquet 64 --mask none
fi
