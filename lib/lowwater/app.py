# lowwater.app: the firmware loop. sensor -> ChunkRing -> per-chunk stats ->
# telemetry, under a Budget that collects at controlled points and sheds load.
#
# Allocation: __init__ allocates everything; step() (one chunk) allocates
# nothing on ports with viper (host_tests/portable/test_app.py proves it with
# heap_lock and mem_total); the periodic check (every check_every chunks)
# allocates a little (telemetry, a window summary) and is not the hot path.
import gc

from lowwater import __version__
from lowwater.budget import CRITICAL, OK, Budget
from lowwater.config import load, scaled, validate
from lowwater.pool import BlockPool
from lowwater.process import ChunkStats, _smooth
from lowwater.ring import ChunkRing
from lowwater.store import WeakStore
from lowwater.telemetry import Telemetry

_DEFAULT_PROFILE = "board.json"


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
        self.budget = Budget(heap, warn, low, check_every=p["check_every"], source=source,
                             telemetry=self.tele)
        # Handlers run in order: the store is shed first, then chunks are dropped.
        self.budget.on_pressure(self._shed_store)
        self.budget.on_pressure(self._pressure)
        self.produced = 0
        self.processed = 0
        self.errors = 0
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
            self.store[self.windows] = (self.produced, lo, hi, mean)
        self.tele.stat(self.produced, self.processed, self.dropped, self.errors, lo, hi, mean)

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
                self.errors += 1
                gc.collect()
                self.tele.err("step", "MemoryError")
            except Exception as e:  # keep running on a bad chunk
                self.errors += 1
                self.tele.err("step", type(e).__name__)
            n += 1
        return n

    def boot(self):
        p = self.profile
        self.tele.boot(p["name"], self.heap, self.warn_free, self.min_free,
                       p["chunk_size"], p["chunk_count"], __version__)

    def finish(self):
        self.drain()
        b = self.budget
        self.budget.check()
        rep = b.report()
        self.tele.end(self.produced, self.processed, self.dropped, self.errors, rep["low_water"],
                      rep["gc_max_us"], rep["gc_mean_us"], rep["checks"], rep["warn"], rep["critical"])
        return rep


def _getenv(name):
    try:
        from os import getenv
    except ImportError:
        return None
    return getenv(name)


def main(profile_path=None, chunks=None):
    """Entry point of firmware/main.py.

    On the unix port LOWWATER_BOARD (profile path) and LOWWATER_CHUNKS (0 =
    forever) choose the run; on a board /board.json is the profile."""
    path = profile_path or _getenv("LOWWATER_BOARD") or _DEFAULT_PROFILE
    if chunks is None:
        chunks = int(_getenv("LOWWATER_CHUNKS") or 0)
    try:
        profile = load(path)
    except ValueError as e:
        # A bad profile fails at start with a message naming the field.
        print("lowwater:", e)
        raise SystemExit(2)
    from lowwater import sensor as _sensor

    try:
        sensor = _sensor.from_profile(profile["sensor"])
    except ImportError:
        # No machine.ADC (the plain unix port): simulate the same channel.
        s = profile["sensor"]
        sensor = _sensor.SimSensor(s["seed"], s["width"], s["rate_hz"])
        print("lowwater: no machine.ADC here, simulating the", s["kind"], "sensor")
    fw = Firmware(profile, sensor)
    try:
        import machine

        fw.use_watchdog(machine.WDT(timeout=profile["wdt_ms"]))
    except (ImportError, AttributeError):
        pass  # the plain unix port has no machine module
    fw.boot()
    try:
        fw.run(chunks)
    except KeyboardInterrupt:
        pass
    fw.finish()
    return fw
