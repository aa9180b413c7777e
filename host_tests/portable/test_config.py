# Board profiles: every shipped profile is valid; a bad one fails naming the field.
import ptest
from lowwater import config

BOARDS = ("unix", "esp32", "esp32s3", "rp2040", "pico_w")


def _boards_dir():
    # The test process runs from the repository root on both runtimes.
    return "boards/"


def _good():
    return config.load(_boards_dir() + "unix.json")


def _message(p):
    e = ptest.raises(config.ProfileError, config.validate, p)
    assert isinstance(e, ValueError)
    return str(e)


def test_every_shipped_profile_is_valid():
    for name in BOARDS:
        p = config.load(_boards_dir() + name + ".json")
        assert p["name"] == name
        assert p["min_free"] <= p["warn_free"] <= p["heap"]


def test_missing_field_is_named():
    for field in ("heap", "warn_free", "sensor", "chunk_size"):
        p = _good()
        del p[field]
        msg = _message(p)
        assert field in msg and "missing" in msg, msg


def test_wrong_type_is_named():
    p = _good()
    p["heap"] = "128K"
    msg = _message(p)
    assert "heap" in msg and "int" in msg, msg
    p = _good()
    p["check_every"] = True  # a bool is not a count
    assert "check_every" in _message(p)


def test_budget_above_heap_is_refused():
    p = _good()
    p["warn_free"] = p["heap"] + 1
    assert "warn_free" in _message(p)
    p = _good()
    p["min_free"] = p["warn_free"] + 1
    assert "min_free" in _message(p)


def test_ring_larger_than_heap_is_refused():
    p = _good()
    p["chunk_count"] = p["heap"] // p["chunk_size"]
    assert "chunk_count" in _message(p)


def test_bad_sensor_fields_are_named():
    p = _good()
    p["sensor"]["width"] = 3
    assert "sensor.width" in _message(p)
    p = _good()
    p["sensor"] = {"kind": "thermocouple", "seed": 1, "rate_hz": 1, "width": 2}
    assert "sensor.kind" in _message(p)


def test_unreadable_and_malformed_files():
    msg = str(ptest.raises(config.ProfileError, config.load, "/nonexistent/board.json"))
    assert "cannot read" in msg
    msg = str(ptest.raises(config.ProfileError, config.load, "pyproject.toml"))
    assert "JSON" in msg


def test_scaled_maps_a_32_bit_board_onto_a_64_bit_heap():
    p = config.load(_boards_dir() + "esp32.json")
    heap, warn, low = config.scaled(p, 64)
    assert heap == int(p["heap"] * config.UNIX_HEAP_FACTOR)
    assert warn == int(p["warn_free"] * config.UNIX_HEAP_FACTOR)
    assert config.scaled(p, 32) == (p["heap"], p["warn_free"], p["min_free"])
    u = config.load(_boards_dir() + "unix.json")
    assert config.scaled(u, 64)[0] == u["heap"]


def test_optional_log_settings_are_checked():
    p = _good()
    p["log_every"] = 0  # logging off is fine
    config.validate(p)
    for field, bad in (("log_every", -1), ("log_file_bytes", 10), ("log_files", "4")):
        p = _good()
        p[field] = bad
        assert field in _message(p)


# --- every field has a type and a range; what validate accepts, the firmware runs ----


def _tmpfile(data):
    import os

    path = (os.getenv("TMPDIR") or "/tmp") + "/lw_profile_" + "".join("%02x" % b for b in os.urandom(6))
    with open(path, "wb") as f:
        f.write(data)
    return path


def _remove(path):
    import os

    os.remove(path)


def _set(p, field, v):
    if field.startswith("sensor."):
        p["sensor"][field[7:]] = v
    else:
        p[field] = v


# (field, bad values): each must fail with a message naming the field.
BAD = (
    ("name", ("my board", "b\u00f8ard", "", "x" * 33, "a\nb", 7, None, ["unix"])),
    ("chip", ("ESP 32", "", {"a": 1})),
    ("family", ("avr", 1)),
    ("word_bits", (16, 31, True)),
    ("heap", (0, -1, 1024, 1 << 40, 131072.0, "131072", True)),
    ("warn_free", (0, -5, 1 << 40)),
    ("min_free", (0, 1 << 40)),
    ("check_every", (0, 1000001, 1 << 40, [1])),
    ("chunk_size", (0, 65536, 255)),
    ("chunk_count", (0, 65536, 10**6)),
    ("store_items", (-1, 65536, 10**9, {"n": 1})),
    ("pool_blocks", (-1, 65536, 70000, 60000)),
    ("flash_offset", (-1, 1 << 40)),
    ("flash_size", (0, 1 << 40)),
    ("fs_size", (0, 1 << 40, 1 << 30, 4097, 4096, 2097152 + 4096)),
    ("wdt_ms", (0, 99, 3600001, 1 << 40)),
    ("sensor.kind", ("thermocouple", None)),
    ("sensor.seed", (-1, 1 << 30, 1 << 40, "1")),
    ("sensor.rate_hz", (0, 10**7)),
    ("sensor.width", (0, 3)),
    ("log_every", (-1, 65536, "4")),
    ("log_file_bytes", (10, 1 << 20)),
    ("log_files", (1, 65, 60)),
    ("description", ("x" * 201, 5)),
)


def test_every_field_has_a_type_and_a_range():
    n = 0
    for field, values in BAD:
        for v in values:
            p = _good()
            _set(p, field, v)
            msg = _message(p)
            assert field in msg or (field == "pool_blocks" and "pool_blocks" in msg), (field, v, msg)
            n += 1
    assert n == sum([len(v) for _, v in BAD])
    p = _good()
    p["family"] = "rp2040"
    p["wdt_ms"] = 8389  # the RP2040 watchdog's limit
    assert "wdt_ms" in _message(p)
    p = _good()
    p["sensor"] = {"kind": "adc", "seed": 1, "rate_hz": 1, "width": 2, "pin": 64}
    assert "sensor.pin" in _message(p)


def test_files_that_are_not_profiles():
    cases = (
        (b" " * 16385, "larger than"),
        (b"[" * 5000 + b"]" * 5000, "JSON"),  # deep nesting: RecursionError on CPython
        (b'{"name": "\xff\xfe"}', "UTF-8"),
        (b"\x00\x01", "JSON"),
        (b"", "JSON"),
        (b"[1, 2]", "JSON object"),
    )
    for data, want in cases:
        path = _tmpfile(data)
        try:
            e = ptest.raises(config.ProfileError, config.load, path)
        finally:
            _remove(path)
        assert want in str(e), (data[:20], str(e))
