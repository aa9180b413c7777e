# The firmware loop: zero allocation per chunk, accounting, shedding, faults.
import ptest
from lowwater import app, config, window
from lowwater._compat import VIPER
from lowwater.budget import CRITICAL, OK, WARN
from lowwater.sensor import SimSensor
from lowwater.telemetry import Telemetry


FakeSource = ptest.FakeMemory


class FlakySensor:
    """Raises OSError (as an I2C NACK does) on every `every`-th read."""

    def __init__(self, every):
        self.inner = SimSensor(3)
        self.every = every
        self.reads = 0

    def readinto(self, buf):
        self.reads += 1
        if self.reads % self.every == 0:
            raise OSError(19)
        return self.inner.readinto(buf)


def _profile(**over):
    p = config.load("boards/unix.json")
    for k in over:
        p[k] = over[k]
    return p


# The telemetry stream: the records the tests read, `err` too; stat and mem
# only counted. Not a StringIO: its one buffer grows by reallocation, and on
# the MicroPython items' fragmented heap that growth failed or not with the
# module's layout (a real MemoryError the firmware rightly sheds on; ptest.Sink).
_KEEP = ptest.Sink.KEEP + ("err",)


def _firmware(source=None, sensor=None, **over):
    out = ptest.Sink(_KEEP)
    fw = app.Firmware(
        _profile(**over), sensor=sensor or SimSensor(1), telemetry=Telemetry(out), source=source or FakeSource(10**6)
    )
    return fw, out


def _records(out, kind):
    return out.records(kind)


def test_steady_state_loop_allocates_nothing_per_chunk():
    # sensor -> ring -> processing, between two periodic points (the periodic
    # point too: test_app_defaults.py, every profile at its defaults).
    if VIPER is None:
        ptest.skip("the plain twins' frames go on the heap (no viper emitter)")
    fw, _ = _firmware()
    fw.run(50)
    ptest.assert_no_alloc(fw.step, fw._check_every // 2 - 60, "Firmware.step")
    # Every chunk was processed: the loop measured is the real one, not a no-op.
    assert fw.produced > 100 and fw.produced == fw.processed and fw.dropped == 0


def test_bounded_run_accounts_for_every_chunk():
    fw, out = _firmware(check_every=64)
    fw.boot()
    assert fw.run(1000) == 1000
    rep = fw.finish()
    assert fw.produced == 1000
    assert fw.produced == fw.processed + fw.dropped
    assert rep["checks"] >= 1000 // 64
    end = _records(out, "end")
    assert len(end) == 1 and " chunks=1000 " in end[0] and " processed=1000 " in end[0], end
    assert len(_records(out, "boot")) == 1
    assert out.count("stat") == 1000 // 64


def test_critical_pressure_drops_chunks_and_recovers():
    src = FakeSource(10**6)
    fw, out = _firmware(source=src, check_every=32)
    fw.run(64)
    assert fw.dropped == 0
    assert len(fw.store) == 2  # one summary per window
    src.free_bytes = 1  # below min_free: critical
    fw.run(32 * 10)
    # The pressure is the fake source's only: a real MemoryError (which the
    # firmware counts and sheds on, too) would make the drops below luck.
    assert fw.errors == 0, out.errs
    assert fw.budget.level == CRITICAL
    assert fw.shedding
    assert fw.dropped > 0
    sheds = _records(out, "shed")
    # The store is shed first, then chunks are dropped (once, when shedding starts).
    assert " what=store " in sheds[0], sheds
    assert len([ln for ln in sheds if " what=chunks " in ln]) == 1, sheds
    assert len(fw.store) == 0
    src.free_bytes = 10**6  # pressure ends
    fw.run(64)
    assert fw.budget.level == OK and not fw.shedding
    dropped = fw.dropped
    fw.run(256)
    assert fw.dropped == dropped, (dropped, fw.dropped, out.errs)  # no more drops once recovered
    fw.finish()
    assert fw.produced == fw.processed + fw.dropped
    assert fw.errors == 0, out.errs


def test_warn_level_reports_but_keeps_processing():
    p = _profile()
    # warn_free in this runtime's bytes: the unix profile is 64-bit, so a 32-bit
    # runtime scales it down by the heap factor (config.scaled), as the firmware does.
    src = FakeSource(config.scaled(p)[1] - 1)
    fw, out = _firmware(source=src, check_every=16)
    fw.run(160)
    assert fw.budget.level == WARN
    assert fw.dropped == 0 and not fw.shedding
    assert _records(out, "lvl")


def test_sensor_faults_are_counted_and_the_loop_goes_on():
    fw, out = _firmware(sensor=FlakySensor(10))
    fw.run(100)
    fw.finish()
    assert fw.errors == 10
    assert fw.produced == 90
    assert fw.produced == fw.processed + fw.dropped
    assert len(_records(out, "err")) == 10


def test_memory_error_in_a_chunk_is_reported_not_fatal():
    class Boom:
        def __init__(self):
            self.n = 0
            self.inner = SimSensor(2)

        def readinto(self, buf):
            self.n += 1
            if self.n == 5:
                raise MemoryError
            return self.inner.readinto(buf)

    fw, out = _firmware(sensor=Boom())
    assert fw.run(10) == 10
    assert fw.errors == 1
    assert " exc=MemoryError" in _records(out, "err")[0]


def test_bad_profile_fails_at_start_naming_the_field():
    p = _profile()
    del p["chunk_size"]
    msg = str(ptest.raises(ValueError, app.Firmware, p, SimSensor(1), Telemetry(ptest.Sink())))
    assert "chunk_size" in msg


def test_window_summaries_are_kept_in_a_bounded_store():
    fw, _ = _firmware(check_every=8, store_items=4)
    fw.run(80)
    assert len(fw.store) == 4
    assert sorted(fw.store.keys()) == [7, 8, 9, 10]
    w = fw.store[10]
    assert w[window.PRODUCED] == 80 and w[window.PROCESSED] == 80
    assert w[window.MIN] <= w[window.MEAN] <= w[window.MAX]


def test_warn_pressure_sheds_the_store_before_any_chunk():
    p = _profile()
    src = FakeSource(10**6)
    fw, out = _firmware(source=src, check_every=8)
    fw.run(64)
    assert len(fw.store) == 8
    src.free_bytes = config.scaled(p)[1] - 1  # this runtime's bytes, as above
    fw.run(8)
    assert len(fw.store) < 8 and fw.dropped == 0
    assert " what=store " in _records(out, "shed")[0]


def test_processing_uses_one_pool_block_for_every_chunk():
    fw, _ = _firmware()
    fw.run(100)
    # one block, taken at start and reused: no alloc/free pair per chunk
    assert fw.pool.used == 1 and fw.pool.high_water == 1
    assert fw.pool_misses == 0 and fw.processed == 100
    blocks = [fw.pool.alloc() for _ in range(fw.pool.count - 1)]  # the others stay available
    fw.run(10)
    assert fw.processed == 110
    for b in blocks:
        fw.pool.free(b)


# --- the flash log (issue 6): window summaries, acknowledged after each flush ---

# Compiling flashlog.py from source beside this test module needs ~20 KB of
# transient heap that the board-shaped heap does not reliably have (a board runs
# it as .mpy); these tests are about the log wiring, not the heap.
MP_HEAP = {
    "test_window_summaries_go_to_the_flash_log_and_acks_follow_flushes": 196608,
    "test_a_failing_log_is_counted_and_the_loop_goes_on": 196608,
}


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


def _u(b, off, n):
    v = 0
    for i in range(n):
        v |= b[off + i] << (8 * i)
    return v


def test_window_summaries_go_to_the_flash_log_and_acks_follow_flushes():
    from lowwater.flashlog import FlashLog

    d = _tmpdir("applog")
    try:
        fw, out = _firmware(check_every=8)
        log = FlashLog(d, max_file_bytes=256, max_files=4)
        fw.use_log(log, every=3)
        fw.run(80)  # 10 windows
        fw.finish()  # flushes the 10th
        acks = [int(_field(ln, "seq")) for ln in _records(out, "log")]
        assert acks == [3, 6, 9, 10], acks
        assert all(ln.endswith(" durable=1") for ln in _records(out, "log"))
        recs = list(log.read())
        assert [s for s, _ in recs] == list(range(1, 11))
        for seq, data in recs:
            assert len(data) == app.WINDOW_RECORD and data[0] == 0x57 and data[1] == 1
            assert _u(data, 4, 4) == seq and _u(data, 2, 2) == app.window_tag(seq)
            assert _u(data, 8, 4) == 8 * seq  # chunks produced at that window
        log.close()
        again = FlashLog(d, max_file_bytes=256, max_files=4)
        assert again.seq == 10  # the next start resumes after the last record
        again.close()
    finally:
        _rmtree(d)


def test_a_failing_log_is_counted_and_the_loop_goes_on():
    import faults
    from lowwater.flashlog import FlashLog

    d = _tmpdir("appfail")
    try:
        fw, out = _firmware(check_every=8)
        log = FlashLog(d, max_file_bytes=4096, max_files=2)
        fw.use_log(log, every=1)
        faults.inject(log, "append", faults.Fault(OSError, 28, every=2))  # ENOSPC
        assert fw.run(80) == 80
        rep = fw.finish()
        assert fw.log_errors == 5 and rep["log_errors"] == 5 and fw.errors == 0
        assert len([ln for ln in _records(out, "err") if " where=log " in ln]) == 5
        assert [s for s, _ in log.read()] == [1, 2, 3, 4, 5]
        assert fw.produced == fw.processed == 80
        log.close()
    finally:
        _rmtree(d)


def test_log_options_of_the_profile_are_checked():
    assert app.log_options(_profile()) == [4, 16384, 4]
    assert app.log_options(_profile(log_every=0, log_file_bytes=512, log_files=2)) == [0, 512, 2]
    for key, bad in (("log_every", -1), ("log_every", "2"), ("log_file_bytes", 10), ("log_files", 1)):
        msg = str(ptest.raises(ValueError, app.log_options, _profile(**{key: bad})))
        assert msg.startswith("board profile: " + key), msg


_field = ptest.field


# Every test here gets 192 KiB on MicroPython: compiling this module and
# lowwater's sources (flashlog.py too) leaves the board-shaped heap too
# fragmented for the ring's one contiguous block; a board imports .mpy files.
# And 16 KB held while they compile, freed for the firmware's buffers (MP_PAD,
# the plugin): without it the largest free block a test started with (8 to 13
# KB) moved with this module's layout, and the 4 KB ring did not always fit.
# test_app_defaults.py runs the firmware at each board's own heap.
MP_PAD = {}
for _n in list(globals()):
    if _n.startswith("test_"):
        MP_HEAP.setdefault(_n, 196608)
        MP_PAD[_n] = 16384
