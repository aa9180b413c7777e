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

# field -> (type, required). Types are checked exactly (bool is not an int here).
_FIELDS = (
    ("name", str),
    ("family", str),
    ("chip", str),
    ("word_bits", int),
    ("heap", int),
    ("warn_free", int),
    ("min_free", int),
    ("check_every", int),
    ("chunk_size", int),
    ("chunk_count", int),
    ("store_items", int),
    ("pool_blocks", int),
    ("sensor", dict),
    ("flash_offset", int),
    ("flash_size", int),
    ("fs_size", int),
    ("wdt_ms", int),
)
_FAMILIES = ("unix", "esp32", "rp2040")
_SENSORS = ("sim", "adc")
# Characters of `name` and `chip`: they go into telemetry records as tokens.
_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_MAX_BYTES = 1 << 27  # heap, flash: 128 MiB (small ints on any board)
_MAX_FILE = 16384  # bytes of a profile file
_FS_BLOCK = 4096  # littlefs block of the boards and of the virtual board's image
# Inclusive ranges of the int fields; warn_free and min_free are bounded by heap.
_RANGES = (
    ("heap", 8192, _MAX_BYTES),
    ("warn_free", 1, _MAX_BYTES),
    ("min_free", 1, _MAX_BYTES),
    ("check_every", 1, 1000000),
    ("chunk_size", 1, 65535),
    ("chunk_count", 1, 65535),
    ("store_items", 0, 65535),
    ("pool_blocks", 0, 65535),
    ("flash_offset", 0, _MAX_BYTES),
    ("flash_size", _FS_BLOCK, _MAX_BYTES),
    ("fs_size", 4 * _FS_BLOCK, _MAX_BYTES),
    ("wdt_ms", 100, 3600000),
)
# Optional: (field, low, high); lowwater.app.log_options gives the defaults.
_LOG_RANGES = (("log_every", 0, 65535), ("log_file_bytes", 64, 65535 + 12), ("log_files", 2, 64))
_RP2040_WDT_MS = 8388  # the RP2040 watchdog counts at most 0x7fffff us
# Built once: `except (A, B)` builds its tuple when it runs, which fails with
# the heap exhausted (MicroPython).
_JSON_ERRORS = (ValueError, RuntimeError, MemoryError)


class ProfileError(ValueError):
    """A board profile is unusable; the message names the field."""


def _need(cond, field, msg):
    if not cond:
        raise ProfileError("board profile: %s %s" % (field, msg))


def _name(p, field, maxlen):
    v = p[field]
    ok = 0 < len(v) <= maxlen
    for c in v:
        if c not in _NAME_CHARS:
            ok = False
    _need(ok, field, "must be 1..%d characters of A-Z a-z 0-9 _ . -" % maxlen)


def _range(p, field, low, high):
    v = p[field]
    _need(low <= v <= high, field, "must be in %d..%d, got %d" % (low, high, v))


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
    for field, typ in _FIELDS:
        _need(field in p, field, "is missing")
        v = p[field]
        _need(type(v) is typ, field, "must be %s, got %s" % (typ.__name__, type(v).__name__))
    for field in ("description", "heap_source"):
        if field in p:
            _need(type(p[field]) is str and len(p[field]) <= 200, field, "must be a string of at most 200 characters")
    _name(p, "name", 32)
    _name(p, "chip", 32)
    for field, low, high in _RANGES:
        _range(p, field, low, high)
    _need(p["word_bits"] in (32, 64), "word_bits", "must be 32 or 64")
    _need(p["family"] in _FAMILIES, "family", "must be one of " + ", ".join(_FAMILIES))
    _need(p["warn_free"] <= p["heap"], "warn_free", "(%d) is above heap (%d)" % (p["warn_free"], p["heap"]))
    _need(p["min_free"] <= p["warn_free"], "min_free", "(%d) is above warn_free (%d)" % (p["min_free"], p["warn_free"]))
    ring = p["chunk_size"] * p["chunk_count"]
    _need(ring < p["heap"] - p["warn_free"], "chunk_count", "ring of %d bytes does not fit in heap - warn_free" % ring)
    # The firmware's own objects may take a quarter of what is above warn_free:
    # the code (compiled from source: about half of the unix profile's heap),
    # telemetry and the periodic check need the rest.
    n = static_bytes(p)
    _need(
        n <= (p["heap"] - p["warn_free"]) // 4,
        "pool_blocks",
        "with chunk_size, chunk_count and store_items needs ~%d bytes, more than (heap - warn_free) / 4" % n,
    )
    _need(p["fs_size"] % _FS_BLOCK == 0, "fs_size", "must be a multiple of %d" % _FS_BLOCK)
    _need(p["flash_offset"] + p["fs_size"] <= p["flash_size"], "fs_size", "plus flash_offset is above flash_size")
    if p["family"] == "rp2040":
        _need(p["wdt_ms"] <= _RP2040_WDT_MS, "wdt_ms", "must be <= %d on rp2040" % _RP2040_WDT_MS)
    # Optional flash-log settings (lowwater.app.log_options gives the defaults).
    for field, low, high in _LOG_RANGES:
        if field in p:
            _need(type(p[field]) is int, field, "must be int, got %s" % type(p[field]).__name__)
            _range(p, field, low, high)
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
    _need(type(s.get("kind")) is str and s["kind"] in _SENSORS, "sensor.kind", "must be one of " + ", ".join(_SENSORS))
    for field, high in (("seed", 0x3FFFFFFF), ("rate_hz", 1000000), ("width", 2)):
        _need(field in s, "sensor." + field, "is missing")
        v = s[field]
        _need(type(v) is int, "sensor." + field, "must be int, got %s" % type(v).__name__)
        _need(0 <= v <= high, "sensor." + field, "must be in 0..%d, got %d" % (high, v))
    _need(s["width"] in (1, 2), "sensor.width", "must be 1 or 2 (bytes per sample)")
    _need(s["rate_hz"] > 0, "sensor.rate_hz", "must be > 0")
    _need(p["chunk_size"] % s["width"] == 0, "chunk_size", "must be a multiple of sensor.width")
    if s["kind"] == "adc":
        _need(type(s.get("pin")) is int, "sensor.pin", "must be int for an adc sensor")
        _need(0 <= s["pin"] <= 63, "sensor.pin", "must be in 0..63, got %d" % s["pin"])
    return p


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
