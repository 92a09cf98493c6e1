#!/usr/bin/env bash
# Start a release binary (under qemu for another architecture), wait for its ready line,
# GET /readyz, stop it with SIGTERM and check that it exits 0 — RUNS times, then print the
# start -> ready times (median and spread). A fresh state dir per run, 127.0.0.1 only, a
# port the kernel picks (--port 0: the gateway prints the port it got).
#
#   bash cross/smoke.sh [--runs N] -- [RUNNER...] BINARY
#   bash cross/smoke.sh --runs 5 -- qemu-arm -cpu arm1176 dist/bin/arm-unknown-linux-musleabihf/pinclaw
#
# "ready" is the moment the gateway prints `pinclaw gateway ready at ws://127.0.0.1:PORT`
# (after it listens); /readyz must then answer 200.
set -euo pipefail

RUNS=5
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n '6,8p' "$0" >&2; exit 2; }
CMD=("$@")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pinclaw-smoke.XXXXXX")
mkfifo "$tmp/wait" # read -t on it: a sleep without a process
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# http_get PORT PATH: the status code of a plain HTTP/1.1 GET, through bash's /dev/tcp.
http_get() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
  IFS= read -r -t 10 line <&3 || line=""
  exec 3<&- 3>&-
  line=${line%$'\r'}
  echo "${line#HTTP/1.1 }" | cut -d' ' -f1
}

times=()
for ((run = 1; run <= RUNS; run++)); do
  state=$tmp/state-$run
  : >"$tmp/out"
  t0=$(now_ms)
  "${CMD[@]}" gateway --bind loopback --auth token --token smoke-T0k3n-0123456789abcdef \
    --port 0 --state-dir "$state" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  port=""
  # Polled with bash builtins only (no process per poll), every 2 ms.
  for ((i = 0; i < 15000; i++)); do
    mapfile -t lines <"$tmp/out"
    for line in "${lines[@]}"; do
      if [[ $line =~ ^pinclaw\ gateway\ ready\ at\ ws://127\.0\.0\.1:([0-9]+) ]]; then
        port=${BASH_REMATCH[1]}
      fi
    done
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    read -r -t 0.002 <>"$tmp/wait" || true
  done
  t1=$(now_ms)
  if [ -z "$port" ]; then
    echo "FAIL: no ready line (run $run); stderr:" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
  status=$(http_get "$port" /readyz)
  if [ "$status" != 200 ]; then
    echo "FAIL: GET /readyz answered '$status' (run $run)" >&2
    exit 1
  fi
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  pid=""
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: exit status $rc after SIGTERM (run $run); stderr:" >&2
    tail -n 20 "$tmp/err" >&2
    exit 1
  fi
  times+=("$((t1 - t0))")
  echo "run $run: ready in $((t1 - t0)) ms on port $port, /readyz 200, SIGTERM -> exit 0"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
awk -v n="$RUNS" '{ printf "start -> ready: median %s ms (%s-%s ms) over %d runs\n", $(int((n + 1) / 2)), $1, $n, n }' <<<"$sorted"
