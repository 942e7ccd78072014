# Helpers shared by the bench scripts (sourced, not run).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks

# The benchmark collector's config on stdout: otlp (gRPC and HTTP on the given ports) → PIPELINE,
# where PIPELINE is the rest of the logs pipeline's flow mapping, e.g.
# "processors: [dedupe/store], exporters: [sqlite]" or "exporters: [nop]".
# `dedupe/store` reads its key states from the store (`storage: sqlite`, the default config's
# setting) unless dedupe_store says otherwise (see bench_binary).
# usage: bench_config GRPC_PORT HTTP_PORT PIPELINE [SYNCHRONOUS]
bench_config() {
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:$1}
      http: {endpoint: 127.0.0.1:$2}
processors:
  dedupe/store: ${dedupe_store:-"{settle_window: 0s, storage: sqlite}"}
exporters:
  sqlite: {synchronous: ${4:-full}}
  nop: {}
service:
  pipelines:
    logs: {receivers: [otlp], $3}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
YAML
}

# A binary argument of the A/B scripts: PATH, or PATH@file for `dedupe/store` with its own
# state file (no `storage`: how builds before 2026-12-03 ran, and how they must be given, as
# they refuse the setting). Sets bin and dedupe_store.
# usage: bench_binary SPEC
bench_binary() {
  case $1 in
    *@file) bin=${1%@file}; dedupe_store="{settle_window: 0s}" ;;
    *) bin=$1; dedupe_store="{settle_window: 0s, storage: sqlite}" ;;
  esac
}

# Starts collector BINARY pinned to core 0 on CONFIG under ROOT, logging to LOG, and waits for
# its gRPC port; sets collector_pid and appends it to the caller's pids array (for cleanup).
# usage: start_collector BINARY ROOT CONFIG LOG GRPC_PORT
start_collector() {
  AGENTCOL_ROOT="$2" taskset -c 0 "$1" --config "$3" >"$4" 2>&1 &
  collector_pid=$!
  pids+=("$collector_pid")
  wait_port "$5"
}

# Drives the collector's gRPC port from core 1 with the load generator (every request a new
# Codex thread, 2 s of warm-up); prints the load generator's JSON summary.
# usage: drive LOADGEN GRPC_PORT RECORDS_PER_REQUEST CONCURRENCY SECONDS
drive() {
  taskset -c 1 "$1" --unique --protocol grpc --endpoint "127.0.0.1:$2" \
    --records-per-request "$3" --concurrency "$4" --duration "$5" --warmup 2
}

# Builds the load generator in release mode and sets loadgen to its path.
bench_loadgen() {
  cargo build --release --locked -p agentcol-loadgen >&2
  loadgen=${CARGO_TARGET_DIR:-target}/release/agentcol-loadgen
}

# Sets work to a fresh temporary directory and pids to an empty array; on exit, every pid in
# pids is killed and work removed.
bench_workdir() {
  work=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
}
