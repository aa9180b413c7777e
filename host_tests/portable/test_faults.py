# Fault injection on both runtimes: failing sensors, MemoryError at the
# pipeline's allocation points, a real memory hog. The firmware keeps running,
# sheds load (store first, then chunks), recovers, and its accounting holds:
# chunks produced = processed + dropped, in the `end` record and the report.
import gc

import ptest
from lowwater import app, config
from lowwater.budget import CRITICAL, OK, WARN
from lowwater.sensor import SimSensor
from lowwater.telemetry import Telemetry

import faults  # host_tests/portable/faults.py (test-only, not in any board package)


# The telemetry stream: the rare records kept, `err` records counted by where
# and exc, the rest only counted (ptest.Sink: a StringIO's one growing buffer
# skews the tight board-shaped heap under test).
Sink = ptest.Sink

FakeSource = ptest.FakeMemory

# 192 KiB on MicroPython for every test here, as test_app.py: compiling this
# module and lowwater's sources beside it leaves the board-shaped heap too
# fragmented for the ring's contiguous block (a board imports .mpy). The hog
# tests fill the heap down to the profile's thresholds whatever its size.
MP_HEAP = {}


def _profile(**over):
    p = config.load("boards/unix.json")
    for k in over:
        p[k] = over[k]
    return p


def _firmware(sensor=None, source=None, **over):
    sink = Sink()
    fw = app.Firmware(_profile(**over), sensor=sensor or SimSensor(1), telemetry=Telemetry(sink), source=source)
    return fw, sink


_field = ptest.field


def _accounting_holds(fw, sink, rep):
    assert len(fw.ring) == 0, len(fw.ring)  # drained: nothing left
    assert fw.produced == fw.processed + fw.dropped, (fw.produced, fw.processed, fw.dropped)
    assert rep["chunks"] == fw.produced and rep["processed"] == fw.processed
    assert rep["dropped"] == fw.dropped and rep["errors"] == fw.errors
    end = sink.records("end")
    assert len(end) == 1, sink.lines
    assert int(_field(end[0], "chunks")) == int(_field(end[0], "processed")) + int(_field(end[0], "dropped"))
    assert int(_field(end[0], "chunks")) == fw.produced
    assert int(_field(end[0], "errors")) == fw.errors


def test_i2c_nack_is_counted_and_the_loop_goes_on():
    s = faults.NackSensor(SimSensor(1), every=7)
    fw, sink = _firmware(sensor=s, source=FakeSource(10**6), check_every=32)
    assert fw.run(700) == 700
    rep = fw.finish()
    assert s.fault.fired == 100 and fw.errors == 100 and fw.mem_errors == 0
    assert fw.produced == 600
    assert sink.errs == {"sensor:OSError": 100}, sink.errs
    _accounting_holds(fw, sink, rep)


def test_short_reads_are_short_chunks_not_errors():
    s = faults.ShortSensor(SimSensor(2), every=3)
    fw, sink = _firmware(sensor=s, source=FakeSource(10**6), check_every=32)
    fw.run(300)
    rep = fw.finish()
    assert s.shorts == 100
    assert fw.errors == 0 and fw.produced == 300 and fw.processed == 300
    # The window statistics stay within the sensor's range.
    for line in sink.records("end"):
        assert _field(line, "errors") == "0"
    _accounting_holds(fw, sink, rep)
    # stats.window() closes the open window (and so moves its chunks out of
    # fw.processed): after the accounting check.
    lo, hi, mean = fw.stats.window()
    assert 0 <= lo <= mean <= hi <= 0xFFFF or fw.stats.chunks == 0


def test_garbage_and_impossible_counts_are_counted():
    s = faults.GarbageSensor(seed=5, bad_every=5)
    fw, sink = _firmware(sensor=s, source=FakeSource(10**6), check_every=16)
    assert fw.run(300) == 300
    rep = fw.finish()
    assert s.bad == 60
    # -1, len+1 and None (a driver with no data) are refused by ChunkRing.fill
    # (ValueError, or TypeError for None) and counted; nothing is produced.
    assert fw.errors == 60
    assert fw.produced == 240
    assert sum(sink.errs.values()) == 60 and sink.errs.get("step:ValueError") == 40, sink.errs
    _accounting_holds(fw, sink, rep)


_SAVED = {}


def _inject_stats(fw, fault):
    # The statistics: fw._stats (bound at init) or, in versions whose step()
    # calls it as a module global, app._stats; _restore_stats() undoes that.
    if hasattr(fw, "_stats"):
        faults.inject(fw, "_stats", fault)
        return
    orig = _SAVED.setdefault("_stats", app._stats)

    def stats(*args):
        fault.check()
        return orig(*args)

    app._stats = stats


def _restore_stats():
    if "_stats" in _SAVED:
        app._stats = _SAVED.pop("_stats")


def _inject(fw, where, fault):
    # Where the current firmware calls each (lowwater.app: step() reads through
    # fw._read and computes through fw._stats, bound at init; the pool block is
    # taken once at init, see test_fault_matrix.py).
    if where == "sensor":
        faults.inject(fw, "_read", fault)
    elif where == "processing":
        _inject_stats(fw, fault)
    elif where == "ring":
        # the ring's calls are on its general path only (ptest.GeneralRing)
        ptest.ring_faults(fw, fault, faults.inject)
    elif where == "telemetry":
        faults.inject(fw.tele, "window", fault)
    elif where == "budget":
        faults.inject(fw.budget.source, "free", fault)
    elif where == "store":
        fw.store = faults.Faulty(fw.store, fault, ("__setitem__",))


def test_memory_error_at_every_allocation_point_is_survived():
    for where in ("sensor", "processing", "ring", "telemetry", "budget", "store"):
        fw, sink = _firmware(source=FakeSource(10**6), check_every=8, store_items=64)
        fault = faults.Fault(MemoryError, every=5)
        _inject(fw, where, fault)
        try:
            assert fw.run(240) == 240, where
            fault.enabled = False  # the pressure ends
            fw.run(64)
            rep = fw.finish()
        finally:
            _restore_stats()
        assert fault.fired > 0, where
        assert fw.mem_errors == fault.fired, (where, fw.mem_errors, fault.fired)
        assert fw.errors == fault.fired, where
        assert sink.err_count("MemoryError") == fault.fired, (where, sink.errs)
        _accounting_holds(fw, sink, rep)
        if where == "sensor":
            assert fw.produced == 304 - fault.fired  # a failed read produces nothing
        elif where == "ring":  # a fault in cycle/fill produces nothing, one in take loses a chunk
            assert 304 - fault.fired <= fw.produced <= 304, (where, fw.produced, fault.fired)
        else:
            assert fw.produced == 304, where
        fw = sink = fault = rep = None
        gc.collect()  # one firmware at a time in the board-shaped heap


def test_memory_error_forces_a_budget_check_and_sheds_at_once():
    src = FakeSource(10**6)
    fw, sink = _firmware(source=src, check_every=10**6)  # no periodic check at all
    fw.run(10)
    assert fw.budget.checks == 0
    src.free_bytes = 1  # memory is gone; the next failing allocation finds out
    _inject_stats(fw, faults.Fault(MemoryError, after=5, times=1))
    try:
        fw.run(20)
    finally:
        _restore_stats()
    assert fw.budget.checks == 1 and fw.budget.level == CRITICAL and fw.shedding
    assert sink.records("shed")


_HOG_BUDGET = {"warn_free": 24576, "min_free": 12288}


def _stop_tracemalloc():
    # CPython: TracemallocSource measures from when tracing starts; start afresh
    # so allocations of earlier tests do not count against this heap.
    if not ptest.MICROPYTHON:
        import tracemalloc

        tracemalloc.stop()


def test_memory_hog_drives_warn_then_critical_and_the_firmware_recovers():
    _stop_tracemalloc()
    gc.collect()
    # The real source (GcSource on MicroPython) under the board-shaped heap; the
    # thresholds are lowered because the test harness's own code takes ~15 KB.
    fw, sink = _firmware(check_every=16, store_items=16, **_HOG_BUDGET)
    try:
        hog = faults.MemoryHog(fw.budget.source)
        fw.boot()
        fw.run(64)
        assert fw.budget.level == OK, (fw.budget.free, fw.warn_free)
        kept = len(fw.store)
        assert kept == 4 and fw.dropped == 0
        # Warn: the store is shed (a quarter of its bytes per check), every
        # chunk is still processed.
        free = hog.fill((fw.warn_free + fw.min_free) // 2)
        assert fw.min_free < free < fw.warn_free, (free, fw.min_free, fw.warn_free)
        fw.run(32)
        assert fw.budget.level == WARN
        assert len(fw.store) < kept and fw.dropped == 0 and not fw.shedding
        assert " what=store " in sink.records("shed")[0], sink.lines
        # Critical: chunks are dropped (counted).
        # Just below min_free: the test's Sink allocates for every record and
        # must still find room (a deeper fill is test_finish_while_a_hog...).
        free = hog.fill(fw.min_free - 2048)
        assert free < fw.min_free, (free, fw.min_free)
        fw.run(128)  # the ring (16 chunks) fills at half speed, then drops
        assert fw.budget.level == CRITICAL and fw.shedding, (fw.budget.level, fw.budget.free)
        assert fw.dropped > 0, (fw.dropped, len(fw.ring), fw.processed, fw.produced, sink.lines)
        assert [ln for ln in sink.records("shed") if " what=chunks " in ln], (sink.lines, fw.errors)
        # The pressure ends: back to OK, no more drops.
        hog.release()
        fw.run(32)
        assert fw.budget.level == OK and not fw.shedding
        # The step right after the check that ends the shedding may still skip
        # (and, with the ring full, drop) one chunk; from then on, none.
        fw.run(16)
        dropped = fw.dropped
        fw.run(160)
        assert fw.dropped == dropped, (dropped, fw.dropped, len(fw.ring))
        assert len(fw.store) > 0  # summaries are kept again
        levels = [_field(ln, "to") for ln in sink.records("lvl")]
        assert levels == ["warn", "critical", "ok"], levels
        rep = fw.finish()
        assert fw.errors == 0
        _accounting_holds(fw, sink, rep)
    finally:
        _stop_tracemalloc()


class Quiet:
    """A stream that allocates nothing (as a UART does): counts lines only."""

    def __init__(self):
        self.lines = 0

    def write(self, s):
        if type(s) is str and s == "\n":
            self.lines += 1


def test_exhausted_heap_with_a_quiet_stream_needs_no_memory():
    # Every byte of the heap taken: once the store is shed, a chunk and the
    # periodic check allocate nothing, so the firmware runs on, dropping chunks.
    _stop_tracemalloc()
    gc.collect()
    fw = app.Firmware(
        _profile(check_every=16, store_items=16, **_HOG_BUDGET), sensor=SimSensor(1), telemetry=Telemetry(Quiet())
    )
    try:
        hog = faults.MemoryHog(fw.budget.source, block=256)
        fw.run(32)
        hog.fill(0)  # everything the heap will give
        assert fw.run(400) == 400
        assert fw.mem_errors == 0 and fw.errors == 0
        assert fw.budget.level == CRITICAL and fw.shedding and fw.dropped > 0
        hog.release()
        fw.run(64)
        assert fw.budget.level == OK and not fw.shedding
        rep = fw.finish()
        assert rep["chunks"] == rep["processed"] + rep["dropped"] == fw.produced
    finally:
        _stop_tracemalloc()


def test_exhausted_heap_with_allocating_telemetry_is_survived():
    # Telemetry that allocates (here: the test's Sink) fails with real
    # MemoryErrors when the heap is exhausted; they are counted, the firmware
    # sheds at once and recovers when the memory comes back.
    _stop_tracemalloc()
    gc.collect()
    fw, sink = _firmware(check_every=16, store_items=16, **_HOG_BUDGET)
    try:
        hog = faults.MemoryHog(fw.budget.source, block=256)
        fw.run(32)
        hog.fill(0)
        assert fw.run(400) == 400  # never dies
        if ptest.MICROPYTHON:
            assert fw.mem_errors > 0  # real ones: nothing injected
        assert fw.errors == fw.mem_errors
        assert fw.shedding and fw.dropped > 0
        hog.release()
        fw.run(64)
        assert fw.budget.level == OK and not fw.shedding
        dropped = fw.dropped
        fw.run(64)
        assert fw.dropped == dropped
        rep = fw.finish()
        _accounting_holds(fw, sink, rep)
    finally:
        _stop_tracemalloc()


class EndSeen:
    """A stream that allocates nothing: counts lines and notes an `end` record
    (its constant prefix arrives as one write)."""

    def __init__(self):
        self.lines = 0
        self.ends = 0

    def write(self, s):
        if type(s) is str:
            if s == "\n":
                self.lines += 1
            elif s == "LW1 end t=":
                self.ends += 1


def test_finish_while_a_hog_holds_the_whole_heap():
    # A leak that never ends: finish() must not raise, and the `end` record
    # still goes out (the report dict may not fit: then finish returns None).
    _stop_tracemalloc()
    gc.collect()
    out = EndSeen()
    fw = app.Firmware(
        _profile(check_every=16, store_items=16, **_HOG_BUDGET), sensor=SimSensor(1), telemetry=Telemetry(out)
    )
    try:
        hog = faults.MemoryHog(fw.budget.source, block=256)
        fw.run(40)
        hog.fill(0)
        assert fw.run(64) == 64
        rep = fw.finish()  # raises nothing
        assert out.ends == 1
        assert fw.produced == fw.processed + fw.dropped + len(fw.ring)
        hog.release()
        if rep is not None:
            assert rep["chunks"] == fw.produced
    finally:
        _stop_tracemalloc()


def test_open_log_failing_with_a_failing_handler_is_survived():
    # The reboot loop of issue 13: opening the log raised MemoryError and its
    # handler's `err` record raised MemoryError again, out of main() after the
    # watchdog was armed. Now open_log() returns None and counts both.
    from lowwater import flashlog

    fw, sink = _firmware(source=FakeSource(10**6))
    fault = faults.Fault(MemoryError)
    faults.inject(fw.tele, "err", fault)
    saved = flashlog.FlashLog

    def no_log(*args, **kw):
        raise MemoryError

    flashlog.FlashLog = no_log
    try:
        assert app.open_log(fw, "log-never-made") is None
    finally:
        flashlog.FlashLog = saved
    assert fw.log is None and fw.log_errors == 1 and fw.tele_errors == 1 and fault.fired == 1
    assert fw.run(32) == 32
    faults.restore(fw.tele, "err")
    _accounting_holds(fw, sink, fw.finish())


def test_main_survives_an_error_past_every_handler():
    # Defence in depth: should anything escape run(), main() prints the
    # traceback and an `err where=main` record at once (before a watchdog reset
    # can hit, so a monitor shows why the board resets), then finishes.
    saved = app.Firmware.run

    def broken(self, chunks=0):
        saved(self, 20)
        raise RuntimeError("past every handler")

    app.Firmware.run = broken
    try:
        fw = app.main("boards/unix.json", 20, SimSensor(1), log_path="")
    finally:
        app.Firmware.run = saved
    assert fw.errors == 1 and fw.produced == 20
    assert fw.produced == fw.processed + fw.dropped


# And 16 KB held while the module compiles, freed for the firmware's buffers
# (MP_PAD, as test_app.py): without it the 4 KB ring fitted or not with the
# module's layout (MemoryError in ChunkRing.__init__ after a ptest.py edit).
MP_PAD = {}
for _n in list(globals()):
    if _n.startswith("test_"):
        MP_HEAP[_n] = 196608
        MP_PAD[_n] = 16384
