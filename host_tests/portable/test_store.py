# lowwater.store.WeakStore: the same specification on CPython and MicroPython.
import ptest
from lowwater import store
from lowwater.store import WeakStore


def _filled(n=3, **kw):
    s = WeakStore(**kw)
    for i in range(n):
        s["k%d" % i] = bytearray(8)
    return s


def test_mapping_basics():
    s = WeakStore()
    a, b = bytearray(4), bytearray(5)
    s["a"] = a
    s["b"] = b
    assert s["a"] is a and s.get("b") is b
    assert s.get("zz") is None and s.get("zz", 7) == 7
    assert "a" in s and "zz" not in s
    assert len(s) == 2
    assert s.keys() == ["a", "b"]  # least recently used first
    s["a"]  # refresh a
    assert s.keys() == ["b", "a"]
    assert s.values() == [b, a]
    assert s.items() == [("b", b), ("a", a)]
    assert list(s) == ["b", "a"]
    assert s.pop("a") is a and s.pop("a", 5) == 5
    ptest.raises(KeyError, s.pop, "a")
    del s["b"]
    ptest.raises(KeyError, s.__delitem__, "b")
    assert len(s) == 0 and s.nbytes == 0
    s["c"] = 1
    s.pin("c")
    s.clear()  # clear() removes pinned entries too
    assert len(s) == 0 and s.pinned == 0 and s.keys() == []


def test_missing_key_raises_keyerror_and_counts():
    s = _filled(1)
    e = ptest.raises(KeyError, lambda: s["nope"])
    assert e.args[0] == "nope"
    s.get("k0")
    s["k0"]
    s.get("x")
    st = s.stats()
    assert st["hits"] == 2 and st["misses"] == 2, st
    assert "k0" in s  # membership does not count
    assert s.hits == 2 and s.misses == 2


def test_unhashable_keys_raise_typeerror():
    for s in (WeakStore(), _filled(2)):  # empty and non-empty dicts differ on MicroPython
        for k in ([1], bytearray(2), {}):
            ptest.raises(TypeError, s.__setitem__, k, 1)
            ptest.raises(TypeError, s.__getitem__, k)
            ptest.raises(TypeError, s.get, k)
            ptest.raises(TypeError, s.__contains__, k)
            ptest.raises(TypeError, s.__delitem__, k)
            ptest.raises(TypeError, s.pop, k, None)
            ptest.raises(TypeError, s.pin, k)
            ptest.raises(TypeError, s.ref, k)
    assert len(s) == 2


def test_bad_arguments():
    for kw in (
        {"max_items": 0},
        {"max_items": -1},
        {"max_bytes": 0},
        {"max_items": 1.5},
        {"max_bytes": True},
        {"max_items": "3"},
    ):
        ptest.raises(ValueError, WeakStore, **kw)
    ptest.raises(TypeError, WeakStore, sizeof=3)
    s = WeakStore(sizeof=lambda v: -1)
    ptest.raises(ValueError, s.__setitem__, "a", 1)
    s = WeakStore(sizeof=lambda v: 1.5)
    ptest.raises(ValueError, s.__setitem__, "a", 1)
    assert len(s) == 0
    s = _filled(2)
    ptest.raises(ValueError, s.shed, -1)
    ptest.raises(KeyError, s.pin, "nope")
    ptest.raises(KeyError, s.unpin, "nope")
    ptest.raises(KeyError, s.ref, "nope")
    ptest.raises(ValueError, s.unpin, "k0")  # present but not pinned


def test_max_items_evicts_least_recently_used():
    s = _filled(3, max_items=3)
    s["k0"]  # refresh: k1 is now the oldest
    assert "k1" in s  # membership does not refresh
    s["k3"] = bytearray(8)
    assert s.keys() == ["k2", "k0", "k3"], s.keys()
    assert s.evictions == 1
    s.get("k2")
    s["k4"] = 1
    assert s.keys() == ["k3", "k2", "k4"] and len(s) == 3 and s.evictions == 2


def test_max_bytes_evicts_and_rejects_oversized_values():
    s = WeakStore(max_bytes=100, sizeof=len)
    for k in "abcd":
        s[k] = bytes(30)
    assert s.keys() == ["b", "c", "d"] and s.nbytes == 90
    s["c"] = bytes(50)  # grows c: the oldest others go until it fits
    assert s.keys() == ["d", "c"] and s.nbytes == 80, (s.keys(), s.nbytes)
    ptest.raises(ValueError, s.__setitem__, "d", bytes(101))
    assert s.keys() == ["d", "c"] and len(s["d"]) == 30  # unchanged
    s["e"] = bytes(100)
    assert s.keys() == ["e"] and s.nbytes == 100 and s.evictions == 4
    s = WeakStore(max_bytes=100, sizeof=len)
    s["old"] = bytes(40)
    s["new"] = bytes(40)
    s["old"] = bytes(70)  # the oldest entry grows: the others make room, not itself
    assert s.keys() == ["old"] and s.nbytes == 70


def test_replacing_a_value_makes_a_new_generation():
    s = _filled(2)
    h = s.ref("k0")
    old = s["k0"]
    assert h() is old
    s.pin("k0")
    new = bytearray(3)
    s["k0"] = new
    assert h() is None  # the handle named the old value
    assert s.ref("k0")() is new
    s.unpin("k0")  # pins belong to the key and survive replacement
    ptest.raises(ValueError, s.unpin, "k0")


def test_ref_handle_follows_the_entry():
    s = WeakStore(max_items=2)
    v = bytearray(4)
    s["a"] = v
    h = s.ref("a")
    assert h() is v and h() is v
    s["b"] = 1
    s["c"] = 2  # evicts a
    assert h() is None
    s["a"] = v  # same key, same value, new entry: the old handle stays dead
    assert h() is None
    h = s.ref("a")
    s.shed_all()
    assert h() is None
    s["a"] = v
    h = s.ref("a")
    del s["a"]
    assert h() is None
    s["x"] = v  # reuses a's slot: still None
    assert h() is None


def test_handle_calls_count_and_refresh():
    s = _filled(3, max_items=3)
    h = s.ref("k0")
    h()
    assert s.keys() == ["k1", "k2", "k0"] and s.hits == 1
    s["k3"] = 3
    assert h() is not None and "k1" not in s


def test_pins_nest_and_protect():
    s = _filled(3, max_items=3)
    s.pin("k0")
    s.pin("k0")
    s.pin("k1")
    assert s.pinned == 2
    s["k3"] = 3  # k0, k1 pinned: k2 goes
    assert s.keys() == ["k0", "k1", "k3"]
    assert s.shed_all() > 0 and s.keys() == ["k0", "k1"]
    s.unpin("k0")
    assert s.shed(10**6) == 0 and len(s) == 2  # still pinned once
    s.unpin("k0")
    assert s.pinned == 1
    ptest.raises(ValueError, s.unpin, "k0")
    assert s.shed(1) > 0 and s.keys() == ["k1"]


def test_everything_pinned_exceeds_the_bound_until_unpinned():
    s = _filled(2, max_items=2)
    s.pin("k0")
    s.pin("k1")
    s["k2"] = 2
    s.pin("k2")
    s["k3"] = 3
    assert len(s) == 4 and s.evictions == 0  # documented: pins may exceed a bound
    s.unpin("k0")  # reclaimable again: the store shrinks back to its bound
    assert s.keys() == ["k1", "k2"], s.keys()
    assert s.evictions == 2


def test_shed_oldest_first_and_counts():
    s = WeakStore(sizeof=len)
    for k in "abcde":
        s[k] = bytes(10)
    s.pin("a")
    assert s.shed(0) == 0 and len(s) == 5
    assert s.shed(15) == 20  # b and c: at least 15 bytes, whole entries
    assert s.keys() == ["a", "d", "e"]
    assert s.shed(1000) == 20 and s.keys() == ["a"]
    st = s.stats()
    assert st["shed_entries"] == 4 and st["shed_bytes"] == 40 and st["evictions"] == 0, st
    assert st["items"] == 1 and st["bytes"] == 10 and st["pinned"] == 1, st
    assert s.shed_all() == 0


def test_on_pressure_levels():
    s = WeakStore(sizeof=len)
    for i in range(8):
        s[i] = bytes(100)
    s.pin(7)
    assert s.on_pressure("ok", 50000) == 0 and len(s) == 8
    assert s.on_pressure("warn", 30000) == 200  # >= 800 // 4, oldest first
    assert s.keys() == [2, 3, 4, 5, 6, 7]
    assert s.on_pressure("critical", 10000) == 500
    assert s.keys() == [7]
    assert s.shed_entries == 7 and s.shed_bytes == 700


def test_default_estimate():
    W = store._W
    B = 4 * W  # one GC block

    def r(n):
        return (n + B - 1) // B * B

    est = store.estimate
    for v in (None, True, 0, 10**6, 1.5):
        assert est(v) == B, v
    assert est(b"") == B
    assert est(bytearray(10)) == B + r(10)
    assert est("x" * 40) == B + r(40)
    import array

    assert est(array.array("H", [0] * 10)) == B + r(20)
    assert est(memoryview(bytearray(100))) == B + r(100)
    assert est((1, 2)) == r(4 * W) + 2 * B
    assert est([b"ab"]) == B + r(W) + B + r(2)
    assert est({"a": 1}) == B + r(2 * W) + (B + r(1)) + B
    deep = [[[[[b"x" * 100]]]]]  # beyond 3 levels only the pointers count
    assert est(deep) < 5 * B + 4 * r(W), est(deep)

    class Thing:
        pass

    assert est(Thing()) == B
    s = WeakStore()
    s["b"] = bytearray(10)
    assert s.nbytes == est(bytearray(10))


def test_unbounded_store_grows_and_reuses_slots():
    s = WeakStore()
    for i in range(100):
        s[i] = i
    for i in range(0, 100, 2):
        del s[i]
    n = len(s._keys)
    for i in range(100, 150):
        s[i] = i
    assert len(s._keys) == n  # freed slots were reused
    assert len(s) == 100 and s.keys() == list(range(1, 100, 2)) + list(range(100, 150))


def test_reads_allocate_nothing():
    s = _filled(8, max_items=8)
    h = s.ref("k3")
    v = bytearray(8)
    ptest.assert_no_alloc(lambda: s.get("k3"), what="get")
    ptest.assert_no_alloc(lambda: s["k5"], what="getitem")
    ptest.assert_no_alloc(lambda: "k5" in s, what="contains")
    ptest.assert_no_alloc(lambda: s.get("nope"), what="get miss")
    ptest.assert_no_alloc(h, what="handle call")

    def replace():
        s["k4"] = v

    ptest.assert_no_alloc(replace, what="replace")
    c = [0]

    def insert_evicting():  # full bounded store: a new key evicts the oldest
        c[0] = (c[0] + 1) & 63
        s[c[0]] = v

    ptest.assert_no_alloc(insert_evicting, what="insert into a full store")


def test_allocation_figures():
    if not ptest.MICROPYTHON:
        ptest.skip("mem_total is MicroPython-only")
    s = _filled(8, max_items=8)
    s["k4"] = 1
    ref = ptest.heap_bytes(lambda: s.ref("k4"), 100) // 100
    u = WeakStore()
    c = [0]

    def grow():
        c[0] += 1
        u[c[0]] = 1

    grow_b = ptest.heap_bytes(grow, 200) // 200
    print("ref() %d B, unbounded insert %d B amortized" % (ref, grow_b))
    assert ref <= 64 * store._W, ref  # a three-attribute object: 168 B measured at W=8
    assert grow_b <= 64 * store._W, grow_b


def test_seeded_ops_match_a_model():
    # The portable twin of test_store_props.py: a seeded sequence on both runtimes.
    r = ptest.Rand(11)
    s = WeakStore(max_items=6, max_bytes=200, sizeof=len)
    order = []  # model: keys, least recently used first
    size = {}
    pins = {}

    def fit(keep, items, nbytes):
        for k in list(order):
            if len(order) + items <= 6 and sum(size.values()) + nbytes <= 200:
                break
            if k != keep and not pins.get(k):
                order.remove(k)
                del size[k]
                pins.pop(k, None)

    for _ in range(1500):
        op = r.next() % 7
        k = r.next() % 9
        if op <= 1:
            n = r.randint(0, 80)
            if k in size:
                fit(k, 0, n - size[k])
                order.remove(k)
            else:
                fit(None, 1, n)
            s[k] = bytes(n)
            order.append(k)
            size[k] = n
        elif op == 2:
            got = s.get(k)
            if k in size:
                assert len(got) == size[k]
                order.remove(k)
                order.append(k)
            else:
                assert got is None
        elif op == 3 and k in size:
            s.pin(k)
            pins[k] = pins.get(k, 0) + 1
        elif op == 4 and pins.get(k):
            s.unpin(k)
            pins[k] -= 1
            fit(None, 0, 0)
        elif op == 5:
            target = r.randint(0, 120)
            done = 0
            for j in list(order):
                if done >= target:
                    break
                if not pins.get(j):
                    done += size.pop(j)
                    order.remove(j)
            assert s.shed(target) == done
        elif op == 6 and k in size:
            del s[k]
            order.remove(k)
            del size[k]
            pins.pop(k, None)
        assert s.keys() == order, (s.keys(), order)
        assert s.nbytes == sum(size.values())
        assert s.pinned == sum(1 for k in pins if pins[k])
