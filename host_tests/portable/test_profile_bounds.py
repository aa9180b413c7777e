# What `lowwater check` accepts, the firmware runs: boundary profiles (the
# smallest of everything; the largest store, pool and ring that validation
# accepts for the unix profile's heap) run a few chunks on both runtimes. A
# module of its own: the firmware is compiled from source in the test's heap.
from lowwater import config

# The unix profile's heap plus 64 KiB: here the firmware's code is compiled
# from source into the same heap (about half of it), where a board loads .mpy
# and boots the firmware into a fresh heap.
MP_HEAP = {"test_boundary_profiles_run_the_firmware": 131072 + 65536}


def _good():
    return config.load("boards/unix.json")


def _largest(field, p):
    # The largest value of field that validate() accepts, by bisection.
    lo, hi = p[field], 65535
    while lo < hi:
        mid = (lo + hi + 1) // 2
        p[field] = mid
        try:
            config.validate(p)
            lo = mid
        except config.ProfileError:
            hi = mid - 1
    p[field] = lo
    return lo


def _boundary_profiles():
    # The largest ring, pool and store the unix profile's heap accepts (the
    # ring first: a board boots into an unfragmented heap, one firmware per
    # boot; here they run one after the other), then the smallest of everything.
    for field in ("chunk_count", "pool_blocks", "store_items"):
        p = _good()
        p["name"] = "Board_-." + "x" * 24
        p["check_every"] = 4
        _largest(field, p)
        yield field, p
    p = _good()
    for field, v in (("check_every", 1), ("chunk_size", 2), ("chunk_count", 1), ("store_items", 0)):
        p[field] = v
    p["pool_blocks"] = 0
    p["name"] = "a"
    p["sensor"]["rate_hz"] = 1
    p["sensor"]["seed"] = 0x3FFFFFFF
    yield "smallest", p


def test_boundary_profiles_run_the_firmware():
    import gc

    from lowwater import app
    from lowwater.sensor import SimSensor
    from lowwater.telemetry import Telemetry

    class Count:
        lines = 0

        def write(self, s):
            if type(s) is str and s == "\n":
                self.lines += 1

    for what, p in _boundary_profiles():
        gc.collect()
        config.validate(p)
        s = p["sensor"]
        fw = app.Firmware(p, sensor=SimSensor(s["seed"], s["width"], s["rate_hz"]), telemetry=Telemetry(Count()))
        fw.boot()
        assert fw.run(12) == 12, what
        rep = fw.finish()
        assert fw.errors == 0, (what, fw.errors)
        assert rep["chunks"] == 12 == rep["processed"] + rep["dropped"], (what, rep)
        fw = rep = None
