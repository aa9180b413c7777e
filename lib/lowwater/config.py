# lowwater.config: load and validate a board profile (boards/*.json), the same
# code on the board and on the host (`lowwater check`).
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


class ProfileError(ValueError):
    """A board profile is unusable; the message names the field."""


def _need(cond, field, msg):
    if not cond:
        raise ProfileError("board profile: %s %s" % (field, msg))


def validate(p):
    """Check a profile dict; return it unchanged or raise ProfileError naming the field."""
    _need(isinstance(p, dict), "profile", "must be a JSON object")
    for field, typ in _FIELDS:
        _need(field in p, field, "is missing")
        v = p[field]
        _need(type(v) is typ, field, "must be %s, got %s" % (typ.__name__, type(v).__name__))
    for field in (
        "heap",
        "warn_free",
        "min_free",
        "check_every",
        "chunk_size",
        "chunk_count",
        "wdt_ms",
        "fs_size",
        "flash_size",
    ):
        _need(p[field] > 0, field, "must be > 0")
    for field in ("store_items", "pool_blocks", "flash_offset"):
        _need(p[field] >= 0, field, "must be >= 0")
    _need(p["word_bits"] in (32, 64), "word_bits", "must be 32 or 64")
    _need(p["family"] in _FAMILIES, "family", "must be one of " + ", ".join(_FAMILIES))
    _need(p["warn_free"] <= p["heap"], "warn_free", "(%d) is above heap (%d)" % (p["warn_free"], p["heap"]))
    _need(p["min_free"] <= p["warn_free"], "min_free", "(%d) is above warn_free (%d)" % (p["min_free"], p["warn_free"]))
    ring = p["chunk_size"] * p["chunk_count"]
    _need(ring < p["heap"] - p["warn_free"], "chunk_count", "ring of %d bytes does not fit in heap - warn_free" % ring)
    _need(p["fs_size"] <= p["flash_size"], "fs_size", "is above flash_size")
    # Optional flash-log settings (lowwater.app.log_options gives the defaults).
    for field, low in (("log_every", 0), ("log_file_bytes", 64), ("log_files", 2)):
        if field in p:
            _need(type(p[field]) is int and p[field] >= low, field, "must be an int >= %d" % low)
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
    for field in ("seed", "rate_hz", "width"):
        _need(field in s, "sensor." + field, "is missing")
        _need(type(s[field]) is int, "sensor." + field, "must be int")
    _need(s["width"] in (1, 2), "sensor.width", "must be 1 or 2 (bytes per sample)")
    _need(s["rate_hz"] > 0, "sensor.rate_hz", "must be > 0")
    _need(p["chunk_size"] % s["width"] == 0, "chunk_size", "must be a multiple of sensor.width")
    if s["kind"] == "adc":
        _need(type(s.get("pin")) is int, "sensor.pin", "must be int for an adc sensor")
    return p


def load(path):
    """Read and validate a profile file; ProfileError (a ValueError) on any problem."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ProfileError("board profile: cannot read %s (%s)" % (path, e))
    try:
        p = json.loads(text)
    except ValueError:
        raise ProfileError("board profile: %s is not valid JSON" % path)
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
