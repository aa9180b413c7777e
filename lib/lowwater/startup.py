# lowwater.startup: boot-time wiring of the firmware (docs/pipeline.md): the
# profile's sensor, its stages, the optional MQTT telemetry, the watchdog, the
# reset cause and the flash log, around a lowwater.app.Firmware.
#
# Boot-only code: lowwater.app.main() imports this module for prepare(), drops
# it before the firmware's buffers are allocated, imports it again for arm(),
# then drops it (and lowwater.config, when main() loaded it) from sys.modules,
# so their code is freed before the loop runs (docs/distribution.md).
# Nothing here runs per chunk.
import gc

from lowwater import __version__
from lowwater._compat import ticks_diff, ticks_us
from lowwater.config import load, validate

_DEFAULT_PROFILE = "board.json"
# Relative: beside board.json in the working directory, so "/log" on a board
# (cwd is /) and never a path of the host on the unix port.
_DEFAULT_LOG = "log"

# Defaults of the optional flash-log keys; their bounds are checked by
# lowwater.config.validate, the one place for them.
_LOG_DEFAULTS = (("log_every", 4), ("log_file_bytes", 16384), ("log_files", 4))


def log_options(p):
    """[every, file_bytes, files] of the optional profile keys log_every (windows
    per flush, 0 = no log; default 4), log_file_bytes (16384), log_files (4).
    ValueError (naming the field) for a profile that config.validate refuses."""
    validate(p)
    return [p.get(key, default) for key, default in _LOG_DEFAULTS]


def _getenv(name):
    try:
        from os import getenv
    except ImportError:
        return None
    return getenv(name)


# (word in the `reset` record, machine constant)
_CAUSES = (
    ("power", "PWRON_RESET"),
    ("hard", "HARD_RESET"),
    ("wdt", "WDT_RESET"),
    ("deepsleep", "DEEPSLEEP_RESET"),
    ("soft", "SOFT_RESET"),
)


def _reset_cause(machine):
    # machine.reset_cause() as a word, where the port has it (None elsewhere).
    try:
        c = machine.reset_cause()
    except AttributeError:
        return None
    for word, name in _CAUSES:
        if getattr(machine, name, None) == c:
            return word
    return "other"


def open_log(fw, path):
    """Open (and recover) the FlashLog at `path` for fw, per the profile's log_*
    keys; the `logopen` record reports the recovered seq and how long it took.
    Returns the log, or None when the flash cannot hold one (reported as `err`).
    Never raises: a board whose log cannot open runs on without one."""
    every, file_bytes, files = log_options(fw.profile)
    if not every or not path:
        return None
    t0 = ticks_us()
    try:
        # Imported here, after the firmware's buffers: they need contiguous
        # blocks, compiling flashlog.py on the board only transient ones.
        from lowwater.flashlog import FlashLog

        log = FlashLog(path, max_file_bytes=file_bytes, max_files=files)
    except Exception as e:  # OSError, MemoryError, ...: the loop runs on without a log
        e = type(e).__name__  # drop the exception (and its traceback) before reporting
        gc.collect()
        fw.log_errors += 1
        fw._report("log", e)
        return None
    us = ticks_diff(ticks_us(), t0)
    fw.use_log(log, every)
    try:
        fw.tele.record("logopen", "seq", log.seq, "us", us, "torn", log.recovered_truncated_bytes)
    except Exception:
        fw.tele_errors += 1
    return log


def _sensor(profile):
    from lowwater import sensor as _s

    try:
        return _s.from_profile(profile["sensor"])
    except ImportError:
        s = profile["sensor"]
        if s["kind"] != "adc":
            raise  # a custom driver's module is missing: the message names it
        # No machine.ADC (the plain unix port): simulate the same channel.
        print("lowwater: no machine.ADC here, simulating the", s["kind"], "sensor")
        return _s.SimSensor(s.get("seed", 1), s["width"], s["rate_hz"])


def prepare(profile_path=None, chunks=None, sensor=None, log_path=None):
    """main()'s first half: (profile, chunks, sensor, log_path, telemetry,
    publisher), or None after a bad profile on a board (printed as `lowwater:
    board profile: ...`). SystemExit(2) after a bad profile on the unix port."""
    env_board = _getenv("LOWWATER_BOARD")
    on_board = profile_path is None and env_board is None
    path = profile_path or env_board or _DEFAULT_PROFILE
    if chunks is None:
        chunks = int(_getenv("LOWWATER_CHUNKS") or 0)
    if log_path is None:
        log_path = _getenv("LOWWATER_LOG") or (_DEFAULT_LOG if on_board else None)
    try:
        profile = load(path)
        log_options(profile)
    except ValueError as e:
        # A bad profile fails at start with a message naming the field.
        print("lowwater:", e)
        if on_board:
            return None
        raise SystemExit(2)
    if sensor is None:
        sensor = _sensor(profile)
    tele = pub = None
    if "mqtt" in profile:  # opt-in: publish the records to a broker too (docs/fleet.md)
        from lowwater import mqtt

        tele, pub = mqtt.telemetry(profile, __version__)
    return profile, chunks, sensor, log_path, tele, pub


def arm(fw, log_path):
    """main()'s second half, once the firmware's buffers are allocated: the
    `boot` record, the reset cause, the watchdog and the flash log."""
    fw.boot()
    try:
        import machine
    except ImportError:
        machine = None  # CPython
    if machine is not None:
        cause = _reset_cause(machine)
        if cause is not None:
            fw.tele.record("reset", "cause", cause)
        try:
            fw.use_watchdog(machine.WDT(timeout=fw.profile["wdt_ms"]))
        except AttributeError:
            pass  # the plain unix port's machine module has no WDT
    open_log(fw, log_path)
