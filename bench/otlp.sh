#!/usr/bin/env bash
# End-to-end OTLP ingest benchmark: agentcol and rotel side by side, in one run.
#
# For each protocol (grpc, http) and batch size (100, 1000 records per request), the collector
# runs pinned to core 0 and the load generator (bench/loadgen) to core 1, with the same load and
# duration for both collectors. Each collector discards what it receives (agentcol: otlp → nop;
# rotel: blackhole exporter), so this measures the receive path. Prints records/s, peak RSS and
# the ratios.
#
# usage: bench/otlp.sh [SECONDS] [CONCURRENCY]      (defaults: 10 s, 8 senders)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-8}
peers=${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers}
bash tests/peers.sh "$peers" >/dev/null
rotel="$peers/rotel-agent"

cargo build --release --locked -p agentcol -p agentcol-loadgen >&2
agentcol=target/release/agentcol
loadgen=target/release/agentcol-loadgen

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source bench/lib.sh

start_agentcol() { # GRPC HTTP
  cat > "$work/agentcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:$1}
      http: {endpoint: 127.0.0.1:$2}
exporters:
  nop:
service:
  pipelines:
    logs: {receivers: [otlp], exporters: [nop]}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
YAML
  AGENTCOL_ROOT="$work/root" taskset -c 0 "$agentcol" --config "$work/agentcol.yaml" >"$work/agentcol.log" 2>&1 &
  echo $!
}

start_rotel() { # GRPC HTTP
  taskset -c 0 "$rotel" start --exporter blackhole \
    --otlp-grpc-endpoint "127.0.0.1:$1" --otlp-http-endpoint "127.0.0.1:$2" \
    --pid-file "$work/rotel.pid" --log-file "$work/rotel.log" >"$work/rotel.out" 2>&1 &
  echo $!
}

run_one() { # COLLECTOR PROTOCOL RECORDS → "records_per_second peak_rss_mib"
  local grpc http pid port out
  grpc=$(free_port); http=$(free_port)
  if [ "$1" = agentcol ]; then pid=$(start_agentcol "$grpc" "$http"); else pid=$(start_rotel "$grpc" "$http"); fi
  pids+=("$pid")
  if [ "$2" = grpc ]; then port=$grpc; else port=$http; fi
  wait_port "$port"
  local t0; t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 "$loadgen" --protocol "$2" --endpoint "127.0.0.1:$port" \
        --records-per-request "$3" --concurrency "$conc" --duration "$secs" --warmup 2)
  local rss; rss=$(peak_rss_mib "$pid")
  local cpu; cpu=$(( $(cpu_ticks "$pid") - t0 ))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps failed
  rps=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["records_per_second"]))' "$out")
  failed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests_failed"])' "$out")
  [ "$failed" = 0 ] || echo "warning: $1 $2 $3: $failed failed requests" >&2
  # CPU used by the collector per second of load (warm-up included), as % of one core.
  local cpu_pct; cpu_pct=$(python3 -c "print(round(100*$cpu/$(getconf CLK_TCK)/($secs+2)))")
  echo "$rps $rss $cpu_pct"
}

echo "# $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) · load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ${secs}s per run, ${conc} concurrent senders, collector on core 0, load generator on core 1"
printf '%-10s %13s %12s %6s %8s %8s %15s %15s %6s %9s %9s %6s\n' scenario agentcol_rec/s rotel_rec/s ratio a_cpu% r_cpu% agentcol_rec/cpu-s rotel_rec/cpu-s ratio a_MiB r_MiB ratio
for proto in grpc http; do
  for n in 100 1000; do
    read -r a_rps a_rss a_cpu < <(run_one agentcol "$proto" "$n")
    read -r r_rps r_rss r_cpu < <(run_one rotel "$proto" "$n")
    a_eff=$(python3 -c "print(round($a_rps*100/max($a_cpu,1)))")
    r_eff=$(python3 -c "print(round($r_rps*100/max($r_cpu,1)))")
    printf '%-10s %13s %12s %6s %8s %8s %15s %15s %6s %9s %9s %6s\n' "$proto/$n" "$a_rps" "$r_rps" \
      "$(python3 -c "print(f'{$a_rps/max($r_rps,1):.2f}x')")" "$a_cpu" "$r_cpu" "$a_eff" "$r_eff" \
      "$(python3 -c "print(f'{$a_eff/max($r_eff,1):.2f}x')")" "$a_rss" "$r_rss" \
      "$(python3 -c "print(f'{$a_rss/max($r_rss,0.1):.2f}x')")"
  done
done
