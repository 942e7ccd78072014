#!/usr/bin/env bash
# Hook benchmarks, in one run:
#  1. `agentcol hook` wall time per call (p50, p99) against a Node.js script doing the same post
#     (bench/hook_post.js), timed by hyperfine (which subtracts its shell's start-up), against
#     (a) the store pipeline (hook → dedupe/store → sqlite, durable: the answer waits for both
#     commits) and (b) a hook → nop pipeline (the shim's own cost);
#  2. hook call → row queryable in SQLite (p50, p99), bench/hooks_driver.py.
# The collector runs pinned to core 0, everything else on core 1.
#
# usage: bench/hooks.sh [RUNS] [SYNCHRONOUS]   (defaults: 300, full)
# needs: hyperfine (Debian package), node, python3
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
sync=${2:-full}
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release --locked -p agentcol >&2
agentcol=$PWD/target/release/agentcol

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

source bench/lib.sh

start() { # NAME PIPELINE-YAML → sets pid, port
  port=$(free_port)
  cat > "$work/$1.yaml" <<YAML
receivers:
  hook: {endpoint: 127.0.0.1:$port}
processors:
  dedupe/store: {settle_window: 0s, storage: sqlite}
exporters:
  sqlite: {synchronous: $sync}
  nop: {}
service:
  pipelines:
    logs: $2
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
YAML
  AGENTCOL_ROOT="$work/root-$1" taskset -c 0 "$agentcol" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  pid=$!
  wait_port "$port"
}

cat > "$work/payload.json" <<'JSON'
{"session_id":"bench-shim","turn_id":"t1","hook_event_name":"PreToolUse","cwd":"/work","model":"gpt-5.5","permission_mode":"default","tool_name":"Bash","tool_input":{"command":"echo hi"},"tool_use_id":"call_1","transcript_path":"/home/u/.codex/sessions/rollout.jsonl"}
JSON

# hyperfine JSON → "p50 p99 mean" in ms
stats() {
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(x * 1000 for x in r["times"])
    q = lambda p: t[min(len(t) - 1, round(p / 100 * (len(t) - 1)))]
    print(f'{q(50):.2f} {q(99):.2f} {sum(t) / len(t):.2f}')
PY
}

shims() { # NAME → prints "p50 p99 mean" for the shim, then for node
  # Every call gets a new tool call id (--prepare, not timed), as real hook calls have: a repeated
  # payload would be the same event observed again and again, which is not what is measured.
  local prep="sed -i \"s/call_[0-9]*/call_\$(date +%s%N)/\" $work/payload.json"
  taskset -c 1 hyperfine --runs "$runs" --warmup 20 --style none --export-json "$work/$1.json" \
    --prepare "$prep" \
    "$agentcol hook --agent codex --url http://127.0.0.1:$port < $work/payload.json" \
    "node bench/hook_post.js $port < $work/payload.json" >/dev/null 2>&1
  stats "$work/$1.json"
}

echo "# $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · node $(node --version) · $(hyperfine --version)"
echo "# $runs runs per command; collector on core 0; shims, node and the driver on core 1"

start store "{receivers: [hook], processors: [dedupe/store], exporters: [sqlite]}"
mapfile -t store < <(shims store)
rows=$(taskset -c 1 python3 bench/hooks_driver.py "$port" "$work/root-store/agentcol.db" "$runs")
kill "$pid"; wait "$pid" 2>/dev/null || true

start nop "{receivers: [hook], exporters: [nop]}"
mapfile -t nop < <(shims nop)
# The same, spawned directly as an agent spawns a hook (no shell; /bin/true as the floor).
direct=$(taskset -c 1 python3 bench/spawn_timer.py "$runs" "$work/payload.json" -- \
  "$agentcol" hook --agent codex --url "http://127.0.0.1:$port" -- \
  "$(command -v node)" bench/hook_post.js "$port")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

# The collector away: nothing listening, then a listener that accepts and never answers. The
# shim spools each call (into a scratch root) after its 100 ms deadline at most.
gone() { # NAME PORT
  AGENTCOL_ROOT="$work/spool-$1" taskset -c 1 hyperfine --runs 50 --warmup 3 --style none \
    --export-json "$work/$1.json" \
    "$agentcol hook --agent codex --url http://127.0.0.1:$2 < $work/payload.json" >/dev/null 2>&1
  stats "$work/$1.json"
}
down=$(gone down "$(free_port)")
hang_port=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024); time.sleep(3600)' "$hang_port" &
hang_pid=$!
wait_port "$hang_port"
hanging=$(gone hanging "$hang_port")
kill "$hang_pid" 2>/dev/null || true

printf '%-44s %8s %8s %8s\n' "wall time per call (ms)" p50 p99 mean
printf '%-44s %8s %8s %8s\n' "agentcol hook → store (synchronous=$sync)" ${store[0]}
printf '%-44s %8s %8s %8s\n' "node hook_post.js → store" ${store[1]}
printf '%-44s %8s %8s %8s\n' "agentcol hook → nop" ${nop[0]}
printf '%-44s %8s %8s %8s\n' "node hook_post.js → nop" ${nop[1]}
printf '%-44s %8s %8s %8s\n' "agentcol hook, collector down (spools)" $down
printf '%-44s %8s %8s %8s\n' "agentcol hook, collector hanging (spools)" $hanging
python3 - "${store[0]%% *}" "${store[1]%% *}" "${nop[0]%% *}" "${nop[1]%% *}" <<'PY'
import sys
s, n, sn, nn = map(float, sys.argv[1:])
print(f"node/agentcol p50: {n / s:.1f}x (store), {nn / sn:.1f}x (nop)")
PY
echo "spawned directly, → nop: $direct"
echo "hook call → row in SQLite: $rows"
