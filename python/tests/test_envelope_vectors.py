"""The C envelope codec, through the package, against tests/vectors/envelope.txt.

The memory:// store cannot be read raw from Python, so this uses redis and
memcached: values written by Cache are read raw from the server and must be
byte-for-byte what docs/FORMAT.md prescribes for their fields; envelopes built
to the vectors' layout (re-stamped to now, since the vectors' times are in the
past) are written raw and must read back through Cache. The reference encoder
below is checked against every vector line first.
"""
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


def encode(flags: int, created: int, fresh: int, stale: int, cost: int, payload: bytes) -> bytes:
    head = b"\xe5SC\x01" + struct.pack(">BBHqqqII", flags, 0, 0, created, fresh, stale, cost, len(payload))
    return head + struct.pack(">I", fnv1a32(head)) + payload


def decode(raw: bytes):
    magic, version, flags, ntags, reserved, created, fresh, stale, cost, n, _ = HEADER.unpack_from(raw)
    assert (magic, version, ntags, reserved) == (b"\xe5SC", 1, 0, 0)
    assert len(raw) == HEADER.size + n
    return flags, created, fresh, stale, cost, raw[HEADER.size:]


def vectors():
    out = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(" ")
        if len(fields) > 7:
            continue  # tagged vectors: the C suite checks those (tags are stamped, not set raw)
        hexs, flags, created, fresh, stale, cost, payload = fields
        out.append((bytes.fromhex(hexs), int(flags), int(created), int(fresh), int(stale), int(cost),
                    b"" if payload == "-" else payload.encode("utf-8")))
    return out


VECS = vectors()


def test_reference_encoder_reproduces_the_vectors():
    assert len(VECS) >= 5
    for raw, *fields in VECS:
        assert encode(*fields) == raw
        assert decode(raw) == tuple(fields)


@pytest.fixture(params=["redis", "memcached"])
def server(request, ns):
    url = backend_url(request.param)
    raw = connect(request.param, url)
    with stratacache.Cache(url, namespace=ns, ttl=60, neg_ttl=30) as c:
        yield c, raw, (ns + ":").encode()
    raw.close()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("i", range(len(VECS)))
def test_c_encoder_writes_the_vector_layout(server, i):
    cache, raw, prefix = server
    vec, vflags, *_, payload = VECS[i]
    k = unique("enc")
    t0 = now_ms()
    if vflags & 1:
        assert cache.get_or_load(k, lambda _: stratacache.NOT_FOUND) is None
        ttl_ms = 30_000
    else:
        cache.set(k, payload)
        ttl_ms = 60_000
    t1 = now_ms()
    stored = raw.get(prefix + k.encode())
    assert stored is not None
    flags, created, fresh, stale, cost, body = decode(stored)
    # Bytes that do not depend on the clock are the vector's own.
    assert stored[:8] == vec[:8]
    assert stored[36:40] == vec[36:40] and body == payload == vec[44:]
    assert t0 <= created <= t1
    assert fresh - created == ttl_ms and stale == fresh and cost < 1000
    # And the whole envelope, checksum included, is exactly the spec's.
    assert stored == encode(flags, created, fresh, stale, cost, body)


def test_c_encoder_records_the_load_cost(server):
    cache, raw, prefix = server
    k = unique("cost")

    def slow(_):
        time.sleep(0.03)
        return b"v"

    assert cache.get_or_load(k, slow, ttl=120) == b"v"
    flags, created, fresh, stale, cost, body = decode(raw.get(prefix + k.encode()))
    assert (flags, body, fresh - created) == (0, b"v", 120_000)
    assert 30 <= cost < 5000


@pytest.mark.parametrize("i", range(len(VECS)))
def test_c_decoder_reads_vector_envelopes(server, i):
    cache, raw, prefix = server
    vec, vflags, created, fresh, stale, cost, payload = VECS[i]
    k = unique("dec")
    # The vector's fields, moved to now (keeping its soft/hard TTL spans, at
    # least a minute so nothing expires during the test).
    now = now_ms()
    fresh_span = max(fresh - created, 60_000)
    new_fresh = now + fresh_span
    new_stale = new_fresh + (stale - fresh)
    raw.set(prefix + k.encode(), encode(vflags, now, new_fresh, new_stale, cost, payload))
    if vflags & 1:
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
