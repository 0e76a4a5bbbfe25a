"""The ``stratacache`` command: look inside a cache and act on it.

    stratacache inspect redis://127.0.0.1:6379 user:7 --ns users
    stratacache doctor redis://127.0.0.1:6379
    stratacache wb dead replay redis://127.0.0.1:6379?ns=users --key user:7

Every subcommand has --help; exit codes are in EXIT_CODES (and the README).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple
from urllib.parse import parse_qsl, quote

from . import _optools as ops
from ._cache import Cache, _raise
from ._errors import StrataError
from ._native import ffi, lib

EXIT_OK = 0          # done; inspect: a value (fresh, stale or negative)
EXIT_MISS = 1        # inspect: nothing under the key
EXIT_USAGE = 2       # bad command line
EXIT_FOREIGN = 3     # inspect: the bytes under the key are not a stratacache value
EXIT_INPUT = 4       # malformed URL, unknown option, bad key or path
EXIT_BACKEND = 5     # server unreachable, timed out, or it refused
EXIT_NOTSUP = 6      # the backend cannot do this (memcached keys)
EXIT_BUSY = 7        # the journal file is held by the process that owns it
EXIT_REFUSED = 8     # clear / purge not confirmed: nothing changed
EXIT_PROBLEM = 9     # doctor found a problem
EXIT_ERROR = 10      # anything else

EXIT_CODES = {
    EXIT_OK: "ok (inspect: a value: fresh, stale or negative)",
    EXIT_MISS: "inspect: miss (nothing under the key)",
    EXIT_USAGE: "bad command line",
    EXIT_FOREIGN: "inspect: the value is not ours (foreign or corrupt bytes)",
    EXIT_INPUT: "malformed URL or option, bad key, no such journal file",
    EXIT_BACKEND: "server unreachable, timed out or refused",
    EXIT_NOTSUP: "not supported by this backend",
    EXIT_BUSY: "journal file in use by its owner",
    EXIT_REFUSED: "not confirmed (no terminal and no --yes): nothing changed",
    EXIT_PROBLEM: "doctor found a problem",
    EXIT_ERROR: "other error",
}

_BY_NAME = {
    "EURL": EXIT_INPUT, "EOPTION": EXIT_INPUT, "EINVAL": EXIT_INPUT, "EKEY": EXIT_INPUT,
    "EVERSION": EXIT_INPUT, "ETOOBIG": EXIT_INPUT,
    "EBACKEND": EXIT_BACKEND, "ETIMEOUT": EXIT_BACKEND, "EBREAKER": EXIT_BACKEND,
    "ENOTSUP": EXIT_NOTSUP, "EBUSY": EXIT_BUSY,
}

# What the command asks of a cache it opens: no L1 (nothing to keep in step),
# no write-behind delivery (this process is not the service), short deadlines.
_FORCED = {"l1": "0", "wb_threads": "0", "wb_drain_ms": "0", "refresh_threads": "0", "tracking": "0"}
_DEFAULTS = {"timeout_ms": "1000", "connect_timeout_ms": "1000"}


class Failure(Exception):
    """One line for stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---- formatting -------------------------------------------------------------

def fmt_duration(ms: float) -> str:
    ms = abs(ms)
    if ms < 1000:
        return f"{int(ms)} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{int(s)} s"
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if s >= size:
            major, rest = divmod(int(s), size)
            minor = rest // subsize
            return f"{major} {unit} {minor} {sub}" if minor else f"{major} {unit}"
    return f"{int(s)} s"


def fmt_relative(when_ms: int, now_ms: int) -> str:
    d = when_ms - now_ms
    return f"in {fmt_duration(d)}" if d >= 0 else f"{fmt_duration(d)} ago"


def fmt_time(ms: int) -> str:
    t = time.gmtime(ms / 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + f".{ms % 1000:03d}Z"


def fmt_ttl(ms: int) -> str:
    return "no expiry" if ms == -1 else "unknown" if ms < 0 else fmt_duration(ms)


def safe_text(b: bytes, limit: int = 80) -> str:
    """Bytes for a terminal: text when it is printable UTF-8, else Python's
    bytes notation; control characters are always escaped."""
    cut = b[:limit]
    more = "..." if len(b) > limit else ""
    try:
        s = cut.decode("utf-8")
        if s.isprintable():
            return repr(s) + more
    except UnicodeDecodeError:
        pass
    return repr(cut) + more


def key_text(b: bytes) -> str:
    try:
        s = b.decode("utf-8")
        if s.isprintable() and s.strip() == s and s:
            return s
    except UnicodeDecodeError:
        pass
    return repr(b)


def _bytes_json(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


# ---- opening a cache ------------------------------------------------------

def cache_url(target: str, ns: Optional[str]) -> Tuple[str, str]:
    """(URL for the core, namespace) with --ns over ?ns= and the command's options."""
    if "://" not in target:
        raise Failure(EXIT_INPUT, f"EURL: \"{target}\" is not a URL (memory://, redis://host:port, "
                                  f"memcached://host:port)")
    base, _, query = target.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise Failure(EXIT_INPUT, f"EURL: malformed query in \"{target}\"") from None
    opts: Dict[str, str] = dict(_DEFAULTS)
    for k, v in pairs:
        opts[k] = v
    if ns is not None:
        opts["ns"] = ns
    opts.update(_FORCED)
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in opts.items())
    return f"{base}?{query}", opts.get("ns", "strata")


def open_cache(target: str, ns: Optional[str]) -> Tuple[Cache, str]:
    url, name = cache_url(target, ns)
    return Cache(url), name


def open_journal_or_url(target: str, ns: Optional[str]) -> Tuple[Cache, str]:
    """A URL, or a journal file path (memory/memcached write-behind)."""
    if "://" in target:
        return open_cache(target, ns)
    if not os.path.isfile(target):
        raise Failure(EXIT_INPUT, f"EOPTION: no journal file at \"{target}\"")
    url = f"memory://?wb_journal={quote(os.path.abspath(target), safe='')}"
    url += "&" + "&".join(f"{k}={v}" for k, v in {**_DEFAULTS, **_FORCED}.items())
    return Cache(url), "journal " + target


# ---- subcommands ----------------------------------------------------------

class Ctx:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO, inp: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.inp = inp

    def emit(self, human: Callable[[], List[str]], data: Any) -> None:
        if self.args.json:
            self.out.write(json.dumps(data, sort_keys=True) + "\n")
        else:
            for line in human():
                self.out.write(line + "\n")


def cmd_inspect(ctx: Ctx) -> int:
    a = ctx.args
    cache, ns = open_cache(a.url, a.ns)
    with cache:
        r = ops.inspect(cache, a.key)
    now = r.now_ms
    if r.kind == ops.MISS:
        status = "miss"
    elif r.kind == ops.FOREIGN:
        status = "not ours"
    elif r.negative:
        status = "negative"
    elif r.cleared or r.stale_by_tag or now >= r.fresh_until_ms:
        status = "stale"
    else:
        status = "fresh"
    data: Dict[str, Any] = {
        "key": a.key, "namespace": ns, "status": status, "now_ms": now,
        "backend_ttl_ms": r.backend_ttl_ms if r.kind != ops.MISS else None,
        "stored_bytes": r.stored_len,
        "lease": {"holder": r.lease_holder, "ttl_ms": r.lease_ttl_ms} if r.lease_holder else None,
    }
    if r.kind == ops.ENTRY:
        data.update({
            "created": fmt_time(r.created_ms), "created_ms": r.created_ms,
            "fresh_until": fmt_time(r.fresh_until_ms), "fresh_until_ms": r.fresh_until_ms,
            "stale_until": fmt_time(r.stale_until_ms), "stale_until_ms": r.stale_until_ms,
            "cost_ms": r.cost_ms, "negative": r.negative, "stale_by_tag": r.stale_by_tag, "cleared": r.cleared,
            "tags": [{"name": _bytes_json(t.name), "stamped": t.stamped, "current": t.current, "stale": t.stale}
                     for t in r.tags],
            "value_bytes": len(r.value), "value_preview": safe_text(r.value),
        })
    elif r.kind == ops.FOREIGN:
        data["value_preview"] = safe_text(r.value)

    def human() -> List[str]:
        lines = [f"key          {key_text(a.key.encode('utf-8'))}  (namespace {ns})",
                 f"status       {status.upper()}"]
        if r.kind == ops.ENTRY:
            lines.append(f"value        {len(r.value)} bytes: {safe_text(r.value)}" if not r.negative
                         else "value        (a cached \"not found\")")
            for label, ms in (("created", r.created_ms), ("fresh until", r.fresh_until_ms),
                              ("stale until", r.stale_until_ms)):
                lines.append(f"{label:<12} {fmt_time(ms)} ({fmt_relative(ms, now)})")
            lines.append(f"cost         {r.cost_ms} ms" if r.cost_ms else "cost         unknown")
            lines.append(f"negative     {'yes' if r.negative else 'no'}")
            if r.cleared:
                lines.append("cleared      yes: the namespace was cleared since this write (stale at most, else a miss)")
            for t in r.tags:
                verdict = "bumped since: stale by tag" if t.stale else "current"
                lines.append(f"tag          {key_text(t.name)} stamped {t.stamped}, now {t.current} ({verdict})")
        elif r.kind == ops.FOREIGN:
            lines.append(f"value        {r.stored_len} bytes that are not a stratacache envelope: "
                         f"{safe_text(r.value)}")
        if r.kind != ops.MISS:
            lines.append(f"backend ttl  {fmt_ttl(r.backend_ttl_ms)}")
        lines.append(f"lease        held by {r.lease_holder}, {fmt_ttl(r.lease_ttl_ms)} left"
                     if r.lease_holder else "lease        none")
        return lines

    ctx.emit(human, data)
    return {ops.MISS: EXIT_MISS, ops.FOREIGN: EXIT_FOREIGN}.get(r.kind, EXIT_OK)


def cmd_invalidate(ctx: Ctx) -> int:
    a = ctx.args
    cache, ns = open_cache(a.url, a.ns)
    with cache:
        for k in a.keys:
            cache.invalidate(k)
    ctx.emit(lambda: [f"invalidated {len(a.keys)} key(s) in namespace {ns}"],
             {"invalidated": a.keys, "namespace": ns})
    return EXIT_OK


def cmd_invalidate_tag(ctx: Ctx) -> int:
    a = ctx.args
    cache, ns = open_cache(a.url, a.ns)
    with cache:
        for t in a.tags:
            cache.invalidate_tag(t)
    ctx.emit(lambda: [f"bumped {len(a.tags)} tag(s) in namespace {ns}: their entries now read as misses"],
             {"invalidated_tags": a.tags, "namespace": ns})
    return EXIT_OK


def confirm(ctx: Ctx, what: str, word: str) -> None:
    """--yes, or the word typed on a terminal; else nothing happens."""
    if ctx.args.yes:
        return
    if not ctx.inp.isatty():
        raise Failure(EXIT_REFUSED, f"refused: {what} needs --yes when there is no terminal to confirm on; "
                                    f"nothing changed")
    ctx.err.write(f"{what}. Type \"{word}\" to go on: ")  # stderr: stdout may be --json
    ctx.err.flush()
    if ctx.inp.readline().strip() != word:
        raise Failure(EXIT_REFUSED, "refused: not confirmed; nothing changed")


def cmd_clear(ctx: Ctx) -> int:
    a = ctx.args
    url, ns = cache_url(a.url, a.ns)
    if a.ns is None and "ns=" not in a.url.partition("?")[2]:
        raise Failure(EXIT_USAGE, "clear needs the namespace named: --ns NS or ?ns=NS in the URL")
    confirm(ctx, f"This deletes every entry of namespace \"{ns}\" on {a.url.partition('?')[0]}", ns)
    if not hasattr(lib, "strata_clear"):
        raise Failure(EXIT_NOTSUP, "ENOTSUP: this build of the library has no clear (strata_clear)")
    with Cache(url) as cache:
        rc = lib.strata_clear(cache._enter())
        if rc < 0:
            _raise(rc)
    ctx.emit(lambda: [f"cleared namespace {ns}"], {"cleared": ns})
    return EXIT_OK


def cmd_keys(ctx: Ctx) -> int:
    a = ctx.args
    cache, ns = open_cache(a.url, a.ns)
    with cache:
        keys, complete = ops.scan(cache, a.match, a.limit, a.count, a.max_pages)
    data = {"namespace": ns, "complete": complete,
            "keys": [{"key": _bytes_json(k.key), "size": k.size, "ttl_ms": k.ttl_ms} for k in keys]}

    def human() -> List[str]:
        lines = [f"{'SIZE':>10}  {'TTL':>12}  KEY"]
        for k in keys:
            lines.append(f"{k.size if k.size >= 0 else '?':>10}  {fmt_ttl(k.ttl_ms):>12}  {key_text(k.key)}")
        tail = "scan complete" if complete else f"stopped at --limit {a.limit} or --max-pages {a.max_pages}"
        lines.append(f"{len(keys)} key(s) in namespace {ns} ({tail})")
        return lines

    ctx.emit(human, data)
    return EXIT_OK


def cmd_doctor(ctx: Ctx) -> int:
    a = ctx.args
    cache, ns = open_cache(a.url, a.ns)
    with cache:
        info = ops.server_info(cache)
    warnings: List[str] = []
    problems: List[str] = []
    backend = info["backend"]
    skew = info["clock_skew_ms"]
    # memcached tells its clock in whole seconds from a timer that may lag one more
    skew_limit = 3000 if backend == "memcached" else 1000
    if skew is not None and abs(skew) > skew_limit:
        problems.append(f"clock skew {skew} ms against the server: leases and TTLs are judged on both clocks")
    if backend == "redis":
        policy = info["eviction_policy"]
        if policy == "noeviction":
            msg = ("maxmemory-policy noeviction: once memory is full every write fails, leases included, "
                   "so misses load without stampede protection; prefer allkeys-lru or volatile-lru")
            warnings.append(msg if info["maxmemory"] > 0
                            else msg + " (maxmemory is 0: Redis grows until the OS stops it)")
        if info["cluster"] == 1 and info["cluster_state"] != "ok":
            problems.append(f"cluster_state is {info['cluster_state'] or 'unknown'}")
        if info["pubsub"] == 0:
            problems.append("pub/sub does not deliver: L1 invalidations between processes are lost "
                            f"({info['problem']})")
        if info["tracking"] == 0:
            warnings.append(f"CLIENT TRACKING does not work here: do not use tracking=1 ({info['problem']})")
    if backend == "memcached" and 0 < info["item_size_max"] < 1024 * 1024:
        warnings.append(f"item_size_max is {info['item_size_max']} bytes: values over it cannot be cached")
    data = dict(info, namespace=ns, warnings=warnings, problems=problems, healthy=not problems)

    def yesno(v: int) -> str:
        return {1: "works", 0: "BROKEN", -1: "n/a"}.get(v, "?")

    def human() -> List[str]:
        lines = [f"backend        {backend} {info['server_version']}"]
        if info["rtt_us"] >= 0:
            lines.append(f"round trip     {info['rtt_us']} us")
        if skew is not None:
            lines.append(f"clock skew     {skew:+d} ms (server minus here"
                         + (", to within 2 s: memcached tells whole seconds)" if backend == "memcached" else ")"))
        if info["maxmemory"] >= 0:
            lines.append(f"maxmemory      {info['maxmemory'] or 'unlimited'}"
                         + (f", policy {info['eviction_policy']}" if info["eviction_policy"] else ""))
        if info["cluster"] >= 0:
            lines.append("cluster        " + (f"yes, state {info['cluster_state']}" if info["cluster"] == 1 else "no"))
        if info["pubsub"] >= 0:
            lines.append(f"pub/sub        {yesno(info['pubsub'])}")
            lines.append(f"CLIENT TRACKING {yesno(info['tracking'])}")
        if info["item_size_max"] >= 0:
            lines.append(f"item size max  {info['item_size_max']} bytes")
        lines += [f"warning: {w}" for w in warnings]
        lines += [f"PROBLEM: {p}" for p in problems]
        lines.append("healthy" if not problems else f"{len(problems)} problem(s)")
        return lines

    ctx.emit(human, data)
    return EXIT_OK if not problems else EXIT_PROBLEM


def cmd_wb(ctx: Ctx) -> int:
    a = ctx.args
    cache, where = open_journal_or_url(a.target, a.ns)
    with cache:
        st = ops.wb_status(cache)
    now = int(time.time() * 1000)
    data = dict(st, where=where, oldest_age_ms=(now - st["oldest_ms"]) if st["oldest_ms"] else None)

    def human() -> List[str]:
        lines = [f"journal        {where}", f"backlog        {st['backlog']} record(s) not yet delivered",
                 f"pending        {st['pending']} handed to a consumer, not acknowledged"]
        if st["oldest_ms"]:
            lines.append(f"oldest record  {fmt_time(st['oldest_ms'])} ({fmt_relative(st['oldest_ms'], now)})")
        lines.append(f"dead letters   {st['dead']}")
        for c in st["consumers"]:
            lines.append(f"consumer       {c['name']}: {c['pending']} pending, idle {fmt_duration(c['idle_ms'])}")
        return lines

    ctx.emit(human, data)
    return EXIT_OK


def cmd_dead(ctx: Ctx) -> int:
    a = ctx.args
    cache, where = open_journal_or_url(a.target, a.ns)
    with cache:
        if a.action == "list":
            letters = ops.dead_letters(cache, a.limit or 0)
            data = {"where": where, "dead": [
                {"id": d.id, "key": _bytes_json(d.key), "value_preview": safe_text(d.value),
                 "value_bytes": len(d.value), "error": d.error, "given_up_ms": d.given_up_ms,
                 "given_up": fmt_time(d.given_up_ms), "attempts": d.attempts} for d in letters]}
            now = int(time.time() * 1000)
            ctx.emit(lambda: [f"{d.id}  {key_text(d.key)}  {len(d.value)} bytes {safe_text(d.value, 40)}  "
                              f"given up {fmt_relative(d.given_up_ms, now)} after {d.attempts} attempt(s): "
                              f"{safe_text(d.error.encode('utf-8'), 120)}" for d in letters]
                     + [f"{len(letters)} dead letter(s) in {where}"], data)
            return EXIT_OK
        if a.action == "replay":
            n = ops.dead_replay(cache, a.key)
            ctx.emit(lambda: [f"replayed {n} dead letter(s) into the journal of {where}"],
                     {"replayed": n, "where": where})
            return EXIT_OK
        which = f"the dead letters of key {a.key}" if a.key else "every dead letter"
        confirm(ctx, f"This deletes {which} in {where}", "purge")
        n = ops.dead_purge(cache, a.key)
        ctx.emit(lambda: [f"purged {n} dead letter(s) from {where}"], {"purged": n, "where": where})
        return EXIT_OK


# ---- command line ----------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise Failure(EXIT_USAGE, f"usage: {message} (see {self.prog} --help)")


def _count(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ns", metavar="NS", help="namespace (or ?ns=NS in the URL; default strata)")
    p.add_argument("--json", action="store_true", help="machine-readable output, one JSON object")


def _parsers() -> Dict[str, argparse.ArgumentParser]:
    P: Dict[str, argparse.ArgumentParser] = {}

    def new(name: str, help: str) -> argparse.ArgumentParser:
        p = _Parser(prog=f"stratacache {name}", description=help)
        P[name] = p
        return p

    p = new("inspect", "Show the decoded entry under KEY. Exit 0 a value, 1 a miss, 3 not ours.")
    p.add_argument("url")
    p.add_argument("key")
    _common(p)
    p = new("invalidate", "Drop keys (and any load in flight's right to fill them), evicting them from L1s.")
    p.add_argument("url")
    p.add_argument("keys", nargs="+", metavar="KEY")
    _common(p)
    p = new("invalidate-tag", "Bump tags: every entry stamped with them reads as a miss.")
    p.add_argument("url")
    p.add_argument("tags", nargs="+", metavar="TAG")
    _common(p)
    p = new("clear", "Delete every entry of a namespace (asks first unless --yes).")
    p.add_argument("url")
    p.add_argument("--yes", action="store_true", help="do not ask")
    _common(p)
    p = new("keys", "List the namespace's keys with sizes and TTLs (bounded SCAN; never KEYS).")
    p.add_argument("url")
    p.add_argument("--match", metavar="PATTERN", help="glob on keys (redis MATCH syntax)")
    p.add_argument("--limit", type=_count, default=1000, metavar="N", help="at most N keys (default 1000)")
    p.add_argument("--count", type=_count, default=100, metavar="N", help="SCAN COUNT per round trip (1-10000)")
    p.add_argument("--max-pages", type=_count, default=1000, metavar="N",
                   help="at most N SCAN round trips (default 1000)")
    _common(p)
    p = new("doctor", "Check the server: version, round trip, eviction, cluster, pub/sub, CLIENT TRACKING, "
                      "item size, clock skew. Exit 0 healthy, 9 a problem.")
    p.add_argument("url")
    _common(p)
    p = new("wb", "Write-behind journal: backlog, pending per consumer, oldest record, dead letters. "
                  "TARGET is a URL (redis) or a journal file path (memory/memcached).")
    p.add_argument("target")
    _common(p)
    for action, text in (("list", "List dead letters, oldest first."),
                         ("replay", "Put dead letters back into the journal, oldest first, each once."),
                         ("purge", "Delete dead letters (asks first unless --yes).")):
        p = new(f"wb dead {action}", text + " TARGET is a URL or a journal file path.")
        p.add_argument("target")
        if action == "list":
            p.add_argument("--limit", type=_count, default=None, metavar="N", help="at most N (default all)")
        else:
            p.add_argument("--key", metavar="K", help="only the dead letters of this key")
        if action == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask")
        _common(p)
    return P


_RUN = {"inspect": cmd_inspect, "invalidate": cmd_invalidate, "invalidate-tag": cmd_invalidate_tag,
        "clear": cmd_clear, "keys": cmd_keys, "doctor": cmd_doctor, "wb": cmd_wb}


def _usage() -> str:
    lines = ["usage: stratacache COMMAND ... (stratacache COMMAND --help)", "", "commands:"]
    for name, p in _parsers().items():
        lines.append(f"  {name:<16} {(p.description or '').split('. ')[0].rstrip('.')}")
    lines += ["", "exit codes:"] + [f"  {c:>2}  {t}" for c, t in EXIT_CODES.items()]
    return "\n".join(lines)


def _split(argv: Sequence[str]) -> Tuple[str, List[str]]:
    words = list(argv)
    if not words or words[0] in ("-h", "--help", "help"):
        return "help", []
    if words[0] == "--version":
        return "version", []
    if words[0] == "wb" and len(words) > 1 and words[1] == "dead":
        if len(words) < 3 or words[2] not in ("list", "replay", "purge"):
            if len(words) > 2 and words[2] in ("-h", "--help"):
                return "help", []
            raise Failure(EXIT_USAGE, "usage: stratacache wb dead list|replay|purge TARGET")
        return f"wb dead {words[2]}", words[3:]
    return words[0], words[1:]


def main(argv: Optional[Sequence[str]] = None, stdout: Optional[TextIO] = None,
         stderr: Optional[TextIO] = None, stdin: Optional[TextIO] = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    inp = stdin or sys.stdin
    try:
        name, rest = _split(sys.argv[1:] if argv is None else argv)
        if name == "help":
            out.write(_usage() + "\n")
            return EXIT_OK
        if name == "version":
            out.write(ffi.string(lib.strata_version()).decode("ascii") + "\n")
            return EXIT_OK
        parsers = _parsers()
        if name not in parsers:
            raise Failure(EXIT_USAGE, f"usage: unknown command \"{name}\" (stratacache --help)")
        parser = parsers[name]
        if "-h" in rest or "--help" in rest:
            out.write(parser.format_help())
            return EXIT_OK
        args = parser.parse_intermixed_args(rest)
        if name.startswith("wb dead "):
            args.action = name.split()[-1]
            run = cmd_dead
        else:
            run = _RUN[name]
        return run(Ctx(args, out, err, inp))
    except Failure as e:
        err.write(f"stratacache: {e}\n")
        return e.code
    except StrataError as e:
        err.write(f"stratacache: {e.name}: {e.message}\n")
        return _BY_NAME.get(e.name, EXIT_ERROR)
    except (TypeError, ValueError, OSError) as e:
        err.write(f"stratacache: {type(e).__name__}: {e}\n")
        return EXIT_INPUT if not isinstance(e, OSError) else EXIT_ERROR
    except KeyboardInterrupt:
        err.write("stratacache: interrupted\n")
        return 130
    except Exception as e:  # still one line, never a traceback
        err.write(f"stratacache: {type(e).__name__}: {e}\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
