#!/usr/bin/env bash
# Release artifacts for every Raspberry Pi, into dist/ — the one command:
#
#   bash cross/release.sh
#
# | target                          | linking                | boards (OS)                                     | dist/                          |
# |---------------------------------|------------------------|-------------------------------------------------|--------------------------------|
# | aarch64-unknown-linux-musl      | static (musl)          | Pi 3/4/5, Zero 2 W, 400/500 (64-bit OS)          | pinclaw_V_arm64.deb, tarball   |
# | arm-unknown-linux-musleabihf    | static (musl), ARMv6   | every Pi on a 32-bit OS ("armhf"): Pi 1, Zero, Zero W too | pinclaw_V_armhf.deb, tarball |
# | armv7-unknown-linux-gnueabihf   | glibc >= 2.31, dynamic | Pi 2/3/4, Zero 2 W on other 32-bit distributions | tarball                        |
#
# Every binary runs on Raspberry Pi OS Bullseye (glibc 2.31) and newer. Why these choices,
# with the measured sizes and speeds: cross/README.md. Then dist/SHA256SUMS, and
# cross/check-binaries.sh checks the binaries (sizes and the aarch64 budget, static or glibc
# floor, ARMv6-only code).
#
# Needs (bash .ci/run installs them; see cross/README.md): rustup targets
# aarch64-unknown-linux-musl and armv7-unknown-linux-gnueabihf and the rust-src component,
# gcc-aarch64-linux-gnu, binutils-arm-linux-gnueabihf, qemu-user, dpkg-dev, and
# `pip install ziglang cargo-zigbuild`.
#
# The targets build at the same time, each in its own target dir (target/dist/<target>):
# most of a release build is its one-threaded LTO, so on 2 cores three builds in
# parallel take about half the time of one after another.
#
# Env: PINCLAW_RELEASE_TARGETS (a subset, e.g. "aarch64-unknown-linux-musl"),
# PINCLAW_RELEASE_SERIAL=1 (one build at a time), PINCLAW_DIST_DIR (default dist/),
# CARGO_TARGET_DIR (the parent of dist/<target>; default target/).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${PINCLAW_DIST_DIR:-$REPO/dist}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}/dist
VERSION=$(bash "$REPO/cross/version.sh")
DEB_VERSION=$(bash "$REPO/cross/version.sh" deb)
ALL_TARGETS="aarch64-unknown-linux-musl arm-unknown-linux-musleabihf armv7-unknown-linux-gnueabihf"
TARGETS=${PINCLAW_RELEASE_TARGETS:-$ALL_TARGETS}
cd "$REPO"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

run() { printf '+ %s\n' "$*"; "$@"; }
need() { command -v "$1" >/dev/null || { echo "release.sh: $1 not found ($2)" >&2; exit 1; }; }
zigbuild() {
  need cargo-zigbuild "pip install ziglang cargo-zigbuild"
  python3 -c 'import ziglang' 2>/dev/null || need zig "pip install ziglang"
  run cargo zigbuild "$@"
}

# The standard library built with the release profile, for size: -Zbuild-std compiles it
# from the rust-src component (RUSTC_BOOTSTRAP=1 lets a stable toolchain take the flag, as
# the fuzz build does) with `optimize_for_size` (core's smaller sort and formatting code) and
# without std's `backtrace` feature (its symbolizer, ~200 KB: with panic = "abort" a panic
# prints its message and location and nothing unwinds). About 330 KB off the aarch64 binary.
BUILD_STD=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)

# No unwind tables (.eh_frame: ~590 KB of the aarch64 binary). With panic = "abort" nothing
# unwinds, and the musl builds leave the unwinder out (src/no_backtrace.rs), so the tables
# had no reader. Only for these release builds: tests unwind. A --config array adds to the
# target's rustflags in .cargo/config.toml (the ARMv6 build's link-self-contained=no stays).
#
# build TARGET: one release binary, left at target/TARGET/release/pinclaw.
build() {
  local flags=(--config "target.$1.rustflags=[\"-C\", \"force-unwind-tables=no\"]")
  case $1 in
    aarch64-unknown-linux-musl)
      # Debian's aarch64-linux-gnu-gcc links it (.cargo/config.toml) against the musl
      # that comes with the rustup target: the GNU linker honours build.rs's
      # --no-eh-frame-hdr, which zig's linker does not (+157 KB, over the budget).
      need aarch64-linux-gnu-gcc "apt-get install gcc-aarch64-linux-gnu"
      RUSTC_BOOTSTRAP=1 run cargo build --release --locked --target "$1" "${BUILD_STD[@]}" "${flags[@]}" --bin pinclaw
      ;;
    arm-unknown-linux-musleabihf)
      # ARMv6: rustup may not offer this target's standard library (it does not here),
      # and Debian's armhf gcc and libraries are ARMv7. So the standard library is built
      # from rust-src (above), zig compiles the C code (ring) for ARMv6 and links its own
      # ARMv6 musl (link-self-contained=no in .cargo/config.toml). Symbols are kept for
      # the ARMv6 check (objdump needs the ARM/Thumb/data mapping symbols), then stripped.
      RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_STRIP=false \
        zigbuild --release --locked --target "$1" "${BUILD_STD[@]}" "${flags[@]}" --bin pinclaw
      ;;
    armv7-unknown-linux-gnueabihf)
      # glibc 2.31 (Bullseye) through zig's versioned glibc stubs; Debian 12's own libc
      # would make the floor 2.34.
      zigbuild --release --locked --target "$1.2.31" "${flags[@]}" --bin pinclaw
      ;;
    *)
      echo "release.sh: unknown target $1 (known: $ALL_TARGETS)" >&2
      exit 2
      ;;
  esac
}

deb_arch() {
  case $1 in
    aarch64-unknown-linux-musl) echo arm64 ;;
    arm-unknown-linux-musleabihf) echo armhf ;;
    *) echo - ;;
  esac
}

# build_one TARGET: the build in target/dist/TARGET, the binary in dist/bin/TARGET/.
build_one() {
  local target=$1 start=$SECONDS out src
  CARGO_TARGET_DIR=$TARGET_DIR/$target build "$target"
  out=$DIST/bin/$target
  mkdir -p "$out"
  src=$TARGET_DIR/$target/$target/release/pinclaw
  if [ "$target" = arm-unknown-linux-musleabihf ]; then
    cp "$src" "$out/pinclaw.unstripped"
    run arm-linux-gnueabihf-strip --strip-all -o "$out/pinclaw" "$src"
  else
    cp "$src" "$out/pinclaw"
  fi
  echo "$target: built in $((SECONDS - start)) s"
}

rm -rf "$DIST"
mkdir -p "$DIST/bin" "$TARGET_DIR"
if [ -n "${PINCLAW_RELEASE_SERIAL:-}" ]; then
  for target in $TARGETS; do
    echo "==> $target"
    build_one "$target"
  done
else
  logs=$(mktemp -d)
  pids=()
  for target in $TARGETS; do
    echo "==> $target (log: $logs/$target.log)"
    build_one "$target" >"$logs/$target.log" 2>&1 &
    pids+=("$!")
  done
  failed=""
  i=0
  for target in $TARGETS; do
    lines=15
    if ! wait "${pids[$i]}"; then failed="$failed $target" lines=80; fi
    i=$((i + 1))
    echo "--- $target"
    grep -vE '^ +(Compiling|Checking|Downloaded|Downloading) ' "$logs/$target.log" | tail -n "$lines"
  done
  rm -rf "$logs"
  if [ -n "$failed" ]; then
    echo "release.sh: the build failed for:$failed" >&2
    exit 1
  fi
fi

echo "==> checks"
run bash "$REPO/cross/check-binaries.sh" "$DIST"
rm -f "$DIST"/bin/*/pinclaw.unstripped

echo "==> packages"
for target in $TARGETS; do
  bin=$DIST/bin/$target/pinclaw
  # Tarball: the binary, the example config, the board profiles, the systemd files, the
  # READMEs; the unit file says how to install them by hand.
  name=pinclaw-$VERSION-$target
  tree=$(mktemp -d)
  mkdir -p "$tree/$name/systemd" "$tree/$name/boards"
  install -m 0755 "$bin" "$tree/$name/pinclaw"
  install -m 0644 config/pinclaw.toml README.md "$tree/$name/"
  install -m 0644 cross/README.md "$tree/$name/INSTALL.md"
  install -m 0644 boards/*.toml "$tree/$name/boards/"
  install -m 0644 systemd/pinclaw.service systemd/pinclaw.sysusers systemd/pinclaw.tmpfiles "$tree/$name/systemd/"
  for f in LICENSE LICENSE-MIT LICENSE-APACHE COPYING; do
    [ -f "$f" ] && install -m 0644 "$f" "$tree/$name/"
  done
  mtime=@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
  tar -C "$tree" --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -czf "$DIST/$name.tar.gz" "$name"
  rm -rf "$tree"
  echo "$DIST/$name.tar.gz"
  arch=$(deb_arch "$target")
  if [ "$arch" != - ]; then
    bash "$REPO/cross/mkdeb.sh" "$bin" "$arch" "$DIST" "$DEB_VERSION" | tail -n 1
  fi
done

(
  cd "$DIST"
  shopt -s nullglob
  sha256sum -- *.deb *.tar.gz >SHA256SUMS
)

echo "==> dist/ (version $VERSION)"
for f in "$DIST"/*.deb "$DIST"/*.tar.gz; do
  [ -e "$f" ] || continue
  printf '%-58s %9d bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
for target in $TARGETS; do
  printf '%-58s %9d bytes (stripped binary)\n' "bin/$target/pinclaw" "$(stat -c %s "$DIST/bin/$target/pinclaw")"
done
