"""Property tests for lowwater.ring against tiny models (hypothesis, CPython).

The state machines drive the plain twin (the only ByteRing path on CPython) and
ChunkRing. The viper path exists on MicroPython only, so the last test runs
hypothesis-generated operation programs on the unix port and compares every
result with the model.
"""

from __future__ import annotations

import ast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import mprunner
from lowwater.ring import ByteRing, ChunkRing

# Enough payload for any source slice below (offset <= 7, length <= cap + 8).
BACK = bytes((i * 7 + 3) & 0xFF for i in range(512))


class ByteModel:
    """What a ByteRing must do, written the obvious way over bytes."""

    def __init__(self, capacity, overwrite=False):
        self.capacity = capacity
        self.overwrite = overwrite
        self.data = b""
        self.dropped = 0

    def write(self, buf):
        buf = bytes(buf)
        if self.overwrite:
            self.data += buf
            drop = max(0, len(self.data) - self.capacity)
            self.data = self.data[drop:]
            self.dropped += drop
            return len(buf)
        k = min(len(buf), self.capacity - len(self.data))
        self.data += buf[:k]
        return k

    def peekinto(self, buf):
        k = min(len(buf), len(self.data))
        buf[:k] = self.data[:k]
        return k

    def readinto(self, buf):
        k = self.peekinto(buf)
        self.data = self.data[k:]
        return k

    def __len__(self):
        return len(self.data)

    def space(self):
        return self.capacity - len(self.data)

    def clear(self):
        self.data = b""


class ByteRingMachine(RuleBasedStateMachine):
    @initialize(cap=st.integers(1, 70), overwrite=st.booleans())
    def setup(self, cap, overwrite):
        self.ring = ByteRing(cap, overwrite)
        self.model = ByteModel(cap, overwrite)

    @rule(off=st.integers(0, 7), n=st.integers(0, 80), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
    def write(self, off, n, kind):
        src = BACK[off : off + n]
        if kind == "bytearray":
            src = bytearray(src)
        elif kind == "memoryview":
            src = memoryview(BACK)[off : off + n]
        assert self.ring.write(src) == self.model.write(src)

    @rule(off=st.integers(0, 7), n=st.integers(0, 80), peek=st.booleans())
    def read(self, off, n, peek):
        a = bytearray(b"\xa5" * (off + n))
        b = bytearray(a)
        va, vb = memoryview(a)[off:], memoryview(b)[off:]
        if peek:
            assert self.ring.peekinto(va) == self.model.peekinto(vb)
        else:
            assert self.ring.readinto(va) == self.model.readinto(vb)
        assert a == b  # the same bytes, and nothing past them touched

    @rule()
    def clear(self):
        self.ring.clear()
        self.model.clear()

    @invariant()
    def same_state(self):
        if hasattr(self, "ring"):
            assert len(self.ring) == len(self.model)
            assert self.ring.space() == self.model.space()
            assert self.ring.dropped == self.model.dropped


TestByteRing = ByteRingMachine.TestCase
TestByteRing.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class ChunkRingMachine(RuleBasedStateMachine):
    """ChunkRing against a list of committed chunks."""

    @initialize(cs=st.integers(1, 16), count=st.integers(1, 6), overwrite=st.booleans())
    def setup(self, cs, count, overwrite):
        self.ring = ChunkRing(cs, count, overwrite)
        self.cs, self.count, self.overwrite = cs, count, overwrite
        self.chunks = []  # committed chunks' valid bytes, oldest first
        self.claimed = None
        self.dropped = self.committed = self.high = 0

    @rule()
    def claim(self):
        mv = self.ring.claim()
        if self.claimed is not None:
            assert mv is self.claimed
            return
        if len(self.chunks) == self.count:
            if not self.overwrite:
                assert mv is None
                return
            self.chunks.pop(0)
            self.dropped += 1
        assert mv is not None and len(mv) == self.cs
        self.claimed = mv
        self.high = max(self.high, len(self.chunks) + 1)

    @precondition(lambda self: self.claimed is not None)
    @rule(data=st.binary(max_size=16))
    def commit(self, data):
        data = data[: self.cs]
        self.claimed[: len(data)] = data
        if len(data) == self.cs and data[:1] == b"\x00":
            self.ring.commit()  # the default: the whole chunk
        else:
            self.ring.commit(len(data))
        self.chunks.append(data)
        self.claimed = None
        self.committed += 1

    @rule(n=st.integers(-3, 20))
    def bad_commit(self, n):
        if self.claimed is None or not 0 <= n <= self.cs:
            with pytest.raises(ValueError):
                self.ring.commit(n)

    @rule()
    def release(self):
        if not self.chunks:
            with pytest.raises(ValueError):
                self.ring.release()
            return
        n = self.ring.oldest_len()
        assert bytes(self.ring.oldest()[:n]) == self.chunks.pop(0)
        self.ring.release()

    @invariant()
    def same_state(self):
        if not hasattr(self, "ring"):
            return
        r = self.ring
        assert len(r) == len(self.chunks)
        assert (r.dropped, r.committed, r.high_water) == (self.dropped, self.committed, self.high)
        if self.chunks:
            assert bytes(r.oldest()[: r.oldest_len()]) == self.chunks[0]
            assert len(r.oldest()) == self.cs
        else:
            assert r.oldest() is None and r.oldest_len() == 0


TestChunkRing = ChunkRingMachine.TestCase
TestChunkRing.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# ---- the viper path, on MicroPython -------------------------------------------------

# Runs on both runtimes: `make` is ByteRing on MicroPython, ByteModel here.
EXECUTOR = """
def run(make, cap, over, ops, back):
    r = make(cap, over)
    out = []
    for op, off, n in ops:
        if op == 0:
            out.append(r.write(memoryview(back)[off : off + n]))
        elif op == 3:
            r.clear()
        else:
            dst = bytearray(off + n)
            v = memoryview(dst)[off:]
            k = r.readinto(v) if op == 1 else r.peekinto(v)
            out.append((k, list(dst)))
        out.append((len(r), r.space(), r.dropped))
    return out
"""

_op = st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 80))
_program = st.tuples(st.integers(1, 70), st.booleans(), st.lists(_op, max_size=30))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs=st.lists(_program, min_size=1, max_size=12))
def test_viper_path_matches_the_model(programs, mp_heap):
    ns: dict = {}
    exec(EXECUTOR, ns)
    want = [ns["run"](ByteModel, cap, over, ops, BACK) for cap, over, ops in programs]
    code = (
        EXECUTOR
        + "from lowwater.ring import ByteRing\n"
        + "assert ByteRing(1).fast\n"
        + f"back = {BACK!r}\n"
        + f"print(repr([run(ByteRing, c, o, ops, back) for c, o, ops in {programs!r}]))\n"
    )
    res = mprunner.run_code(code, mp_heap, timeout=60)
    assert res.returncode == 0, res.out
    assert ast.literal_eval(res.out.strip().splitlines()[-1]) == want
