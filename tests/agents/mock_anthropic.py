"""A scripted stand-in for the Anthropic Messages API, for driving the real Claude Code CLI offline.

usage: mock_anthropic.py SCRIPT.json PORT_FILE REQUEST_LOG

SCRIPT is {"steps": [...], "side": {...}}. A step is
  {"text": "...", "tool_use": {"name": "Bash", "input": {...}}, "usage": {...}}
(`text` and `tool_use` both optional; a step with a `tool_use` stops with `tool_use`, any other
with `end_turn`). `usage` holds input_tokens, output_tokens, cache_read_input_tokens and
cache_creation_input_tokens; message_start carries them with output_tokens 1, message_delta the
final counts.

POST .../messages (the CLI calls /v1/messages?beta=true; only the path is routed on) answers as a
server-sent event stream, or as one JSON message when the request has no `stream: true`:
- a main-conversation request (one that offers tools) plays step N, where N is the number of
  assistant messages already in its `messages`. The step is derived from the request, not from a
  counter, so a retried request gets the same answer and nothing else can use up a step;
- any other request (title or topic side queries, which offer no tools) gets `side`.
POST .../messages/count_tokens answers an estimate, GET .../models a small list, and anything else
a logged 404 (the CLI falls back when an optional endpoint is missing). Every response carries a
`request-id` header: it is the only API-side id that Claude's telemetry carries.

Every request is appended to REQUEST_LOG as one JSON line: method, path, what was answered, a few
headers (never x-api-key or authorization), the offered tool names and the request's `messages`.
The port it listens on (127.0.0.1, ephemeral) is written to PORT_FILE once it is ready.
"""
import json
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script_path, port_file, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(script_path) as f:
    SCRIPT = json.load(f)
STEPS = SCRIPT["steps"]
SIDE = SCRIPT.get("side") or {"text": "{\"title\": \"Mock session\", \"isNewTopic\": true}"}
lock = threading.Lock()

KEPT_HEADERS = ("user-agent", "anthropic-version", "anthropic-beta", "x-app",
                "x-claude-code-session-id", "x-stainless-retry-count", "traceparent")


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def tool_names(body):
    return [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]


def pick(body):
    """(kind, step index or None, step) for a /messages request."""
    if not tool_names(body):
        return "side", None, SIDE
    n = sum(1 for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "assistant")
    if n < len(STEPS):
        return "main", n, STEPS[n]
    return "main", n, {"text": "(mock: script exhausted)"}


def message_for(step, model):
    content = []
    if step.get("text"):
        content.append({"type": "text", "text": step["text"]})
    if step.get("tool_use"):
        t = step["tool_use"]
        content.append({"type": "tool_use", "id": new_id("toolu_mock"), "name": t["name"],
                        "input": t.get("input", {})})
    usage = {"input_tokens": 8, "output_tokens": 4,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    usage.update(step.get("usage") or {})
    return {"id": new_id("msg_mock"), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if step.get("tool_use") else "end_turn",
            "stop_sequence": None, "usage": usage}


def halves(s):
    cut = max(1, len(s) // 2)
    return [p for p in (s[:cut], s[cut:]) if p]


def sse(message):
    """The message as the event stream the real API sends."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    evs = [("message_start", {"type": "message_start", "message": start}), ("ping", {"type": "ping"})]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            evs.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                "content_block": {"type": "text", "text": ""}}))
            for piece in halves(block["text"]):
                evs.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                    "delta": {"type": "text_delta", "text": piece}}))
        else:
            evs.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                "content_block": dict(block, input={})}))
            for piece in halves(json.dumps(block["input"])):
                evs.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                    "delta": {"type": "input_json_delta",
                                                              "partial_json": piece}}))
        evs.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    evs.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                  "usage": usage}))
    evs.append(("message_stop", {"type": "message_stop"}))
    return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in evs).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json", request_id=None):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", request_id or new_id("req_mock"))
        if ctype.startswith("text/event-stream"):
            self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def record(self, answer, body=None):
        rec = {"method": self.command, "path": self.path, "answer": answer,
               "headers": {k: self.headers[k] for k in KEPT_HEADERS if self.headers.get(k) is not None}}
        if body:
            rec["model"] = body.get("model")
            rec["stream"] = bool(body.get("stream"))
            rec["tools"] = tool_names(body)
            rec["messages"] = body.get("messages")
        with lock, open(log_path, "a") as log:
            log.write(json.dumps(rec) + "\n")

    def not_found(self, body=None):
        self.record({"status": 404}, body)
        self.reply(404, json.dumps({"type": "error", "error": {
            "type": "not_found_error", "message": f"mock: no route for {self.path}"}}).encode())

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            self.record({"status": 200, "kind": "models"})
            ids = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
            data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-09-29T00:00:00Z"}
                    for i in ids]
            self.reply(200, json.dumps({"data": data, "has_more": False, "first_id": ids[0],
                                        "last_id": ids[-1]}).encode())
        else:
            self.not_found()

    def do_HEAD(self):
        self.record({"status": 200, "kind": "head"})
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.read_body()
        path = self.path.split("?")[0]
        if path.endswith("/messages/count_tokens"):
            tokens = max(1, len(json.dumps(body)) // 4)
            self.record({"status": 200, "kind": "count_tokens", "input_tokens": tokens})
            self.reply(200, json.dumps({"input_tokens": tokens}).encode())
        elif path.endswith("/messages"):
            kind, step_no, step = pick(body)
            message = message_for(step, body.get("model") or "claude-sonnet-4-5-20250929")
            request_id = new_id("req_mock")
            self.record({"status": 200, "kind": kind, "step": step_no, "request_id": request_id,
                         "message_id": message["id"], "content": message["content"]}, body)
            if body.get("stream"):
                self.reply(200, sse(message), "text/event-stream; charset=utf-8", request_id)
            else:
                self.reply(200, json.dumps(message).encode(), request_id=request_id)
        else:
            self.not_found(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".part", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".part", port_file)
server.serve_forever()
