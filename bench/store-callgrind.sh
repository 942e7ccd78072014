#!/usr/bin/env bash
# Instructions per stored event of the store pipeline (otlp → dedupe/store → sqlite, durable),
# counted by callgrind: the figure of a change that does not depend on the hour.
#
# The shared machines' speed moves by tens of per cent from hour to hour and they have no
# hardware counters, so timed runs (bench/store-ab.sh) only compare binaries run in
# alternation. Callgrind counts the instructions the collector executes, the same for the same
# binary and load whatever else the machine does. It runs the collector ~50× slower, so the
# load is one sender for SECONDS (each request a new Codex thread of 250 four-record turns).
# Prints, per binary, the events stored, instructions per event, and instructions per request
# of the pipeline's stages (receive decode, normalise, dedupe ingest and commit, store write).
#
# usage: bench/store-callgrind.sh SECONDS BINARY... (e.g. 40 old/agentcol new/agentcol)
#        PATH@file: `dedupe/store` with its own state file, not `storage: sqlite` (bench/lib.sh)
#        CALLGRIND_KEEP=DIR keeps each binary's callgrind output as DIR/cg-N.out
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

source bench/lib.sh
bench_loadgen
bench_workdir

stage() { # CALLGRIND_OUT SYMBOL... → inclusive instructions of the first function matching a SYMBOL
  local out=$1 sym n
  shift
  for sym in "$@"; do
    n=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null | grep -v inlined | grep -m1 -F "$sym" \
      | awk '{gsub(",", "", $1); print $1}')
    if [ -n "$n" ]; then echo "$n"; return; fi
  done
}

echo "# $(date -u +%FT%TZ) · callgrind · $secs s of one sender"
echo "# binary | events | instructions/event | per request (M): decode normalise ingest commit store"
i=0
for spec in "$@"; do
  bench_binary "$spec"
  i=$((i + 1))
  grpc=$(free_port)
  root="$work/root-$i"
  out="$work/cg-$i.out"
  bench_config "$grpc" "$(free_port)" "processors: [dedupe/store], exporters: [sqlite]" > "$work/cfg.yaml"
  AGENTCOL_ROOT="$root" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
    --config "$work/cfg.yaml" >"$work/col-$i.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$grpc") 2>/dev/null && break; sleep 0.2; done
  summary=$("$loadgen" --unique --protocol grpc --endpoint "127.0.0.1:$grpc" \
    --records-per-request 1000 --concurrency 1 --duration "$secs" --warmup 0)
  kill -INT "$pid"
  wait "$pid" || true
  requests=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests_ok"])' "$summary")
  events=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "$root/agentcol.db")
  total=$(grep -m1 -E '^(summary|totals):' "$out" | awk '{print $2}')
  per_request() { python3 -c "print(round(${1:-0} / $requests / 1e6, 1))"; }
  echo "$spec | $events | $((total / events)) |" \
    "$(per_request "$(stage "$out" 'ProstDecoder<U> as tonic::codec::Decoder>::decode')")" \
    "$(per_request "$(stage "$out" 'agent::normalize_logs')")" \
    "$(per_request "$(stage "$out" 'engine::Engine::ingest')")" \
    "$(per_request "$(stage "$out" 'engine::Engine::commit')")" \
    "$(per_request "$(stage "$out" 'store::Store::apply_batch' 'store::Store::apply_owned')")"
  if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP"; cp "$out" "$CALLGRIND_KEEP/cg-$i.out"; fi
done
