"""resty.stratacache in a real nginx (2 workers), through HTTP: tiers, locks,
phases, invalidation across workers, metrics, reloads. Run by
scripts/test-nginx.sh; STRATA_TEST_REDIS_URL names the suite's Redis."""
import concurrent.futures
import json
import os
import subprocess
import threading
import time
import unittest
import uuid

from nginxctl import ROOT, Nginx, Redis

NGINX = None


def setUpModule():
    global NGINX
    NGINX = Nginx(workers=2).start()


def tearDownModule():
    if NGINX:
        NGINX.stop()


def fresh(name):
    return "%s-%s" % (name, uuid.uuid4().hex[:12])


def until_both_workers(path, want=2, tries=200):
    """Requests path on new connections until two worker pids answered;
    -> list of responses in order."""
    seen, out = set(), []
    for _ in range(tries):
        r = NGINX.json(path)
        out.append(r)
        seen.add(r["pid"])
        if len(seen) >= want:
            return out
    raise AssertionError("only one worker answered %d requests" % tries)


class Tiers(unittest.TestCase):
    def test_second_request_is_l1_and_other_worker_reads_l2(self):
        key = fresh("tiers")
        rs = until_both_workers("/get?key=%s" % key)
        first = rs[0]
        self.assertEqual(first["level"], 4, first)  # the loader ran
        self.assertEqual(first["value"], "v:%s:1" % key)
        other = next(r for r in rs if r["pid"] != first["pid"])
        self.assertEqual(other["level"], 2, other)  # the other worker: from the shm
        self.assertEqual(other["value"], first["value"])
        for r in rs[1:]:
            if r["pid"] == first["pid"]:
                self.assertEqual(r["level"], 1, r)  # same worker again: L1
        # and the other worker's next read is its own L1
        rs = until_both_workers("/get?key=%s" % key)
        for r in rs:
            self.assertEqual(r["level"], 1, r)
            self.assertEqual(r["value"], first["value"])
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1)

    def test_get_many_on_shm_alone(self):
        k = fresh("many-l2")
        NGINX.json("/get?key=%s-a" % k)
        items = NGINX.json("/many?keys=%s-a,%s-b" % (k, k))["items"]
        self.assertEqual(items[0]["value"], "v:%s-a:1" % k)
        self.assertIn(items[0]["level"], (1, 2))
        self.assertEqual((items[1]["value"], items[1]["level"]), ("v:%s-b:1" % k, 4))

    def test_tags_need_the_remote_tier(self):
        r = NGINX.json("/bump?tag=x")
        self.assertTrue(r["err"].startswith("ENOTSUP: tags need"), r)

    def test_get_without_loader_misses(self):
        key = fresh("noloader")
        r = NGINX.json("/get?key=%s&noloader=1" % key)
        self.assertNotIn("value", r)
        self.assertNotIn("err", r)

    def test_negative_entry_is_cached(self):
        key = fresh("nf")
        r = NGINX.json("/get?key=%s" % key)
        self.assertEqual(r.get("level"), 4)
        self.assertNotIn("value", r)
        for r in until_both_workers("/get?key=%s" % key):
            self.assertNotIn("value", r)
            self.assertNotIn("err", r)
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1)

    def test_l1_holds_the_serialized_table(self):
        key = fresh("json")
        r1 = NGINX.json("/get?cache=json&key=%s" % key)
        self.assertEqual(r1["value"], "table:%s:1" % key)
        for r in until_both_workers("/get?cache=json&key=%s" % key):
            self.assertEqual(r["value"], r1["value"])

    def test_stale_served_at_once_then_refreshed_in_a_timer(self):
        key = fresh("swr")
        self.assertEqual(NGINX.json("/get?cache=short&key=%s" % key)["value"], "v:%s:1" % key)
        time.sleep(0.5)  # past the 0.3 s ttl, inside the 30 s stale window
        status, body, secs = NGINX.request("/get?cache=short&key=%s&delay=0.3" % key)
        self.assertEqual(status, 200)
        self.assertIn(b'"v:%s:1"' % key.encode(), body)  # the stale value
        self.assertLess(secs, 0.25, "the caller waited for the 0.3 s refresh")
        deadline = time.time() + 5
        while time.time() < deadline:
            if NGINX.json("/get?cache=short&key=%s" % key)["value"] == "v:%s:2" % key:
                break
            time.sleep(0.05)
        else:
            self.fail("the refresh never landed")
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 2)


class Stampede(unittest.TestCase):
    def burst(self, cache, n=50, delay=0.2):
        key = fresh("stampede-" + cache)
        path = "/get?cache=%s&key=%s&delay=%s" % (cache, key, delay)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            rs = list(pool.map(lambda _: NGINX.request(path, timeout=20), range(n)))
        took = time.monotonic() - t0
        values = {body for status, body, _ in rs}
        statuses = {status for status, _, _ in rs}
        return key, statuses, values, took

    def test_a_killed_leader_does_not_hold_up_the_next_get(self):
        key = fresh("killfill")
        r = NGINX.json("/killfill?cache=l1only&key=%s" % key)
        self.assertEqual((r.get("value"), r.get("level")), ("v:%s:2" % key, 4), r)
        self.assertLess(r["ms"], 500, r)  # not lock_wait

    def test_cold_key_burst_on_shm_alone_loads_once(self):
        key, statuses, values, took = self.burst("l2")
        self.assertEqual(statuses, {200})
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1)
        self.assertTrue(all(b'"v:%s:1"' % key.encode() in v for v in values), values)
        self.assertLess(took, 10)


    def test_waiter_deadline_policies(self):
        # lock_wait 50 ms, a 300 ms loader: waiters give up on time
        key, statuses, values, took = self.burst("failfast", n=6, delay=0.3)
        self.assertEqual(statuses, {200})
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1)
        errs = [v for v in values if b"ETIMEOUT: waited 50 ms" in v]
        self.assertTrue(errs, values)
        self.assertTrue(any(b'"v:%s:1"' % key.encode() in v for v in values), values)
        # wait_policy load: the waiters load themselves after lock_wait
        key, statuses, values, took = self.burst("loadanyway", n=6, delay=0.3)
        self.assertEqual(statuses, {200})
        self.assertGreater(NGINX.json("/loads?key=%s" % key)["loads"], 1)
        self.assertFalse(any(b'"err"' in v for v in values), values)


class Coherence(unittest.TestCase):
    def warm_both(self, key):
        for _ in range(3):
            rs = until_both_workers("/get?key=%s" % key)
        return rs[-1]["value"]

    def test_write_in_one_worker_is_seen_by_the_other_at_once(self):
        key = fresh("coh")
        self.assertEqual(self.warm_both(key), "v:%s:1" % key)
        w = NGINX.json("/set?key=%s&value=new" % key)
        self.assertTrue(w["ok"], w)
        for r in until_both_workers("/get?key=%s" % key):
            self.assertEqual(r["value"], "new", r)

    def test_write_in_one_worker_is_seen_by_a_running_request_of_the_other(self):
        # the reader's second get runs in the same request and the same
        # ngx.now() as its first: no per-request or per-tick check can see the
        # write, only one made on every read
        key, flag = fresh("cohreq"), uuid.uuid4().hex
        self.assertTrue(NGINX.json("/set?key=%s&value=old" % key)["ok"])

        def other_worker(path):
            # a connection the spinning worker accepted just before it spun
            # waits for the spin: give up on it and open another
            deadline = time.monotonic() + 10
            while True:
                try:
                    return NGINX.json(path, timeout=0.5)
                except OSError:
                    self.assertLess(time.monotonic(), deadline, path)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reader = pool.submit(NGINX.json, "/getwait?key=%s&flag=%s" % (key, flag), 30)
            deadline = time.monotonic() + 10
            while other_worker("/flag?name=ready:%s" % flag).get("value") is None:
                self.assertLess(time.monotonic(), deadline, "the reader never started")
                time.sleep(0.01)
            w = other_worker("/set?key=%s&value=new&flag=%s" % (key, flag))
            r = reader.result()
        self.assertTrue(w["ok"], w)
        self.assertNotEqual(w["pid"], r["pid"])  # the reader's worker was spinning
        self.assertTrue(r["written"], r)
        self.assertEqual((r["before"], r["after"]), ("old", "new"), r)

    def test_delete_in_one_worker_evicts_the_other(self):
        key = fresh("del")
        self.warm_both(key)
        self.assertTrue(NGINX.json("/delete?key=%s" % key)["ok"])
        rs = until_both_workers("/get?key=%s&noloader=1" % key)
        for r in rs[:1]:
            self.assertNotIn("value", r)
        other = next(r for r in rs if r["pid"] != rs[0]["pid"])
        self.assertNotIn("value", other)

    def test_l1_only_cache_is_evicted_across_workers(self):
        key = fresh("l1only")
        for _ in range(2):
            until_both_workers("/get?cache=l1only&key=%s" % key)
        NGINX.json("/set?cache=l1only&key=%s&value=w" % key)
        rs = until_both_workers("/get?cache=l1only&key=%s&noloader=1" % key)
        other = [r for r in rs if r["pid"] != rs[-1]["pid"]] + [rs[-1]]
        for r in other:
            self.assertNotEqual(r.get("value"), "v:%s:1" % key, r)


class Phases(unittest.TestCase):
    def log_get(self, key):
        tag = uuid.uuid4().hex
        self.assertEqual(NGINX.request("/log?key=%s&tag=%s" % (key, tag))[0], 200)
        for _ in range(100):
            r = NGINX.json("/logresult?tag=%s" % tag).get("result")  # absent until the log phase ran
            if r:
                import json
                return json.loads(r)
            time.sleep(0.02)
        self.fail("log phase never ran")

    def test_log_phase_hit_works_and_miss_is_enotsup_at_once(self):
        key = fresh("log")
        NGINX.json("/get?key=%s" % key)
        levels = set()
        for _ in range(20):
            r = self.log_get(key)
            self.assertEqual(r["value"], "v:%s:1" % key, r)
            levels.add(r["level"])
            if 1 in levels:
                break
        self.assertIn(1, levels)  # an L1 hit inside log_by_lua
        r = self.log_get(fresh("log-miss"))
        self.assertNotIn("value", r)
        self.assertTrue(r["err"].startswith("ENOTSUP:"), r)
        self.assertIn("log_by_lua*", r["err"])
        self.assertLess(r["ms"], 50)


class Misuse(unittest.TestCase):
    def test_bad_arguments_raise_and_bad_setups_say_why(self):
        r = NGINX.json("/misuse")
        self.assertFalse(r["ok"])
        errs = r["errs"]
        self.assertIn("bad argument #1 to 'get'", errs[0])
        self.assertIn("bad argument #2 to 'get'", errs[1])
        self.assertIn("unknown option bogus", errs[2])
        self.assertIn("non-negative", errs[3])
        self.assertFalse(r["c5"])
        self.assertTrue(errs[4].startswith("ENOTSUP: memcached://"), errs[4])
        self.assertFalse(r["c6"])
        self.assertTrue(errs[5].startswith("EOPTION: no lua_shared_dict no_such_dict"), errs[5])
        self.assertFalse(r["wb"])
        self.assertTrue(errs[6].startswith("ENOTSUP: write-behind from nginx"), errs[6])

    def test_plain_module_refuses_network_inside_nginx(self):
        url = os.environ.get("STRATA_TEST_REDIS_URL", "redis://127.0.0.1:1")
        r = NGINX.json("/plain?url=%s" % url)
        self.assertFalse(r["created"])
        self.assertTrue(r["err"].startswith("ENOTSUP:"), r)
        self.assertIn("resty.stratacache", r["err"])
        self.assertTrue(r["same_not_found"])
        self.assertEqual(r["mem_value"], "x")


class Metrics(unittest.TestCase):
    def test_stats_merge_the_workers_and_prometheus_shows_them(self):
        key = fresh("metrics")
        before = NGINX.json("/stats")["stats"]
        rs = until_both_workers("/get?key=%s" % key)
        rs += until_both_workers("/get?key=%s" % key)
        after = NGINX.json("/stats")["stats"]
        l1 = sum(1 for r in rs if r["level"] == 1)
        # the /stats worker pushed its own counts; the other pushes every second
        time.sleep(1.3)
        after = NGINX.json("/stats")["stats"]
        self.assertGreaterEqual(after["l1_hits"] - before["l1_hits"], l1)
        self.assertGreaterEqual(after["loads"] - before["loads"], 1)
        status, text, _ = NGINX.request("/metrics")
        self.assertEqual(status, 200)
        text = text.decode()
        self.assertIn('# TYPE stratacache_hits_total counter', text)
        line = [x for x in text.splitlines()
                if x.startswith('stratacache_hits_total{namespace="t_l2",tier="l1"}')]
        self.assertEqual(len(line), 1, text)
        self.assertGreaterEqual(int(line[0].split()[-1]), after["l1_hits"])


class Reload(unittest.TestCase):
    def test_ten_reloads_under_load(self):
        key = fresh("reload")
        stop = threading.Event()
        failures, done = [], [0]

        def load():
            while not stop.is_set():
                try:
                    status, body, _ = NGINX.request("/get?key=%s" % key)
                    if status != 200:
                        failures.append((status, body))
                    done[0] += 1
                except OSError as e:
                    failures.append(repr(e))

        before = NGINX.json("/stats")
        fds_before = sum(len(os.listdir("/proc/%d/fd" % pid)) for pid in NGINX.workers())
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(10):
                NGINX.reload()
                time.sleep(0.4)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        self.assertGreater(done[0], 20)
        time.sleep(1.0)  # old workers finish
        self.assertLessEqual(len(NGINX.workers()), 2)
        st = NGINX.json("/stats")
        # the new workers run the same timers as the first ones (a stats timer per
        # cache, a link per Redis cache) and hold about as many descriptors
        self.assertEqual((st["timers_pending"], st["timers_running"]),
                         (before["timers_pending"], before["timers_running"]))
        fds_after = sum(len(os.listdir("/proc/%d/fd" % pid)) for pid in NGINX.workers())
        self.assertLessEqual(fds_after, fds_before + 4, (fds_before, fds_after))
        self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1)


def plain_lua(url, script):
    """Runs script with the plain Lua C module (the C core) under LuaJIT; -> stdout."""
    setup = ("package.cpath = '%s/build-lua51/?.so;' .. package.cpath; "
             "package.path = '%s/lua/?.lua;' .. package.path; "
             "local sc = require 'stratacache'; "
             "c = assert(sc.new{url = '%s', namespace = 't_redis'})" % (ROOT, ROOT, url))
    r = subprocess.run(["luajit", "-e", setup, "-e", script], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("luajit: " + r.stderr)
    return r.stdout


def python_cache(url):
    try:
        import stratacache
    except ImportError:
        return None
    return stratacache.Cache(url, namespace="t_redis")


class Remote(unittest.TestCase):
    """Through the suite's Redis: the core's ops over cosockets."""

    def setUp(self):
        if not os.environ.get("STRATA_TEST_REDIS_URL"):
            self.fail("STRATA_TEST_REDIS_URL is not set (scripts/test-nginx.sh sets it)")
        self.url = os.environ["STRATA_TEST_REDIS_URL"]

    def test_cold_key_burst_with_redis_loads_once(self):
        for cache in ("redis", "redis_l1"):
            key, statuses, values, took = Stampede.burst(self, cache)
            self.assertEqual(statuses, {200}, cache)
            self.assertEqual(NGINX.json("/loads?key=%s" % key)["loads"], 1, cache)
            self.assertTrue(all(b'"v:%s:1"' % key.encode() in v for v in values), values)

    def test_remote_hit_fills_l1(self):
        key = fresh("remote")
        plain_lua(self.url, "assert(c:set('%s', 'from-c'))" % key)
        rs = until_both_workers("/get?cache=redis_l1&key=%s&noloader=1" % key)
        self.assertEqual(rs[0]["level"], 3, rs[0])
        self.assertEqual(rs[0]["value"], "from-c")
        again = [r for r in until_both_workers("/get?cache=redis_l1&key=%s&noloader=1" % key)]
        self.assertTrue(any(r["level"] == 1 for r in again), again)

    def test_a_url_with_a_database_selects_it_on_each_new_connection(self):
        key = fresh("db1")
        self.assertTrue(NGINX.json("/set?cache=redis_db1&key=%s&value=in-db1" % key)["ok"])
        self.assertEqual(plain_lua(self.url + "/1", "print((c:get('%s')))" % key).strip(), "in-db1")
        self.assertEqual(plain_lua(self.url, "print((c:get('%s')))" % key).strip(), "nil")
        plain_lua(self.url + "/1", "assert(c:set('%s-c', 'from-c'))" % key)
        for r in until_both_workers("/get?cache=redis_db1&key=%s-c&noloader=1" % key):
            self.assertEqual((r.get("value"), r.get("level")), ("from-c", 3), r)

    def test_values_cross_languages(self):
        key = fresh("xlang")
        self.assertTrue(NGINX.json("/set?cache=redis&key=%s&value=from-nginx" % key)["ok"])
        out = plain_lua(self.url, "print((c:get('%s')))" % key)
        self.assertEqual(out.strip(), "from-nginx")
        py = python_cache(self.url)
        if py is not None:
            self.assertEqual(py.get(key), b"from-nginx")
            py.set(key + "-py", b"from-python")
            r = NGINX.json("/get?cache=redis&key=%s-py&noloader=1" % key)
            self.assertEqual(r["value"], "from-python")
        # a value loaded by nginx is read by C
        NGINX.json("/get?cache=redis&key=%s-load" % key)
        self.assertEqual(plain_lua(self.url, "print((c:get('%s-load')))" % key).strip(), "v:%s-load:1" % key)

    def test_write_from_another_process_evicts_both_workers_l1(self):
        key = fresh("evict")
        for _ in range(3):
            until_both_workers("/get?cache=redis_l1&key=%s" % key)
        plain_lua(self.url, "assert(c:set('%s', 'rewritten'))" % key)
        deadline = time.time() + 3
        while time.time() < deadline:
            rs = until_both_workers("/get?cache=redis_l1&key=%s&noloader=1" % key)
            if all(r.get("value") == "rewritten" for r in rs[-2:]) and len({r["pid"] for r in rs[-2:]}) == 2:
                break
            time.sleep(0.05)
        else:
            self.fail("a worker kept the old value: %s" % rs)

    def needs_meta(self):
        if not NGINX.json("/l2info?key=none")["has_meta"]:
            self.skipTest("this libstratacache has no op metadata (strata_op_meta_get)")

    def test_remote_hit_keeps_the_entrys_stale_window_and_cost(self):
        self.needs_meta()
        key = fresh("meta")
        out = plain_lua(self.url, "local d = assert(require('stratacache').new{url = '%s', namespace = 't_redis', "
                        "ttl = 20, stale = 77}); local t = os.clock(); "
                        "print((d:get_or_load('%s', function() while os.clock() - t < 0.06 do end return 'm' end)))"
                        % (self.url, key))
        self.assertEqual(out.strip(), "m")
        r = NGINX.json("/get?cache=redis&key=%s&noloader=1" % key)
        self.assertEqual((r.get("value"), r.get("level")), ("m", 3), r)
        info = NGINX.json("/l2info?key=%s" % key)  # the shm is the workers' own
        self.assertAlmostEqual(info["stale_ms"], 77000, delta=2000, msg=info)
        self.assertAlmostEqual(info["fresh_ms"], 20000, delta=2000, msg=info)
        self.assertGreaterEqual(info["cost_ms"], 50, info)

    def test_tagged_entry_read_without_tags_is_verified(self):
        self.needs_meta()
        # the entry carries tag stamps whoever reads it: the host tiers keep
        # it only as long as a tagged read would (not in the shm), so a bump
        # reaches a reader that never named the tag
        key, tag = fresh("tagu"), fresh("tag")
        self.assertEqual(NGINX.json("/tagget?cache=redis&key=%s&tag=%s" % (key, tag))["value"],
                         "v:%s:1" % key)
        for r in until_both_workers("/get?cache=redis&key=%s&noloader=1" % key):
            self.assertEqual(r.get("value"), "v:%s:1" % key, r)
        self.assertTrue(NGINX.json("/bump?cache=redis&tag=%s" % tag)["ok"])
        for r in until_both_workers("/get?cache=redis&key=%s&noloader=1" % key):
            self.assertNotEqual(r.get("value"), "v:%s:1" % key, r)

    def test_the_remote_tier_keeps_no_hot_key_sketch(self):
        # resty has no hot-key report: a sketch on its l1=0 handles would only
        # cost every remote read (and 1 MiB per handle)
        r = NGINX.json("/sketch?cache=redis")
        self.assertEqual((r["rc"], r["link_rc"]), (-14, -14), r)  # STRATA_ENOTSUP

    def test_a_killed_get_frees_its_op(self):
        r = NGINX.json("/killget?cache=redis_l1&key=%s" % fresh("kill"))
        self.assertEqual(r["during"], r["before"] + 1, r)  # suspended inside the op
        self.assertEqual(r["after"], r["before"], r)

    def test_get_many_one_remote_round_then_the_loader(self):
        k = fresh("many")
        plain_lua(self.url, "assert(c:set('%s-a', 'A')); assert(c:set('%s-b', 'B'))" % (k, k))
        keys = "%s-a,%s-b,%s-c" % (k, k, k)
        items = NGINX.json("/many?cache=redis_l1&keys=" + keys)["items"]
        self.assertEqual([(i["value"], i["level"]) for i in items],
                         [("A", 3), ("B", 3), ("v:%s-c:1" % k, 4)])
        again = [r for r in NGINX.json("/many?cache=redis_l1&noloader=1&keys=" + keys)["items"]]
        self.assertEqual([i["value"] for i in again], ["A", "B", "v:%s-c:1" % k])

    def test_tag_bump_reloads_tagged_entries(self):
        k, tag = fresh("tagged"), fresh("tag")
        first = NGINX.json("/tagget?cache=redis&key=%s&tag=%s" % (k, tag))
        self.assertEqual(first["value"], "v:%s:1" % k)
        self.assertEqual(NGINX.json("/tagget?cache=redis&key=%s&tag=%s" % (k, tag))["value"], "v:%s:1" % k)
        self.assertTrue(NGINX.json("/bump?cache=redis&tag=%s" % tag)["ok"])
        for r in until_both_workers("/tagget?cache=redis&key=%s&tag=%s" % (k, tag)):
            self.assertEqual(r["value"], "v:%s:2" % k, r)
        self.assertEqual(NGINX.json("/loads?key=%s" % k)["loads"], 2)

    def test_an_idle_link_keeps_the_breaker_closed(self):
        # the link's ping periods (0.2 s here) pass in silence while nothing else
        # talks to Redis: that is not an outage, so the next read still reaches Redis
        time.sleep(1.5)
        before = NGINX.json("/stats?cache=redis_l1")["stats"]
        key = fresh("idle")
        plain_lua(self.url, "assert(c:set('%s', 'there'))" % key)
        r = NGINX.json("/get?cache=redis_l1&key=%s" % key)
        self.assertEqual((r.get("value"), r.get("level")), ("there", 3), r)
        after = NGINX.json("/stats?cache=redis_l1")["stats"]
        self.assertEqual(after["fail_open"], before["fail_open"])

    def test_metrics_show_the_link(self):
        text = NGINX.request("/metrics?cache=redis")[1].decode()
        self.assertIn('stratacache_l1_link_up{namespace="t_redis"} 1', text)


class Outage(unittest.TestCase):
    """A Redis of the test's own, paused and killed, behind one-worker and
    two-worker nginx."""

    @classmethod
    def setUpClass(cls):
        cls.redis = Redis().start()
        cls.nginx = Nginx(workers=1, env={"STRATA_TEST_REDIS_URL": cls.redis.url}).start()

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        cls.redis.kill()

    def link_up(self):
        text = self.nginx.request("/metrics?cache=redis")[1].decode()
        return 'stratacache_l1_link_up{namespace="t_redis"} 1' in text

    def test_link_drop_demotes_host_tiers_to_stale_if_error(self):
        n = self.nginx
        key = fresh("link")
        deadline = time.time() + 3
        while not self.link_up() and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.link_up())
        n.json("/get?cache=redis&key=%s" % key)
        self.assertEqual(n.json("/get?cache=redis&key=%s" % key)["level"], 1)
        self.redis.kill()
        try:
            deadline = time.time() + 3
            while self.link_up() and time.time() < deadline:
                time.sleep(0.05)
            self.assertFalse(self.link_up(), "the link never noticed the dead server")
            r = n.json("/get?cache=redis&key=%s" % key)
            # L1 was flushed; the shm copy is served as stale-if-error, not as fresh
            self.assertEqual((r["value"], r["level"]), ("v:%s:1" % key, 2), r)
        finally:
            self.redis.start()
        deadline = time.time() + 3
        while not self.link_up() and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.link_up(), "the link did not come back")
        # entries made before the link came back are not trusted as fresh
        r = n.json("/get?cache=redis&key=%s" % key)
        self.assertIn(r["level"], (3, 4), r)

    def test_paused_redis_never_freezes_the_worker(self):
        n = self.nginx
        self.assertEqual(n.json("/get?cache=redis_l1&key=%s" % fresh("warm"))["level"], 4)
        self.redis.pause()
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                slow = pool.submit(n.request, "/get?cache=redis_l1&key=%s" % fresh("paused"))
                time.sleep(0.1)  # the cache call is now waiting on the paused server
                pings = [n.request("/ping") for _ in range(5)]
                status, body, secs = slow.result()
        finally:
            self.redis.resume()
        for p_status, _, p_secs in pings:
            self.assertEqual(p_status, 200)
            self.assertLess(p_secs, 0.05, "a trivial request waited for the cache call")
        self.assertEqual(status, 200, body)
        self.assertIn(b'"level":4', body)  # the loader served it (fail open)
        self.assertGreaterEqual(secs, 0.4)  # it did wait for the 0.5 s timeout
        self.assertLess(secs, 0.5 + 0.4)  # and not much longer

    def test_redis_killed_then_back(self):
        n = self.nginx
        key = fresh("outage")
        self.assertEqual(n.json("/get?cache=redis_l1&key=%s" % key)["value"], "v:%s:1" % key)
        self.redis.kill()
        try:
            for i in range(10):
                status, body, _ = n.request("/get?cache=redis_l1&key=%s-%d" % (key, i))
                self.assertEqual(status, 200, body)
                self.assertIn(b"v:%s-%d:" % (key.encode(), i), body)
        finally:
            self.redis.start()
        t0 = time.time()
        while time.time() - t0 < 2.0:
            k = fresh("back")
            first = n.json("/get?cache=redis_l1&key=%s" % k)
            second = n.json("/get?cache=redis_l1&key=%s" % k)
            if first.get("level") == 4 and second.get("level") in (1, 3):
                break
            time.sleep(0.1)
        else:
            self.fail("caching did not resume within 2 s of Redis coming back")

    def test_error_log_is_clean(self):
        self.assertEqual(self.nginx.problems(), [])




class Readme(unittest.TestCase):
    """README's nginx.conf, run as written: only its port, its lua_package_path
    and its Redis URL are replaced with the suite's."""

    def test_readme_nginx_conf_runs(self):
        text = (ROOT / "README.md").read_text()
        start = text.index("<!-- nginx.conf tested by tests/nginx/test_resty.py (Readme) -->")
        start = text.index("```nginx\n", start) + len("```nginx\n")
        conf = text[start:text.index("```\n", start)]
        n = Nginx(conf="")
        for old, new in (("127.0.0.1:8080", "127.0.0.1:%d" % n.port),
                         ("/usr/local/share/lua/5.1/?.lua", "%s/lua/?.lua" % ROOT),
                         ("redis://127.0.0.1:6379", os.environ["STRATA_TEST_REDIS_URL"])):
            self.assertIn(old, conf)
            conf = conf.replace(old, new)
        n.conf.write_text(conf)
        if os.geteuid() != 0:
            self.skipTest("the README's conf uses the default temp paths under /var/lib/nginx (root)")
        n.start()
        try:
            import http.client
            levels, pid = [], uuid.uuid4().hex[:8]
            for _ in range(6):
                c = http.client.HTTPConnection("127.0.0.1", n.port, timeout=5)
                c.request("GET", "/profile?id=" + pid)
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (200, b'{"id":%s}\n' % pid.encode()), n.log()[-2000:])
                levels.append(r.getheader("X-Cache-Level"))
                c.close()
            self.assertEqual(levels[0], "4")  # loaded, then cached: L1 or, on the other worker, shm
            self.assertTrue(set(levels[1:]) <= {"1", "2"}, levels)
            status, metrics, _ = n.request("/metrics")
            self.assertEqual(status, 200)
            self.assertIn(b'stratacache_loads_total{namespace="app"}', metrics)
            self.assertEqual(n.problems(), [])
        finally:
            n.stop()


class ZLog(unittest.TestCase):
    def test_error_log_is_clean(self):
        self.assertEqual(NGINX.problems(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
