"""The `stratacache` command end to end against the real servers: called
in-process through cli.main(argv) for most cases, through the installed
console script for a few."""
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

import stratacache
from stratacache import cli

from conftest import backend_url, unique
from raw_backend import RawRedis


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: io.StringIO = None) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), stdout=out, stderr=err, stdin=stdin or io.StringIO())
    return rc, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> Tuple[int, dict]:
    rc, out, err = run(*argv, "--json")
    assert err == "" and out.count("\n") == 1, (out, err)
    return rc, json.loads(out)


def one_line_error(err: str, name: str) -> None:
    assert err.count("\n") == 1 and err.startswith(f"stratacache: {name}"), err
    assert "Traceback" not in err


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def redis_url() -> str:
    return backend_url("redis")


@pytest.fixture
def rcache(redis_url, ns):
    with stratacache.Cache(redis_url, namespace=ns, ttl=60, stale=30) as c:
        yield c


# ---- errors and exit codes --------------------------------------------------

@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport", "redis://127.0.0.1:6379?bogus_option=1",
                                 "ftp://127.0.0.1", "127.0.0.1:6379"])
def test_malformed_url_is_one_line_and_exit_4(url):
    rc, out, err = run("inspect", url, "k")
    assert rc == cli.EXIT_INPUT and out == ""
    one_line_error(err, "EURL" if "bogus" not in url else "EOPTION")


def test_unreachable_server_is_one_line_and_exit_5():
    for cmd in (["inspect", "k"], ["keys"], ["doctor"], ["wb"]):
        rc, out, err = run(cmd[0], f"redis://127.0.0.1:{closed_port()}", *cmd[1:])
        assert rc == cli.EXIT_BACKEND, (cmd, rc, err)
        one_line_error(err, "EBACKEND")


def test_usage_errors_exit_2_and_help_exits_0():
    assert run("inspect")[0] == cli.EXIT_USAGE
    assert run("frobnicate", "x")[0] == cli.EXIT_USAGE
    assert run("wb", "dead", "explode", "x")[0] == cli.EXIT_USAGE
    for bad in (["keys", "redis://h:1", "--limit", "0"], ["keys", "redis://h:1", "--count", "x"],
                ["wb", "dead", "list", "redis://h:1", "--limit", "-3"]):
        rc, out, err = run(*bad)
        assert rc == cli.EXIT_USAGE and err.count("\n") == 1 and "Traceback" not in err, bad
    for name in ("inspect", "invalidate", "invalidate-tag", "clear", "keys", "doctor", "wb"):
        rc, out, _ = run(name, "--help")
        assert rc == 0 and f"stratacache {name}" in out and "--json" in out
    for action in ("list", "replay", "purge"):
        rc, out, _ = run("wb", "dead", action, "--help")
        assert rc == 0 and f"stratacache wb dead {action}" in out
    rc, out, _ = run("--help")
    assert rc == 0 and all(str(c) in out for c in cli.EXIT_CODES)


# ---- inspect ------------------------------------------------------------------

def test_inspect_hit_json_and_human(redis_url, ns, rcache):
    k = unique()
    rcache.set(k, b"hello", tags=["org:3"])
    rc, d = run_json("inspect", redis_url, k, "--ns", ns)
    assert rc == cli.EXIT_OK and d["status"] == "fresh"
    assert d["fresh_until_ms"] - d["created_ms"] == 60000 and d["stale_until_ms"] - d["fresh_until_ms"] == 30000
    assert d["fresh_until"].endswith("Z") and d["stale_until"].endswith("Z")
    assert 0 < d["backend_ttl_ms"] <= 90000 and d["value_bytes"] == 5 and d["value_preview"] == "'hello'"
    assert d["tags"] == [{"name": "org:3", "stamped": d["tags"][0]["stamped"], "current": d["tags"][0]["stamped"],
                          "stale": False}]
    assert d["lease"] is None and d["negative"] is False
    rc, out, err = run("inspect", redis_url, k, "--ns", ns)
    assert rc == 0 and "FRESH" in out and ("(in 59 s)" in out or "(in 1 min)" in out)


def test_inspect_miss_and_foreign_exit_differently(redis_url, ns):
    rc, d = run_json("inspect", f"{redis_url}?ns={ns}", unique())
    assert rc == cli.EXIT_MISS and d["status"] == "miss"
    raw = RawRedis(redis_url)
    try:
        k = unique()
        raw.command(b"SET", f"{ns}:{k}".encode(), b"\x1b[31mnot ours\x00")
        rc, out, err = run("inspect", redis_url, k, "--ns", ns)
    finally:
        raw.close()
    assert rc == cli.EXIT_FOREIGN and "NOT OURS" in out
    assert "\x1b" not in out and "\\x1b" in out  # shown safely: no raw escape sequence


def test_inspect_negative_lease_and_stale_by_tag(redis_url, ns, rcache):
    k = unique()
    assert rcache.get_or_load(k, lambda key: stratacache.NOT_FOUND) is None
    rc, d = run_json("inspect", redis_url, k, "--ns", ns)
    assert rc == 0 and d["status"] == "negative" and d["negative"] is True

    lead = unique()
    lib, ffi = stratacache._lib, stratacache._ffi
    ticket = ffi.new("strata_ticket **")
    v = ffi.new("strata_value *")
    assert lib.strata_lookup(rcache._enter(), lead.encode(), len(lead), v, ticket) == lib.STRATA_MISS_LEAD
    try:
        rc, d = run_json("inspect", redis_url, lead, "--ns", ns)
        assert rc == cli.EXIT_MISS and len(d["lease"]["holder"]) == 16 and 0 < d["lease"]["ttl_ms"] <= 5000
    finally:
        lib.strata_abandon(ticket[0])
        lib.strata_value_dispose(v)

    t = unique()
    rcache.set(t, b"v", tags=["team"])
    rc, out, _ = run("invalidate-tag", redis_url, "team", "--ns", ns)
    assert rc == 0
    rc, d = run_json("inspect", redis_url, t, "--ns", ns)
    assert d["status"] == "stale" and d["stale_by_tag"] and d["tags"][0]["stale"]
    assert d["tags"][0]["current"] == d["tags"][0]["stamped"] + 1


def test_options_before_or_after_and_ns_in_url(redis_url, ns, rcache):
    k = unique()
    rcache.set(k, b"x")
    for argv in (["inspect", redis_url, k, "--ns", ns], ["inspect", "--ns", ns, redis_url, k],
                 ["inspect", f"{redis_url}?ns={ns}", k], ["inspect", "--json", f"{redis_url}?ns=other", k, "--ns", ns]):
        rc, out, err = run(*argv)
        assert rc == 0, (argv, err)
    # the namespace really isolates
    assert run("inspect", redis_url, k, "--ns", ns + "x")[0] == cli.EXIT_MISS


def test_inspect_memory_store_shared_in_process():
    with stratacache.Cache("memory://cli-test", namespace="m", ttl=5) as c:
        c.set("a", b"\x00\xff")
        rc, d = run_json("inspect", "memory://cli-test?ns=m", "a")
    assert rc == 0 and d["value_preview"] == repr(b"\x00\xff") and 0 < d["backend_ttl_ms"] <= 5000


# ---- invalidate, keys, doctor, clear -------------------------------------------

def test_invalidate_keys(redis_url, ns, rcache):
    a, b = unique(), unique()
    rcache.set(a, b"1")
    rcache.set(b, b"2")
    rc, out, _ = run("invalidate", redis_url, a, b, "--ns", ns)
    assert rc == 0 and "2 key(s)" in out
    assert rcache.get(a) is None and rcache.get(b) is None


def test_keys_on_redis_with_match_limit_sizes_ttls(redis_url, ns, rcache):
    for i in range(12):
        rcache.set(f"user:{i}", b"x" * i)
    rcache.set("other", b"y")
    rc, d = run_json("keys", redis_url, "--ns", ns, "--match", "user:*", "--count", "500")
    assert rc == 0 and d["complete"]
    got = {k["key"]: k for k in d["keys"]}
    assert set(got) == {f"user:{i}" for i in range(12)}
    assert all(0 < k["ttl_ms"] <= 90000 for k in d["keys"])  # fresh 60 s + stale 30 s
    assert got["user:11"]["size"] - got["user:1"]["size"] == 10  # envelope + value bytes
    rc, d = run_json("keys", redis_url, "--ns", ns, "--limit", "3")
    assert rc == 0 and len(d["keys"]) == 3 and not d["complete"]
    # a bounded scan over a server full of other suites' keys stops, and says so
    rc, d = run_json("keys", redis_url, "--ns", ns, "--match", "nothing:*", "--count", "1", "--max-pages", "2")
    assert rc == 0 and d["keys"] == [] and not d["complete"]  # 13+ keys: 2 pages of COUNT 1 cannot cover them
    rc, out, _ = run("keys", f"{redis_url}?ns={ns}", "--match", "oth*")
    assert rc == 0 and "other" in out and "1 key(s)" in out


def test_keys_on_memcached_cannot_list():
    rc, out, err = run("keys", backend_url("memcached"), "--ns", "x")
    assert rc == cli.EXIT_NOTSUP
    one_line_error(err, "ENOTSUP")
    assert "cannot list" in err


def test_doctor_healthy_redis_and_memcached(redis_url):
    rc, d = run_json("doctor", redis_url)
    assert rc == 0 and d["healthy"] and d["backend"] == "redis"
    assert d["server_version"].count(".") == 2 and d["rtt_us"] >= 0
    assert d["pubsub"] == 1 and d["tracking"] == 1 and d["cluster"] == 0
    assert d["clock_skew_ms"] is not None and abs(d["clock_skew_ms"]) < 1000
    assert d["eviction_policy"] and d["maxmemory"] >= 0
    rc, out, _ = run("doctor", redis_url)
    assert rc == 0 and "healthy" in out
    rc, d = run_json("doctor", backend_url("memcached"))
    assert rc == 0 and d["backend"] == "memcached" and d["item_size_max"] >= 1024 * 1024
    assert d["server_version"] and d["clock_skew_ms"] is not None


def test_clear_refuses_without_terminal_and_changes_nothing(redis_url, ns, rcache):
    k = unique()
    rcache.set(k, b"keep")
    rc, out, err = run("clear", redis_url, "--ns", ns)
    assert rc == cli.EXIT_REFUSED and "--yes" in err and "nothing changed" in err
    rc, out, err = run("clear", redis_url, "--ns", ns, stdin=Tty("wrong\n"))
    assert rc == cli.EXIT_REFUSED
    assert rcache.get(k) == b"keep"
    assert run("clear", redis_url)[0] == cli.EXIT_USAGE  # the namespace must be named


def test_clear_with_yes_empties_the_namespace_only(redis_url, ns):
    k = unique()
    with stratacache.Cache(redis_url, namespace=ns) as plain:  # no stale window to serve it from
        plain.set(k, b"gone")
    with stratacache.Cache(redis_url, namespace=ns + "o") as other:
        other.set(k, b"kept")
        rc, d = run_json("clear", redis_url, "--ns", ns, "--yes")
        assert rc == 0 and d == {"cleared": ns}
        assert other.get(k) == b"kept"
        rc, d = run_json("inspect", redis_url, k, "--ns", ns)
        assert rc == 0 and d["cleared"] and d["status"] == "stale"  # the bytes stay; they read as cleared
        assert not run_json("inspect", redis_url, k, "--ns", ns + "o")[1]["cleared"]
    with stratacache.Cache(redis_url, namespace=ns) as fresh:
        assert fresh.get(k) is None


# ---- write-behind and dead letters ------------------------------------------------

def failing(batch):
    raise RuntimeError("db down")


def test_wb_dead_letter_cycle_on_redis(redis_url, ns):
    k = unique()
    with stratacache.Cache(redis_url, namespace=ns, writer=failing, wb_threads=0, wb_max_attempts=1) as c:
        c.write_behind(k, b"v1")
        rc, d = run_json("wb", redis_url, "--ns", ns)
        assert rc == 0 and d["backlog"] == 1 and d["dead"] == 0 and d["oldest_age_ms"] >= 0
        c.flush(10)  # the writer fails once: dead-lettered
    rc, d = run_json("wb", f"{redis_url}?ns={ns}")
    assert d["backlog"] == 0 and d["dead"] == 1
    rc, d = run_json("wb", "dead", "list", redis_url, "--ns", ns)
    assert rc == 0 and [(x["key"], x["attempts"]) for x in d["dead"]] == [(k, 1)]
    assert "RuntimeError: db down" in d["dead"][0]["error"]
    rc, d = run_json("wb", "dead", "replay", redis_url, "--ns", ns, "--key", "other")
    assert d["replayed"] == 0
    rc, d = run_json("wb", "dead", "replay", redis_url, "--ns", ns, "--key", k)
    assert rc == 0 and d["replayed"] == 1
    assert run_json("wb", "dead", "replay", redis_url, "--ns", ns)[1]["replayed"] == 0  # once
    rc, d = run_json("wb", redis_url, "--ns", ns)
    assert d["backlog"] == 1 and d["dead"] == 0
    got: List[dict] = []
    with stratacache.Cache(redis_url, namespace=ns, writer=got.append, wb_threads=0) as c:
        c.flush(10)
    assert got == [{k.encode(): b"v1"}]


def test_wb_dead_purge_needs_confirmation(redis_url, ns):
    with stratacache.Cache(redis_url, namespace=ns, writer=failing, wb_threads=0, wb_max_attempts=1) as c:
        c.write_behind("a", b"1")
        c.write_behind("b", b"2")
        c.flush(10)
    rc, out, err = run("wb", "dead", "purge", redis_url, "--ns", ns)
    assert rc == cli.EXIT_REFUSED and run_json("wb", redis_url, "--ns", ns)[1]["dead"] == 2
    rc, d = run_json("wb", "dead", "purge", redis_url, "--ns", ns, "--key", "a", "--yes")
    assert d["purged"] == 1
    rc, out, _ = run("wb", "dead", "purge", redis_url, "--ns", ns, stdin=Tty("purge\n"))
    assert rc == 0 and "purged 1" in out
    assert run_json("wb", redis_url, "--ns", ns)[1]["dead"] == 0


def test_wb_dead_letter_cycle_on_a_journal_file(tmp_path, ns, monkeypatch):
    # The writer's logged traceback would keep the owner's handle (and its
    # journal lock) alive in pytest's log capture after close().
    monkeypatch.setattr(logging.getLogger("stratacache"), "disabled", True)
    journal = str(tmp_path / "wb.journal")
    k = unique()
    url = backend_url("memcached")
    with stratacache.Cache(url, namespace=ns, wb_journal=journal, writer=failing, wb_threads=0,
                           wb_max_attempts=1) as c:
        c.write_behind(k, b"v1")
        c.write_behind("kept", b"v2")
        rc, out, err = run("wb", journal)
        assert rc == cli.EXIT_BUSY and "in use" in err  # the owner holds the journal
        c.flush(10)
    rc, d = run_json("wb", journal)
    assert rc == 0 and d["backlog"] == 0 and d["dead"] == 2
    rc, d = run_json("wb", "dead", "list", journal)
    assert [x["key"] for x in d["dead"]] == [k, "kept"] and "RuntimeError: db down" in d["dead"][0]["error"]
    rc, d = run_json("wb", "dead", "replay", journal, "--key", k)
    assert rc == 0 and d["replayed"] == 1
    rc, d = run_json("wb", journal)
    assert d["backlog"] == 1 and d["dead"] == 1
    got: List[dict] = []
    with stratacache.Cache(url, namespace=ns, wb_journal=journal, writer=got.append, wb_threads=0) as c:
        c.flush(10)
    assert got == [{k.encode(): b"v1"}]
    assert run("wb", str(tmp_path / "missing"))[0] == cli.EXIT_INPUT


# ---- the installed console script ---------------------------------------------------

def script() -> str:
    path = Path(sys.executable).parent / "stratacache"
    found = str(path) if path.exists() else shutil.which("stratacache")
    if not found:
        pytest.skip("the stratacache console script is not installed next to this python")
    return found


def test_console_script_exit_codes(redis_url, ns, rcache):
    exe = script()
    k = unique()
    rcache.set(k, b"x")
    env = dict(os.environ)
    p = subprocess.run([exe, "inspect", redis_url, k, "--ns", ns, "--json"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "fresh"
    p = subprocess.run([exe, "inspect", redis_url, unique(), "--ns", ns], capture_output=True, text=True, timeout=60)
    assert p.returncode == cli.EXIT_MISS
    p = subprocess.run([exe, "doctor", "redis://127.0.0.1:nope"], capture_output=True, text=True, timeout=60)
    assert p.returncode == cli.EXIT_INPUT and p.stderr.startswith("stratacache: EURL") and "Traceback" not in p.stderr
    p = subprocess.run([exe, "clear", redis_url, "--ns", ns], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == cli.EXIT_REFUSED and rcache.get(k) == b"x"
