"""A scripted stand-in for the OpenAI Responses API, for driving the real Codex CLI offline.

usage: mock_responses.py SCRIPT.json PORT_FILE REQUEST_LOG

SCRIPT is {"steps": [...]}; each POST .../responses answers the next step as a server-sent
event stream, in order, across turns. A step is {"type": "message", "text": ...} or
{"type": "shell", "command": "echo hi"}. GET .../models answers an empty list. Every request is
appended to REQUEST_LOG as one JSON line (the Authorization header is never written). The port
it listens on (127.0.0.1, ephemeral) is written to PORT_FILE once it is ready.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script_path, port_file, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(script_path) as f:
    STEPS = json.load(f)["steps"]
lock = threading.Lock()
state = {"next": 0, "ids": 0}


def new_id(kind):
    with lock:
        state["ids"] += 1
        return f"{kind}_mock{state['ids']:04d}"


def next_step():
    with lock:
        i = state["next"]
        state["next"] += 1
    if i < len(STEPS):
        return STEPS[i]
    return {"type": "message", "text": "(mock: script exhausted)"}


def tool_names(body):
    return {t.get("name") or t.get("type") for t in body.get("tools", []) if isinstance(t, dict)}


def shell_item(step, body, call_id, item_id):
    cmd = step["command"]
    names = tool_names(body)
    if "exec_command" in names:
        name, args = "exec_command", {"cmd": cmd, "yield_time_ms": 5000}
    elif "shell" in names:
        name, args = "shell", {"command": ["bash", "-lc", cmd], "timeout_ms": 10000}
    else:
        name, args = "shell_command", {"command": cmd, "timeout_ms": 10000}
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": json.dumps(args), "status": "completed"}


def events_for(step, body):
    rid = new_id("resp")
    evs = [{"type": "response.created",
            "response": {"id": rid, "object": "response", "status": "in_progress", "model": body.get("model")}}]
    if step["type"] == "message":
        mid = new_id("msg")
        text = step["text"]
        # `phase: final_answer` is what makes Codex emit its OTEL `codex.agent_response` event.
        item = {"type": "message", "id": mid, "role": "assistant", "status": "completed", "phase": "final_answer",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        evs.append({"type": "response.output_item.added", "output_index": 0,
                    "item": {**item, "status": "in_progress", "content": []}})
        evs.append({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                    "content_index": 0, "delta": text})
        evs.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    else:
        item = shell_item(step, body, new_id("call"), new_id("fc"))
        evs.append({"type": "response.output_item.added", "output_index": 0,
                    "item": {**item, "arguments": "", "status": "in_progress"}})
        evs.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    tokens_in = max(1, len(json.dumps(body)) // 4)
    evs.append({"type": "response.completed", "response": {
        "id": rid, "object": "response", "status": "completed", "model": body.get("model"),
        "usage": {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": tokens_in + 12}}})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in evs).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.split("?")[0].endswith("/models"):
            self.reply(200, b'{"object":"list","data":[],"models":[]}', "application/json")
        else:
            self.reply(404, b"{}", "application/json")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with lock, open(log_path, "a") as log:
            log.write(json.dumps({"path": self.path, "model": body.get("model")}) + "\n")
        if self.path.split("?")[0].endswith("/responses"):
            self.reply(200, events_for(next_step(), body), "text/event-stream")
        else:
            self.reply(404, b"{}", "application/json")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".part", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.replace(port_file + ".part", port_file)
server.serve_forever()
