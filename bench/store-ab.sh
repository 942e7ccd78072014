#!/usr/bin/env bash
# Alternating A/B comparison of collector binaries on bench/store.sh's store pipeline
# (otlp → dedupe/store → sqlite, durable, every request a new Codex thread).
#
# The speed of this project's shared machines moves by tens of per cent from hour to hour, so
# two binaries are only comparable when measured in alternation on the same load: this runs
# A, B, A, B, … and prints, per run, the events stored per CPU-second of the collector (the
# figure that does not depend on what the other core is doing), events/s and peak RSS.
#
# usage: bench/store-ab.sh BINARY_A BINARY_B [ROUNDS] [SECONDS] [CONCURRENCY] [RECORDS_PER_REQUEST]
#        (defaults: 3 rounds, 6 s after 2 s of warm-up, 4 senders, 1000 records)
#        A binary given as PATH@file runs `dedupe/store` with its own state file instead of
#        `storage: sqlite` (bench/lib.sh, bench_binary); the same PATH twice, once with @file,
#        compares the two.
# The load generator is built from this tree (`cargo build --release -p agentcol-loadgen`).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1
b=$2
rounds=${3:-3}
secs=${4:-6}
conc=${5:-4}
n=${6:-1000}

source bench/lib.sh
bench_loadgen
bench_workdir

one() { # BINARY → "events events/CPU-s events/s rss_mib"
  local bin dedupe_store grpc root
  bench_binary "$1"
  grpc=$(free_port)
  root=$(mktemp -d "$work/root.XXXX")
  bench_config "$grpc" "$(free_port)" "processors: [dedupe/store], exporters: [sqlite]" > "$work/cfg.yaml"
  start_collector "$bin" "$root" "$work/cfg.yaml" "$work/col.log" "$grpc"
  local pid=$collector_pid
  local t0; t0=$(cpu_ticks "$pid")
  local out
  out=$(drive "$loadgen" "$grpc" "$n" "$conc" "$secs")
  local cpu; cpu=$(( $(cpu_ticks "$pid") - t0 ))
  local rss; rss=$(peak_rss_mib "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local failed
  failed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests_failed"])' "$out")
  [ "$failed" = 0 ] || echo "warning: $failed failed requests" >&2
  python3 - "$root/agentcol.db" "$cpu" "$(getconf CLK_TCK)" "$secs" "$rss" <<'PY'
import sqlite3, sys
db, ticks, hz, secs, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
events = sqlite3.connect(db).execute("select count(*) from events").fetchone()[0]
cpu = ticks / hz
print(f"{events} {round(events / cpu) if cpu else 0} {round(events / (secs + 2))} {rss}")
PY
  rm -rf "$root"
}

echo "# $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# binary | events | events/CPU-s | events/s | peak RSS MiB"
for r in $(seq "$rounds"); do
  echo "A $(one "$a")"
  echo "B $(one "$b")"
done
