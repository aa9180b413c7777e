# lowwater.app: the firmware loop. sensor -> ChunkRing -> per-chunk stats ->
# telemetry, under a Budget that collects at controlled points and sheds load.
#
# Allocation: __init__ allocates everything. At a profile's default settings
# nothing else does, on ports with viper: not step() (one chunk), nor the
# periodic point every check_every chunks (the budget check, the window
# summary into a preallocated array and the store, the `stat` record, the
# flash-log append). host_tests/portable/test_app.py proves it for every
# profile in boards/ with heap_lock and mem_total. What still allocates: a
# rotation of the flash log (a new file, bounded there), the `log` record
# after a flush, and the rare paths (pressure, errors, finish).
#
# Reliability (docs/reliability.md): run() survives every failing chunk
# (OSError from a sensor, MemoryError anywhere, any other exception), counted;
# a MemoryError forces a budget check so shedding starts at once. With a
# FlashLog (use_log), each window summary is appended to the flash log and the
# log is flushed every `every` windows; the `log` record follows each flush
# (docs/telemetry.md), so a host knows which records are durable.
import gc

from lowwater import __version__
from lowwater._compat import ticks_diff, ticks_us
from lowwater.budget import CRITICAL, OK, Budget
from lowwater.config import load, scaled, validate
from lowwater.pool import BlockPool
from lowwater.process import WCHUNKS, WMAX, WMEAN, WMIN, ChunkStats, _smooth, _stats
from lowwater.ring import ChunkRing
from lowwater.store import WeakStore
from lowwater.telemetry import Telemetry
from lowwater.window import RECORD, pack, summary
from lowwater.window import tag as window_tag  # noqa: F401 (public name, kept)

_DEFAULT_PROFILE = "board.json"
# Relative: beside board.json in the working directory, so "/log" on a board
# (cwd is /) and never a path of the host on the unix port.
_DEFAULT_LOG = "log"

# The flash log's window record: its layout, pack and unpack live in
# lowwater.window (the host reads it with the same module).
WINDOW_RECORD = RECORD


def _summary_bytes(v):
    # The store's sizeof for a window summary: an array('i') of 7 ints (object
    # and data, 64-bit figure). A constant: store.estimate() would allocate.
    return 64


# Defaults of the optional flash-log keys; their bounds are checked by
# lowwater.config.validate, the one place for them.
_LOG_DEFAULTS = (("log_every", 4), ("log_file_bytes", 16384), ("log_files", 4))


def log_options(p):
    """[every, file_bytes, files] of the optional profile keys log_every (windows
    per flush, 0 = no log; default 4), log_file_bytes (16384), log_files (4).
    ValueError (naming the field) for a profile that config.validate refuses."""
    validate(p)
    return [p.get(key, default) for key, default in _LOG_DEFAULTS]


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
        self._read = sensor.readinto  # bound once: no lookup per chunk
        self.ring = ChunkRing(p["chunk_size"], p["chunk_count"], overwrite=True)
        self.stats = ChunkStats(p["sensor"]["width"])
        self._out = self.stats.out
        self._width = p["sensor"]["width"]
        # Processing buffer: the filtered copy of a chunk lives in a pool block,
        # taken once here and reused for every chunk (no allocation, and no
        # alloc/free pair per chunk); the pool's other blocks stay available.
        self.pool = BlockPool(p["chunk_size"], max(1, p["pool_blocks"]))
        self._blk = self.pool.alloc()
        self.pool_misses = 0  # kept for compatibility: always 0 now
        # Recent window summaries, reclaimable under pressure (no weakref on
        # boards): one preallocated summary array per store item, reused in turn
        # (lowwater.window), so storing a summary allocates nothing.
        n = max(1, p["store_items"])
        self.store = WeakStore(max_items=n, sizeof=_summary_bytes)
        self._sums = [summary() for _ in range(n)]
        self.windows = 0
        self.budget = Budget(heap, warn, low, check_every=p["check_every"], source=source, telemetry=self.tele)
        # Handlers run in order: the store is shed first, then chunks are dropped.
        self.budget.on_pressure(self._shed_store)
        self.budget.on_pressure(self._pressure)
        self._proc = 0  # chunks processed in closed windows; see processed
        self.errors = 0
        self.mem_errors = 0  # of errors: MemoryError (injected or real)
        self.lost = 0  # chunks taken from the ring whose processing raised (in dropped)
        self.tele_errors = 0  # records the telemetry stream failed to write (not counted in errors)
        self._endv = [0] * 11  # the `end` record's values, preallocated (finish on a full heap)
        self.log = None  # a FlashLog, see use_log()
        self.log_errors = 0
        self._log_every = 0
        self._log_n = 0  # records appended since the last flush
        self._rec = bytearray(RECORD)
        # Shedding, in the one attribute step() reads: 0 = not shedding; while
        # shedding it alternates 1 (process this chunk) and 2 (skip it).
        self._skip = 0
        self._check_every = p["check_every"]
        self._n = p["check_every"]  # chunks left until the periodic point
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
        """Chunks not processed: overwritten in the ring, or taken from it by a
        processing step that raised (lost)."""
        return self.ring.dropped + self.lost

    @property
    def shedding(self):
        """True while critical pressure drops every other chunk."""
        return self._skip != 0

    @shedding.setter
    def shedding(self, on):
        if not on:
            self._skip = 0
        elif not self._skip:
            self._skip = 1

    @property
    def processed(self):
        """Chunks processed: those of the closed windows plus the open one's
        (counted by the statistics call itself, no counter in step())."""
        return self._proc + self._out[WCHUNKS]

    @property
    def produced(self):
        """Chunks acquired: the ring's committed count (one per good step)."""
        return self.ring.committed

    def step(self):
        """Acquire one chunk and, unless shedding, process the oldest one.

        A sensor fault (OSError, as an I2C NACK) propagates to run(), which
        counts it; the claimed slot is simply claimed again next time. No try
        block here, and few locals: a frame over ~11 words (locals + stack) is
        heap-allocated on every call (docs/performance.md). The chunk is read
        into a ring slot, smoothed into the pool block, and its statistics go
        into the open window: two native calls on ports with viper."""
        if self._wdt is not None:
            self._wdt.feed()
        r = self.ring
        r.fill(self._read)
        v = self._skip
        if v == 2:
            self._skip = 1
        else:
            if v:
                self._skip = 2
            # 5 locals + a stack of 6: the frame's limit (11 words) exactly.
            # processed is counted by the statistics call (out[WCHUNKS]).
            v = r.take()
            b = self._blk
            w = self._width
            v = _smooth(v, r.taken, w, b)
            _stats(b, v, w, self._out)
        v = self._n - 1
        if v:
            self._n = v
        else:
            self._period()

    def _consume(self):
        # step()'s processing, for drain(): the oldest chunk, if any.
        r = self.ring
        v = r.take()
        if v is not None:
            v = _smooth(v, r.taken, self._width, self._blk)
            _stats(self._blk, v, self._width, self._out)

    def _period(self):
        # Every check_every chunks: the budget's periodic point, then the window.
        self._n = self._check_every
        self.budget.due(self._check_every)
        self._window()

    def _window(self):
        # Report the window: its summary goes into the next preallocated array
        # (lowwater.window), the store (unless under pressure), the `stat`
        # record and the flash log. Allocates nothing at default settings.
        if self.shedding and self.budget.level != CRITICAL:
            self.shedding = False
        self._proc += self._out[WCHUNKS]
        self.stats.end_window()
        self.windows += 1
        w = self._sums[self.windows % len(self._sums)]
        self._fill(w)
        if self.budget.level == OK:
            self._keep(w)
        self.tele.window(w)
        if self.log is not None:
            self._log_window(w)

    def _fill(self, w):
        o = self._out
        w[0] = self.ring.committed
        w[1] = self.processed
        w[2] = self.ring.dropped
        w[3] = self.errors
        w[4] = o[WMIN]
        w[5] = o[WMAX]
        w[6] = o[WMEAN]

    def _keep(self, w):
        # The summary array w is reused every len(_sums) windows: the window
        # that used it last leaves the store first (keys are window numbers).
        # No try here: the store's slots and index are preallocated, so this
        # allocates nothing; a MemoryError anyway would reach run(), which
        # counts it and sheds (an `except` clause would put this frame on the heap).
        st = self.store
        st.pop(self.windows - len(self._sums), None)
        st[self.windows] = w

    def _log_window(self, w):
        # Periodic point, not the hot path. append() allocates nothing unless it
        # rotates; flush() is file I/O. A failing log never stops the loop.
        pack(self._rec, self.log.seq + 1, w)  # the seq append() will give this record
        self._log_try()

    def _log_try(self):
        # A frame with one local around the try: a handler enlarges the frame,
        # and `except OSError as e` adds a hidden finally block; either can push
        # it over the on-stack limit onto the heap (docs/performance.md).
        try:
            self._append()
        except OSError:  # flash full or failing: count, report, go on
            self._log_failed()

    def _log_failed(self):
        self.log_errors += 1
        self._report("log", "OSError")

    def _append(self):
        self.log.append(self._rec)
        self._log_n += 1
        if self._log_n >= self._log_every:
            self.flush_log()

    def flush_log(self):
        """Make every window appended so far durable; then the `log` record says so."""
        if self.log is not None and self._log_n:
            self.log.flush()
            self._log_n = 0
            self.tele.log(self.log.seq)

    def drain(self):
        """Process what is still in the ring (end of a bounded run)."""
        while len(self.ring):
            self._consume()

    def run(self, chunks=0):
        """Run `chunks` chunks (0: forever). A failing chunk is reported, not fatal:
        no exception but KeyboardInterrupt (and SystemExit) leaves run()."""
        n = 0
        while chunks == 0 or n < chunks:
            try:
                self.step()
            except OSError:
                # A sensor fault (an I2C NACK): count it, the loop goes on.
                self._fault("sensor", "OSError")
            except MemoryError:
                self._out_of_memory()
            except Exception as e:  # keep running on a bad chunk
                self._fault("step", type(e).__name__)
            n += 1
        return n

    # --- error handlers: none of them raises, and none allocates unguarded ----
    # (`except (A, B)` builds a tuple when it runs: a single class here.)

    def _report(self, where, exc_name):
        # The `err` record; a stream that cannot write it (full heap, failing
        # UART) is counted, never raised: a handler must not fail.
        try:
            self.tele.err(where, exc_name)
        except Exception:
            self.tele_errors += 1

    def _fault(self, where, exc_name):
        self.errors += 1
        self._account()
        self._report(where, exc_name)

    def _account(self):
        # A step or drain that raised after take() lost that chunk: count it as
        # dropped, so produced = processed + dropped + len(ring) stays exact.
        r = self.ring
        k = r.committed - r.dropped - len(r) - self.processed - self.lost
        if k > 0:
            self.lost += k

    def _out_of_memory(self):
        # Count it, collect, check the budget now (not at the next periodic
        # check), and shed: a failed allocation is pressure whatever the check
        # measures (or fails to report, when telemetry itself cannot allocate).
        # The next periodic check ends the shedding if memory is fine again.
        self.errors += 1
        self.mem_errors += 1
        self._account()
        gc.collect()
        self._report("step", "MemoryError")
        try:
            self.budget.check()
        except Exception:  # MemoryError, or a failing source: shed anyway
            gc.collect()
        if not self.shedding:
            try:
                self._shed_store(CRITICAL, 0)
                self._pressure(CRITICAL, 0)
            except Exception:
                self.shedding = True

    def boot(self):
        p = self.profile
        self.tele.boot(
            p["name"], self.heap, self.warn_free, self.min_free, p["chunk_size"], p["chunk_count"], __version__
        )

    def finish(self):
        """Drain the ring, flush the log, write the `end` record; return the budget's
        report plus the accounting: chunks (produced) = processed + dropped (+ `left`,
        chunks a failing drain could not take from the ring, in the `end` record).

        Never raises (but KeyboardInterrupt): each part is guarded, a failure is
        counted and reported as `err where=finish`, and the `end` record is
        written whatever failed before it. With the heap exhausted (a leak, a
        hog) the report dict may not fit: then the `end` record still goes out,
        with 0 for the gc and level counts, and finish() returns None."""
        self._drain_guarded()
        if self.log is not None:
            try:
                self.flush_log()
            except Exception as e:
                self.log_errors += 1
                self._report("log", type(e).__name__)
        b = self.budget
        try:
            b.check()
        except Exception as e:
            self._fault("finish", type(e).__name__)
        rep = self._budget_report()  # first: a failure here is in the `end` record's errors
        self._end()
        if rep is not None:
            try:
                rep["chunks"] = self.produced
                rep["processed"] = self.processed
                rep["dropped"] = self.dropped
                rep["left"] = len(self.ring)
                rep["errors"] = self.errors
                rep["mem_errors"] = self.mem_errors
                rep["log_errors"] = self.log_errors
            except MemoryError:
                rep = None
        return rep

    def _drain_guarded(self):
        # drain(), where a failing chunk is counted (and lost) and the next is
        # tried; bounded: one attempt per chunk in the ring, plus one.
        k = len(self.ring) + 1
        while len(self.ring) and k:
            k -= 1
            try:
                self.drain()
            except MemoryError:
                self._out_of_memory()
            except Exception as e:
                self._fault("drain", type(e).__name__)

    def _budget_report(self):
        # budget.report() allocates a dict: retry once after a collect.
        for _ in (0, 1):
            try:
                return self.budget.report()
            except MemoryError:
                gc.collect()
            except Exception as e:
                self._fault("finish", type(e).__name__)
                return None
        return None

    def _end(self):
        # The `end` record, from the budget's counters into a preallocated list:
        # no report dict needed and a one-argument telemetry frame, so it goes
        # out with the heap exhausted. Retried once after a collect.
        b = self.budget
        v = self._endv
        v[0] = self.produced
        v[1] = self.processed
        v[2] = self.dropped
        v[3] = self.errors
        v[4] = b.low_water or 0  # None before the first check
        v[5] = b._gc_max
        v[6] = b.gc_mean_us()
        v[7] = b.checks
        v[8] = b._n_warn
        v[9] = b._n_crit
        v[10] = len(self.ring)
        for _ in (0, 1):
            try:
                self.tele.end_values(v)
                return
            except Exception:
                self.tele_errors += 1
                gc.collect()


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
    Returns the log, or None when the flash cannot hold one (reported as `err`).
    Never raises: a board whose log cannot open runs on without one."""
    every, file_bytes, files = log_options(fw.profile)
    if not every or not path:
        return None
    t0 = ticks_us()
    try:
        # Imported here, after the firmware's buffers: they need contiguous
        # blocks, compiling flashlog.py on the board only transient ones.
        from lowwater.flashlog import FlashLog

        log = FlashLog(path, max_file_bytes=file_bytes, max_files=files)
    except Exception as e:  # OSError, MemoryError, ...: the loop runs on without a log
        e = type(e).__name__  # drop the exception (and its traceback) before reporting
        gc.collect()
        fw.log_errors += 1
        fw._report("log", e)
        return None
    us = ticks_diff(ticks_us(), t0)
    fw.use_log(log, every)
    try:
        fw.tele.record("logopen", "seq", log.seq, "us", us, "torn", log.recovered_truncated_bytes)
    except Exception:
        fw.tele_errors += 1
    return log


def _fatal(fw, e):
    # main()'s last resort, before a watchdog reset can hit: the traceback text
    # and an `err where=main` record go out at once (a monitor shows why the
    # board keeps resetting). Guarded: printing may fail on a full heap too.
    try:
        from lowwater._compat import print_exception

        print_exception(e)
    except Exception:
        pass
    if fw is not None:
        fw._fault("main", type(e).__name__)
    else:
        try:
            print("LW1 err where=main exc=" + type(e).__name__)
        except Exception:
            pass


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
        fw.run(chunks)  # raises nothing but KeyboardInterrupt (and SystemExit)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # a bug past every handler: report it, end cleanly
        _fatal(fw, e)
    fw.finish()
    if pub is not None:
        pub.close()  # retained `done`, DISCONNECT
    return fw
