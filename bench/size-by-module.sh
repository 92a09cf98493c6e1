#!/usr/bin/env bash
# Where the bytes of the aarch64 release binary go, by pinclaw module:
#
#   bash bench/size-by-module.sh            # builds, then prints the table
#   bash bench/size-by-module.sh BINARY     # an unstripped binary built already
#
# Builds the aarch64 musl release the way cross/release.sh does (same flags: build-std, no
# unwind tables; keep them in step)
# but keeps the symbols (CARGO_PROFILE_RELEASE_STRIP=false, in its own target dir), then
# sums `nm --print-size` over the symbols whose demangled name contains a module path.
# A symbol counts for every module it names (`drop_in_place<pinclaw::bridge::X>` is the
# bridge's); code LTO inlined into a caller counts for the caller, so the figures are an
# estimate of what a module adds, not an exact removal cost. The dashboard's files are
# embedded pre-gzipped without a symbol of their own: the last line adds up web/ gzipped
# as build.rs does it (gzip -9).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=aarch64-unknown-linux-musl
MODULES=${PINCLAW_SIZE_MODULES:-"pinclaw::mqtt pinclaw::bridge pinclaw::home_assistant pinclaw::automation pinclaw::doctor pinclaw::gateway::web pinclaw::channel pinclaw::store pinclaw::agent pinclaw::provider pinclaw::board pinclaw::cli pinclaw::gateway"}

bin=${1:-}
if [ -z "$bin" ]; then
  dir=$REPO/target/size-by-module
  (cd "$REPO" && RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$dir \
    cargo build --release --locked --target $TARGET \
      -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
      --config "target.$TARGET.rustflags=[\"-C\", \"force-unwind-tables=no\"]" --bin pinclaw)
  bin=$dir/$TARGET/release/pinclaw
fi
NM=$(command -v aarch64-linux-gnu-nm || command -v nm)
STRIP=$(command -v aarch64-linux-gnu-strip || command -v strip)
syms=$(mktemp)
stripped=$(mktemp)
trap 'rm -f "$syms" "$stripped"' EXIT
"$NM" --print-size --radix=d --demangle "$bin" | awk 'NF >= 4 { print }' >"$syms"
"$STRIP" --strip-all -o "$stripped" "$bin"
total=$(stat -c %s "$stripped")
printf '%-26s %10s %7s\n' module bytes share
for m in $MODULES; do
  awk -v m="$m" '
    { name = $4; for (i = 5; i <= NF; i++) name = name " " $i }
    index(name, m "::") { sum += $2 + 0 }
    END { printf "%d\n", sum }' "$syms" |
    while read -r bytes; do
      printf '%-26s %10d %6.1f%%\n' "$m" "$bytes" "$(echo "$bytes * 100 / $total" | bc -l)"
    done
done
web=0
for f in "$REPO"/web/*; do web=$((web + $(gzip -9 -c "$f" | wc -c))); done
printf '%-26s %10d %6.1f%%\n' "web/ (gzipped, embedded)" "$web" "$(echo "$web * 100 / $total" | bc -l)"
printf '%-26s %10d\n' "stripped binary" "$total"
