#!/usr/bin/env bash
# make demo: the paper's protocol on the shipped Spambase data, end to end with the CLI.
#   1. hold out a stratified 20 % test split, keep 30 labeled anomalies (mmnet experiment --export-splits)
#   2. train on the unlabeled rows + the 30 labeled anomalies (mmnet train)
#   3. score the held-out rows to Parquet and list the top anomalies (mmnet score)
#   4. the same top rows with their true labels, in SQL (mmnet sql)
#   5. AUC-ROC / AUC-PR of every score variant on the held-out rows (mmnet eval)
#   6. start a Tansu broker, stream the held-out rows through the Kafka operator
#      (mmnet produce -> mmnet kafka -> score topic), read its metrics, stop it cleanly
set -euo pipefail
MMNET=${1:-target/release/mmnet}
OUT=${2:-out/demo}
DATA=data/spambase.parquet
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "split $DATA with the paper's protocol (seed 0)"
"$MMNET" experiment --data "$DATA" --runs 1 --seed 0 --export-splits "$OUT/splits" --export-only

step "train on D_u + 30 labeled anomalies (memory 32, as the paper uses for Spambase)"
"$MMNET" train --data "$OUT/splits/run0/train.parquet" --exclude true_label \
  --memory-size 32 --epochs 200 --seed 0 --out "$OUT/model"

step "score the held-out test rows"
"$MMNET" score --model "$OUT/model" --input "$OUT/splits/run0/test.parquet" \
  --output "$OUT/test_scored.parquet" --top 10

step "the same ranking in SQL, with the true labels beside it"
"$MMNET" sql --model "$OUT/model" --table test="$OUT/splits/run0/test.parquet" \
  "SELECT label AS true_label, mmnet_score(*) AS score, mmnet_s_sum(*) AS s_sum, mmnet_is_anomaly(*) AS flagged
   FROM test ORDER BY mmnet_score(*) DESC LIMIT 10"

step "evaluate on the held-out test rows"
"$MMNET" eval --model "$OUT/model" --data "$OUT/splits/run0/test.parquet"

step "stream the held-out rows through Kafka (Tansu broker, mmnet produce -> mmnet kafka)"
TANSU=${TANSU:-.tools/bin/tansu}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_get() { # host port path: a tiny HTTP GET without curl
  exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\n\r\n' "$3" >&3 && cat <&3; exec 3<&-
}
metric() { http_get 127.0.0.1 "$MPORT" /metrics | awk -v m="$1" '$1 == m {print $2}'; }
KPORT=$(free_port); MPORT=$(free_port); B=127.0.0.1:$KPORT
"$TANSU" broker --listener-url tcp://$B --advertised-listener-url tcp://$B \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 &
TANSU_PID=$!
OP_PID=
cleanup() { [[ -n $OP_PID ]] && kill "$OP_PID" 2>/dev/null; kill "$TANSU_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$KPORT) 2>/dev/null; do sleep 0.1; done
for t in telemetry scores telemetry-dlq; do
  "$TANSU" topic create --broker tcp://$B --partitions 3 $t >/dev/null
done
"$MMNET" kafka --config pipelines/kafka.toml --model "$OUT/model" --brokers $B \
  --metrics-listen 127.0.0.1:$MPORT 2>"$OUT/kafka.log" &
OP_PID=$!
"$MMNET" produce --data "$OUT/splits/run0/test.parquet" --brokers $B --topic telemetry
ROWS=$("$MMNET" sql --model "$OUT/model" --table t="$OUT/splits/run0/test.parquet" "SELECT count(*) AS n FROM t" \
  | awk '/^\| *[0-9]/ {print $2}')
for _ in $(seq 600); do
  [[ "$(metric mmnet_records_out_total 2>/dev/null)" == "$ROWS" ]] && break
  sleep 0.1
done
KAFKA_SCORED=$(metric mmnet_records_out_total); KAFKA_FLAGGED=$(metric mmnet_anomalies_total)
echo "operator metrics (http://127.0.0.1:$MPORT/metrics):"
http_get 127.0.0.1 "$MPORT" /metrics | grep -E '^mmnet_(messages_in|records_out|anomalies)_total |^mmnet_dead_letters_total\{reason="(invalid_json|missing_feature)"' || true
kill -TERM "$OP_PID"; wait "$OP_PID"; OP_PID=
tail -1 "$OUT/kafka.log"

step "summary"
echo "Parquet : $ROWS held-out rows scored to $OUT/test_scored.parquet"
echo "SQL     : top 10 of the same rows ranked with mmnet_score(*)"
echo "Kafka   : ${KAFKA_SCORED:-0} of $ROWS records scored from topic telemetry to topic scores, ${KAFKA_FLAGGED:-0} flagged as anomalies"
[[ "${KAFKA_SCORED:-0}" == "$ROWS" ]] || { echo "demo: the operator scored ${KAFKA_SCORED:-0} of $ROWS records" >&2; exit 1; }
printf '\nmodel: %s/model   scored rows: %s/test_scored.parquet\n' "$OUT" "$OUT"
