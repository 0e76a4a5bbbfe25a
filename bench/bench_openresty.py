"""The OpenResty rows of bench/RESULTS.md: resty.stratacache in a real nginx
(2 workers, tests/nginx's conf plus the bench locations). Lua loops inside
one worker for L1 / L2 / remote hits against their baselines (interleaved
rounds, median of per-round ratios), wrk for a cached location against a
constant one, and the 50-request cold-key stampede."""
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nginx"))
from nginxctl import Nginx  # noqa: E402

EXTRA = """
        location = /bench { content_by_lua_block { require("bench_openresty").run() } }
        location = /cached { content_by_lua_block { require("bench_openresty").cached() } }
        location = /const { content_by_lua_block { ngx.say(("v"):rep(100)) } }
"""
REDIS = os.environ["STRATA_TEST_REDIS_URL"]


def row(name, ours, base, target):
    ratios = [a / b for a, b in zip(ours, base)]
    print("| %s | %.1f | %.1f | **%.2fx** | %s |" % (
        name, statistics.median(ours), statistics.median(base), statistics.median(ratios), target))


def micro(n):
    print("| operation (ns/op, median of 15 interleaved rounds) | stratacache | baseline | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for case, clock, name, target in (
            ("l1", 1, "L1 hit vs lua-resty-lrucache `get`", "<= 1.5x"),
            ("l2", 1, "L2 (shm) hit vs `ngx.shared.DICT:get` + the same decode", "<= 1.5x"),
            ("remote", 1, "remote (Redis) hit vs a raw cosocket `GET`", "<= 1.10x"),
            # the same loop timed by the worker's CPU clock: what the worker
            # spends, without the waits a loaded machine adds to the wall clock
            ("remote", 3, "remote (Redis) hit vs a raw cosocket `GET`, worker CPU time", "(context)")):
        status, body, _ = n.request("/bench?case=%s&clock=%d&redis=%s" % (case, clock, REDIS), timeout=300)
        if status != 200:
            raise SystemExit("bench %s: %d %s" % (case, status, body))
        r = json.loads(body)
        row(name, r["ours"], r["base"], target)


def wrk_rps(port, path):
    out = subprocess.run(["wrk", "-t1", "-c16", "-d2s", "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit("wrk: " + out)


def wrk_row(n):
    wrk_rps(n.port, "/cached")
    ours, base = [], []
    for _ in range(5):
        ours.append(wrk_rps(n.port, "/cached"))
        base.append(wrk_rps(n.port, "/const"))
    ratios = [a / b for a, b in zip(ours, base)]
    print("| wrk -t1 -c16, 5 x 2 s interleaved: cached location vs constant (req/s) | %.0f | %.0f | **%.2fx** | >= 0.8x |"
          % (statistics.median(ours), statistics.median(base), statistics.median(ratios)))


def stampede(n):
    print()
    print("| 50 concurrent requests, one cold key, 200 ms loader, 2 workers | loader calls | time to serve all 50 (s) |")
    print("|---|---:|---:|")
    for cache, label in (("l2", "L1 + shm, no Redis"), ("redis", "L1 + shm + Redis"),
                         ("redis_l1", "L1 + Redis, no shm")):
        calls, took = [], []
        for _ in range(3):
            key = "stampede-%s" % uuid.uuid4().hex[:10]
            path = "/get?cache=%s&key=%s&delay=0.2" % (cache, key)
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(50) as pool:
                rs = list(pool.map(lambda _: n.request(path, timeout=30), range(50)))
            took.append(time.monotonic() - t0)
            assert all(s == 200 for s, _, _ in rs)
            calls.append(n.json("/loads?key=%s" % key)["loads"])
        print("| %s (3 runs) | %s | %s |" % (label, " / ".join(map(str, calls)),
                                             " / ".join("%.2f" % t for t in took)))


def main():
    n = Nginx(workers=2, extra=EXTRA).start()
    try:
        print("== OpenResty (nginx %s, 2 workers, LuaJIT JIT on), %s" % (
            subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1],
            time.strftime("%Y-%m-%d")))
        micro(n)
        wrk_row(n)
        stampede(n)
        bad = n.problems()
        if bad:
            raise SystemExit("error.log: %s" % bad[:5])
    finally:
        n.stop()


if __name__ == "__main__":
    main()
