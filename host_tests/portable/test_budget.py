# lowwater.budget: levels, handlers, report, telemetry and zero-allocation ticks,
# on CPython and MicroPython, driven by a fake memory source.
import io

import ptest
from lowwater import budget
from lowwater.budget import CRITICAL, OK, WARN, Budget, GcSource, TracemallocSource, default_source
from lowwater.telemetry import Telemetry

try:
    import tracemalloc
except ImportError:  # MicroPython
    tracemalloc = None

HEAP = 131072
WARN_FREE = 40960
MIN_FREE = 20480


class FakeSource:
    """Memory source whose free figure the test sets; counts collect() calls."""

    def __init__(self, free=100000):
        self.f = free
        self.collects = 0

    def collect(self):
        self.collects += 1

    def free(self):
        return self.f

    def alloc(self):
        return HEAP - self.f


def make(check_every=4, free=100000, telemetry=None):
    src = FakeSource(free)
    return Budget(HEAP, WARN_FREE, MIN_FREE, check_every=check_every, source=src, telemetry=telemetry), src


def parse(text):
    """LW1 lines -> [(kind, {key: value})]; every line must be well formed.
    (MicroPython dicts are unordered: key order is checked by keys_of().)"""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        assert parts[0] == "LW1", line
        kv = {}
        for p in parts[2:]:
            k, v = p.split("=")
            kv[k] = v
        out.append((parts[1], kv))
    return out


def test_levels_are_the_documented_strings():
    assert (OK, WARN, CRITICAL) == ("ok", "warn", "critical")


def test_levels_follow_free_memory_ok_warn_critical_ok():
    b, src = make(check_every=1)
    seen = []
    for free in (100000, WARN_FREE, WARN_FREE - 1, MIN_FREE, MIN_FREE - 1, 0, MIN_FREE, WARN_FREE, 90000):
        src.f = free
        seen.append(b.tick())
    assert seen == [OK, OK, WARN, WARN, CRITICAL, CRITICAL, WARN, OK, OK], seen
    assert b.level is OK
    assert b.free == 90000
    assert b.alloc == HEAP - 90000


def test_tick_checks_every_check_every_ticks_and_returns_the_level():
    b, src = make(check_every=5, free=WARN_FREE - 1)
    levels = [b.tick() for _ in range(4)]
    assert levels == [OK] * 4 and src.collects == 0 and b.checks == 0
    assert b.tick() == WARN and src.collects == 1 and b.checks == 1
    for _ in range(10):
        b.tick()
    assert src.collects == 3 and b.checks == 3
    assert b.report()["ticks"] == 15


def test_check_every_one_checks_on_every_tick():
    b, src = make(check_every=1)
    for _ in range(7):
        b.tick()
    assert b.checks == 7 and b.report()["ticks"] == 7
    # one collection: the first check; free memory did not fall since
    assert src.collects == 1 and b.collections == 1


def test_a_check_collects_only_below_warn_or_after_a_fall_past_slack():
    b, src = make(check_every=1)
    assert b.slack == HEAP // 16
    b.tick()
    assert src.collects == 1  # the first reading has no collected baseline
    src.f -= b.slack  # garbage up to the slack: no collection
    b.tick()
    assert src.collects == 1 and b.free == 100000 - b.slack and b.gc_us == 0
    src.f -= 1  # past it: collect (the fake frees nothing), new baseline
    b.tick()
    assert src.collects == 2
    b.tick()
    assert src.collects == 2
    src.f = WARN_FREE - 1  # below warn: always collect before judging the level
    assert b.tick() == WARN and src.collects == 3
    assert b.tick() == WARN and src.collects == 4
    assert b.report()["collections"] == 4 and b.checks == 6


def test_alloc_comes_from_the_heap_total_when_the_source_knows_it():
    class Totalled(FakeSource):
        walks = 0

        def free(self):
            self.walks += 1
            return self.f

        def total(self):
            return HEAP

        def alloc(self):
            assert self.collects, "alloc() walked the heap outside a collection"
            return HEAP - self.f

    src = Totalled(90000)
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=1, source=src, slack=HEAP, walk_every=1)
    b.check()  # collects: the total is re-read there (free + alloc) - not here
    src.walks = 0
    for _ in range(5):
        b.tick()
    assert src.walks == 5 and b.alloc == HEAP - 90000  # one walk per check


class _Totalled(FakeSource):
    """A source that knows its heap total (as GcSource): counts its walks."""

    def __init__(self, free=100000, total=HEAP):
        FakeSource.__init__(self, free)
        self.t = total
        self.walks = 0

    def free(self):
        self.walks += 1
        return self.f

    def total(self):
        return self.t


# The spacing's cost model (docs/budget.md), restated: a walk costs 42
# instructions per GC block, a step at least 7000 + 64 per chunk byte, and a
# walk may take 1/50 of the step work between two walks.
_WALK, _BASE, _BYTE, _SHARE = 42, 7000, 64, 50


def _model(total, chunk, every):
    # (walk cost, step work of one period)
    return total // budget._BLOCK * _WALK, every * (_BASE + _BYTE * chunk)


def test_walk_spacing_keeps_a_walk_within_two_percent_of_the_chunks_it_covers():
    # For heaps from 16 KiB to 8 MiB and chunks from 1 B to 4 KiB at the
    # profiles' period: one walk costs at most 1/50 of the modelled step work
    # of the walk_every periods between walks, and one period fewer would not
    # do (up to the rounding of the blocks a period pays for).
    for total in (16384, 131072, 209936, 524288, 2097152, 8 << 20):
        for chunk in (1, 64, 256, 512, 1024, 4096):
            w = budget.walk_spacing(total, chunk)
            walk, period = _model(total, chunk, 256)
            assert w >= 1 and walk * _SHARE <= w * period, (total, chunk, w)
            per = period // (_WALK * _SHARE)
            assert w == 1 or (w - 1) * per < total // budget._BLOCK, (total, chunk, w)
    # more heap: more periods; bigger chunks: fewer
    assert budget.walk_spacing(2 << 20, 256) > budget.walk_spacing(512 << 10, 256) > budget.walk_spacing(128 << 10, 256)
    assert budget.walk_spacing(2 << 20, 64) > budget.walk_spacing(2 << 20, 256) > budget.walk_spacing(2 << 20, 1024)
    assert budget.walk_spacing(1024, 64) == 1


def test_walk_spacing_follows_the_period():
    # A longer period covers more chunks: fewer periods per walk, the chunks
    # between walks still at least the default's. A shorter one asks for quicker
    # detection: the periods between walks shrink with it.
    total = 2 << 20
    w = budget.walk_spacing(total, 256)
    w4 = budget.walk_spacing(total, 256, 1024)
    assert w4 < w and w4 * 1024 >= (w - 1) * 256
    w16 = budget.walk_spacing(total, 256, 16)
    assert 1 <= w16 <= max(1, (w * 16 + 255) // 256)
    assert budget.walk_spacing(192 << 10, 256, 16) == 1


def test_the_default_spacing_comes_from_the_heap_total_and_the_chunk_size():
    src = _Totalled(total=8 << 20)
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=256, source=src, chunk_bytes=512)
    assert b.walk_every == budget.walk_spacing(8 << 20, 512, 256) > 1
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=4, source=src)
    assert b.walk_every == budget.walk_spacing(8 << 20, 0, 4)
    b2, _ = make(check_every=4)
    assert b2.walk_every == 1  # no total known: every periodic point measures


def test_walks_are_spaced_only_while_free_memory_is_far_from_warn_free():
    # far: free >= warn_free + (warn_free - min_free)
    far = WARN_FREE + (WARN_FREE - MIN_FREE)
    src = _Totalled(free=far)
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=4, source=src, walk_every=3, slack=HEAP)
    src.walks = 0
    b.due(4)  # the first periodic point always measures
    assert b.checks == 1 and src.walks == 1
    for _ in range(5):
        b.due(4)
    assert b.checks == 2 and src.walks == 2  # periods 2, 3 skipped; 4 measured; 5, 6 skipped
    src.f = far - 1  # near warn_free, still OK: seen at the next spaced walk ...
    b.due(4)
    assert b.checks == 3 and b.level is OK and b.low_water == far - 1
    for _ in range(4):  # ... and from then on every period measures
        b.due(4)
    assert b.checks == 7
    src.f = WARN_FREE - 1
    assert b.due(4) is WARN and b.checks == 8
    assert b.due(4) is WARN and b.checks == 9
    src.f = far  # far again: spaced after the reading that sees it
    b.due(4)
    assert b.checks == 10 and b.level is OK
    for _ in range(2):
        b.due(4)
    assert b.checks == 10
    b.due(4)
    assert b.checks == 11
    # ticks count the same as due(): 3 periods of 4 ticks, one walk
    for _ in range(3 * 4):
        b.tick()
    assert b.checks == 12 and b.report()["ticks"] == 4 * 17 + 12


def test_a_direct_check_updates_the_spacing_decision():
    far = WARN_FREE + (WARN_FREE - MIN_FREE)
    src = _Totalled(free=far)
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=4, source=src, walk_every=100, slack=HEAP)
    b.due(4)
    assert b.checks == 1
    src.f = MIN_FREE - 1
    assert b.check() is CRITICAL  # e.g. after a MemoryError (Firmware.run)
    b.due(4)  # near: the next period measures, spacing or not
    assert b.checks == 3


def test_explicit_check_does_not_move_the_tick_schedule():
    b, src = make(check_every=3)
    b.check()
    b.tick()
    b.tick()
    assert b.checks == 1
    b.tick()
    assert b.checks == 2


def test_due_counts_chunks_like_ticks():
    b, _ = make(check_every=4)
    b.due(3)
    assert b.checks == 0
    b.due(1)
    assert b.checks == 1 and b.report()["ticks"] == 4
    b.due(4)
    assert b.checks == 2 and b.report()["ticks"] == 8
    ptest.assert_no_alloc(lambda: b.due(1), 3, "due")


def test_low_water_is_the_lowest_free_seen():
    b, src = make()
    assert b.low_water is None
    for free in (90000, 70000, 80000, 75000):
        src.f = free
        b.check()
    assert b.low_water == 70000
    assert b.report()["low_water"] == 70000


def test_handlers_are_called_with_level_and_free_only_under_pressure():
    b, src = make()
    calls = []

    def h(level, free):
        calls.append((level, free))

    assert b.on_pressure(h) is h
    b.check()
    src.f = WARN_FREE - 5
    b.check()
    src.f = MIN_FREE - 5
    b.check()
    src.f = 100000
    b.check()
    assert calls == [(WARN, WARN_FREE - 5), (CRITICAL, MIN_FREE - 5)], calls


def test_a_raising_handler_is_counted_and_the_others_still_run():
    b, src = make(check_every=1, free=MIN_FREE - 1)
    calls = []

    def bad(level, free):
        raise MemoryError("no room")

    def good(level, free):
        calls.append(level)

    b.on_pressure(bad)
    b.on_pressure(good)
    for _ in range(3):
        assert b.tick() is CRITICAL
    assert calls == [CRITICAL] * 3
    assert b.handler_errors == 3
    assert b.report()["handler_errors"] == 3


def test_report_counts_checks_per_level():
    b, src = make()
    for free in (100000, 100000, WARN_FREE - 1, MIN_FREE - 1, MIN_FREE - 1, MIN_FREE - 1):
        src.f = free
        b.check()
    r = b.report()
    for key in (
        "checks",
        "free",
        "low_water",
        "warn",
        "critical",
        "ok",
        "gc_max_us",
        "gc_mean_us",
        "handler_errors",
        "ticks",
    ):
        assert key in r, key
    assert r["checks"] == 6
    assert (r["ok"], r["warn"], r["critical"]) == (2, 1, 3)
    assert r["free"] == MIN_FREE - 1 and r["low_water"] == MIN_FREE - 1
    assert r["level"] == CRITICAL
    assert r["handler_errors"] == 0 and r["ticks"] == 0


def test_gc_pause_figures_are_non_negative_ints():
    b, src = make()
    r = b.report()
    assert r["gc_max_us"] == 0 and r["gc_mean_us"] == 0  # no check yet
    for _ in range(5):
        b.check()
        assert type(b.gc_us) is int and b.gc_us >= 0
    r = b.report()
    assert type(r["gc_max_us"]) is int and type(r["gc_mean_us"]) is int
    assert r["gc_max_us"] >= r["gc_mean_us"] >= 0


def test_each_check_writes_mem_and_lvl_only_on_change():
    out = io.StringIO()
    tel = Telemetry(out, clock=lambda: 7)
    b, src = make(check_every=2, telemetry=tel)
    for free in (100000, WARN_FREE - 1, WARN_FREE - 2, MIN_FREE - 1, 100000):
        src.f = free
        b.tick()
        b.tick()
    recs = parse(out.getvalue())
    kinds = [k for k, _ in recs]
    assert kinds == ["mem", "mem", "lvl", "mem", "mem", "lvl", "mem", "lvl"], kinds
    mems = [kv for k, kv in recs if k == "mem"]
    assert [m["n"] for m in mems] == ["1", "2", "3", "4", "5"]
    assert [m["lvl"] for m in mems] == ["ok", "warn", "warn", "critical", "ok"]
    assert [m["free"] for m in mems] == [str(f) for f in (100000, WARN_FREE - 1, WARN_FREE - 2, MIN_FREE - 1, 100000)]
    assert [m["lw"] for m in mems] == [
        str(f) for f in (100000, WARN_FREE - 1, WARN_FREE - 2, MIN_FREE - 1, MIN_FREE - 1)
    ]
    assert mems[1]["alloc"] == str(HEAP - WARN_FREE + 1)
    for line in out.getvalue().split("\n"):
        if line.startswith("LW1 mem "):
            assert [p.split("=")[0] for p in line.split(" ")[2:]] == ["t", "n", "free", "alloc", "lw", "lvl", "gc_us"]
    for m in mems:
        assert sorted(m) == sorted(["t", "n", "free", "alloc", "lw", "lvl", "gc_us"])
        assert m["t"] == "7" and int(m["gc_us"]) >= 0
    lvls = [kv for k, kv in recs if k == "lvl"]
    assert [(x["from"], x["to"], x["free"]) for x in lvls] == [
        ("ok", "warn", str(WARN_FREE - 1)),
        ("warn", "critical", str(MIN_FREE - 1)),
        ("critical", "ok", "100000"),
    ]


def test_bad_settings_raise_value_error_naming_the_setting():
    def msg(**kw):
        args = {"heap": HEAP, "warn_free": WARN_FREE, "min_free": MIN_FREE, "check_every": 256, "source": FakeSource()}
        args.update(kw)
        e = ptest.raises(
            ValueError,
            Budget,
            args["heap"],
            args["warn_free"],
            args["min_free"],
            check_every=args["check_every"],
            source=args["source"],
        )
        return str(e)

    assert msg(min_free=WARN_FREE + 1) == "min_free > warn_free"
    assert msg(warn_free=HEAP + 1) == "warn_free > heap"
    assert "heap" in msg(heap=0)
    assert "heap" in msg(heap=-5)
    assert "warn_free" in msg(warn_free=0)
    assert "min_free" in msg(min_free=0)
    assert "min_free" in msg(min_free=-1)
    assert "check_every" in msg(check_every=0)
    assert "check_every" in msg(check_every=-3)
    assert "heap" in msg(heap="big")
    assert "check_every" in msg(check_every=1.5)
    # equal thresholds are allowed
    Budget(HEAP, HEAP, HEAP, check_every=1, source=FakeSource())


def test_tick_allocates_nothing_between_checks():
    b, src = make(check_every=1000000)
    ptest.assert_no_alloc(b.tick, 1000)
    assert src.collects == 0


def test_an_ok_check_with_telemetry_allocates_nothing():
    # check() is periodic, but it still allocates nothing on the unix port:
    # its helpers keep their frames small (docs/budget.md).
    buf = io.BytesIO(bytearray(4096))
    b, src = make(check_every=1, telemetry=Telemetry(buf))

    def one():
        buf.seek(0)
        b.tick()

    ptest.assert_no_alloc(one, 300)


def test_a_check_on_the_real_heap_allocates_nothing():
    if not ptest.MICROPYTHON:
        ptest.skip("gc.mem_free is MicroPython-only")
    b = Budget(HEAP, WARN_FREE, MIN_FREE, check_every=1)
    assert isinstance(b.source, GcSource)
    assert ptest.heap_bytes(b.check, 100) == 0


def test_a_check_under_pressure_with_handlers_allocates_nothing():
    buf = io.BytesIO(bytearray(4096))
    b, src = make(check_every=1, free=MIN_FREE - 1, telemetry=Telemetry(buf))
    hits = [0]

    def h(level, free):
        hits[0] += 1

    b.on_pressure(h)

    def one():
        buf.seek(0)
        b.tick()

    ptest.assert_no_alloc(one, 300)
    assert hits[0] > 0


def test_default_source_measures_this_runtime_heap():
    started = tracemalloc is not None and not tracemalloc.is_tracing()
    try:
        src = default_source(HEAP)
        if ptest.MICROPYTHON:
            assert isinstance(src, GcSource)
        else:
            assert isinstance(src, TracemallocSource)
        src.collect()
        a0, f0 = src.alloc(), src.free()
        keep = bytearray(20000)
        a1, f1 = src.alloc(), src.free()
        assert a1 - a0 >= 20000, (a0, a1)
        assert f0 - f1 >= 20000, (f0, f1)
        assert len(keep) == 20000
        if not ptest.MICROPYTHON:  # free is the configured heap minus traced bytes
            assert abs(src.free() + src.alloc() - HEAP) < 4096
    finally:
        if started:
            tracemalloc.stop()


def test_gc_source_needs_gc_mem_free():
    if ptest.MICROPYTHON:
        src = GcSource()
        assert src.free() > 0 and src.alloc() > 0
    else:
        ptest.raises(RuntimeError, GcSource)


def test_tracemalloc_source_is_cpython_only():
    if ptest.MICROPYTHON:
        ptest.raises(ImportError, TracemallocSource, HEAP)
        return
    started = not tracemalloc.is_tracing()
    try:
        src = TracemallocSource(1000)
        assert tracemalloc.is_tracing()
        ptest.raises(ValueError, TracemallocSource, 0)
        src.collect()
        assert abs(src.free() + src.alloc() - 1000) < 4096
    finally:
        if started:
            tracemalloc.stop()


def test_module_exports():
    for name in ("Budget", "GcSource", "TracemallocSource", "default_source", "OK", "WARN", "CRITICAL"):
        assert hasattr(budget, name), name
