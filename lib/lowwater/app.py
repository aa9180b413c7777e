# lowwater.app: the firmware loop. sensor -> ChunkRing -> per-chunk stats ->
# telemetry, under a Budget that collects at controlled points and sheds load.
#
# Allocation: __init__ allocates everything; step() (one chunk) allocates
# nothing on ports with viper (host_tests/portable/test_app.py proves it with
# heap_lock and mem_total); the periodic check (every check_every chunks)
# allocates a little (telemetry, a window summary) and is not the hot path.
#
# Reliability (docs/reliability.md): run() survives every failing chunk
# (OSError from a sensor, MemoryError anywhere, any other exception), counted;
# a MemoryError forces a budget check so shedding starts at once. With a
# FlashLog (use_log), each window summary is appended to the flash log and the
# log is flushed every `every` windows; the `log` record follows each flush
# (docs/telemetry.md), so a host knows which records are durable.
import gc

from lowwater import __version__
from lowwater._compat import const, ticks_diff, ticks_us
from lowwater.budget import CRITICAL, OK, Budget
from lowwater.config import load, scaled, validate
from lowwater.pool import BlockPool
from lowwater.process import ChunkStats, _smooth
from lowwater.ring import ChunkRing
from lowwater.store import WeakStore
from lowwater.telemetry import Telemetry

_DEFAULT_PROFILE = "board.json"
# Relative: beside board.json in the working directory, so "/log" on a board
# (cwd is /) and never a path of the host on the unix port.
_DEFAULT_LOG = "log"

# Window record of the flash log (docs/reliability.md), little-endian:
#   0 u8 "W"  1 u8 version  2 u16 tag(seq)  4 u32 seq  8 u32 chunks produced
#   12 u32 processed  16 u32 dropped  20 u32 errors  24 u16 min  26 u16 max  28 u16 mean
WINDOW_RECORD = const(30)
_REC = const(30)
_W = const(0x57)


def window_tag(seq):
    """The 16-bit check value of a window record: derived from its seq alone, so a
    reader can tell a record from another one's payload. Small ints on any board."""
    return ((seq & 0x3FFF) * 40503 + 0x1234) & 0xFFFF


def _put(b, off, v, n):
    # The low n bytes of v (negative: 0), little-endian, into b at off.
    if v < 0:
        v = 0
    i = 0
    while i < n:
        b[off + i] = v & 0xFF
        v >>= 8
        i += 1


def log_options(p):
    """(every, file_bytes, files) of the optional profile keys log_every (windows
    per flush, 0 = no log; default 4), log_file_bytes (16384), log_files (4)."""
    out = []
    for key, default, low in (("log_every", 4, 0), ("log_file_bytes", 16384, 64), ("log_files", 4, 2)):
        v = p.get(key, default)
        if type(v) is not int or v < low:
            raise ValueError("board profile: %s must be an int >= %d" % (key, low))
        out.append(v)
    return out


class Firmware:
    """One board's acquisition pipeline, built from a validated profile.

    fw = Firmware(profile, sensor=SimSensor(1)); fw.run(1000); fw.finish()"""

    def __init__(self, profile, sensor=None, telemetry=None, source=None, word_bits=None):
        p = validate(profile)
        self.profile = p
        heap, warn, low = scaled(p, word_bits)
        self.heap = heap
        self.tele = telemetry if telemetry is not None else Telemetry()
        if sensor is None:
            from lowwater.sensor import from_profile

            sensor = from_profile(p["sensor"])
        self.sensor = sensor
        self.ring = ChunkRing(p["chunk_size"], p["chunk_count"], overwrite=True)
        self.stats = ChunkStats(p["sensor"]["width"])
        self._width = p["sensor"]["width"]
        # Processing buffers: the filtered copy of a chunk lives in a pool
        # block, never in a fresh bytearray (no fragmentation, no allocation).
        self.pool = BlockPool(p["chunk_size"], max(1, p["pool_blocks"]))
        self.pool_misses = 0
        # Recent window summaries, reclaimable under pressure (no weakref on boards).
        self.store = WeakStore(max_items=max(1, p["store_items"]))
        self.windows = 0
        self.budget = Budget(heap, warn, low, check_every=p["check_every"], source=source, telemetry=self.tele)
        # Handlers run in order: the store is shed first, then chunks are dropped.
        self.budget.on_pressure(self._shed_store)
        self.budget.on_pressure(self._pressure)
        self.produced = 0
        self.processed = 0
        self.errors = 0
        self.mem_errors = 0  # of errors: MemoryError (injected or real)
        self.log = None  # a FlashLog, see use_log()
        self.log_errors = 0
        self._log_every = 0
        self._log_n = 0  # records appended since the last flush
        self._rec = bytearray(_REC)
        self.shedding = False
        self._skip = False  # alternates while shedding: process every other chunk
        self._check_every = p["check_every"]
        self._n = 0  # chunks since the last window; in step with budget.tick()
        self.warn_free = warn
        self.min_free = low
        self._wdt = None

    def use_watchdog(self, wdt):
        """Feed this machine.WDT-like object once per chunk."""
        self._wdt = wdt

    def use_log(self, log, every=4):
        """Append each window summary to `log` (a FlashLog); flush every `every`
        windows and report the durable seq with a `log` record."""
        if every < 1:
            raise ValueError("every must be >= 1")
        self.log = log
        self._log_every = every
        self._log_n = 0

    def _shed_store(self, level, free):
        before = self.store.shed_bytes
        n = len(self.store)
        self.store.on_pressure(level, free)
        if len(self.store) < n:
            self.tele.shed("store", self.store.shed_bytes - before, n - len(self.store))

    def _pressure(self, level, free):
        # Budget handler: critical -> drop chunks (counted); warn -> only report.
        if level == CRITICAL and not self.shedding:
            self.shedding = True
            self.tele.shed("chunks", 0, 0)

    @property
    def dropped(self):
        return self.ring.dropped

    def step(self):
        """Acquire one chunk and, unless shedding, process the oldest one.

        A sensor fault (OSError, as an I2C NACK) propagates to run(), which
        counts it; the claimed slot is simply claimed again next time. No try
        block here: it would push this frame past the VM's on-stack limit and
        heap-allocate it on every chunk (shared/notes/perf.md)."""
        if self._wdt is not None:
            self._wdt.feed()
        r = self.ring
        r.commit(self.sensor.readinto(r.claim()))
        self.produced += 1
        if self._skip:
            self._skip = False
        else:
            self._skip = self.shedding
            self._consume()
        self.budget.tick()
        self._n += 1
        if self._n == self._check_every:
            self._n = 0
            self._window()

    def _consume(self):
        r = self.ring
        if len(r):
            blk = self.pool.try_alloc()
            if blk is None:  # no processing buffer: use the raw chunk
                self.pool_misses += 1
                self.stats.update(r.oldest(), r.oldest_len())
            else:
                self.stats.update(blk, _smooth(r.oldest(), r.oldest_len(), self._width, blk))
                self.pool.free(blk)
            r.release()
            self.processed += 1

    def _window(self):
        # Runs right after the budget's periodic check: report the window.
        if self.shedding and self.budget.level != CRITICAL:
            self.shedding = False
        lo, hi, mean = self.stats.window()
        self.windows += 1
        # A reclaimable summary of the window (the periodic point may
        # allocate); none while under pressure, when the store is being shed.
        if self.budget.level == OK:
            self._keep(lo, hi, mean)
        self.tele.stat(self.produced, self.processed, self.dropped, self.errors, lo, hi, mean)
        if self.log is not None:
            self._log_window(lo, hi, mean)

    def _keep(self, lo, hi, mean):
        try:
            self.store[self.windows] = (self.produced, lo, hi, mean)
        except MemoryError:
            # The store is a cache: losing a summary is fine; make room now.
            self.errors += 1
            self.mem_errors += 1
            self.tele.err("store", "MemoryError")
            self.store.on_pressure(CRITICAL, 0)

    def _log_window(self, lo, hi, mean):
        # Periodic point, not the hot path. append() allocates nothing unless it
        # rotates; flush() is file I/O. A failing log never stops the loop.
        b = self._rec
        s = self.log.seq + 1  # the seq append() will give this record
        b[0] = _W
        b[1] = 1
        _put(b, 2, window_tag(s), 2)
        _put(b, 4, s, 4)
        _put(b, 8, self.produced, 4)
        _put(b, 12, self.processed, 4)
        _put(b, 16, self.dropped, 4)
        _put(b, 20, self.errors, 4)
        _put(b, 24, lo, 2)
        _put(b, 26, hi, 2)
        _put(b, 28, mean, 2)
        try:
            self.log.append(b)
            self._log_n += 1
            if self._log_n >= self._log_every:
                self.flush_log()
        except OSError as e:  # flash full or failing: count, report, go on
            self.log_errors += 1
            self.tele.err("log", type(e).__name__)

    def flush_log(self):
        """Make every window appended so far durable; then the `log` record says so."""
        if self.log is not None and self._log_n:
            self.log.flush()
            self._log_n = 0
            self.tele.record("log", "seq", self.log.seq, "durable", 1)

    def drain(self):
        """Process what is still in the ring (end of a bounded run)."""
        while len(self.ring):
            self._consume()

    def run(self, chunks=0):
        """Run `chunks` chunks (0: forever). A failing chunk is reported, not fatal."""
        n = 0
        while chunks == 0 or n < chunks:
            try:
                self.step()
            except OSError:
                # A sensor fault (an I2C NACK): count it, the loop goes on.
                self.errors += 1
                self.tele.err("sensor", "OSError")
            except MemoryError:
                self._out_of_memory()
            except Exception as e:  # keep running on a bad chunk
                self.errors += 1
                self.tele.err("step", type(e).__name__)
            n += 1
        return n

    def _out_of_memory(self):
        # Count it, collect, check the budget now (not at the next periodic
        # check), and shed: a failed allocation is pressure whatever the check
        # measures (or fails to report, when telemetry itself cannot allocate).
        # The next periodic check ends the shedding if memory is fine again.
        self.errors += 1
        self.mem_errors += 1
        gc.collect()
        try:
            self.tele.err("step", "MemoryError")
        except MemoryError:
            pass
        try:
            self.budget.check()
        except MemoryError:
            gc.collect()
        if not self.shedding:
            try:
                self._shed_store(CRITICAL, 0)
                self._pressure(CRITICAL, 0)
            except MemoryError:
                self.shedding = True

    def boot(self):
        p = self.profile
        self.tele.boot(
            p["name"], self.heap, self.warn_free, self.min_free, p["chunk_size"], p["chunk_count"], __version__
        )

    def finish(self):
        """Drain the ring, flush the log, write the `end` record; return the budget's
        report plus the accounting: chunks (produced) = processed + dropped."""
        self.drain()
        if self.log is not None:
            try:
                self.flush_log()
            except OSError as e:
                self.log_errors += 1
                self.tele.err("log", type(e).__name__)
        b = self.budget
        self.budget.check()
        rep = b.report()
        self.tele.end(
            self.produced,
            self.processed,
            self.dropped,
            self.errors,
            rep["low_water"],
            rep["gc_max_us"],
            rep["gc_mean_us"],
            rep["checks"],
            rep["warn"],
            rep["critical"],
        )
        rep["chunks"] = self.produced
        rep["processed"] = self.processed
        rep["dropped"] = self.dropped
        rep["errors"] = self.errors
        rep["mem_errors"] = self.mem_errors
        rep["log_errors"] = self.log_errors
        return rep


def _getenv(name):
    try:
        from os import getenv
    except ImportError:
        return None
    return getenv(name)


# (word in the `reset` record, machine constant)
_CAUSES = (
    ("power", "PWRON_RESET"),
    ("hard", "HARD_RESET"),
    ("wdt", "WDT_RESET"),
    ("deepsleep", "DEEPSLEEP_RESET"),
    ("soft", "SOFT_RESET"),
)


def _reset_cause(machine):
    # machine.reset_cause() as a word, where the port has it (None elsewhere).
    try:
        c = machine.reset_cause()
    except AttributeError:
        return None
    for word, name in _CAUSES:
        if getattr(machine, name, None) == c:
            return word
    return "other"


def open_log(fw, path):
    """Open (and recover) the FlashLog at `path` for fw, per the profile's log_*
    keys; the `logopen` record reports the recovered seq and how long it took.
    Returns the log, or None when the flash cannot hold one (reported as `err`)."""
    every, file_bytes, files = log_options(fw.profile)
    if not every or not path:
        return None
    t0 = ticks_us()
    try:
        # Imported here, after the firmware's buffers: they need contiguous
        # blocks, compiling flashlog.py on the board only transient ones.
        from lowwater.flashlog import FlashLog

        log = FlashLog(path, max_file_bytes=file_bytes, max_files=files)
    except (OSError, MemoryError) as e:  # the loop runs on without a log
        fw.log_errors += 1
        fw.tele.err("log", type(e).__name__)
        return None
    us = ticks_diff(ticks_us(), t0)
    fw.use_log(log, every)
    fw.tele.record("logopen", "seq", log.seq, "us", us, "torn", log.recovered_truncated_bytes)
    return log


def main(profile_path=None, chunks=None, sensor=None, log_path=None):
    """Entry point of firmware/main.py.

    On a board: /board.json is the profile, the flash log is /log, the loop runs
    until reset and a machine.WDT (profile wdt_ms) is fed per chunk. On the unix
    port LOWWATER_BOARD (profile path), LOWWATER_CHUNKS (0 = forever) and
    LOWWATER_LOG (log folder; no log without it) choose the run. `sensor`
    replaces the profile's sensor (tests, fault injection).

    A bad profile prints `lowwater: board profile: <field> ...` and stops: on a
    board main() returns (a SystemExit would soft-reset the board into the same
    error, forever); on the unix port it exits with status 2."""
    env_board = _getenv("LOWWATER_BOARD")
    on_board = profile_path is None and env_board is None
    path = profile_path or env_board or _DEFAULT_PROFILE
    if chunks is None:
        chunks = int(_getenv("LOWWATER_CHUNKS") or 0)
    if log_path is None:
        log_path = _getenv("LOWWATER_LOG") or (_DEFAULT_LOG if on_board else None)
    try:
        profile = load(path)
        log_options(profile)
    except ValueError as e:
        # A bad profile fails at start with a message naming the field.
        print("lowwater:", e)
        if on_board:
            return None
        raise SystemExit(2)
    if sensor is None:
        from lowwater import sensor as _sensor

        try:
            sensor = _sensor.from_profile(profile["sensor"])
        except ImportError:
            # No machine.ADC (the plain unix port): simulate the same channel.
            s = profile["sensor"]
            sensor = _sensor.SimSensor(s["seed"], s["width"], s["rate_hz"])
            print("lowwater: no machine.ADC here, simulating the", s["kind"], "sensor")
    tele = pub = None
    if "mqtt" in profile:  # opt-in: publish the records to a broker too (docs/fleet.md)
        from lowwater import mqtt

        tele, pub = mqtt.telemetry(profile, __version__)
    fw = Firmware(profile, sensor, telemetry=tele)
    fw.boot()
    try:
        import machine
    except ImportError:
        machine = None  # CPython
    if machine is not None:
        cause = _reset_cause(machine)
        if cause is not None:
            fw.tele.record("reset", "cause", cause)
        try:
            fw.use_watchdog(machine.WDT(timeout=profile["wdt_ms"]))
        except AttributeError:
            pass  # the plain unix port's machine module has no WDT
    open_log(fw, log_path)
    try:
        fw.run(chunks)
    except KeyboardInterrupt:
        pass
    fw.finish()
    if pub is not None:
        pub.close()  # retained `done`, DISCONNECT
    return fw
