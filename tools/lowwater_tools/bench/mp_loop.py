# The firmware loop (lowwater.app.Firmware) on a board-shaped heap: heap bytes
# per chunk, the Budget monitor's overhead, and gc.collect() pauses in steady
# state. MicroPython unix port (mem_total, gc.mem_free); run with the heap of
# the board whose profile is cfg["profile"].
#
# Every Firmware here is the real one: SimSensor(1) (the same sensor `lowwater
# run` simulates), Telemetry(enabled=False) (records cost a UART write on a
# board, which is not what is measured) and the default memory source
# (GcSource: gc.collect, gc.mem_free, gc.mem_alloc).
import gc

import _bt
from lowwater import config
from lowwater.app import Firmware
from lowwater.budget import OK
from lowwater.sensor import SimSensor
from lowwater.telemetry import Telemetry


def _firmware(profile, **over):
    p = dict(profile)
    for k in over:
        p[k] = over[k]
    return Firmware(p, sensor=SimSensor(1), telemetry=Telemetry(enabled=False))


def _no_monitor(n=None):
    return OK


def _interleave(a, b, c, n):
    # n steps of each firmware, one of each in turn; total us per firmware
    tu = _bt.ticks_us
    td = _bt.ticks_diff
    fa, fb, fc = a.step, b.step, c.step
    sa = sb = sc = 0
    for _ in range(n):
        t0 = tu()
        fa()
        t1 = tu()
        fb()
        t2 = tu()
        fc()
        t3 = tu()
        sa += td(t1, t0)
        sb += td(t2, t1)
        sc += td(t3, t2)
    return sa, sb, sc


def loop(cfg, profile):
    res = {}
    every = profile["check_every"]
    # Heap bytes per chunk. Without the periodic check: check_every huge (no
    # budget check, no window report within the run).
    fw = _firmware(profile, check_every=1000000)
    fw.run(64)
    res["heap_per_chunk_nocheck"] = _bt.heap_per_call([(fw.step, None)], cfg["heap_chunks"])[0]
    fw = None
    # With the default cadence, amortised over whole check periods (in phase:
    # the measured steps start right after a check).
    fw = _firmware(profile)
    fw.run(2 * every)
    n = max(1, cfg["heap_chunks"] // every) * every
    res["heap_per_chunk_default"] = _bt.heap_per_call([(fw.step, None)], n)[0]
    res["heap_chunks_default"] = n
    # The periodic point's parts, per call: Budget.check (collect + measure)
    # and Firmware._window (the window report and its stored summary).
    h = _bt.heap_per_call([(fw.budget.check, None), (fw._window, None)], cfg["heap_checks"])
    res["heap_per_check"] = h[0]
    res["heap_per_window"] = h[1]
    fw = None
    gc.collect()
    # Budget overhead: the same firmware with and without the monitor. Without
    # = Budget.due replaced on the instance by a no-op; everything else (the
    # ring, processing, the window report every check_every chunks) is
    # unchanged. A third firmware, identical to the first, is the A/A control:
    # its ratio to the first shows the noise floor. The three are interleaved
    # chunk by chunk (one step of each in turn, the order rotated every
    # repetition), so a burst of machine noise hits all three; a repetition
    # runs whole check periods, so each has its checks.
    fws = [_firmware(profile), _firmware(profile), _firmware(profile)]
    fws[1].budget.due = _no_monitor
    k = max(1, cfg["loop_chunks"] // every) * every
    for f in fws:
        f.run(2 * every)
    names = ["monitor", "no_monitor", "monitor_control"]
    times = {"monitor": [], "no_monitor": [], "monitor_control": []}
    for rep in range(cfg["reps"]):
        idx = _bt.order([0, 1, 2], rep)
        t = _interleave(fws[idx[0]], fws[idx[1]], fws[idx[2]], k)
        for j in range(3):
            times[names[idx[j]]].append(t[j])
    on, off = fws[0], fws[1]
    assert on.budget.checks > 0 and off.budget.checks == 0
    assert on.processed == on.produced and off.processed == off.produced
    res["loop_chunks"] = k
    res["times_us"] = times
    res["checks"] = on.budget.checks
    return res


def pauses(cfg, profile):
    # gc.collect() in the firmware's steady state: the ring, pool, store and
    # budget built, the store filled by window summaries, chunks flowing.
    fw = _firmware(profile)
    fw.run(cfg["warmup"])
    out = []
    gap = cfg["gap"]
    for _ in range(cfg["samples"]):
        fw.run(gap)
        t0 = _bt.ticks_us()
        gc.collect()
        out.append(_bt.ticks_diff(_bt.ticks_us(), t0))
    return {"pauses_us": out, "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(), "store_items": len(fw.store)}


def main():
    cfg = _bt.args()
    profile = config.load(cfg["profile"])
    if cfg["mode"] == "loop":
        _bt.emit(loop(cfg, profile))
    else:
        _bt.emit(pauses(cfg, profile))


main()
