# One case of the instruction-count benchmarks (driver.callgrind): run under
# `valgrind --tool=callgrind` twice, with n chunks and with 0, by the host; the
# difference divided by n is the instructions per chunk (set-up, imports and
# warm-up cancel out). MicroPython unix port.
#
# Cases (cfg["case"]):
# - minimal: the irreducible work of one chunk: read into a slot (one slice
#   copy: a sensor at C speed, as DMA/I2S would deliver), viper smoothing into a
#   block, viper statistics; nothing else.
# - step: the real Firmware.step at a profile's defaults (chunk size from cfg),
#   the same ReplaySensor, telemetry off, the default GcSource budget.
# - nomon: the same firmware with Budget.due replaced by a no-op: the periodic
#   point keeps its window report, only the monitor is gone. The monitor walks
#   the heap once per walk_every * check_every chunks (lowwater.budget
#   walk_spacing: 5,888 chunks at a 2 MiB heap, 256 B chunks): step - nomon is
#   its amortised cost only over a whole number of those intervals (cfg
#   "debug" prints the budget's walk_every).
# - tutorial: the loop a tutorial writes: a new bytes object per read, min /
#   max / mean with built-ins, gc.mem_free() printed per chunk, results kept in
#   a dict keyed by chunk number (the firmware keeps store_items summaries).
import gc

import _bt
from array import array
from lowwater import config
from lowwater.app import Firmware
from lowwater.budget import OK
from lowwater.process import _smooth, _stats
from lowwater.sensor import ReplaySensor, SimSensor
from lowwater.telemetry import Telemetry


def _minimal(k, n, warm):
    sen = ReplaySensor(SimSensor(1), k)
    slot = memoryview(bytearray(k))
    blk = memoryview(bytearray(k))
    out = array("i", bytes(48))
    rd = sen.readinto
    for _ in range(warm + n):
        m = rd(slot)
        _stats(blk, _smooth(slot, m, 2, blk), 2, out)


def _no_monitor(n):
    return OK


def _firmware(cfg, k):
    p = dict(config.load(cfg["profile"]))
    p["chunk_size"] = k
    p["chunk_count"] = max(2, 4096 // k)  # a 4 KiB ring whatever the chunk (cost per chunk is the same)
    # Levels stay OK: the unix profile's warn_free (40 KiB) is above what a
    # 128 KiB heap has left after this script's imports, and at WARN every
    # check collects by design; the overhead measured is the steady state's.
    p["warn_free"] = cfg.get("warn_free", p["warn_free"])
    p["min_free"] = cfg.get("min_free", p["min_free"])
    return Firmware(p, sensor=ReplaySensor(SimSensor(1), k), telemetry=Telemetry(enabled=False))


def _step(cfg, k, n, warm, monitor):
    fw = _firmware(cfg, k)
    if not monitor:
        fw.budget.due = _no_monitor
    step = fw.step
    for _ in range(warm + n):
        step()
    return fw


def _tutorial(k, n, warm):
    sen = SimSensor(1)
    raw = bytearray(k)
    sen.readinto(raw)
    results = {}
    for i in range(warm + n):
        data = bytes(raw)  # a new object per read, as `adc.read(...)` returns
        vals = [data[j] | (data[j + 1] << 8) for j in range(0, len(data), 2)]
        results[i] = (min(vals), max(vals), sum(vals) // len(vals))
        print(i, gc.mem_free())
    return results


def main():
    cfg = _bt.args()
    k = cfg["chunk"]
    n = cfg["n"]
    warm = cfg["warm"]
    case = cfg["case"]
    res = {"case": case, "n": n}
    if case == "minimal":
        _minimal(k, n, warm)
    elif case == "tutorial":
        _tutorial(k, n, warm)
    else:
        fw = _step(cfg, k, n, warm, case == "step")
        if cfg.get("debug"):
            print(fw.budget.report(), "walk_every", fw.budget.walk_every)
        # chunks between two heap walks: the monitor's cost is measured over whole ones
        res["walk_chunks"] = fw.budget.walk_every * fw.budget.check_every
    _bt.emit(res)


main()
