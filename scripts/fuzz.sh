#!/usr/bin/env bash
# make fuzz: every fuzz target under AFL++ (coverage-guided, afl.rs on the stable
# toolchain) for SECONDS each, one after the other (2 cores: one fuzzer at a time).
# Crashes and hangs are copied to fuzz/regressions/<target>/, which `cargo test` replays;
# the exit status is non-zero if any were found. Prints executions per target.
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
AFL_VERSION=0.18.2
ROOT=$PWD/.tools/cargo-afl
export PATH="$ROOT/bin:$PATH"
if ! cargo afl --version 2>/dev/null | grep -q "$AFL_VERSION"; then
  # Its build script compiles AFL++ (a C compiler and make; no LLVM plugins, no nightly).
  cargo install --locked --quiet --root "$ROOT" cargo-afl --version "$AFL_VERSION"
  cargo afl config --build >/dev/null 2>&1 || true
fi
OUT=target/afl
SEEDS=$OUT/seeds
cargo run --quiet -p mmnet-fuzz --example write_seeds -- "$SEEDS"
# The harness resolves the main workspace's locked versions.
[[ -f fuzz/Cargo.lock ]] || cp Cargo.lock fuzz/Cargo.lock
(cd fuzz && CARGO_TARGET_DIR=../$OUT/build cargo afl build --release --quiet)
BIN=$OUT/build/release/fuzz_target
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(ls "$SEEDS")
fi
found=0
mkdir -p "$OUT/out"
printf '%-16s %10s %10s %8s %8s %7s %7s\n' target seconds execs exec/s corpus crashes hangs | tee "$OUT/summary.txt"
for t in "${targets[@]}"; do
  rm -rf "$OUT/out/$t"
  # -c -: no CmpLog binary (that needs the LLVM plugins); -m 2048: an allocation beyond
  # 2 GiB is a crash (unbounded allocation); -t 2000: an input taking 2 s is a hang.
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    AFL_NO_AFFINITY=1 MMNET_FUZZ_TARGET=$t \
    cargo afl fuzz -c - -m 2048 -t 2000 -V "$SECS" -i "$SEEDS/$t" -o "$OUT/out/$t" \
    -- "$BIN" >"$OUT/$t.log" 2>&1 || true
  stats=$OUT/out/$t/default/fuzzer_stats
  if [[ ! -f $stats ]]; then
    echo "$t: afl-fuzz did not run; see $OUT/$t.log" >&2
    tail -20 "$OUT/$t.log" >&2
    exit 1
  fi
  get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  printf '%-16s %10s %10s %8s %8s %7s %7s\n' "$t" "$(get run_time)" "$(get execs_done)" \
    "$(get execs_per_sec)" "$(get corpus_count)" "$(get saved_crashes)" "$(get saved_hangs)" \
    | tee -a "$OUT/summary.txt"
  for kind in crashes hangs; do
    for f in "$OUT/out/$t/default/$kind"/id:*; do
      [[ -e $f ]] || continue
      cp "$f" "fuzz/regressions/$t/afl-$kind-$(sha256sum "$f" | cut -c1-16)"
      found=1
    done
  done
done
if ((found)); then
  echo "fuzz: new crashes or hangs copied to fuzz/regressions/ (cargo test -p mmnet-fuzz replays them)" >&2
  exit 1
fi
