"""Instructions per call of resty.stratacache's bench cases against their
baselines (bench/bench_openresty.lua), counted by callgrind in one nginx
worker (master_process off) instead of timed: the figures do not move with
the machine's load. Each side of a case runs alone (?only=ours|base) at
one and at two rounds; the difference of the two counts over the difference
of the calls leaves out the case's setup (sc.new, connections).
Run by scripts/test-nginx.sh --callgrind; case names as arguments pick cases."""
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nginx"))
from nginxctl import Nginx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_openresty import EXTRA, REDIS  # noqa: E402

CASES = (("l1", "L1 hit vs lua-resty-lrucache `get`"),
         ("l2", "L2 (shm) hit vs `ngx.shared.DICT:get` + the same decode"),
         ("remote", "remote (Redis) hit vs a raw cosocket `GET`"))


def request(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit("%s -> %d %s" % (path, r.status, body[:300]))
        return body
    finally:
        conn.close()


def main():
    import json
    n = Nginx(workers=1, extra=EXTRA)
    n.conf.write_text(n.conf.read_text().replace("daemon off;", "daemon off; master_process off;"))
    out = Path(tempfile.mkdtemp(prefix="strata-cg-")) / "cg"
    os.chmod(out.parent, 0o777)  # the worker may run as another user
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=%s.%%p" % out,
                             "nginx", "-p", str(n.prefix), "-c", str(n.conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=n.env)
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", n.port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("nginx under valgrind did not start: %s" % n.log())
                time.sleep(0.2)
        dumps = 0

        def counted(path):
            """-> (instructions, calls) of one request"""
            nonlocal dumps
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            body = json.loads(request(n.port, path))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
            dumps += 1
            for line in Path("%s.%d.%d" % (out, proc.pid, dumps)).read_text().splitlines():
                if line.startswith("summary:"):
                    return int(line.split()[1]), body["calls"]
            raise SystemExit("no summary in callgrind dump %d" % dumps)

        print("| operation (instructions per call, callgrind, one worker) | stratacache | baseline | ratio |")
        print("|---|---:|---:|---:|")
        for case, name in CASES:
            if sys.argv[1:] and case not in sys.argv[1:]:
                continue
            per = {}
            for side in ("ours", "base"):
                path = "/bench?case=%s&redis=%s&only=%s&rounds=" % (case, REDIS, side)
                counted(path + "1")  # JIT traces made before counting
                i1, c1 = counted(path + "1")
                i2, c2 = counted(path + "2")
                per[side] = (i2 - i1) / (c2 - c1)
            print("| %s | %.0f | %.0f | **%.2fx** |" % (name, per["ours"], per["base"], per["ours"] / per["base"]))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
