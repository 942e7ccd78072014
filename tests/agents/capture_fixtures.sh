#!/usr/bin/env bash
# Captures OTLP/JSON fixtures for the parser unit tests from the real agents, fully offline:
#   (a) Codex (tests/peers.sh installs it): two `codex exec` turns against mock_responses.py with
#       codex_exec_2turn.json ("Say hello", then a resumed "Run echo hi" that runs a shell call),
#       OTEL protocol "json" and `log_agent_responses = true`;
#   (b) Claude Code: one `claude -p "Run echo hi"` turn against mock_anthropic.py with
#       claude_bash.json (a Bash `echo hi` tool call, then the answer), OTLP protocol http/json.
# Both export to otlp_recorder.py, and the recordings are cut down into
#   tests/fixtures/codex/{otlp/,stdout.txt}   tests/fixtures/claude/{otlp/,stdout.txt}
# What is kept (each otlp/ holds NNNN-<signal>.json, NNNN = arrival order, and index.jsonl):
#   - logs: every request, whole;
#   - traces: Codex: only the spans with a conversation.id, turn.id, session.id or call_id
#     attribute (requests left empty are dropped); Claude: every span (it sends a handful);
#   - metrics: only the first request of each agent, and in it only the first data point of each
#     histogram (Codex's have up to 512 buckets); every metric and every sum/gauge point stays.
# Scrubbed: the capture's temporary directory becomes /work/ws, $HOME becomes /home/user, and
# host.name becomes "host". Existing fixture dirs are replaced. Each dir should stay < ~300 KB.
# usage: tests/agents/capture_fixtures.sh   (peers from ${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers})
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
peers=${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers}
codex=$peers/npm-codex/node_modules/.bin/codex
claude=$peers/npm-claude/node_modules/.bin/claude
for bin in "$codex" "$claude"; do
  [ -x "$bin" ] || { echo "missing $bin (run tests/peers.sh)" >&2; exit 2; }
done

# Codex refuses some set-up under /tmp, and Claude's socket paths must stay short: work under
# target/tmp with short names.
mkdir -p "$repo/target/tmp"
work=$(mktemp -d "$repo/target/tmp/cap.XXXXXX")
pids=()
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT

start() { # NAME PORT_FILE CMD...: starts a server in the background, waits for its port file
  local name=$1 port_file=$2
  shift 2
  "$@" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$port_file" ] && return 0; sleep 0.05; done
  echo "$name did not start: $(cat "$work/$name.err")" >&2
  exit 1
}

stop_all() { # stops the servers started so far, by pid
  for p in "${pids[@]}"; do { kill "$p" && wait "$p"; } 2>/dev/null || true; done
  pids=()
}

# --- (a) Codex: two exec turns ------------------------------------------------------------
c=$work/codex
mkdir -p "$c/home" "$c/ws" "$c/otlp"
start mock_codex "$c/mock.port" python3 "$here/mock_responses.py" "$here/codex_exec_2turn.json" "$c/mock.port" "$c/mock.jsonl"
start rec_codex "$c/rec.port" python3 "$here/otlp_recorder.py" "$c/otlp" "$c/rec.port"
otlp="http://127.0.0.1:$(cat "$c/rec.port")"
cat >"$c/home/config.toml" <<EOF
model = "gpt-5.5"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
enable_request_compression = false
plugins = false
apps = false

[model_providers.mock]
name = "Mock Responses"
base_url = "http://127.0.0.1:$(cat "$c/mock.port")/v1"
wire_api = "responses"
env_key = "MOCK_OPENAI_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[projects."$c/ws"]
trust_level = "trusted"

[otel]
environment = "test"
log_user_prompt = true
log_agent_responses = true
exporter = { otlp-http = { endpoint = "$otlp/v1/logs", protocol = "json" } }
trace_exporter = { otlp-http = { endpoint = "$otlp/v1/traces", protocol = "json" } }
metrics_exporter = { otlp-http = { endpoint = "$otlp/v1/metrics", protocol = "json" } }
EOF
# A clean environment with its own HOME: the shell Codex runs the tool call in is a login shell,
# and the caller's profile must not leak into the captured output.
mkdir -p "$c/user"
run_codex() {
  (cd "$c/ws" && env -i PATH="$PATH" HOME="$c/user" SHELL=/bin/bash LANG=C.UTF-8 CODEX_HOME="$c/home" \
    MOCK_OPENAI_API_KEY=dummy-key-for-mock NO_COLOR=1 "$codex" "$@" </dev/null)
}
run_codex exec --json --skip-git-repo-check "Say hello" >"$c/stdout.txt"
thread=$(head -1 "$c/stdout.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
run_codex exec resume --json --skip-git-repo-check "$thread" "Run echo hi" >>"$c/stdout.txt"
sleep 1
stop_all

# --- (b) Claude Code: one -p turn with a Bash call -----------------------------------------
k=$work/claude
mkdir -p "$k/home" "$k/cfg" "$k/tmp" "$k/ws" "$k/otlp"
start mock_claude "$k/mock.port" python3 "$here/mock_anthropic.py" "$here/claude_bash.json" "$k/mock.port" "$k/mock.jsonl"
start rec_claude "$k/rec.port" python3 "$here/otlp_recorder.py" "$k/otlp" "$k/rec.port"
(cd "$k/ws" && env -i PATH="$PATH" HOME="$k/home" CLAUDE_CONFIG_DIR="$k/cfg" TMPDIR="$k/tmp" \
  CLAUDE_CODE_TMPDIR="$k/tmp" SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb \
  ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat "$k/mock.port")" ANTHROPIC_API_KEY=sk-ant-mock-not-a-real-key \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 \
  CLAUDE_CODE_ENABLE_TELEMETRY=1 CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1 \
  OTEL_LOGS_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp OTEL_TRACES_EXPORTER=otlp \
  OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$k/rec.port")" \
  OTEL_LOGS_EXPORT_INTERVAL=500 OTEL_METRIC_EXPORT_INTERVAL=1000 OTEL_TRACES_EXPORT_INTERVAL=500 \
  OTEL_LOG_USER_PROMPTS=1 OTEL_LOG_TOOL_DETAILS=1 OTEL_LOG_TOOL_CONTENT=1 \
  "$claude" -p "Run echo hi" --allowedTools Bash </dev/null >"$k/stdout.txt")
sleep 1
stop_all

# --- cut, scrub and write the fixtures ------------------------------------------------------
python3 - "$work" "$HOME" "$repo/tests/fixtures" <<'PY'
import json, os, shutil, sys

work, home, dest_root = sys.argv[1:]
ID_KEYS = {"conversation.id", "turn.id", "session.id", "call_id"}


def scrub_text(s):
    s = s.replace(work, "/work/ws")
    return s.replace(home, "/home/user") if home and home != "/" else s


def scrub(v):
    if isinstance(v, str):
        return scrub_text(v)
    if isinstance(v, list):
        return [scrub(x) for x in v]
    if isinstance(v, dict):
        if v.get("key") == "host.name" and isinstance(v.get("value"), dict):
            return {"key": "host.name", "value": {"stringValue": "host"}}
        return {k: scrub(x) for k, x in v.items()}
    return v


def pretty(v, ind=""):
    """Indented JSON, but lists of scalars (histogram buckets) on one line."""
    inner = ind + " "
    if isinstance(v, dict) and v:
        items = [f"{inner}{json.dumps(k)}: {pretty(x, inner)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    if isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        return "[\n" + ",\n".join(inner + pretty(x, inner) for x in v) + "\n" + ind + "]"
    return json.dumps(v, ensure_ascii=False)


def cap_points(body):
    """Keeps only the first data point of each histogram (Codex's have up to 512 buckets)."""
    total = kept = 0
    for rm in body.get("resourceMetrics", []):
        for sm in rm.get("scopeMetrics", []):
            for m in sm.get("metrics", []):
                for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
                    if kind in m:
                        points = m[kind].get("dataPoints", [])
                        total += len(points)
                        if kind in ("histogram", "exponentialHistogram"):
                            m[kind]["dataPoints"] = points = points[:1]
                        kept += len(points)
    return total, kept


def keep_spans(body, all_spans):
    total = kept = 0
    for rs in body.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            spans = ss.get("spans", [])
            total += len(spans)
            if not all_spans:
                spans = [s for s in spans if ID_KEYS & {a.get("key") for a in s.get("attributes", [])}]
            ss["spans"] = spans
            kept += len(spans)
        rs["scopeSpans"] = [ss for ss in rs.get("scopeSpans", []) if ss["spans"]]
    body["resourceSpans"] = [rs for rs in body.get("resourceSpans", []) if rs["scopeSpans"]]
    return total, kept


for agent, all_spans in (("codex", False), ("claude", True)):
    src = os.path.join(work, agent, "otlp")
    dest = os.path.join(dest_root, agent)
    shutil.rmtree(os.path.join(dest, "otlp"), ignore_errors=True)
    os.makedirs(os.path.join(dest, "otlp"))
    index, metrics_seen = [], False
    for line in open(os.path.join(src, "index.jsonl")):
        entry = json.loads(line)
        body = json.load(open(os.path.join(src, entry["file"])))
        if entry["signal"] == "metrics":
            if metrics_seen:
                continue
            metrics_seen = True
            total, kept = cap_points(body)
            entry.update(points_received=total, points_kept=kept)
        if entry["signal"] == "traces":
            total, kept = keep_spans(body, all_spans)
            if not kept:
                continue
            entry.update(spans_received=total, spans_kept=kept)
        with open(os.path.join(dest, "otlp", entry["file"]), "w") as f:
            f.write(pretty(scrub(body)) + "\n")
        index.append(entry)
    with open(os.path.join(dest, "otlp", "index.jsonl"), "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in index)
    with open(os.path.join(work, agent, "stdout.txt")) as f, open(os.path.join(dest, "stdout.txt"), "w") as g:
        g.write(scrub_text(f.read()))
    if not any(e["signal"] == "logs" for e in index):
        sys.exit(f"{agent}: no logs were recorded; see {src}")
    size = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(dest) for n in ns)
    print(f"{agent}: {len(index)} requests kept, {size // 1024} KB in {os.path.relpath(dest)}")
PY
