#!/usr/bin/env python3
"""Driver of bench/hooks.sh: times hook shims and hook-to-row latency against a running agentcol.

usage: hooks_driver.py AGENTCOL HOOK_PORT DB CALLS

1. Shim wall time: AGENTCOL `hook --agent codex` and an equivalent Node.js script (read stdin,
   POST it to the same receiver, exit), each run CALLS times with a unique PreToolUse payload,
   alternating, timed from spawn to exit (the spawn cost is in both).
2. Hook -> row: CALLS PreToolUse payloads POSTed to the receiver; for each, the time from the
   start of the POST until its row is readable in the store's `events` table (WAL, read by a
   separate connection polling every 0.5 ms).

Prints one JSON object.
"""
import http.client
import json
import sqlite3
import subprocess
import sys
import time

NODE = r"""
const http = require('http');
let body = [];
process.stdin.on('data', c => body.push(c));
process.stdin.on('end', () => {
  const data = Buffer.concat(body);
  const req = http.request({host: '127.0.0.1', port: Number(process.argv[1]), path: '/hook/codex',
    method: 'POST', timeout: 100,
    headers: {'content-type': 'application/json', 'content-length': data.length}},
    res => { res.resume(); res.on('end', () => process.exit(0)); });
  req.on('error', () => process.exit(0));
  req.on('timeout', () => { req.destroy(); process.exit(0); });
  req.end(data);
});
"""


def payload(run, i):
    return json.dumps({
        "session_id": f"bench-{run}", "turn_id": "t1", "hook_event_name": "PreToolUse",
        "cwd": "/work", "model": "gpt-5.5", "permission_mode": "default", "tool_name": "Bash",
        "tool_input": {"command": f"echo {i}"}, "tool_use_id": f"call_{i}",
        "transcript_path": "/home/u/.codex/sessions/rollout.jsonl",
    }).encode()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs):
    return {"p50_ms": round(pct(xs, 50), 2), "p99_ms": round(pct(xs, 99), 2),
            "mean_ms": round(sum(xs) / len(xs), 2), "n": len(xs)}


def timed(argv, data):
    t = time.perf_counter()
    subprocess.run(argv, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000


def main():
    agentcol, port, db, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    url = f"http://127.0.0.1:{port}"
    shim, node = [], []
    for i in range(calls):
        shim.append(timed([agentcol, "hook", "--agent", "codex", "--url", url], payload("shim", i)))
        node.append(timed(["node", "-e", NODE, str(port)], payload("node", i)))

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    latencies = []
    for i in range(calls):
        key = f"v1|codex|bench-row|t1|call_{i}|tool.call"
        body = payload("row", i)
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/hook/codex", body, {"content-type": "application/json"})
        status = c.getresponse().status
        c.close()
        if status != 204:
            raise SystemExit(f"hook answered {status}")
        while conn.execute("SELECT 1 FROM events WHERE key = ?", (key,)).fetchone() is None:
            if time.perf_counter() - t > 5:
                raise SystemExit(f"row {key} not stored within 5 s")
            time.sleep(0.0005)
        latencies.append((time.perf_counter() - t) * 1000)
    out = {"shim": summary(shim), "node": summary(node), "hook_to_row": summary(latencies)}
    out["node_over_shim_p50"] = round(out["node"]["p50_ms"] / out["shim"]["p50_ms"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
