# 0 B per chunk at every board profile's shipped defaults (issue 12): the
# firmware's step AND its periodic point (budget check, window summary, store,
# telemetry, flash-log append), on the unix port, for every file in boards/.
import ptest
from lowwater import app, config, startup, window
from lowwater._compat import VIPER
from lowwater.sensor import ReplaySensor, SimSensor
from lowwater.telemetry import Telemetry

MP_HEAP = {}
MP_TIMEOUT = 180


def _tmpdir(tag):
    from lowwater._compat import ticks_us

    return "/tmp/lowwater-%s-%d" % (tag, ticks_us())


def _rmtree(d):
    import os

    try:
        names = os.listdir(d)
    except OSError:
        return  # never created
    for name in names:
        os.remove(d + "/" + name)
    os.rmdir(d)


# One test per profile in boards/, each in its own unix-port process with that
# board's heap (mapped to 64-bit) plus room for the test itself. The firmware is
# the shipped one at the profile's settings: the real Budget (GcSource: its
# periodic check), window summaries into the store, `stat` and `log` records to
# a stream, the flash log (log_* defaults) in a scratch folder. Only the sensor
# is a ReplaySensor (one slice copy per chunk, as DMA would deliver it), so that
# 100,000 chunks take about a second; the sensors' own readinto is proven
# allocation-free in test_sensor.py.
_CHUNKS = 100000
_LOCKED_WINDOWS = 20
_ROTATE_BOUND = 4096  # heap bytes a flash-log rotation may take (measured: see docs/performance.md)


class _Sink:
    """A telemetry stream that keeps nothing (a UART would send the bytes)."""

    def __init__(self):
        self.writes = 0

    def write(self, s):
        self.writes += 1
        return len(s)


def _profiles():
    import os

    return sorted(n[:-5] for n in os.listdir("boards") if n.endswith(".json"))


def _rotates_next(log):
    # The next window record would start a new log file (FlashLog internals).
    return log._size + 12 + window.RECORD > log._room


def _zero_alloc_at_defaults(name):
    p = config.load("boards/%s.json" % name)
    d = _tmpdir("zero-" + name)
    fw = None
    try:
        sink = _Sink()
        sensor = ReplaySensor(SimSensor(1, p["sensor"]["width"]), p["chunk_size"])
        fw = app.Firmware(p, sensor=sensor, telemetry=Telemetry(sink))
        log = startup.open_log(fw, d)  # imported above: on CPython not traced as the firmware's
        assert log is not None and fw.log is log
        every = p["check_every"]
        step = fw.step
        fw.run(2 * every)  # warm-up: every path once (interned names, the store)
        if not ptest.MICROPYTHON or VIPER is None:
            # CPython (tracemalloc sees the whole process: the levels differ) and
            # ports without viper (the plain twins allocate their frames): the
            # same run, functionally, and shorter.
            fw.run(20 * every)
            assert fw.windows == 22 and log.seq == 22, (fw.windows, log.seq)
            # chunks still in the ring are neither processed nor dropped yet (the
            # end record reports them as left=)
            left = len(fw.ring)
            assert fw.produced == fw.processed + fw.dropped + left, (fw.produced, fw.processed, fw.dropped, left)
            return
        from micropython import heap_lock, heap_unlock, mem_total

        windows = (_CHUNKS + every - 1) // every
        rotations = 0
        most = 0
        for _ in range(windows):
            f = log._idx
            t = mem_total()
            for _ in range(every):
                step()
            t = mem_total() - t
            if log._idx != f:
                rotations += 1
                most = max(most, t)
                assert t <= _ROTATE_BOUND, "%s: a log rotation took %d B" % (name, t)
            else:
                assert t == 0, "%s: %d heap bytes in window %d" % (name, t, fw.windows)
        # >= 20 windows under heap_lock (a window that would rotate the log runs unlocked)
        locked = 0
        more = 0
        while locked < _LOCKED_WINDOWS:
            more += 1
            rot = _rotates_next(log)
            if not rot:
                heap_lock()
            try:
                for _ in range(every):
                    step()
            finally:
                heap_unlock()
            if not rot:
                locked += 1
        n = (2 + windows + more) * every
        assert fw.produced == fw.processed == n and fw.windows == n // every, (fw.produced, fw.processed)
        assert fw.budget.level == "ok" and fw.errors == 0 and fw.log_errors == 0
        assert fw.budget.checks >= windows // fw.budget.walk_every
        assert len(fw.store) == max(1, p["store_items"]) and log.seq == fw.windows
        assert sink.writes > 0
        print(
            "%s: %d chunks, %d windows, %d rotations (most %d B), %d windows locked"
            % (name, fw.produced, fw.windows, rotations, most, locked)
        )
    finally:
        if fw.log is not None:
            fw.log.close()
        _rmtree(d)


def _heap_of(name):
    # The board's heap on the 64-bit unix port, plus 64 KiB for the test module
    # and flashlog.py compiled from source (a board runs them as .mpy).
    p = config.load("boards/%s.json" % name)
    return config.scaled(p, 64)[0] + 65536


for _name in _profiles():
    # test_zero_alloc_at_defaults_<board>: one per profile (a new board is tested
    # when its file appears in boards/).
    def _t(_n=_name):
        _zero_alloc_at_defaults(_n)

    globals()["test_zero_alloc_at_defaults_" + _name] = _t
    MP_HEAP["test_zero_alloc_at_defaults_" + _name] = _heap_of(_name)
