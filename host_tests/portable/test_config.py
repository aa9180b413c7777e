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
    msg = str(ptest.raises(config.ProfileError, config.load, "README.md"))
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
