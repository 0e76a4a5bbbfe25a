"""A throwaway nginx for the suite: its own prefix, a free loopback port, the
conf from nginx.conf.in. Only the master this object started (and that
master's workers) is ever signalled."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, workers=2, template=HERE / "nginx.conf.in", env=None, extra="", conf=None):
        """conf: a whole nginx.conf to run as it is (no daemon, pid or error_log
        of its own: those come from the command line)."""
        self.env = dict(os.environ, **(env or {}))
        self.prefix = Path(tempfile.mkdtemp(prefix="strata-nginx-"))
        for d in ("conf", "logs", "tmp"):
            (self.prefix / d).mkdir()
        self.port = free_port()
        self.args = []
        if conf is not None:
            self.args = ["-e", str(self.prefix / "logs" / "error.log"),
                         "-g", "daemon off; pid %s;" % (self.prefix / "nginx.pid")]
        conf = conf if conf is not None else template.read_text()
        for k, v in {"@WORKERS@": str(workers), "@PREFIX@": str(self.prefix), "@ROOT@": str(ROOT),
                     "@PORT@": str(self.port), "@EXTRA@": extra}.items():
            conf = conf.replace(k, v)
        self.conf = self.prefix / "conf" / "nginx.conf"
        self.conf.write_text(conf)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", str(self.prefix), "-c", str(self.conf)] + self.args,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.proc.stderr.read().decode() + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if len(self.workers()) >= 1:
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen on %d: %s" % (self.port, self.log()))

    def workers(self):
        if not self.proc:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is not None:
            self.proc.stderr.close()
            return
        workers = self.workers()
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stderr.close()

    def log(self):
        p = self.prefix / "logs" / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def problems(self):
        """error.log lines at error level or worse (the suite's own ENOTSUP
        checks never log)."""
        return [line for line in self.log().splitlines()
                if any(t in line for t in ("[error]", "[alert]", "[crit]", "[emerg]"))]

    def request(self, path, timeout=10):
        """-> (status, body bytes, seconds)"""
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            return r.status, body, time.monotonic() - t0
        finally:
            conn.close()

    def json(self, path, timeout=10):
        status, body, _ = self.request(path, timeout)
        if status != 200:
            raise AssertionError("%s -> %d %s" % (path, status, body[:500]))
        return json.loads(body)


class Redis:
    """A redis-server of the test's own (to pause and kill), on a free port."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="strata-redis-")
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)
