# Cold start on the MicroPython unix port (unix port only: time.ticks_us is
# read before anything else is imported, so the figures start at the first
# line of this script, after interpreter start and this file's compilation).
#
# mode "start": ticks at start, after the firmware's imports, after Firmware()
#   and after the first chunk (Firmware.step); prints `FIRST` at that point so
#   the host can time the process from spawn to the first chunk.
# mode "imports": heap (gc.mem_alloc after gc.collect, minus the same before)
#   and time taken by importing cfg["names"], then cfg["attrs"] of the package
#   (`import lowwater; lowwater.ring` goes through the lazy __getattr__).
from time import ticks_diff, ticks_us

_t0 = ticks_us()
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def start(cfg):
    from lowwater import config
    from lowwater.app import Firmware
    from lowwater.sensor import SimSensor
    from lowwater.telemetry import Telemetry

    t1 = ticks_us()
    fw = Firmware(config.load(cfg["profile"]), sensor=SimSensor(1), telemetry=Telemetry(enabled=False))
    t2 = ticks_us()
    fw.step()
    t3 = ticks_us()
    print("FIRST")
    assert fw.processed == 1
    gc.collect()
    return {
        "imports_us": ticks_diff(t1, _t0),
        "init_us": ticks_diff(t2, t1),
        "step_us": ticks_diff(t3, t2),
        "first_chunk_us": ticks_diff(t3, _t0),
        "heap_after": gc.mem_alloc(),
    }


def imports(cfg):
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = ticks_us()
    pkg = None
    for name in cfg["names"]:
        pkg = __import__(name)
    for name in cfg.get("attrs", ()):
        getattr(pkg, name)
    us = ticks_diff(ticks_us(), t0)
    gc.collect()
    return {
        "heap": gc.mem_alloc() - a0,
        "us": us,
        "modules": sorted(k for k in sys.modules if k.startswith("lowwater")),
    }


def main():
    with open(sys.argv[1]) as f:  # a file: see _bt.args
        cfg = json.load(f)
    res = start(cfg) if cfg["mode"] == "start" else imports(cfg)
    print("BENCH " + json.dumps(res))


main()
