"""The C envelope codec, through the package, against tests/vectors/envelope.txt.

The memory:// store cannot be read raw from Python, so this uses redis and
memcached: values written by Cache are read raw from the server and must be
byte-for-byte what docs/FORMAT.md prescribes for their fields; envelopes built
to the vectors' layout (re-stamped to now, since the vectors' times are in the
past) are written raw and must read back through Cache. The reference encoder
below is checked against every vector line first.
"""
import hashlib
import struct
import time
from pathlib import Path

import pytest

import stratacache

from conftest import backend_url, unique
from raw_backend import connect

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "envelope.txt"
HEADER = struct.Struct(">3sBBBHqqqIII")  # magic, version, flags, ntags, reserved, times, cost, len, checksum


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


PAYLOAD_CRC = 0x02  # flags bit 1: a CRC32C of the payload follows the tag section


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def encode(flags: int, created: int, fresh: int, stale: int, cost: int, payload: bytes, tags=()) -> bytes:
    """docs/FORMAT.md: header, checksum over header + tag section (+ payload CRC), tags, payload."""
    tagbytes = b"".join(struct.pack(">H", len(t)) + t + struct.pack(">Q", v) for t, v in tags)
    if flags & PAYLOAD_CRC:
        tagbytes += struct.pack(">I", crc32c(payload))
    head = b"\xe5SC\x01" + struct.pack(">BBHqqqII", flags, len(tags), 0, created, fresh, stale, cost, len(payload))
    return head + struct.pack(">I", fnv1a32(head + tagbytes)) + tagbytes + payload


def decode(raw: bytes):
    magic, version, flags, ntags, reserved, created, fresh, stale, cost, n, checksum = HEADER.unpack_from(raw)
    assert (magic, version, reserved) == (b"\xe5SC", 1, 0) and ntags <= 16
    tags, off = [], HEADER.size
    for _ in range(ntags):
        (tlen,) = struct.unpack_from(">H", raw, off)
        name = raw[off + 2:off + 2 + tlen]
        (version,) = struct.unpack_from(">Q", raw, off + 2 + tlen)
        tags.append((name, version))
        off += 2 + tlen + 8
    if flags & PAYLOAD_CRC:
        (crc,) = struct.unpack_from(">I", raw, off)
        off += 4
        assert crc == crc32c(raw[off:])
    assert len(raw) == off + n
    assert checksum == fnv1a32(raw[:40] + raw[HEADER.size:off])
    return flags, created, fresh, stale, cost, raw[off:], tags


def vectors():
    out = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        hexs, flags, created, fresh, stale, cost, payload, *rest = line.split(" ")
        tags = [(t.encode(), int(v)) for t, _, v in (p.rpartition("=") for p in rest[0].split(","))] if rest else []
        out.append((bytes.fromhex(hexs), int(flags), int(created), int(fresh), int(stale), int(cost),
                    b"" if payload == "-" else payload.encode("utf-8"), tags))
    return out


VECS = vectors()


def test_reference_encoder_reproduces_the_vectors():
    assert crc32c(b"123456789") == 0xE3069283
    assert len(VECS) >= 12 and any(v[-1] for v in VECS) and any(v[1] & PAYLOAD_CRC for v in VECS)
    for raw, *fields in VECS:
        assert encode(*fields) == raw
        assert decode(raw) == tuple(fields)


def with_query(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


@pytest.fixture(params=["redis", "memcached"])
def server(request, ns):
    url = backend_url(request.param)
    raw = connect(request.param, url)
    with stratacache.Cache(url, namespace=ns, ttl=60, neg_ttl=30) as c, \
            stratacache.Cache(with_query(url, "payload_crc=1"), namespace=ns, ttl=60, neg_ttl=30) as crc:
        c.with_crc = crc
        yield c, raw, (ns + ":").encode()
    raw.close()


def raw_key(full: bytes, raw) -> bytes:
    """The key as stored: memcached cannot carry long keys (docs/FORMAT.md)."""
    if type(raw).__name__ != "RawRedis" and (len(full) > 250 or any(b <= 0x20 or b == 0x7F for b in full)):
        ns = full.split(b"#", 1)[0]
        return ns + b"#H:" + hashlib.sha256(full).hexdigest().encode()
    return full


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("i", range(len(VECS)))
def test_c_encoder_writes_the_vector_layout(server, i):
    cache, raw, prefix = server
    vec, vflags, *_, payload, vtags = VECS[i]
    if vflags & PAYLOAD_CRC:
        cache = cache.with_crc
    names = [t for t, _ in vtags]
    k = unique("enc")
    t0 = now_ms()
    if vflags & 1:
        assert cache.get_or_load(k, lambda _: stratacache.NOT_FOUND, tags=names) is None
        ttl_ms = 30_000
    else:
        cache.set(k, payload, tags=names)
        ttl_ms = 60_000
    t1 = now_ms()
    stored = raw.get(prefix + k.encode())
    assert stored is not None
    flags, created, fresh, stale, cost, body, tags = decode(stored)
    # Bytes that do not depend on the clock or the tag versions are the vector's own.
    assert stored[:8] == vec[:8]
    assert stored[36:40] == vec[36:40] and body == payload and vec.endswith(payload)
    assert [t for t, _ in tags] == names
    assert t0 <= created <= t1
    assert fresh - created == ttl_ms and stale == fresh and cost < 1000
    # And the whole envelope, checksum included, is exactly the spec's.
    assert stored == encode(flags, created, fresh, stale, cost, body, tags)


def test_c_encoder_records_the_load_cost(server):
    cache, raw, prefix = server
    k = unique("cost")

    def slow(_):
        time.sleep(0.03)
        return b"v"

    assert cache.get_or_load(k, slow, ttl=120) == b"v"
    flags, created, fresh, stale, cost, body, _ = decode(raw.get(prefix + k.encode()))
    assert (flags, body, fresh - created) == (0, b"v", 120_000)
    assert 30 <= cost < 5000


@pytest.mark.parametrize("i", range(len(VECS)))
def test_c_decoder_reads_vector_envelopes(server, i):
    cache, raw, prefix = server
    vec, vflags, created, fresh, stale, cost, payload, tags = VECS[i]
    k = unique("dec")
    # The tags' counters hold the stamped versions, so the entry is current;
    # a version past 2^63 can be in an envelope but never in a counter (INCR
    # is signed 64-bit), so such an entry can only read as outdated.
    counter_ok = all(v < 2**63 for _, v in tags)
    for name, version in tags:
        if version < 2**63:
            raw.set(raw_key(prefix[:-1] + b"#T:" + name, raw), str(version).encode())
    # The vector's fields, moved to now (keeping its soft/hard TTL spans, at
    # least a minute so nothing expires during the test).
    now = now_ms()
    fresh_span = max(fresh - created, 60_000)
    new_fresh = now + fresh_span
    new_stale = new_fresh + (stale - fresh)
    raw.set(prefix + k.encode(), encode(vflags, now, new_fresh, new_stale, cost, payload, tags))
    if not counter_ok:
        # Outdated: expired now, served stale only within its stale allowance.
        before = cache.stats()["tag_stale"]
        assert cache.get(k) == (payload if stale > fresh else None)
        assert cache.stats()["tag_stale"] == before + 1
    elif vflags & 1:
        assert cache.get(k, default="absent") == "absent"
        assert cache.get_or_load(k, lambda _: pytest.fail("a cached not-found was loaded")) is None
        assert cache.stats()["negative_hits"] >= 1
    elif cost < fresh_span // 10:
        assert cache.get(k) == payload
        assert cache.get_or_load(k, lambda _: pytest.fail("a hit was loaded")) == payload
    else:
        # A load cost far beyond the time left makes XFetch refresh early: the
        # cost field was read. (get() serves the value; get_or_load refreshes.)
        assert cache.get(k) == payload
        before = cache.stats()["early_refreshes"]
        assert cache.get_or_load(k, lambda _: b"refreshed") == b"refreshed"
        assert cache.stats()["early_refreshes"] == before + 1


@pytest.mark.parametrize("i", range(len(VECS)))
def test_vectors_as_stored_are_expired_or_rejected(server, i):
    cache, raw, prefix = server
    k = unique("old")
    raw.set(prefix + k.encode(), VECS[i][0])  # stale_until is in 2023 (or 1970)
    assert cache.get(k) is None


@pytest.mark.parametrize("corrupt", [
    lambda b: b[:43],                                  # shorter than a header
    lambda b: b"\xe5SD" + b[3:],                       # foreign magic
    lambda b: b[:3] + b"\x02" + b[4:],                 # unknown version
    lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:],    # bad checksum
    lambda b: b + b"x",                                # length != 44 + payload_len
    lambda b: b"plain value written by another client",
])
def test_foreign_or_corrupt_bytes_are_a_miss(server, corrupt):
    cache, raw, prefix = server
    k = unique("bad")
    now = now_ms()
    raw.set(prefix + k.encode(), corrupt(encode(0, now, now + 60_000, now + 60_000, 0, b"hello")))
    assert cache.get(k) is None
    calls = []
    assert cache.get_or_load(k, lambda key: calls.append(key) or b"fresh") == b"fresh"
    assert calls == [k] and cache.get(k) == b"fresh"  # the bad bytes were replaced


@pytest.mark.parametrize("with_crc", [False, True])
def test_a_flipped_payload_bit_is_served_without_payload_crc_and_a_miss_with_it(server, with_crc):
    """docs/FORMAT.md: the checksum covers the header only; payload_crc=1 adds
    a CRC32C of the payload that every reader checks (whatever its own
    options: `cache` here was opened without payload_crc)."""
    cache, raw, prefix = server
    k = unique("flip")
    writer = cache.with_crc if with_crc else cache
    writer.set(k, b"payload bytes")
    stored = bytearray(raw.get(prefix + k.encode()))
    assert bool(stored[4] & PAYLOAD_CRC) == with_crc
    stored[-3] ^= 0x04
    raw.set(prefix + k.encode(), bytes(stored))
    before = cache.stats()["payload_crc_errors"]
    if with_crc:
        assert cache.get(k) is None
        assert cache.stats()["payload_crc_errors"] == before + 1
    else:
        assert cache.get(k) == b"payload bytes"[:-3] + bytes([b"payload bytes"[-3] ^ 0x04]) + b"payload bytes"[-2:]
        assert cache.stats()["payload_crc_errors"] == before
