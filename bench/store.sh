#!/usr/bin/env bash
# End-to-end store benchmark: agent-shaped OTLP → otlp receiver (normalised) → dedupe → sqlite,
# durable (each request is answered after the store's SQLite commit, which holds dedupe's key
# states too: `storage: sqlite`, as in the default config; then dedupe commits its aliases and
# decisions).
#
# The collector runs pinned to core 0, the load generator (bench/loadgen --unique: every request
# a new Codex thread, four records per turn: prompt, tool decision, tool result, answer) on
# core 1. Prints agent records/s acknowledged, canonical events/s written, peak RSS, and for
# reference the same load into the same collector with otlp → nop (the receive path alone).
#
# usage: bench/store.sh [SECONDS] [CONCURRENCY] [RECORDS_PER_REQUEST] [SYNCHRONOUS]
#        (defaults: 10 s, 4 senders, 1000 records, full)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-4}
n=${3:-1000}
sync=${4:-full}

cargo build --release --locked -p agentcol -p agentcol-loadgen >&2
target=${CARGO_TARGET_DIR:-target}
agentcol=$target/release/agentcol
loadgen=$target/release/agentcol-loadgen

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source bench/lib.sh

run() { # MODE(store|nop) → "records/s events rss_mib cpu%"
  local grpc http mode=$1 root="$work/root-$1"
  grpc=$(free_port); http=$(free_port)
  if [ "$mode" = store ]; then
    pipeline="processors: [dedupe/store], exporters: [sqlite]"
  else
    pipeline="exporters: [nop]"
  fi
  bench_config "$grpc" "$http" "$pipeline" "$sync" > "$work/$mode.yaml"
  start_collector "$agentcol" "$root" "$work/$mode.yaml" "$work/$mode.log" "$grpc"
  local pid=$collector_pid
  local t0; t0=$(cpu_ticks "$pid")
  local out
  out=$(drive "$loadgen" "$grpc" "$n" "$conc" "$secs")
  local rss; rss=$(peak_rss_mib "$pid")
  local cpu; cpu=$(( $(cpu_ticks "$pid") - t0 ))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local events=0
  if [ "$mode" = store ]; then
    events=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "$root/agentcol.db")
  fi
  local rps failed
  rps=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["records_per_second"]))' "$out")
  failed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests_failed"])' "$out")
  [ "$failed" = 0 ] || echo "warning: $mode: $failed failed requests" >&2
  local cpu_pct; cpu_pct=$(python3 -c "print(round(100*$cpu/$(getconf CLK_TCK)/($secs+2)))")
  echo "$rps $events $rss $cpu_pct"
}

echo "# $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# ${secs}s measured (+2s warm-up), ${conc} gRPC senders × ${n} records/request, synchronous=${sync}, collector on core 0"
read -r s_rps s_events s_rss s_cpu < <(run store)
read -r n_rps _ n_rss n_cpu < <(run nop)
# Events written per second over the whole run (warm-up included, as the DB holds both).
s_eps=$(python3 -c "print(round($s_events/($secs+2)))")
printf '%-22s %14s %14s %8s %6s\n' pipeline records/s events/s peak_MiB cpu%
printf '%-22s %14s %14s %8s %6s\n' "otlp→dedupe→sqlite" "$s_rps" "$s_eps" "$s_rss" "$s_cpu"
printf '%-22s %14s %14s %8s %6s\n' "otlp→nop (reference)" "$n_rps" "-" "$n_rss" "$n_cpu"
echo "store/nop records/s: $(python3 -c "print(f'{$s_rps/max($n_rps,1):.2f}x')")"
