#!/usr/bin/env python3
"""Writes tests/vectors/envelope.txt from an independent encoder of docs/FORMAT.md.

Each line: hex flags created fresh_until stale_until cost payload tags ('-' = empty;
tags as name=version,name=version).
The C, Python and Lua suites all decode these lines and check the fields.
"""
import struct
import sys

MAGIC = b"\xe5SC\x01"


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


PAYLOAD_CRC = 0x02  # flags bit 1: a CRC32C of the payload follows the tags


def encode(flags, created, fresh, stale, cost, payload, tags=()):
    tagbytes = b"".join(struct.pack(">H", len(t)) + t + struct.pack(">Q", v) for t, v in tags)
    if flags & PAYLOAD_CRC:
        tagbytes += struct.pack(">I", crc32c(payload))
    head = MAGIC + struct.pack(">BBH", flags, len(tags), 0)
    head += struct.pack(">qqqII", created, fresh, stale, cost, len(payload))
    return head + struct.pack(">I", fnv1a32(head + tagbytes)) + tagbytes + payload


CASES = [
    (0, 1700000000000, 1700000060000, 1700000060000, 0, b"hello"),
    (0, 1700000000000, 1700000060000, 1700000120000, 250, b"{\"id\":1}"),
    (1, 1700000000000, 1700000005000, 1700000005000, 12, b""),
    (0, 0, 0, 0, 0, b""),
    (0, 1, 2, 3, 4294967295, b"caf\xc3\xa9"),
    # tag stamps: one tag, several (with a version past 2^63), and a negative entry
    (0, 1700000000000, 1700000060000, 1700000060000, 0, b"tagged", [(b"user:1", 1782579135692800000)]),
    (0, 1700000000000, 1700000060000, 1700000090000, 7, b"{}",
     [(b"team:7", 1), (b"org", 0), (b"x" * 256, 18446744073709551615)]),
    (1, 1700000000000, 1700000005000, 1700000005000, 0, b"", [(b"user:2", 42)]),
    # payload CRC32C (payload_crc=1): alone, with a tag, empty, and a negative entry
    (2, 1700000000000, 1700000060000, 1700000060000, 0, b"123456789"),
    (2, 1700000000000, 1700000060000, 1700000090000, 3, b"tagged", [(b"user:1", 5)]),
    (2, 1700000000000, 1700000060000, 1700000060000, 0, b""),
    (3, 1700000000000, 1700000005000, 1700000005000, 0, b""),
]

if __name__ == "__main__":
    assert crc32c(b"123456789") == 0xE3069283  # the check value of the standard
    out = sys.stdout
    out.write("# envelope v1 test vectors (scripts/gen-vectors.py); see docs/FORMAT.md\n")
    out.write("# hex flags created_ms fresh_until_ms stale_until_ms cost_ms payload [tags]\n")
    for flags, created, fresh, stale, cost, payload, *rest in CASES:
        tags = rest[0] if rest else []
        enc = encode(flags, created, fresh, stale, cost, payload, tags)
        text = payload.decode("utf-8") if payload else "-"
        line = f"{enc.hex()} {flags} {created} {fresh} {stale} {cost} {text}"
        if tags:
            line += " " + ",".join(f"{t.decode()}={v}" for t, v in tags)
        out.write(line + "\n")
