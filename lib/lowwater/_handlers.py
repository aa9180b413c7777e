# lowwater._handlers: the firmware's run() and everything that handles a
# failure or ends a run (docs/reliability.md): the error handlers, drain and
# finish with the exact accounting chunks = processed + dropped + left.
# lowwater.app binds them in Firmware's own class body; none of them
# is on the per-chunk path but run()'s loop, and none of them raises (but
# KeyboardInterrupt).
import gc

from lowwater.budget import CRITICAL


class Handlers:
    """Methods of lowwater.app.Firmware: run(), drain(), finish() and the handlers."""

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


def fatal(fw, e):
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


# Modules only the start needs (lowwater.startup, lowwater.config): app.main()
# frees the ones it loaded itself (docs/distribution.md).
BOOT_ONLY = ("lowwater.startup", "lowwater.config")


def forget(sys, keep, only=BOOT_ONLY):
    import lowwater

    for m in only:
        if m not in keep and m in sys.modules:
            del sys.modules[m]
            try:
                delattr(lowwater, m[9:])
            except AttributeError:
                pass
    gc.collect()


_PAD = 8192


def boot(cls, sys, profile_path, chunks, sensor, log_path, stages):
    """app.main()'s start: (fw, chunks, publisher) or None (bad profile on a
    board). lowwater.startup is dropped while the firmware's buffers are
    allocated (they need contiguous blocks; with it loaded the 128 KiB unix
    profile's ring did not fit, .mpy), then loaded again for arm()."""
    keep = [m for m in BOOT_ONLY if m in sys.modules]  # loaded before main(): kept
    # Room held while the start-up code and the profile load around it, and
    # freed for the firmware's buffers: one contiguous hole where the ring and
    # pool go (loading them first left the 128 KiB unix profile's heap too
    # fragmented for its 4 KB ring on the virtual board, .mpy).
    try:
        pad = bytearray(_PAD)
    except MemoryError:  # no such hole left: start without it
        pad = None
    r = _prepare(profile_path, chunks, sensor, log_path)
    if r is None:
        return None
    del pad  # the hole the buffers go into
    forget(sys, keep, BOOT_ONLY[:1])
    fw = cls(r[0], r[2], telemetry=r[4], stages=stages)
    _arm(fw, r[3])
    forget(sys, keep)
    return fw, r[1], r[5]


# Each step in a frame of its own: the stale slots of a finished call's value
# stack still point at startup's functions, and the conservative GC keeps what
# they reach while that frame lives (11.6 KB more held during the loop when
# main()'s own frame made the call, .mpy, measured).
def _prepare(profile_path, chunks, sensor, log_path):
    from lowwater import startup

    return startup.prepare(profile_path, chunks, sensor, log_path)


def _arm(fw, log_path):
    from lowwater import startup

    startup.arm(fw, log_path)
