#!/usr/bin/env bash
# Hook benchmarks: `agentcol hook` wall time per call (p50, p99) against a Node.js script doing
# the same post, in one run; and hook call → row queryable in SQLite (p50, p99).
#
# The collector (release build, the store pipeline with the hook receiver: hook → dedupe/store →
# sqlite, synchronous=full) runs pinned to core 0; the driver (bench/hooks_driver.py) and the
# shims it spawns run on core 1.
#
# usage: bench/hooks.sh [CALLS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-300}

cargo build --release --locked -p agentcol >&2
agentcol=$PWD/target/release/agentcol

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

hook=$(free_port)
cat > "$work/hooks.yaml" <<YAML
receivers:
  hook: {endpoint: 127.0.0.1:$hook}
processors:
  dedupe/store: {settle_window: 0s}
exporters:
  sqlite: {synchronous: full}
service:
  pipelines:
    logs: {receivers: [hook], processors: [dedupe/store], exporters: [sqlite]}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
YAML
AGENTCOL_ROOT="$work/root" taskset -c 0 "$agentcol" --config "$work/hooks.yaml" >"$work/collector.log" 2>&1 &
pid=$!
wait_port "$hook"

echo "# $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · node $(node --version)"
echo "# $calls calls each; collector on core 0 (hook → dedupe → sqlite, synchronous=full), driver on core 1"
AGENTCOL_ROOT="$work/root" taskset -c 1 python3 bench/hooks_driver.py "$agentcol" "$hook" "$work/root/agentcol.db" "$calls"
