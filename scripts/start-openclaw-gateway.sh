#!/usr/bin/env bash
# Start OpenClaw's own gateway on 127.0.0.1:PORT with token auth and a throwaway home,
# in the background; prints its PID (stop it with `kill PID`). Needs `openclaw` and a
# Node >= 24.16 on PATH (scripts/install-openclaw.sh). It is ready once GET /readyz
# answers 200 (about 10 s on 2 cores). OpenClaw also writes logs under /tmp/openclaw/.
#
#   PID=$(bash scripts/start-openclaw-gateway.sh PORT TOKEN HOME_DIR LOG_FILE)
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 PORT TOKEN HOME_DIR LOG_FILE" >&2; exit 2; }
PORT=$1 TOKEN=$2 GW_HOME=$3 LOG=$4
mkdir -p "$GW_HOME"
HOME="$GW_HOME" OPENCLAW_HOME="$GW_HOME" nohup openclaw gateway run --allow-unconfigured \
  --bind loopback --port "$PORT" --auth token --token "$TOKEN" >"$LOG" 2>&1 </dev/null &
echo $!
