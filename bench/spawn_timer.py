#!/usr/bin/env python3
"""Times commands the way an agent runs a hook: spawned directly (posix_spawn, no shell), the
payload on stdin, stdout and stderr to /dev/null, wall time from spawn to exit.

usage: spawn_timer.py RUNS PAYLOAD_FILE -- CMD [ARGS…] [-- CMD [ARGS…]]…

Before each run (not timed) the payload's "call_<n>" id is made new, so every call is a new
event, as real hook calls are. Commands are interleaved run by run. `/bin/true` is timed too,
as the harness's own floor. Prints JSON: per command p50, p99, mean in ms.
"""
import json
import os
import re
import sys
import time


def main():
    runs, payload = int(sys.argv[1]), sys.argv[2]
    rest, cmds = sys.argv[4:], []
    while rest:
        cmd = rest[: rest.index("--")] if "--" in rest else rest
        cmds.append(cmd)
        rest = rest[len(cmd) + 1:]
    cmds.append(["/bin/true"])
    template = open(payload).read()
    devnull = os.open(os.devnull, os.O_WRONLY)
    times = [[] for _ in cmds]
    for i in range(runs):
        for j, cmd in enumerate(cmds):
            with open(payload, "w") as f:
                f.write(re.sub(r"call_[0-9]*", f"call_{time.time_ns()}", template))
            fd = os.open(payload, os.O_RDONLY)
            t = time.perf_counter()
            pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2)])
            os.waitpid(pid, 0)
            times[j].append((time.perf_counter() - t) * 1000)
            os.close(fd)
    out = {}
    for cmd, ts in zip(cmds, times):
        ts.sort()
        q = lambda p: ts[min(len(ts) - 1, round(p / 100 * (len(ts) - 1)))]
        out[" ".join(os.path.basename(c) if k == 0 else c for k, c in enumerate(cmd[:3]))] = {
            "p50_ms": round(q(50), 2), "p99_ms": round(q(99), 2),
            "mean_ms": round(sum(ts) / len(ts), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
