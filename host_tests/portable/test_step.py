# The firmware step's fast path (issue 12): ChunkRing.cycle and its straight
# read of an idle ring, and Firmware.step reading straight into it; shedding,
# the watchdog and the periodic point on every path. Behaviour only: the
# instruction counts are benchmarks (lowwater bench, mp_cg.py).
import ptest
from lowwater import app, config
from lowwater._compat import VIPER
from lowwater.ring import ChunkRing
from lowwater.sensor import ReplaySensor, SimSensor
from lowwater.telemetry import Telemetry


class _Src:
    """readinto that writes a running number into byte 0 and returns n bytes
    (n from a list, cycled): which chunk is which stays visible."""

    def __init__(self, lens=(4,)):
        self.k = 0
        self.lens = lens
        self.fail = 0  # raise OSError on the next `fail` calls

    def __call__(self, v):
        if self.fail:
            self.fail -= 1
            raise OSError(5)
        self.k += 1
        v[0] = self.k & 0xFF
        return self.lens[self.k % len(self.lens)]


def _state(r):
    return (r.committed, r.dropped, r.high_water, len(r), r.oldest_len())


def _idle_is_exact(r):
    # idle is the view of the read slot exactly while nothing is committed or
    # claimed and the ring was used before
    want = r._n == 0 and not r._cl and r.high_water > 0
    assert (r.idle is not None) == want, (r.idle, r._n, r._cl, r.high_water)
    if want:
        assert r.idle is r._views[r._rd]


def test_cycle_is_fill_then_take_for_any_sequence_of_operations():
    # Two rings driven alike, one with cycle(), one with fill() + take();
    # claim/commit/release/clear/take mixed in at random, overwrite or not.
    for overwrite in (True, False):
        rnd = ptest.Rand(7 if overwrite else 8)
        a = ChunkRing(4, 3, overwrite=overwrite)
        b = ChunkRing(4, 3, overwrite=overwrite)
        sa = _Src((4, 1, 3, 0, 2))
        sb = _Src((4, 1, 3, 0, 2))
        for step in range(600):
            op = rnd.randint(0, 9)
            if op < 5:
                va = a.cycle(sa)
                nb = b.fill(sb)
                vb = b.take()
                assert (va is None) == (vb is None), step
                if va is not None:
                    assert va[0] == vb[0] and a.taken == b.taken, (step, va[0], vb[0])
                assert nb == -1 or sa.k == sb.k
            elif op == 5:
                for r, s in ((a, sa), (b, sb)):
                    v = r.claim()
                    if v is not None:
                        r.commit(s(v))
            elif op == 6:
                for r, s in ((a, sa), (b, sb)):
                    r.fill(s)
            elif op == 7:
                va = a.take()
                vb = b.take()
                assert (va is None) == (vb is None)
                if va is not None:
                    assert va[0] == vb[0] and a.taken == b.taken
            elif op == 8 and len(a):
                a.release()
                b.release()
            elif op == 9 and rnd.randint(0, 5) == 0:
                a.clear()
                b.clear()
            assert _state(a) == _state(b), (step, op, _state(a), _state(b))
            _idle_is_exact(a)
            _idle_is_exact(b)


def test_cycle_on_an_idle_ring_reads_straight_into_the_read_slot():
    r = ChunkRing(8, 4, overwrite=True)
    s = _Src((8, 5))
    assert r.idle is None  # never used: the first cycle goes through fill + take
    v = r.cycle(s)
    assert r.high_water == 1 and r.committed == 1 and len(r) == 0
    slot = r.idle
    assert slot is not None
    for i in range(2, 12):
        v = r.cycle(s)
        assert v is slot and v[0] == i and r.taken == s.lens[i % 2]
        assert r.committed == i and len(r) == 0 and r.high_water == 1 and r.dropped == 0
        assert r.idle is slot and r.oldest() is None
    # The straight read by hand (what Firmware.step does) is the same thing.
    n = s(r.idle)
    r.committed += 1
    assert r.idle is slot and n == s.lens[s.k % 2]
    # A chunk left waiting: the ring is not idle, cycle() takes the oldest first.
    r.fill(s)
    assert r.idle is None and len(r) == 1
    first = s.k
    v = r.cycle(s)
    assert v[0] == first and len(r) == 1 and r.idle is None
    v = r.take()
    assert v[0] == first + 1 and len(r) == 0 and r.idle is not None


def test_cycle_counts_nothing_when_the_read_fails_or_overruns():
    r = ChunkRing(8, 2, overwrite=True)
    s = _Src((8,))
    r.cycle(s)
    before = _state(r)
    s.fail = 1
    ptest.raises(OSError, r.cycle, s)
    assert _state(r) == before and r.idle is not None
    s.lens = (9,)
    ptest.raises(ValueError, r.cycle, s)
    s.lens = (-1,)
    ptest.raises(ValueError, r.cycle, s)
    assert _state(r) == before and r.idle is not None


def test_cycle_on_a_full_ring_without_overwrite_takes_what_is_there():
    r = ChunkRing(4, 2)
    s = _Src((4,))
    r.fill(s)
    r.fill(s)
    assert r.fill(s) == -1
    v = r.cycle(s)  # no room to read: the oldest comes out, nothing read
    assert v[0] == 1 and len(r) == 1 and r.committed == 2
    v = r.cycle(s)  # room again: read, then take the oldest
    assert v[0] == 2 and len(r) == 1 and r.committed == 3


def test_cycle_allocates_nothing():
    r = ChunkRing(256, 4, overwrite=True)
    data = bytearray(256)

    def rd(v):
        v[:] = data
        return 256

    r.cycle(rd)
    ptest.assert_no_alloc(lambda: r.cycle(rd), 1000, "cycle (idle)")
    r.fill(rd)  # a chunk waits: every cycle is fill + take now
    ptest.assert_no_alloc(lambda: r.cycle(rd), 1000, "cycle (a chunk waiting)")


# -- Firmware.step -------------------------------------------------------------


class _Wdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


class _Pass:
    """A user stage (docs/pipeline.md) that reads and passes the chunk on."""

    writes = False

    def __init__(self):
        self.n = 0

    def process(self, src, n, dst):
        self.n += 1
        return n


def _fw(stages=None, **over):
    p = config.load("boards/unix.json")
    for k in over:
        p[k] = over[k]
    src = ptest.FakeMemory(10**6)
    sensor = ReplaySensor(SimSensor(1), p["chunk_size"])
    fw = app.Firmware(p, sensor=sensor, telemetry=Telemetry(enabled=False), source=src, stages=stages)
    return fw, src


def test_steady_state_reads_straight_and_keeps_the_ring_idle():
    fw, _ = _fw(check_every=16)
    fw.run(100)
    r = fw.ring
    assert r.idle is not None and len(r) == 0 and r.high_water == 1
    assert fw.produced == fw.processed == 100 and fw.dropped == 0
    assert fw.windows == 100 // 16


def test_periodic_point_every_check_every_chunks_whatever_the_path():
    # The periodic point follows the ring's committed count: straight reads,
    # the general path (a chunk waiting) and shedding all count.
    fw, src = _fw(check_every=8)
    fw.run(8 * 3)
    assert fw.windows == 3
    fw.ring.fill(fw._read)  # a chunk waiting: the next steps take the general path
    assert fw.ring.idle is None
    fw.run(5)  # committed: 24 + 1 + 5 = 30, the 4th point was due at 32
    assert fw.windows == 3
    fw.run(2)
    assert fw.windows == 4
    src.free_bytes = 1  # critical at the next check: shedding
    fw.run(8 * 8)
    assert fw.shedding and fw.windows == 12 and fw.dropped > 0
    src.free_bytes = 10**6
    fw.run(8 * 2)
    assert not fw.shedding and fw.windows == 14
    fw.finish()
    assert fw.produced == fw.processed + fw.dropped


def test_a_processing_fault_does_not_shift_the_periodic_point():
    # A chunk lost after it was counted: the point is still due by count.
    fw, _ = _fw(check_every=8)
    stats = app._stats
    calls = [0]

    def faulty(*a):
        calls[0] += 1
        if calls[0] == 5:
            raise MemoryError("injected")
        return stats(*a)

    app._stats = faulty
    try:
        fw.run(16)
    finally:
        app._stats = stats
    assert fw.windows == 2 and fw.errors == 1 and fw.lost == 1
    rep = fw.finish()
    assert rep["chunks"] == 16 == fw.processed + fw.dropped


def test_shedding_processes_every_other_chunk_and_the_backlog_drains_after():
    fw, src = _fw(check_every=8)
    fw.run(8)
    fw.shedding = True
    fw.run(7)  # the periodic point ends the shedding (level OK): stop before it
    # 7 steps while shedding: 4 processed (the oldest first), 3 waiting
    assert fw.processed == 8 + 4 and len(fw.ring) == 3 and fw.dropped == 0
    fw.run(1)  # skipped, then the periodic point: shedding ends
    assert not fw.shedding and len(fw.ring) == 4
    # After it, each step processes its chunk and one waiting: the ring empties
    # and the straight read resumes.
    fw.run(4)
    assert len(fw.ring) == 0 and fw.ring.idle is not None
    assert fw.produced == fw.processed == 20 and fw.dropped == 0


def test_watchdog_is_fed_once_per_chunk_on_every_path():
    for stages in (None, [_Pass()]):
        fw, _ = _fw(stages, check_every=16)
        w = _Wdt()
        fw.use_watchdog(w)
        fw.run(10)
        assert w.fed == 10, (stages, w.fed)
        fw.shedding = True
        fw.run(4)
        assert w.fed == 14, (stages, w.fed)
        fw.use_watchdog(None)
        fw.run(2)
        assert w.fed == 14
        if stages:
            assert stages[0].n == fw.processed


def test_step_allocates_nothing_on_the_straight_path():
    if VIPER is None:
        ptest.skip("the plain twins' frames go on the heap (no viper emitter)")
    fw, _ = _fw(check_every=4096)
    fw.run(10)
    w = _Wdt()
    fw.use_watchdog(w)
    ptest.assert_no_alloc(fw.step, 1000, "Firmware.step (straight read, watchdog)")
    assert fw.ring.idle is not None and fw.produced == fw.processed >= 1010 and w.fed == fw.produced - 10


# 192 KiB per test on MicroPython and 16 KB held while this module compiles,
# freed for the firmware's buffers (as test_app.py: the board-shaped heap is
# too fragmented for the ring's block beside this module compiled from source).
MP_HEAP = {}
MP_PAD = {}
for _n in list(globals()):
    if _n.startswith("test_"):
        MP_HEAP[_n] = 196608
        MP_PAD[_n] = 16384
