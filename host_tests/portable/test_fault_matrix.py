# The fault matrix (issue 13): every injection point of the firmware x
# (OSError, MemoryError, another exception) x (once, every 3rd call, always),
# on every runtime. For each of the 9 cases of a point: run() keeps running
# (it returns the chunks asked for and raises nothing), finish() raises nothing
# and writes exactly one `end` record, and the accounting is exact:
# produced = processed + dropped + left (chunks a failing drain could not take
# from the ring, reported as `left`), in the firmware, the report and the
# `end` record alike. One test function per point: a MicroPython item is one
# process, the 9 cases run in it one after the other.
import gc

import faults
import ptest
from lowwater import app, config
from lowwater.sensor import SimSensor
from lowwater.telemetry import Telemetry

# 192 KiB on MicroPython, as test_app.py: compiling this module and lowwater's
# sources beside it leaves the board-shaped heap too fragmented for the
# firmware's contiguous blocks (a board imports .mpy). These tests are about
# the handlers, not the heap (test_faults.py has the hog on the real heap).
MP_HEAP = {}
CHUNKS = 48
EXCS = ((OSError, 5), (MemoryError, None), (ValueError, "injected"))
WHEN = (("once", 1, 1), ("every3", 3, -1), ("always", 1, -1))  # (name, every, times)


class Lines:
    """A stream keeping only the `end` records and a count of lines (bounded)."""

    def __init__(self):
        self.cur = []
        self.ends = []
        self.lines = 0

    def write(self, s):
        if type(s) is not str:
            s = str(bytes(s), "ascii")
        if s != "\n":
            if not self.cur or self.cur[0].startswith("LW1 end"):
                self.cur.append(s)
            return
        line = "".join(self.cur)
        self.cur = []
        self.lines += 1
        if line.startswith("LW1 end"):
            self.ends.append(line)


def _field(line, key):
    for item in line.split(" "):
        if item.startswith(key + "="):
            return int(item[len(key) + 1 :])
    return 0  # `left` is written only when not 0


def _profile():
    p = config.load("boards/unix.json")
    p["chunk_size"] = 64
    p["chunk_count"] = 8
    p["store_items"] = 4
    p["check_every"] = 8
    return p


def _tmpdir():
    import os

    d = (os.getenv("TMPDIR") or "/tmp") + "/lw_fm_" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def _rmtree(d):
    import os

    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def _firmware(log_dir=None):
    out = Lines()
    fw = app.Firmware(_profile(), sensor=SimSensor(1), telemetry=Telemetry(out), source=ptest.FakeMemory(10**6))
    if log_dir is not None:
        from lowwater.flashlog import FlashLog

        fw.use_log(FlashLog(log_dir, max_file_bytes=512, max_files=3), 2)
    return fw, out


def _inject(fw, point, fault):
    # Where each point is reached in the current firmware (lowwater.app).
    if point == "sensor":
        faults.inject(fw, "_read", fault)  # step() reads through fw._read
    elif point == "ring":
        # step()'s straight read into an idle ring calls no ring method: the
        # ring's general path, where they are called (ptest.GeneralRing)
        ptest.ring_faults(fw, fault, faults.inject)
    elif point == "stats" and hasattr(fw, "_stats"):
        faults.inject(fw, "_stats", fault)  # bound at init (else app._stats: _case)
    elif point == "store":
        fw.store = faults.Faulty(fw.store, fault, ("__setitem__", "pop"))
    elif point == "budget":
        faults.inject(fw.budget.source, "free", fault)
    elif point == "telemetry":
        faults.inject(fw.tele, "window", fault)
        faults.inject(fw.tele, "err", fault)  # the handlers' own record
        faults.inject(fw.tele, "log", fault)
    elif point == "log":
        faults.inject(fw.log, "append", fault)
        faults.inject(fw.log, "flush", fault)
    elif point == "drain":
        faults.inject(fw, "_consume", fault)
        fw.shedding = True  # leave chunks in the ring for the drain
    elif point == "finish":
        faults.inject(fw.budget, "report", fault)
        faults.inject(fw.budget, "check", fault)


def _case(point, exc, arg, every, times):
    d = _tmpdir() if point == "log" else None
    try:
        fw, out = _firmware(d)
        fault = faults.Fault(exc, arg, every=every, times=times)
        # step() calls the smoothing filter (and, in some versions, the
        # statistics) as module globals of lowwater.app: patched there.
        name = {"smoothing": "_smooth", "stats": "_stats"}.get(point)
        if name and (point == "smoothing" or not hasattr(fw, "_stats")):
            saved = getattr(app, name)

            def wrapped(*args):
                fault.check()
                return saved(*args)

            setattr(app, name, wrapped)
        else:
            name = None
        try:
            _inject(fw, point, fault)
            assert fw.run(CHUNKS) == CHUNKS
            rep = fw.finish()
        finally:
            if name:
                setattr(app, name, saved)
        if fw.log is not None:
            fw.log.close()
    finally:
        if d is not None:
            _rmtree(d)
    what = (point, exc.__name__, every, times)
    assert fault.fired > 0, what
    left = len(fw.ring)
    assert fw.produced == fw.processed + fw.dropped + left, (what, fw.produced, fw.processed, fw.dropped, left)
    assert len(out.ends) == 1, (what, out.ends)
    end = out.ends[0]
    assert _field(end, "chunks") == fw.produced, (what, end)
    assert _field(end, "processed") == fw.processed and _field(end, "dropped") == fw.dropped, (what, end)
    assert _field(end, "left") == left and _field(end, "errors") == fw.errors, (what, end)
    if rep is not None:  # None only when the heap cannot hold the report dict
        assert rep["chunks"] == fw.produced and rep["left"] == left, (what, rep)
        assert rep["chunks"] == rep["processed"] + rep["dropped"] + rep["left"], (what, rep)
    if point == "sensor":
        assert fw.produced == CHUNKS - fault.fired, what  # a failed read produces nothing
    elif point not in ("ring", "drain", "finish"):
        assert fw.produced == CHUNKS, what
    return fw.errors + fw.log_errors + fw.tele_errors


def _matrix(point):
    n = 0
    for exc, arg in EXCS:
        for _, every, times in WHEN:
            counted = _case(point, exc, arg, every, times)
            assert counted > 0, (point, exc.__name__, every, times)  # every fault is counted somewhere
            n += 1
            gc.collect()  # one firmware at a time in the board-shaped heap
    assert n == 9


def test_faults_at_the_sensor():
    _matrix("sensor")


def test_faults_in_the_ring():
    _matrix("ring")


def test_faults_in_the_statistics():
    _matrix("stats")


def test_faults_in_the_smoothing_filter():
    _matrix("smoothing")


def test_faults_in_the_store():
    _matrix("store")


def test_faults_in_the_budget_check():
    _matrix("budget")


def test_faults_in_telemetry_writes():
    _matrix("telemetry")


def test_faults_in_log_append_and_flush():
    _matrix("log")


def test_faults_in_the_drain():
    _matrix("drain")


def test_faults_in_finish():
    _matrix("finish")


def test_a_pool_fault_fails_only_the_construction():
    # The firmware takes its processing block from the pool once, in
    # Firmware(): no pool call is left in the loop. A pool that cannot give it
    # fails the construction with the MemoryError, before any watchdog is armed.
    from lowwater import pool

    saved = pool.BlockPool.alloc

    def alloc(self):
        raise MemoryError

    pool.BlockPool.alloc = alloc
    try:
        ptest.raises(MemoryError, _firmware)
    finally:
        pool.BlockPool.alloc = saved
    fw, out = _firmware()
    assert fw.run(16) == 16 and fw.finish()["chunks"] == 16


# And 16 KB held while the module compiles, freed for the firmware's buffers
# (MP_PAD, as test_app.py): without it the 4 KB ring fitted or not with the
# module's layout (MemoryError in ChunkRing.__init__ after a ptest.py edit).
MP_PAD = {}
for _n in list(globals()):
    if _n.startswith("test_"):
        MP_HEAP[_n] = 196608
        MP_PAD[_n] = 16384
