"""Cache() options that used to be accepted silently: each is now either a
precise error naming the option, or documented behaviour (README)."""
import math

import pytest

import stratacache
from stratacache import InvalidArgument


@pytest.mark.parametrize("value", ["no", "false", "0", "", "yes", 2, 1.0, None.__class__])
def test_l1_takes_a_bool_only(value):
    with pytest.raises(TypeError, match="l1"):
        stratacache.Cache("memory://", l1=value)


@pytest.mark.parametrize("value, on", [(True, 1), (False, 0), (1, 1), (0, 0)])
def test_l1_bools_and_their_ints(value, on):
    c = stratacache.Cache("memory://", l1=value)
    try:
        assert ("l1=%d" % on) in c.url
    finally:
        c.close()


@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan, 1e18, 2 ** 70,
                                     stratacache.MAX_MS / 1000 + 1])
@pytest.mark.parametrize("arg", ["ttl", "neg_ttl", "stale"])
def test_huge_or_non_finite_seconds_name_the_argument(arg, seconds):
    with pytest.raises(InvalidArgument, match=arg):
        stratacache.Cache("memory://", **{arg: seconds})


# math.inf is stratacache.FOREVER per call (never expires): test_framework covers it
@pytest.mark.parametrize("seconds", [-math.inf, math.nan, 1e18, 2 ** 70])
def test_per_call_ttl_is_bounded(seconds):
    with stratacache.Cache("memory://") as c:
        with pytest.raises(InvalidArgument, match="ttl"):
            c.set("k", b"v", ttl=seconds)
        assert c.get("k") is None  # nothing was written


def test_the_maximum_is_accepted():
    with stratacache.Cache("memory://", ttl=stratacache.MAX_MS / 1000) as c:
        c.set("k", b"v", ttl=stratacache.MAX_MS / 1000)
        assert c.get("k") == b"v"


@pytest.mark.parametrize("url, kwargs, option", [
    ("memory://?ttl_ms=1000", {"ttl": 5}, "ttl_ms"),
    ("memory://?stale_ms=1000", {"stale": 5}, "stale_ms"),
    ("memory://?neg_ttl_ms=1000", {"neg_ttl": 5}, "neg_ttl_ms"),
    ("memory://?ns=a", {"namespace": "b"}, "ns"),
    ("memory://?l1=0", {"l1": True}, "l1"),
    ("memory://?timeout_ms=50", {"timeout_ms": 60}, "timeout_ms"),
])
def test_an_option_given_twice_is_refused(url, kwargs, option):
    with pytest.raises(InvalidArgument, match=option) as e:
        stratacache.Cache(url, **kwargs)
    assert "twice" in str(e.value)


def test_nul_in_the_url_is_refused():
    with pytest.raises(InvalidArgument, match="NUL"):
        stratacache.Cache("memory://?ttl_ms=1000\0&l1=1")


def test_empty_wb_journal_is_refused():
    with pytest.raises(InvalidArgument, match="wb_journal"):
        stratacache.Cache("memory://?wb_journal=")
    with pytest.raises(InvalidArgument, match="wb_journal"):
        stratacache.Cache("memory://", wb_journal="")
