#!/usr/bin/env bash
# Fuzz smoke: build every cargo-fuzz target once, then run each for a few
# seconds from its committed seeds (fuzz/seeds/<target>, read only) and the
# local corpus (fuzz/corpus/<target>, not committed, grows between runs).
# Prints the executions each target survived; exits non-zero if any target
# crashed, hung or ran out of memory (libFuzzer keeps the input in
# fuzz/artifacts/<target>/).
#
#   fuzz/smoke.sh                                # every target, 3 s each
#   FUZZ_SECONDS=180 nice -n 10 fuzz/smoke.sh    # the long run: 3 min each
#   FUZZ_SECONDS=60 fuzz/smoke.sh device_auth    # some targets only
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler
# (libFuzzer is C++). Works on stable Rust: see fuzz/README.md.
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$FUZZ_DIR")
EACH=${FUZZ_SECONDS:-3}
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, ...); this lets
# a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
cd "$REPO"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
fi
# The same flags for build and run, or `run` would rebuild.
fuzz_flags=(--fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_DIR/target")

echo "+ cargo fuzz build (${#targets[@]} targets)"
t0=$SECONDS
cargo fuzz build "${fuzz_flags[@]}"
echo "fuzz build: $((SECONDS - t0)) s"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
total=0
for t in "${targets[@]}"; do
  mkdir -p "$FUZZ_DIR/corpus/$t"
  seeds=()
  [ -d "$FUZZ_DIR/seeds/$t" ] && seeds=("$FUZZ_DIR/seeds/$t")
  log=$logs/$t.log
  status=ok
  if ! cargo fuzz run "${fuzz_flags[@]}" "$t" "$FUZZ_DIR/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$EACH" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    status=FAILED
    failed+=("$t")
  fi
  # libFuzzer's final stats; failing that, its last `#N ...` status line.
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
  execs=${execs:-0}
  total=$((total + execs))
  printf '%-16s %-6s %12s executions in %s s\n' "$t" "$status" "$execs" "$EACH"
  if [ "$status" != ok ]; then
    echo "---- $t: what failed (full log: rerun the target by hand) ----"
    # A Rust panic (its message is on the next line), or libFuzzer's verdict.
    grep -A 2 -m 1 'panicked at' "$log" || true
    grep -E 'ERROR: (libFuzzer|AddressSanitizer)|^SUMMARY|Test unit written' "$log" || tail -n 30 "$log"
    echo "----"
  fi
done

echo "fuzz smoke: ${#targets[@]} targets, $total executions, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
((${#failed[@]} == 0))
