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
]


def journal_record(body):
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def put(seq, key, value, ms=1700000000000):
    return journal_record(b"\x01" + struct.pack("<QqI", seq, ms, len(key)) + key + value)


def ack(*seqs):
    return journal_record(b"\x02" + struct.pack("<I", len(seqs)) + b"".join(struct.pack("<Q", s) for s in seqs))


def journal_seeds():
    head = b"STRJ\x01\x00\x00\x00"
    write("journal", "empty", b"")
    write("journal", "header", head)
    write("journal", "puts", head + put(1, b"a", b"1") + put(2, b"b", b"22") + put(3, b"a", b"333"))
    write("journal", "acked", head + put(1, b"a", b"1") + put(2, b"b", b"2") + ack(1))
    torn = head + put(1, b"k", b"v") + put(2, b"k2", b"v2")
    write("journal", "torn", torn[:-3])
    flipped = bytearray(head + put(1, b"k", b"v") + put(2, b"k2", b"v2") + put(3, b"k3", b"v3"))
    flipped[8 + 8 + 25] ^= 0x10
    write("journal", "flipped", bytes(flipped))
    write("journal", "version2", b"STRJ\x02\x00\x00\x00")


def mc_key_seeds():
    write("mc_key", "plain", b"\x05user:1\x00user:2")
    write("mc_key", "space", b"\x00a b\x00a_b")
    write("mc_key", "long", b"\x3f" + b"k" * 300 + b"\x00" + b"k" * 299)
    write("mc_key", "control", b"\x07\x01\x7f\x00#H:")
    write("mc_key", "lease-like", b"\x06#L:x\x00x")


if __name__ == "__main__":
    envelope_seeds()
    for i, u in enumerate(URLS):
        write("options", "url%d" % i, u.encode())
    journal_seeds()
    mc_key_seeds()
