"""Loaded: what a loader returns when the result needs its own TTL or tags."""
from __future__ import annotations

from typing import Any, Iterable, List, Optional, Union

Key = Union[str, bytes]


def tag_list(tags: Any, what: str = "tags") -> List[bytes]:
    """Tags as a list of bytes; TypeError naming the argument otherwise."""
    if isinstance(tags, (str, bytes)):
        raise TypeError(f"{what} must be an iterable of str or bytes, not a single {type(tags).__name__}")
    try:
        it = iter(tags)
    except TypeError:
        raise TypeError(f"{what} must be an iterable of str or bytes, not {type(tags).__name__}") from None
    out: List[bytes] = []
    for i, t in enumerate(it):
        if isinstance(t, str):
            out.append(t.encode("utf-8"))
        elif isinstance(t, bytes):
            out.append(t)
        else:
            raise TypeError(f"{what}[{i}] must be str or bytes, not {type(t).__name__}")
    return out


class Loaded:
    """A loader's result with its own TTL and tags::

        def load_user(key):
            row = db.fetch_user(key)
            return stratacache.Loaded(row.json, ttl=row.max_age, tags=[f"org:{row.org}"])

    ``value`` is the value (or ``NOT_FOUND``: then ``ttl`` is the negative
    entry's TTL); ``ttl`` is seconds (None: the ``ttl`` given to get_or_load,
    else the cache's default); ``tags`` are added to the ``tags`` given to
    get_or_load. Tag versions are read when the loader returns, so an
    invalidate_tag() that lands while the loader reads the source is not seen
    for tags known only from the result; pass tags known from the key to
    get_or_load(tags=...), whose versions are read before the loader runs.
    """

    __slots__ = ("value", "ttl", "tags")

    def __init__(self, value: Any, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> None:
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
            raise TypeError(f"ttl must be a number of seconds, not {type(ttl).__name__}")
        if ttl is not None and ttl < 0:
            raise ValueError(f"ttl must be >= 0 seconds, got {ttl!r}")
        self.value = value
        self.ttl = ttl
        self.tags = tuple(tag_list(tags))

    def __repr__(self) -> str:
        return f"stratacache.Loaded({self.value!r}, ttl={self.ttl!r}, tags={list(self.tags)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Loaded):
            return NotImplemented
        return (self.value, self.ttl, self.tags) == (other.value, other.ttl, other.tags)

    __hash__ = None  # type: ignore[assignment]
