#!/usr/bin/env python3
"""Driver of bench/hooks.sh: hook call -> row queryable in SQLite, against a running agentcol.

usage: hooks_driver.py HOOK_PORT DB CALLS

CALLS PreToolUse payloads, each with a new tool call id, POSTed to the receiver one after the
other; for each, the time from the start of the POST until its row is readable in the store's
`events` table (WAL, read by a separate read-only connection polling every 0.5 ms). Prints JSON.
"""
import http.client
import json
import sqlite3
import sys
import time

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


def main():
    port, db, calls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
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
    print(json.dumps({"hook_to_row": summary(latencies)}))


if __name__ == "__main__":
    main()
