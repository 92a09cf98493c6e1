#!/usr/bin/env bash
# The release version, from Cargo.toml's [package] version (the one place it is set).
#   bash cross/version.sh       # 0.1.0-rc.1   (Cargo's)
#   bash cross/version.sh deb   # 0.1.0~rc.1   (Debian's: a pre-release sorts before the release)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
v=$(awk '/^\[/ { in_pkg = ($0 == "[package]") } in_pkg && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' "$REPO/Cargo.toml")
[ -n "$v" ] || { echo "version.sh: no [package] version in Cargo.toml" >&2; exit 1; }
if [ "${1:-}" = deb ]; then
  v=${v/-/\~}
fi
echo "$v"
