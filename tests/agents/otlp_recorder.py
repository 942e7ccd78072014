"""A stdlib OTLP/HTTP sink that records every export request, for capturing parser fixtures.

usage: otlp_recorder.py OUT_DIR PORT_FILE

Listens on 127.0.0.1 (ephemeral port, written to PORT_FILE once ready). POST /v1/logs,
/v1/traces and /v1/metrics with an `application/json` body (gzip content-encoding allowed) are
answered `{}` with 200, and the body is written pretty-printed to OUT_DIR/NNNN-<signal>.json in
arrival order (NNNN from 0001), with one line per request appended to OUT_DIR/index.jsonl:
{"seq": N, "signal": "logs", "file": "0001-logs.json"}. Protobuf bodies are answered 415 (the
agents are configured for OTLP/JSON), malformed JSON 400, other paths 404; none of them is kept.
"""
import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out_dir, port_file = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
SIGNALS = {"/v1/logs": "logs", "/v1/traces": "traces", "/v1/metrics": "metrics"}
lock = threading.Lock()
state = {"seq": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        signal = SIGNALS.get(self.path.split("?")[0])
        if signal is None:
            return self.reply(404, b'{"message":"not an OTLP path"}')
        if "json" not in (self.headers.get("content-type") or ""):
            return self.reply(415, b'{"message":"only application/json is recorded"}')
        if (self.headers.get("content-encoding") or "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(400, b'{"message":"bad JSON"}')
        with lock:
            state["seq"] += 1
            seq = state["seq"]
            name = f"{seq:04d}-{signal}.json"
            with open(os.path.join(out_dir, name), "w") as f:
                json.dump(body, f, indent=1, ensure_ascii=False)
                f.write("\n")
            with open(os.path.join(out_dir, "index.jsonl"), "a") as f:
                f.write(json.dumps({"seq": seq, "signal": signal, "file": name}) + "\n")
        self.reply(200, b"{}")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".part", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".part", port_file)
server.serve_forever()
