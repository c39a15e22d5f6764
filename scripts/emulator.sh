#!/usr/bin/env bash
# Starts or stops the local AWS emulator (ministack) on 127.0.0.1:4566.
# State (PID, log, persisted data) lives in .local/ so `make down` stops exactly what `make up` started.
# The emulator persists its state on stop. `start` begins from a clean slate; `start --keep-state`
# reloads what the last stop saved (the fault-injection suite restarts it that way, then leaves
# a marker: the emulator loses stream records across a restart, so the next `start` replaces a
# restarted emulator with a fresh one rather than reuse it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.local"
pidfile="$state/ministack.pid"
log="$state/ministack.log"
endpoint="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"

# Python rather than curl: python3 is on every machine this runs on, curl may not be.
healthy() {
  python3 - "$endpoint/_localstack/health" >/dev/null 2>&1 <<'PY'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
}

restarted="$state/emulator-restarted"

start() {
  local keep_state="${1:-}"
  mkdir -p "$state"
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    if [[ -f $restarted ]]; then
      echo "the running emulator was restarted by the fault suite; replacing it with a fresh one"
      stop
    else
      echo "emulator already running (pid $(cat "$pidfile"))"
      return 0
    fi
  fi
  if [[ $keep_state == --keep-state ]]; then
    touch "$restarted"
  else
    rm -rf "$state/ministack-state" "$restarted"
  fi
  if healthy; then
    # Someone else's emulator (LocalStack, or one started by hand): use it, never stop it.
    echo "an emulator already answers at $endpoint; using it"
    return 0
  fi
  [[ -x $root/.venv/bin/ministack ]] || { echo "ministack not installed: run 'make venv'" >&2; exit 1; }
  # MINISTACK_HOST=localhost: with 127.0.0.1 the API Gateway Host header becomes
  # <id>.execute-api.127.0.0.1:4566, which lambda_http rejects. AWS_ENDPOINT_URL is handed
  # to the function subprocesses, which is how they reach the emulator.
  # TMPDIR: the emulator unpacks every function's code zip it runs into a temporary directory
  # and keeps it (one per distinct zip: ~1 GB per deploy of the debug builds); kept in .local/
  # it goes with `stop` instead of filling the machine's /tmp over many deploys.
  mkdir -p "$state/ministack-tmp"
  BIND_HOST=127.0.0.1 GATEWAY_PORT=4566 MINISTACK_HOST=localhost \
    AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_DEFAULT_REGION=us-east-1 \
    PERSIST_STATE=1 STATE_DIR="$state/ministack-state" TMPDIR="$state/ministack-tmp" \
    nohup "$root/.venv/bin/ministack" >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    healthy && { echo "emulator up at $endpoint (pid $(cat "$pidfile"), log $log)"; return 0; }
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  echo "emulator did not become healthy; last log lines:" >&2
  tail -20 "$log" >&2
  exit 1
}

stop() {
  [[ -f $pidfile ]] || { echo "no emulator started by this project"; return 0; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "emulator stopped (pid $pid)"
  fi
  rm -f "$pidfile"
  # Unpacked function code only: the next start unpacks again what it runs.
  rm -rf "$state/ministack-tmp"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  status) healthy && echo up || { echo down; exit 1; } ;;
  *) echo "usage: $0 start [--keep-state]|stop|status" >&2; exit 2 ;;
esac
