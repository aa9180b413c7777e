# The tutorial loop against the firmware (driver.tutorial): one variant per
# process, at the unix board's heap, the same sensor (SimSensor(1)) and chunk
# size. MicroPython unix port.
#
# - tutorial: what a first MicroPython data logger does: a new buffer per
#   read, the samples decoded into a list, min / max / mean with built-ins,
#   gc.mem_free() printed per chunk, and every result kept in a dict keyed by
#   chunk number. It stops at the first MemoryError (reported, not hidden).
# - firmware: Firmware.step at the unix profile's defaults, telemetry to stdout
#   (its `stat` record per window), the default budget.
#
# Two passes per process: a timed one (chunks/s, heap bytes per chunk from
# micropython.mem_total), then a counting one that reads gc.mem_alloc() after
# every chunk: a fall means a collection ran in that chunk (counted, and that
# chunk's time is its pause, at most); the lowest free memory is the low-water.
import gc

import _bt
from lowwater import config
from lowwater.app import Firmware
from lowwater.sensor import SimSensor


def _tutorial(k):
    sen = SimSensor(1)
    results = {}
    n = [0]

    def chunk():
        data = bytearray(k)  # a new object per read
        sen.readinto(data)
        vals = [data[j] | (data[j + 1] << 8) for j in range(0, k, 2)]
        results[n[0]] = (min(vals), max(vals), sum(vals) // len(vals))
        n[0] += 1
        print(gc.mem_free())

    return chunk


def _firmware(profile):
    fw = Firmware(profile, sensor=SimSensor(1))
    fw.boot()
    return fw.step


def _timed(step, n):
    gc.collect()
    m = _bt.mem_total()
    t0 = _bt.ticks_us()
    done = 0
    err = None
    try:
        for _ in range(n):
            step()
            done += 1
    except MemoryError:
        err = "MemoryError"
    us = _bt.ticks_diff(_bt.ticks_us(), t0)
    return {"chunks": done, "us": us, "heap": _bt.mem_total() - m, "error": err}


def _counting(step, n):
    total = gc.mem_free() + gc.mem_alloc()
    last = gc.mem_alloc()
    low = total - last
    cols = 0
    pause = 0
    done = 0
    err = None
    try:
        for _ in range(n):
            t0 = _bt.ticks_us()
            step()
            us = _bt.ticks_diff(_bt.ticks_us(), t0)
            a = gc.mem_alloc()
            if a < last:
                cols += 1
                if us > pause:
                    pause = us
            last = a
            if total - a < low:
                low = total - a
            done += 1
    except MemoryError:
        err = "MemoryError"
    return {"chunks": done, "collections": cols, "pause_us": pause, "low_water": low, "error": err}


def main():
    cfg = _bt.args()
    profile = config.load(cfg["profile"])
    k = profile["chunk_size"]
    mk = (lambda: _tutorial(k)) if cfg["variant"] == "tutorial" else (lambda: _firmware(profile))
    res = {"variant": cfg["variant"], "chunk": k}
    res["timed"] = _timed(mk(), cfg["n"])
    gc.collect()
    res["counting"] = _counting(mk(), cfg["n"])
    _bt.emit(res)


main()
