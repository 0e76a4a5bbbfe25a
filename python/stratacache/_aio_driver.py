"""The asyncio driver of the core's resumable operations (docs/SANS-IO.md).

It only moves bytes: the core says what to send to which server, how long
the replies may take and what they mean (leases, fills, tags, L1); this file
keeps connections per server on the running loop, writes, feeds what
arrives (any split), applies each exchange's deadline with the loop's timer
and reports connection failures with strata_op_io_failed. No command, no key
layout, no thread.

Connections: up to ``pool_size`` per server (the URL option; 4 by default).
An op goes to an idle connection, else to a new one while there are fewer
than that, else it is pipelined behind the others on the least busy one:
replies on a connection come in order, so each keeps a FIFO of the
exchanges it carries and hands the bytes to the head, what the head did not
consume to the next. A new connection is set up with strata_op_hello (AUTH,
SELECT) before anything else is written on it.

Cancellation: an exchange whose caller is cancelled stays in its
connection's FIFO and is fed its replies when they come (the stream stays
in step, so the connection and the calls pipelined behind it are unharmed);
then the op is driven to its end in the background, a lease it holds given
back (strata_op_abandon), and freed. A deadline that passes closes the
connection: every exchange on it is reported with strata_op_io_failed.
After close(), nothing is sent any more: a lease still held then is left
to expire (lease_ttl_ms), as strata_op_free leaves it.
"""
from __future__ import annotations

import asyncio
import collections
import math
from typing import Any, Deque, Dict, List, Optional, Set

from ._native import ffi, lib

DONE, SEND, WAIT = lib.STRATA_IO_DONE, lib.STRATA_IO_SEND, lib.STRATA_IO_WAIT
EBACKEND, ETIMEOUT = lib.STRATA_EBACKEND, lib.STRATA_ETIMEOUT
_LEADING = (lib.STRATA_MISS_LEAD, lib.STRATA_HIT_REFRESH)

_next = lib.strata_op_next
_feed = lib.strata_op_feed
_io_failed = lib.strata_op_io_failed
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer


class Held:
    """An op and who frees it: the call that began it while ``op`` is set;
    a connection (then the driver's background finish) once it is None."""

    __slots__ = ("op",)

    def __init__(self, op: Any) -> None:
        self.op = op


class _Exchange:
    """One op's request sent on a connection, its replies not all fed yet."""

    __slots__ = ("op", "fut", "deadline")

    def __init__(self, op: Any, fut: "asyncio.Future[int]", deadline: float) -> None:
        self.op, self.fut, self.deadline = op, fut, deadline


class _Conn(asyncio.Protocol):
    """A connection to one server and the exchanges it carries, in order."""

    def __init__(self, driver: "LoopDriver", server: int) -> None:
        self.driver = driver
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.fifo: Deque[_Exchange] = collections.deque()
        self.ready: "asyncio.Future[None]" = driver.loop.create_future()
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.dead = False
        self.timer: Optional[asyncio.TimerHandle] = None
        self.timer_at = math.inf

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        fifo = self.fifo
        n = len(data)
        buf = _from_buffer(data)
        used = self.driver.consumed
        off = 0
        while off < n:
            if not fifo:
                self.fail(EBACKEND, f"{n - off} reply bytes no request asked for")
                return
            x = fifo[0]
            rc = _feed(x.op, buf + off, n - off, used)
            off += used[0]
            if rc == 1:
                return  # the head needs more: everything so far was its
            fifo.popleft()
            self.driver.exchanged(x, rc)
            if rc < 0:  # not a valid reply (the op is done with it): the stream is lost
                self.fail(EBACKEND, "the server sent something that is not a reply")
                return

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.fail(EBACKEND, f"connection lost: {exc}" if exc else "connection closed by the server")

    # -- the driver's side -------------------------------------------------

    def send(self, op: Any, data: Optional[bytes], fut: "asyncio.Future[int]", deadline: float) -> None:
        self.fifo.append(_Exchange(op, fut, deadline))
        if data is not None:
            assert self.transport is not None
            self.transport.write(data)
        if deadline < self.timer_at:
            self._arm(deadline)

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = self.driver.loop.call_at(at, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """One timer per connection, re-armed for the earliest deadline in
        the FIFO (not one per exchange: most end long before theirs)."""
        self.timer, self.timer_at = None, math.inf
        if not self.fifo:
            return
        first = min(x.deadline for x in self.fifo)
        if first <= self.driver.loop.time():
            self.fail(ETIMEOUT, "no reply within the deadline")
        else:
            self._arm(first)

    def fail(self, code: int, why: str) -> None:
        """Closes the connection; every exchange on it is reported failed
        (their replies are lost with it)."""
        if not self.dead:
            self.dead = True
            self.driver.forget(self)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.transport is not None and not self.driver.loop.is_closed():
                self.transport.abort()  # (a closed loop's transports go with their objects)
        msg = why.encode("utf-8", "replace")
        if self.driver.loop.is_closed():  # nobody can be woken: the ops are all that is left
            while self.fifo:
                x = self.fifo.popleft()
                if x.fut.cancelled():  # a cancelled call's (the others' calls own theirs)
                    self.driver.free(x.op)
            return
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        while self.fifo:
            x = self.fifo.popleft()
            _io_failed(x.op, code, msg)
            self.driver.exchanged(x, 0)

    def load(self) -> int:
        return len(self.fifo)


class LoopDriver:
    """The connections and reused out-params of one cache on one event loop."""

    def __init__(self, handle: Any, loop: asyncio.AbstractEventLoop, per_server: int,
                 connect_timeout: float) -> None:
        # Kept, not fetched per use: ops still being finished in the
        # background (a cancelled call's) must not outlive the C handle.
        self.h = handle
        self.loop = loop
        self.per_server = max(1, per_server)
        self.connect_timeout = connect_timeout
        self.conns: Dict[int, List[_Conn]] = {}
        self.hello: Dict[int, bool] = {}  # server -> whether a new connection needs strata_op_hello
        self.io = ffi.new("strata_io *")
        lib.strata_io_init(self.io, 1)
        self.consumed = ffi.new("size_t *")
        self.opp = ffi.new("strata_op **")
        self.background: Set["asyncio.Task[None]"] = set()
        self.closed = False
        self.live = 0  # ops begun and not freed yet (tests check it returns to 0)

    def held(self) -> Held:
        """The op a strata_op_* begin call just made (it returned 0)."""
        self.live += 1
        return Held(self.opp[0])

    def free(self, op: Any) -> None:
        self.live -= 1
        lib.strata_op_free(op)

    # -- ops ------------------------------------------------------------------

    async def drive(self, held: Held, conn: Optional[_Conn] = None) -> None:
        """Drives held.op until strata_op_next says DONE (``conn``: every
        exchange on that connection, for a hello)."""
        op = held.op
        io = self.io
        loop = self.loop
        while True:
            _next(op, io)
            kind = io.kind
            if kind == DONE:
                return
            if kind == WAIT:
                await asyncio.sleep(max(int(io.wait_ms), 1) / 1000.0)
                continue
            if self.closed:  # (an op finished in the background after close())
                _io_failed(op, EBACKEND, b"the cache is closed")
                continue
            server = io.server
            deadline = loop.time() + int(io.timeout_ms) / 1000.0  # a connect counts against it
            data = _unpack(io.data, io.len) if kind == SEND else None
            c = conn if conn is not None else self._pick(server)
            if c is None:
                host, port = ffi.string(io.host).decode("utf-8", "replace"), int(io.port)
                c = self._open(server, host, port)
            if c is not conn and (not c.ready.done() or c.dead):  # (a hello runs before ready)
                try:
                    await c.ready
                except ConnectionError as e:
                    _io_failed(op, EBACKEND, str(e).encode("utf-8", "replace"))
                    continue
                except asyncio.CancelledError:
                    # The op was told to send and nothing went out: end that
                    # exchange, or a later drive would wait for replies to nothing.
                    _io_failed(op, EBACKEND, b"the call was cancelled before its request was sent")
                    raise
            if c.dead:
                _io_failed(op, EBACKEND, b"connection closed before the request was sent")
                continue
            fut: "asyncio.Future[int]" = loop.create_future()
            c.send(op, data, fut, deadline)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.cancelled():  # still in the connection's FIFO: it owns the op now
                    held.op = None
                raise

    def exchanged(self, x: _Exchange, rc: int) -> None:
        """An exchange's replies are in (or it failed): wake its caller, or
        finish the op of a cancelled one in the background."""
        fut = x.fut
        if not fut.done():
            fut.set_result(rc)
        elif fut.cancelled():
            self.finish_later(x.op)

    def finish_later(self, op: Any) -> None:
        """Drives an op nobody waits for to its end, gives back a lease it
        holds, and frees it (a cancelled call's)."""
        if self.closed or self.loop.is_closed():
            self.free(op)
            return
        t = self.loop.create_task(self._finish(Held(op)))
        self.background.add(t)
        t.add_done_callback(self.background.discard)

    async def _finish(self, held: Held) -> None:
        try:
            await self.drive(held)
            if lib.strata_op_result(held.op, ffi.NULL) in _LEADING and lib.strata_op_abandon(held.op) == 0:
                await self.drive(held)
        finally:
            if held.op is not None:
                self.free(held.op)

    def release(self, held: Held) -> None:
        """The end of a call: frees its op, or, when it was cut short (an
        exception, a cancellation) holding a lease or mid-conversation,
        finishes it in the background first."""
        op = held.op
        if op is None:
            return
        held.op = None
        _next(op, self.io)
        if self.io.kind != DONE or lib.strata_op_result(op, ffi.NULL) in _LEADING:
            self.finish_later(op)
        else:
            self.free(op)

    # -- connections --------------------------------------------------------

    def _pick(self, server: int) -> Optional[_Conn]:
        """An idle connection, else None while a new one may be opened, else
        the least busy one (pipelined)."""
        conns = self.conns.get(server)
        if not conns:
            return None
        best = conns[0]
        if not best.fifo and best.ready.done():
            return best
        for c in conns:
            if not c.fifo and c.ready.done():
                return c
            if len(c.fifo) < len(best.fifo):
                best = c
        if len(conns) < self.per_server:
            return None
        return best

    def _open(self, server: int, host: str, port: int) -> _Conn:
        c = _Conn(self, server)
        self.conns.setdefault(server, []).append(c)
        t = self.loop.create_task(self._connect(c, host, port))
        self.background.add(t)
        t.add_done_callback(self.background.discard)
        return c

    async def _connect(self, c: _Conn, host: str, port: int) -> None:
        try:
            await asyncio.wait_for(self.loop.create_connection(lambda: c, host, port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            why = "timed out" if isinstance(e, asyncio.TimeoutError) else str(e)
            c.fail(EBACKEND, f"connect {host}:{port}: {why}")
            return
        if c.dead:  # closed while connecting
            return
        if self._needs_hello(c.server):
            rc = lib.strata_op_hello(self.opp, self.h, c.server)
            held = self.held() if rc == 0 else Held(None)
            try:
                if held.op is not None:
                    await self.drive(held, c)
                    rc = lib.strata_op_result(held.op, ffi.NULL)
                if rc != 0:
                    err = ffi.string(lib.strata_op_error(held.op)) if held.op is not None else b"no hello op"
                    c.fail(EBACKEND, f"connection setup: {err.decode('utf-8', 'replace')}")
                    return
            finally:
                self.release(held)
        if not c.ready.done():
            c.ready.set_result(None)

    def _needs_hello(self, server: int) -> bool:
        """Whether a new connection needs AUTH/SELECT: the hello op is made
        of the URL alone, so one probe per server tells for good."""
        need = self.hello.get(server)
        if need is None:
            need = True
            if lib.strata_op_hello(self.opp, self.h, server) == 0:
                op = self.opp[0]
                io = ffi.new("strata_io *")
                lib.strata_io_init(io, 1)
                _next(op, io)
                need = not (io.kind == DONE and lib.strata_op_result(op, ffi.NULL) == 0)
                lib.strata_op_free(op)
            self.hello[server] = need
        return need

    def forget(self, c: _Conn) -> None:
        conns = self.conns.get(c.server)
        if conns and c in conns:
            conns.remove(c)

    def connections(self) -> int:
        """Open (or opening) connections, for tests."""
        return sum(len(v) for v in self.conns.values())

    def close(self) -> None:
        self.closed = True
        for conns in list(self.conns.values()):
            for c in list(conns):
                c.fail(EBACKEND, "the cache is closed")
        self.conns.clear()
