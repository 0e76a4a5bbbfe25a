#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<harness>/: a few small valid
and nearly valid inputs per harness, for libFuzzer to grow from and for
`make test` to replay. Run from anywhere; rewrites only the seed-* files."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def envelope_seeds():
    with open(os.path.join(ROOT, "tests", "vectors", "envelope.txt")) as f:
        lines = [l.split()[0] for l in f if l.strip() and not l.startswith("#")]
    for i, h in enumerate(lines):
        if len(h) <= 1200:  # the 256-byte tag vector is covered by mutation
            write("envelope", "vector%d" % i, bytes.fromhex(h))
    first = bytes.fromhex(lines[0])
    write("envelope", "truncated", first[:-1])
    write("envelope", "short", first[:20])


URLS = [
    "memory://",
    "memory://shared?ns=app&l1=1&l1_size=100",
    "redis://127.0.0.1:6379/2?timeout_ms=200&pool_size=4",
    "redis://user:p%40ss@localhost/0?ns=x.y",
    "memcached://a:11211,b:11212?ttl_ms=1000&stale_ms=500",
    "memory://?wb_journal=%2Ftmp%2Fj&wb_fsync=interval&wb_interval_ms=5",
    "memcached://h?l1_bus=redis://127.0.0.1:6380/1",
    "redis://h?wb_journal=%2F&wb_fsync=always",
    "memory://?ttl_ms=9223372036854775807",
    "redis://[::1]:6379",
    # reproducers of issue 11 defect 11 (empty and stacked messages), fixed
    "redis://h?wb_journal=%zz",
    "redis://h?wb_consumer=%zz",
    "memcached://h?l1_bus=redis://",
    "memcached://h?l1_bus=redis://h/x",
]


def journal_record(body):
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def put(seq, key, value, ms=1700000000000):
    return journal_record(b"\x01" + struct.pack("<QqI", seq, ms, len(key)) + key + value)


def ack(*seqs):
    return journal_record(b"\x02" + struct.pack("<I", len(seqs)) + b"".join(struct.pack("<Q", s) for s in seqs))


def journal_seeds():
    """Byte 0 of each: 1 = the harness fixes the CRCs, 0 = bytes as they are."""
    head = b"\x00STRJ\x01\x00\x00\x00"
    write("journal", "empty", b"\x00")
    write("journal", "fixed-crcs", b"\x01" + head[1:] + put(1, b"a", b"1")[:4] + b"\0\0\0\0" + put(1, b"a", b"1")[8:]
          + ack(1, 1, 7))
    write("journal", "header", head)
    write("journal", "puts", head + put(1, b"a", b"1") + put(2, b"b", b"22") + put(3, b"a", b"333"))
    write("journal", "acked", head + put(1, b"a", b"1") + put(2, b"b", b"2") + ack(1))
    torn = head + put(1, b"k", b"v") + put(2, b"k2", b"v2")
    write("journal", "torn", torn[:-3])
    flipped = bytearray(head + put(1, b"k", b"v") + put(2, b"k2", b"v2") + put(3, b"k3", b"v3"))
    flipped[1 + 8 + 8 + 25] ^= 0x10
    write("journal", "flipped", bytes(flipped))
    write("journal", "version2", b"\x00STRJ\x02\x00\x00\x00")


def mc_key_seeds():
    write("mc_key", "plain", b"\x05user:1\x00user:2")
    write("mc_key", "space", b"\x00a b\x00a_b")
    write("mc_key", "long", b"\x3f" + b"k" * 300 + b"\x00" + b"k" * 299)
    write("mc_key", "control", b"\x07\x01\x7f\x00#H:")
    write("mc_key", "lease-like", b"\x06#L:x\x00x")


# Redis reply seeds: op, argument byte, replies ("~~\n" between round trips);
# op numbers follow the enum in fuzz_redis_reply.c.
Q = b"+QUEUED\r\n"
ENTRY = (b"*2\r\n$3\r\n1-0\r\n*8\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\nv\r\n$1\r\n1\r\n"
         b"$1\r\nt\r\n$13\r\n1700000000000\r\n$1\r\nn\r\n$16\r\n00000000000000ff\r\n")
REDIS = {
    "get-hit": (0, 0, [b"$5\r\nhello\r\n"]),
    "get-miss": (0, 1, [b"$-1\r\n"]),
    "get-error": (0, 2, [b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"]),
    "get-many": (1, 1, [b"*2\r\n$1\r\na\r\n$-1\r\n"]),
    "set": (2, 0, [b"+OK\r\n" + Q * 4 + b"*4\r\n:0\r\n+OK\r\n:0\r\n"]),
    "set-many": (3, 1, [(b"+OK\r\n" + Q * 4 + b"*4\r\n:0\r\n+OK\r\n:0\r\n") * 2]),
    "del": (4, 0, [b"+OK\r\n" + Q * 4 + b"*4\r\n:1\r\n:0\r\n:0\r\n"]),
    "touch": (5, 0, [b":1\r\n"]),
    "lease-won": (6, 0, [b"+OK\r\n:3000\r\n"]),
    "lease-wait": (6, 0, [b"$-1\r\n:1500\r\n"]),
    "fill": (7, 0, [b":1\r\n"]),
    "fill-noscript": (7, 0, [b"-NOSCRIPT No matching script\r\n", b"$40\r\n" + b"a" * 40 + b"\r\n", b":0\r\n"]),
    "release": (8, 0, [b":1\r\n"]),
    "incr": (9, 0, [b":4\r\n"]),
    "counter": (10, 1, [b"+OK\r\n:1099511627777\r\n"]),
    "wb-append": (11, 0, [b"+OK\r\n" + Q * 5 + b"*5\r\n:0\r\n+OK\r\n$3\r\n1-0\r\n+OK\r\n:0\r\n:1\r\n"]),
    "wb-read": (12, 1, [b"*1\r\n*2\r\n$8\r\nstrata#W\r\n*1\r\n" + ENTRY]),
    "wb-read-nogroup": (12, 0, [b"-NOGROUP No such key\r\n", b"+OK\r\n", b"*-1\r\n"]),
    "wb-claim": (12, 9, [b"*3\r\n$3\r\n0-0\r\n*1\r\n" + ENTRY + b"*0\r\n", b"*-1\r\n"]),
    "wb-ack": (13, 1, [b"+OK\r\n" + Q * 2 + b"*2\r\n:2\r\n:2\r\n"]),
    "wb-dead": (14, 0, [b"+OK\r\n" + Q * 3 + b"*3\r\n$3\r\n1-0\r\n:1\r\n:1\r\n"]),
    "wb-backlog": (15, 0, [b":3\r\n"]),
    "wb-latest": (16, 1, [b"*2\r\n$16\r\n00000000000000ff\r\n$-1\r\n"]),
}


if __name__ == "__main__":
    for name, (op, arg, replies) in REDIS.items():
        write("redis_reply", name, bytes([op, arg]) + b"~~\n".join(replies))
    envelope_seeds()
    for i, u in enumerate(URLS):
        write("options", "url%d" % i, u.encode())
    journal_seeds()
    mc_key_seeds()
