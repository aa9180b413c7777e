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
from lowwater import __version__
from lowwater._handlers import Handlers as _H
from lowwater.budget import CRITICAL, OK, Budget
from lowwater.pool import BlockPool
from lowwater.process import WCHUNKS, WMAX, WMEAN, WMIN, ChunkStats, _smooth, _stats
from lowwater.ring import ChunkRing
from lowwater.store import WeakStore
from lowwater.telemetry import Telemetry
from lowwater.window import RECORD, pack, summary
from lowwater.window import tag as window_tag  # noqa: F401 (public name, kept)

# The flash log's window record: its layout, pack and unpack live in
# lowwater.window (the host reads it with the same module).
WINDOW_RECORD = RECORD


def _summary_bytes(v):
    # The store's sizeof for a window summary: an array('i') of 7 ints (object
    # and data, 64-bit figure). A constant: store.estimate() would allocate.
    return 64


class Firmware:
    """One board's acquisition pipeline, built from a validated profile.

    fw = Firmware(profile, sensor=SimSensor(1)); fw.run(1000); fw.finish()"""

    def __init__(self, profile, sensor=None, telemetry=None, source=None, word_bits=None, stages=None):
        # config is boot-time code: imported here, not with this module, so
        # main() can free it once the firmware is built (docs/distribution.md).
        from lowwater.config import scaled, validate

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
        if stages is None and p.get("stages"):
            from lowwater.pipeline import build

            stages = build(p["stages"], self.tele, p["chunk_size"], self._width, p["sensor"]["rate_hz"])
        self.stages = stages or ()
        k = 1
        if stages:
            from lowwater.pipeline import writers

            k = min(2, max(1, writers(stages)))
        self.pool = BlockPool(p["chunk_size"], max(k, p["pool_blocks"]))
        self._blk = self.pool.alloc()
        # The user's stages (lowwater.pipeline): wired once to the pool's blocks;
        # step() is then the pipeline's twin (the built-in path stays as it was).
        self._chain = None
        if stages:
            from lowwater.pipeline import chain

            self._chain = chain(stages, (self._blk, self.pool.alloc() if k > 1 else self._blk))
            self.step = self._step_pipe
        self.pool_misses = 0  # kept for compatibility: always 0 now
        # Recent window summaries, reclaimable under pressure (no weakref on
        # boards): one preallocated summary array per store item, reused in turn
        # (lowwater.window), so storing a summary allocates nothing.
        n = max(1, p["store_items"])
        self.store = WeakStore(max_items=n, sizeof=_summary_bytes)
        self._sums = [summary() for _ in range(n)]
        self.windows = 0
        self.budget = Budget(
            heap,
            warn,
            low,
            check_every=p["check_every"],
            source=source,
            telemetry=self.tele,
            chunk_bytes=p["chunk_size"],
        )
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
        self._due = p["check_every"]  # the ring's committed count at the next periodic point
        self.warn_free = warn
        self.min_free = low
        self._wdt = None
        self._feed = None  # the watchdog's feed, bound once (None: no watchdog)

    def use_watchdog(self, wdt):
        """Feed this machine.WDT-like object once per chunk."""
        self._wdt = wdt
        self._feed = None if wdt is None else wdt.feed

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
        counts it; nothing is claimed nor committed then. No try block here,
        and few locals: a frame over ~11 words (locals + stack) is
        heap-allocated on every call (docs/performance.md). In the steady
        state the ring is idle (each chunk is processed as it arrives), so the
        chunk is read straight into its idle slot and counted there
        (ChunkRing.cycle's fast path, inline: a call costs ~700 instructions),
        smoothed into the pool block, and its statistics go into the open
        window: two native calls on ports with viper. Nothing is stored on self
        per chunk: a store on this class searches it for a property first
        (~1,000 instructions, callgrind); the periodic point is due when the
        ring's committed count reaches _due. A chunk waiting in the ring, and
        shedding, go through _step_ring."""
        if self._feed:  # a bound method or None: a truth test is the cheapest
            self._feed()
        r = self.ring
        v = r.idle
        if v is None or self._skip:
            return self._step_ring()
        n = self._read(v)
        if n > r.chunk_size or n < 0:
            raise ValueError("n out of range")
        r.committed += 1
        b = self._blk
        w = self._width
        # processed is counted by the statistics call (out[WCHUNKS]).
        n = _smooth(v, n, w, b)
        _stats(b, n, w, self._out)
        if r.committed >= self._due:
            self._period()

    def _step_ring(self):
        # step() when the ring is not idle (the first chunk, or chunks left
        # waiting by shedding) or while shedding: ChunkRing.cycle's general
        # path (fill, then the oldest chunk). Shedding (_skip alternates 1:
        # process, 2: skip) processes every other chunk, the others wait in the
        # ring, where the next acquisition drops the oldest when full. Not
        # shedding, one waiting chunk more is processed, so the backlog drains
        # and the straight read resumes.
        r = self.ring
        r.fill(self._read)
        v = self._skip
        if v == 2:
            self._skip = 1
        else:
            if v:
                self._skip = 2
            self._consume()
            if not v and len(r):
                self._consume()
        if r.committed >= self._due:
            self._period()

    def _step_pipe(self):
        # step() with the user's stages (Firmware(stages=...) or the profile's
        # "stages"): the same acquisition, shedding and periodic point; the
        # chunk goes through _pipe instead of the built-in smoothing.
        if self._feed:
            self._feed()
        r = self.ring
        v = r.idle
        if v is None or self._skip:
            return self._step_ring()
        n = self._read(v)
        if n > r.chunk_size or n < 0:
            raise ValueError("n out of range")
        r.committed += 1
        self._pipe(v, n)
        if r.committed >= self._due:
            self._period()

    def _pipe(self, v, n):
        # Each stage reads v and writes its block (or, writes = False, only
        # reads); the statistics take the last output. An index loop: a `for`
        # over the chain puts this frame on the heap (144 B per chunk, measured).
        c = self._chain
        i = 0
        while i < len(c):
            d = c[i]
            n = d[0](v, n, d[1])
            if d[1] is not None:
                v = d[1]
            i += 1
        _stats(v, n, self._width, self._out)

    def _consume(self):
        # step()'s processing, for drain(), shedding and a waiting chunk: the
        # oldest chunk, if any.
        r = self.ring
        v = r.take()
        if v is not None:
            if self._chain is not None:
                self._pipe(v, r.taken)
                return
            v = _smooth(v, r.taken, self._width, self._blk)
            _stats(self._blk, v, self._width, self._out)

    def _period(self):
        # Every check_every chunks: the budget's periodic point, then the window.
        # _due first: a failing window must not make every later step due.
        self._due = self.ring.committed + self._check_every
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

    def boot(self):
        p = self.profile
        self.tele.boot(
            p["name"], self.heap, self.warn_free, self.min_free, p["chunk_size"], p["chunk_count"], __version__
        )

    # run(), finish() and the handlers (lowwater._handlers), bound in this dict:
    # a base class made step() ~1,000 instructions per chunk slower (with a
    # property here, every `self.x = v` searches the class and its bases).
    drain = _H.drain
    run = _H.run
    _report = _H._report
    _fault = _H._fault
    _account = _H._account
    _out_of_memory = _H._out_of_memory
    finish = _H.finish
    _drain_guarded = _H._drain_guarded
    _budget_report = _H._budget_report
    _end = _H._end


def main(profile_path=None, chunks=None, sensor=None, log_path=None, stages=None):
    """Entry point of firmware/main.py.

    On a board: /board.json is the profile, the flash log is /log, the loop runs
    until reset and a machine.WDT (profile wdt_ms) is fed per chunk. On the unix
    port LOWWATER_BOARD (profile path), LOWWATER_CHUNKS (0 = forever) and
    LOWWATER_LOG (log folder; no log without it) choose the run. `sensor`
    replaces the profile's sensor (tests, fault injection); `stages` (a list of
    stage objects, docs/pipeline.md) replaces the profile's "stages".

    A bad profile prints `lowwater: board profile: <field> ...` and stops: on a
    board main() returns (a SystemExit would soft-reset the board into the same
    error, forever); on the unix port it exits with status 2.

    The boot-time wiring is lowwater.startup; it (and lowwater.config, unless
    loaded before main()) is dropped from sys.modules before the loop runs."""
    import sys

    from lowwater import _handlers as h

    r = h.boot(Firmware, sys, profile_path, chunks, sensor, log_path, stages)
    if r is None:
        return None
    fw, chunks, pub = r
    r = None
    try:
        fw.run(chunks)  # raises nothing but KeyboardInterrupt (and SystemExit)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # a bug past every handler: report it, end cleanly
        h.fatal(fw, e)
    fw.finish()
    if pub is not None:
        pub.close()  # retained `done`, DISCONNECT
    return fw


def __getattr__(name):
    # Boot-time names that lived here before lowwater.startup (kept: public).
    if name in ("open_log", "log_options", "_reset_cause", "_getenv", "_CAUSES", "_DEFAULT_PROFILE", "_DEFAULT_LOG"):
        from lowwater import startup

        return getattr(startup, name)
    raise AttributeError(name)
