# lowwater.config: load and validate a board profile (boards/*.json), the same
# code on the board and on the host (`lowwater check`).
import gc
import json
import sys

# A 64-bit unix heap needs this many bytes for each byte of a 32-bit board's
# heap. Measured by host_tests/test_heap_factor.py on the firmware's own
# allocations (docs/boards.md): payload bytes map 1:1, object headers and
# pointers 2:1, GC blocks are 32 bytes instead of 16.
UNIX_HEAP_FACTOR = 1.4

# (field, type, low, high): every field of a profile, its exact type (bool is
# not an int here) and its inclusive range (ints: the value; str: the length).
# warn_free and min_free are bounded by heap below.
_MB = 1 << 27  # heap, flash: 128 MiB (small ints on any board)
_FS_BLOCK = 4096  # littlefs block of the boards and of the virtual board's image
_FIELDS = (
    ("name", str, 1, 32),
    ("family", str, 1, 16),
    ("chip", str, 1, 32),
    ("word_bits", int, 32, 64),
    ("heap", int, 8192, _MB),
    ("warn_free", int, 1, _MB),
    ("min_free", int, 1, _MB),
    ("check_every", int, 1, 1000000),
    ("chunk_size", int, 1, 65535),
    ("chunk_count", int, 1, 65535),
    ("store_items", int, 0, 65535),
    ("pool_blocks", int, 0, 65535),
    ("sensor", dict, 0, 0),
    ("flash_offset", int, 0, _MB),
    ("flash_size", int, _FS_BLOCK, _MB),
    ("fs_size", int, 4 * _FS_BLOCK, _MB),
    ("wdt_ms", int, 100, 3600000),
)
# Optional fields (lowwater.app.log_options gives the log defaults).
_OPTIONAL = (
    ("log_every", int, 0, 65535),
    ("log_file_bytes", int, 64, 65535 + 12),
    ("log_files", int, 2, 64),
    ("description", str, 0, 200),
    ("heap_source", str, 0, 200),
    ("mpy_arch", str, 1, 16),  # mpy-cross -march of the board (lowwater mpy, deploy --mpy)
    ("cpu_hz", int, 1000000, 1000000000),  # CPU clock the virtual board reports (machine.freq)
)
# "stages" (optional): a list of {"module", "class", "name"?, ...} (_stages).
_SENSOR = (("seed", int, 0, 0x3FFFFFFF), ("rate_hz", int, 1, 1000000), ("width", int, 1, 2))
_FAMILIES = ("unix", "esp32", "rp2040")
_SENSORS = ("sim", "adc", "custom")
# A custom driver or a stage names a module and class (docs/pipeline.md).
_CODE = (("module", str, 1, 64), ("class", str, 1, 64))
_MAX_STAGES = 8
# Characters of `name` and `chip`: they go into telemetry records as tokens.
_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_MAX_FILE = 16384  # bytes of a profile file
# Built once: `except (A, B)` builds its tuple when it runs, which fails with
# the heap exhausted (MicroPython).
_JSON_ERRORS = (ValueError, RuntimeError, MemoryError)


class ProfileError(ValueError):
    """A board profile is unusable; the message names the field."""


def _need(cond, field, msg):
    if not cond:
        raise ProfileError("board profile: %s %s" % (field, msg))


def _check(d, prefix, table, required):
    # Type and range of each field of table present in d (all of them if required).
    for field, typ, low, high in table:
        if field not in d:
            _need(not required, prefix + field, "is missing")
            continue
        v = d[field]
        _need(type(v) is typ, prefix + field, "must be %s, got %s" % (typ.__name__, type(v).__name__))
        n = len(v) if typ is str else 0 if typ is dict else v
        if not low <= n <= high and typ is not dict:
            _need(False, prefix + field, "must be in %d..%d, got %d" % (low, high, n))


def static_bytes(p):
    """Bytes Firmware() preallocates for a profile, in the profile's words: ring
    and pool data, a view and bookkeeping per block (~8 words), 2 words and 20
    bytes per store item plus a word of transient list while the store is built,
    and ~1024 words of objects (budget, telemetry, stats). An estimate for
    validation (within 2x of the unix port's mem_free deltas), not a measurement."""
    w = p["word_bits"] // 8
    blocks = p["chunk_count"] + max(1, p["pool_blocks"])
    return 1024 * w + p["chunk_size"] * blocks + 8 * w * blocks + (3 * w + 20) * max(1, p["store_items"])


def validate(p):
    """Check a profile dict; return it unchanged or raise ProfileError naming the field."""
    _need(isinstance(p, dict), "profile", "must be a JSON object")
    _check(p, "", _FIELDS, True)
    _check(p, "", _OPTIONAL, False)
    for field in ("name", "chip"):
        _need(not [c for c in p[field] if c not in _NAME_CHARS], field, "may hold only A-Z a-z 0-9 _ . -")
    _need(p["word_bits"] in (32, 64), "word_bits", "must be 32 or 64")
    _need(p["family"] in _FAMILIES, "family", "must be one of " + ", ".join(_FAMILIES))
    _need(p["warn_free"] <= p["heap"], "warn_free", "(%d) is above heap (%d)" % (p["warn_free"], p["heap"]))
    _need(p["min_free"] <= p["warn_free"], "min_free", "(%d) is above warn_free (%d)" % (p["min_free"], p["warn_free"]))
    n = p["chunk_size"] * p["chunk_count"]
    _need(n < p["heap"] - p["warn_free"], "chunk_count", "ring of %d bytes does not fit in heap - warn_free" % n)
    # The firmware's own objects may take a quarter of what is above warn_free:
    # the code (compiled from source: about half of the unix profile's heap),
    # telemetry and the periodic check need the rest.
    n = static_bytes(p)
    _need(n <= (p["heap"] - p["warn_free"]) // 4, "pool_blocks", "(with the ring and store) needs ~%d bytes" % n)
    _need(p["fs_size"] % _FS_BLOCK == 0, "fs_size", "must be a multiple of 4096")
    _need(p["flash_offset"] + p["fs_size"] <= p["flash_size"], "fs_size", "plus flash_offset is above flash_size")
    # the RP2040 watchdog counts at most 0x7fffff us
    _need(p["family"] != "rp2040" or p["wdt_ms"] <= 8388, "wdt_ms", "must be <= 8388 on rp2040")
    # On littlefs a log file takes up to two more blocks (docs/flashlog.md).
    n = p.get("log_files", 4) * (p.get("log_file_bytes", 16384) + 2 * _FS_BLOCK)
    _need(n <= p["fs_size"], "log_files", "* (log_file_bytes + 8192) = %d is above fs_size" % n)
    # Optional MQTT settings (docs/fleet.md), checked by the opt-in lowwater.mqtt.
    if "mqtt" in p:
        try:
            from lowwater.mqtt import check_settings
        except ImportError:
            check_settings = None
        _need(check_settings is not None, "mqtt", "needs the lowwater-mqtt package (lowwater/mqtt.py)")
        check_settings(p["mqtt"], _need)
    s = p["sensor"]
    _need(s.get("kind") in _SENSORS, "sensor.kind", "must be one of " + ", ".join(_SENSORS))
    if s["kind"] == "custom":  # the user's driver: seed is the simulator's only
        _check(s, "sensor.", _CODE, True)
        _check(s, "sensor.", _SENSOR[1:], True)
        _check(s, "sensor.", _SENSOR[:1], False)
    else:
        _check(s, "sensor.", _SENSOR, True)
    if "stages" in p:
        _stages(p["stages"])
    _need(p["chunk_size"] % s["width"] == 0, "chunk_size", "must be a multiple of sensor.width")
    if s["kind"] == "adc":
        _check(s, "sensor.", (("pin", int, 0, 63),), True)
    return p


def _stages(st):
    _need(type(st) is list, "stages", "must be a list")
    _need(len(st) <= _MAX_STAGES, "stages", "may hold at most %d stages" % _MAX_STAGES)
    for i, d in enumerate(st):
        f = "stages[%d]" % i
        _need(type(d) is dict, f, "must be a JSON object")
        _check(d, f + ".", _CODE, True)
        _check(d, f + ".", (("name", str, 1, 32),), False)
        for k in ("module", "class", "name"):
            if k in d:
                _need(not [c for c in d[k] if c not in _NAME_CHARS], f + "." + k, "may hold only A-Z a-z 0-9 _ . -")


def load(path):
    """Read and validate a profile file; ProfileError (a ValueError) on any problem."""
    try:
        with open(path, "rb") as f:
            n = f.seek(0, 2)  # the size: read no more than a profile can be
            _need(n <= _MAX_FILE, "profile", "%s is larger than %d bytes" % (path, _MAX_FILE))
            f.seek(0)
            raw = f.read(n)
    except OSError as e:
        raise ProfileError("board profile: cannot read %s (%s)" % (path, e))
    try:
        text = raw.decode("utf-8")
    except ValueError:  # UnicodeError
        raise ProfileError("board profile: %s is not UTF-8 text" % path)
    try:
        p = json.loads(text)
    except _JSON_ERRORS:
        # Deep nesting: RecursionError (a RuntimeError) on CPython, MemoryError on
        # a board: the half-built value is garbage now, collect it to build the message.
        text = None
        gc.collect()
        raise ProfileError("board profile: %s is not valid JSON (or nested too deep)" % path)
    return validate(p)


def runtime_word_bits():
    return 64 if sys.maxsize > 0x7FFFFFFF else 32


def heap_scale(p, word_bits=None):
    """Factor from the profile's heap figures to this runtime's heap."""
    wb = word_bits or runtime_word_bits()
    if p["word_bits"] == wb:
        return 1.0
    return UNIX_HEAP_FACTOR if wb > p["word_bits"] else 1 / UNIX_HEAP_FACTOR


def scaled(p, word_bits=None):
    """(heap, warn_free, min_free) in this runtime's bytes."""
    k = heap_scale(p, word_bits)
    return int(p["heap"] * k), int(p["warn_free"] * k), int(p["min_free"] * k)
