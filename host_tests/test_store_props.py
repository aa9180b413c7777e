"""WeakStore against a tiny list-based model (hypothesis stateful test, CPython).

The portable twin with a seeded sequence runs on both runtimes in
portable/test_store.py; this one lets hypothesis search for a counterexample.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from lowwater.store import WeakStore

KEYS = st.integers(0, 4)
SIZES = st.integers(0, 40)


class Model:
    """Least recently used first; evictions and sheds skip pinned keys."""

    def __init__(self, max_items, max_bytes):
        self.mi, self.mb = max_items, max_bytes
        self.order: list[int] = []
        self.val: dict[int, bytearray] = {}
        self.gen: dict[int, int] = {}
        self.pins: dict[int, int] = {}
        self.g = 0
        self.stats = {"hits": 0, "misses": 0, "evictions": 0, "shed_entries": 0, "shed_bytes": 0}

    def nbytes(self):
        return sum(len(v) for v in self.val.values())

    def drop(self, k):
        self.order.remove(k)
        del self.val[k], self.gen[k]
        self.pins.pop(k, None)

    def fits(self, items, nbytes):
        return (self.mi is None or len(self.order) + items <= self.mi) and (
            self.mb is None or self.nbytes() + nbytes <= self.mb
        )

    def fit(self, keep, items, nbytes):
        for k in list(self.order):
            if self.fits(items, nbytes):
                return
            if k != keep and not self.pins.get(k):
                self.drop(k)
                self.stats["evictions"] += 1

    def touch(self, k):
        self.order.remove(k)
        self.order.append(k)

    def set(self, k, v):
        self.g += 1
        if k in self.val:
            self.fit(k, 0, len(v) - len(self.val[k]))
            self.touch(k)
        else:
            self.fit(None, 1, len(v))
            self.order.append(k)
        self.val[k] = v
        self.gen[k] = self.g

    def read(self, k, gen=None):
        if k in self.val and (gen is None or self.gen[k] == gen):
            self.stats["hits"] += 1
            self.touch(k)
            return self.val[k]
        self.stats["misses"] += 1
        return None

    def shed(self, target):
        done = 0
        for k in list(self.order):
            if target >= 0 and done >= target:
                break
            if not self.pins.get(k):
                done += len(self.val[k])
                self.drop(k)
                self.stats["shed_entries"] += 1
        self.stats["shed_bytes"] += done
        return done


class StoreMachine(RuleBasedStateMachine):
    @initialize(max_items=st.none() | st.integers(1, 4), max_bytes=st.none() | st.integers(1, 100))
    def setup(self, max_items, max_bytes):
        self.s = WeakStore(max_items=max_items, max_bytes=max_bytes, sizeof=len)
        self.m = Model(max_items, max_bytes)
        self.handles: list[tuple[object, int, int]] = []

    @rule(k=KEYS, n=SIZES)
    def set(self, k, n):
        v = bytearray(n)
        if self.m.mb is not None and n > self.m.mb:
            try:
                self.s[k] = v
            except ValueError:
                return
            raise AssertionError("oversized value accepted")
        self.s[k] = v
        self.m.set(k, v)

    @rule(k=KEYS)
    def get(self, k):
        assert self.s.get(k) is self.m.read(k)

    @rule(k=KEYS)
    def getitem(self, k):
        want = self.m.read(k)
        try:
            got = self.s[k]
        except KeyError:
            got = None
        assert got is want

    @rule(k=KEYS)
    def contains(self, k):
        assert (k in self.s) == (k in self.m.val)

    @rule(k=KEYS)
    def delete(self, k):
        if k in self.m.val:
            assert self.s.pop(k) is self.m.val[k]
            self.m.drop(k)
        else:
            assert self.s.pop(k, "d") == "d"

    @rule(k=KEYS)
    def pin(self, k):
        if k in self.m.val:
            self.s.pin(k)
            self.m.pins[k] = self.m.pins.get(k, 0) + 1

    @rule(k=KEYS)
    def unpin(self, k):
        if self.m.pins.get(k):
            self.s.unpin(k)
            self.m.pins[k] -= 1
            if not self.m.pins[k]:
                self.m.fit(None, 0, 0)
        elif k in self.m.val:
            try:
                self.s.unpin(k)
            except ValueError:
                return
            raise AssertionError("unpin of an unpinned key accepted")

    @rule(n=st.integers(0, 200))
    def shed(self, n):
        assert self.s.shed(n) == self.m.shed(n)

    @rule(level=st.sampled_from(["ok", "warn", "critical"]))
    def pressure(self, level):
        target = {"ok": None, "warn": self.m.nbytes() // 4 or 1, "critical": -1}[level]
        want = 0 if target is None else self.m.shed(target)
        assert self.s.on_pressure(level, 1000) == want

    @rule(k=KEYS)
    def take_ref(self, k):
        if k in self.m.val:
            self.handles.append((self.s.ref(k), k, self.m.gen[k]))
        else:
            try:
                self.s.ref(k)
            except KeyError:
                return
            raise AssertionError("ref of a missing key")

    @rule(i=st.integers(0, 15))
    def call_ref(self, i):
        if i < len(self.handles):
            h, k, gen = self.handles[i]
            assert h() is self.m.read(k, gen)

    @rule()
    def clear(self):
        self.s.clear()
        for k in list(self.m.order):
            self.m.drop(k)

    @invariant()
    def same_state(self):
        if not hasattr(self, "s"):
            return
        s, m = self.s, self.m
        assert s.keys() == m.order
        assert s.values() == [m.val[k] for k in m.order]
        assert len(s) == len(m.order)
        assert s.nbytes == m.nbytes()
        st_ = s.stats()
        assert st_["pinned"] == sum(1 for k in m.pins if m.pins[k])
        for key, want in m.stats.items():
            assert st_[key] == want, (key, st_[key], want)
        # Over a bound only through pins: then at most the entry just set is
        # unpinned (an insertion never evicts its own entry).
        if not m.fits(0, 0):
            assert sum(1 for k in m.order if not m.pins.get(k)) <= 1


StoreMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestStore = StoreMachine.TestCase
