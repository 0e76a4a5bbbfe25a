"""Minimal raw clients (RESP over a socket, memcached text protocol) so tests
can read and write the bytes stratacache stores without a client library."""
import socket
from typing import Optional
from urllib.parse import urlsplit


class RawRedis:
    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def command(self, *args: bytes):
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(out)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n)
        if kind in (b"+", b":"):
            return rest
        raise RuntimeError(f"redis: {line!r}")

    def get(self, key: bytes) -> Optional[bytes]:
        return self.command(b"GET", key)

    def set(self, key: bytes, value: bytes, ttl_s: int = 60) -> None:
        self.command(b"SET", key, value, b"EX", str(ttl_s).encode())


class RawMemcached:
    def __init__(self, url: str) -> None:
        host, _, port = urlsplit(url).netloc.split(",")[0].partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def get(self, key: bytes) -> Optional[bytes]:
        self.sock.sendall(b"get " + key + b"\r\n")
        line = self.file.readline()
        if line == b"END\r\n":
            return None
        parts = line.split()
        if parts[0] != b"VALUE":
            raise RuntimeError(f"memcached: {line!r}")
        data = self.file.read(int(parts[3]) + 2)[:-2]
        assert self.file.readline() == b"END\r\n"
        return data

    def set(self, key: bytes, value: bytes, ttl_s: int = 60) -> None:
        self.sock.sendall(b"set %s 0 %d %d\r\n%s\r\n" % (key, ttl_s, len(value), value))
        line = self.file.readline()
        if line != b"STORED\r\n":
            raise RuntimeError(f"memcached: {line!r}")


def connect(backend: str, url: str):
    return RawRedis(url) if backend == "redis" else RawMemcached(url)
