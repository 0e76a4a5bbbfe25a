import pytest

import stratacache

from conftest import unique


def test_json_serializer(make):
    c = make(serializer="json")
    k = unique()
    c.set(k, {"id": 1, "tags": ["a", "é"], "n": None})
    assert c.get(k) == {"id": 1, "tags": ["a", "é"], "n": None}
    assert c.get_or_load(unique(), lambda key: [1, 2]) == [1, 2]
    c.set_many({k: 5})
    assert c.get_many([k]) == {k: 5}
    with pytest.raises(TypeError):
        c.set(k, object())


def test_custom_serializer(make):
    c = make(serializer=(lambda v: str(v).encode(), lambda b: int(b)))
    k = unique()
    c.set(k, 42)
    assert c.get(k) == 42


def test_pickle_only_when_asked(make):
    c = make(serializer="pickle")
    k = unique()
    c.set(k, {1, 2, 3})
    assert c.get(k) == {1, 2, 3}
    with pytest.raises(TypeError, match="serializer"):
        stratacache.Cache(serializer=3)
    with pytest.raises(ValueError, match="unknown serializer"):
        stratacache.Cache(serializer="yaml")


def test_cached_decorator(make):
    c = make(serializer="json")
    calls = []

    @c.cached(ttl=60)
    def user(user_id, full=False):
        calls.append(user_id)
        return {"id": user_id, "full": full} if user_id > 0 else None

    assert user(1) == {"id": 1, "full": False}
    assert user(user_id=1) == {"id": 1, "full": False}  # same bound arguments, same key
    assert user(1, full=True) == {"id": 1, "full": True}
    assert calls == [1, 1]
    assert user(-1) is None and user(-1) is None  # None is cached as not found
    assert calls == [1, 1, -1]
    assert user.__name__ == "user"
    assert user.cache_key(1).endswith('user:{"full":false,"user_id":1}')

    @c.cached(key="item:{item_id}")
    def item(item_id):
        calls.append(("item", item_id))
        return [item_id]

    assert item(7) == [7] and item(7) == [7]
    assert c.get("item:7") == [7]

    @c.cached(key=lambda a, b: f"sum:{a}+{b}")
    def add(a, b):
        return a + b

    assert add(2, 3) == 5 and c.get("sum:2+3") == 5

    @c.cached()
    def takes_object(o):
        return 1

    with pytest.raises(TypeError, match="argument 'o'.*key="):
        takes_object(object())
