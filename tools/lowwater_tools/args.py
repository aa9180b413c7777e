"""Typed argument converters shared by every `lowwater` command.

Each converter takes the text the user typed and returns the value, or raises
argparse.ArgumentTypeError with a message in human words; cli.Parser turns it
into the one-line contract: `lowwater: argument --timeout: expected a positive
number of seconds, got 'nan'` and exit status 1. NaN, infinities, zero where it
makes no sense and values past what the tools can use are refused here, once,
before a command starts (a `--duration nan` would otherwise never end).

    p.add_argument("--timeout", type=args.seconds, default=60.0)
    p.add_argument("--baud", type=args.baud, default=115200)
    p.add_argument("--chunks", type=args.count(0, args.MAX_COUNT), default=0)
    p.add_argument("--fail-on", type=args.fail_on(RUN_FAIL_ON), default=())
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

ArgumentTypeError = argparse.ArgumentTypeError

MAX_SECONDS = 10_000_000.0  # ~115 days: a bound past any session, far below float/select limits
MAX_COUNT = 2**62  # counts (chunks, kills, repetitions): any real value, no bignum surprises
MAX_BAUD = 12_000_000  # fastest USB-serial bridges (FT232H: 12 Mbaud)
MIN_BAUD = 50
MAX_BYTES = 2**40  # heap and sizes in bytes on the host side

# Exit status of a run whose --fail-on condition held (the command itself worked).
FAIL_STATUS = 3


def _shown(text: str) -> str:
    """The value as typed, quoted and cut short (a 400-digit number stays readable)."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _number(text: str) -> float:
    try:
        v = float(text)
    except (ValueError, OverflowError):
        raise ArgumentTypeError(f"expected a number, got {_shown(text)}") from None
    if math.isnan(v) or math.isinf(v):
        raise ArgumentTypeError(f"expected a finite number, got {_shown(text)}")
    return v


def _integer(text: str) -> int:
    s = text.strip().replace("_", "")
    if len(s) > 30:
        raise ArgumentTypeError(f"expected a whole number, got {_shown(text)} (too many digits)")
    try:
        return int(s, 10)
    except ValueError:
        pass
    try:
        return int(s, 0)  # 0x10, 0o7, 0b1
    except ValueError:
        raise ArgumentTypeError(f"expected a whole number, got {_shown(text)}") from None


def seconds(text: str) -> float:
    """A duration or timeout: a finite number of seconds > 0 (at most MAX_SECONDS)."""
    try:
        v = _number(text)
    except ArgumentTypeError:
        raise ArgumentTypeError(f"expected a positive number of seconds, got {_shown(text)}") from None
    if v <= 0:
        raise ArgumentTypeError(f"expected a positive number of seconds, got {_shown(text)}")
    if v > MAX_SECONDS:
        raise ArgumentTypeError(f"{_shown(text)} seconds is too long (at most {MAX_SECONDS:.0f})")
    return v


def count(lo: int = 0, hi: int = MAX_COUNT, what: str = "a whole number"):
    """A converter for a whole number in [lo, hi]."""

    def convert(text: str) -> int:
        v = _integer(text)
        if v < lo or v > hi:
            raise ArgumentTypeError(f"expected {what} from {lo} to {hi}, got {_shown(text)}")
        return v

    convert.__name__ = "count"
    return convert


def number(lo: float, hi: float, what: str = "a number"):
    """A converter for a finite number in [lo, hi]."""

    def convert(text: str) -> float:
        v = _number(text)
        if v < lo or v > hi:
            raise ArgumentTypeError(f"expected {what} from {lo:g} to {hi:g}, got {_shown(text)}")
        return v

    convert.__name__ = "number"
    return convert


byte_size = count(1, MAX_BYTES, "a size in bytes")


def baud(text: str) -> int:
    """A serial baud rate: a whole number from MIN_BAUD to MAX_BAUD."""
    try:
        v = _integer(text)
    except ArgumentTypeError:
        raise ArgumentTypeError(f"expected a baud rate (a whole number such as 115200), got {_shown(text)}") from None
    if not MIN_BAUD <= v <= MAX_BAUD:
        raise ArgumentTypeError(f"baud rate {_shown(text)} out of range ({MIN_BAUD} to {MAX_BAUD})")
    return v


def host_port(text: str) -> tuple[str, int]:
    """HOST:PORT with a TCP port from 0 (any free port) to 65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:0), got {_shown(text)}")
    try:
        n = _integer(port)
    except ArgumentTypeError:
        raise ArgumentTypeError(f"expected HOST:PORT with a port number, got {_shown(text)}") from None
    if not 0 <= n <= 65535:
        raise ArgumentTypeError(f"TCP port {n} out of range (0 to 65535) in {_shown(text)}")
    return host.strip("[]"), n


def socket_address(text: str) -> str:
    """host_port, checked, returned as the text (for options passed on as they are)."""
    host, port = host_port(text)
    return f"{host}:{port}"


def output_file(text: str) -> str:
    """A file the command will write: not a folder, its folder must exist."""
    if not text:
        raise ArgumentTypeError("expected a file name, got an empty one")
    p = Path(text)
    if p.is_dir():
        raise ArgumentTypeError(f"{text} is a folder, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ArgumentTypeError(f"cannot write {text}: folder {parent} does not exist")
    return text


def output_dir(text: str) -> Path:
    """A folder the command will write into: it may not exist yet, but must not be a file."""
    if not text:
        raise ArgumentTypeError("expected a folder name, got an empty one")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise ArgumentTypeError(f"{text} exists and is not a folder")
    return p


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_file(text: str) -> str:
    """An image file for a plot: output_file with a .png, .svg or .pdf suffix."""
    out = output_file(text)
    if Path(out).suffix.lower() not in PLOT_SUFFIXES:
        raise ArgumentTypeError(
            f"{text}: a plot is written as {', '.join(PLOT_SUFFIXES)}, not {Path(out).suffix or 'a file without suffix'}"
        )
    return out


def input_file(text: str) -> str:
    """A file the command reads (checked again when opened: it may go away)."""
    if not text:
        raise ArgumentTypeError("expected a file name, got an empty one")
    if os.path.isdir(text):
        raise ArgumentTypeError(f"{text} is a folder, expected a file")
    return text


# ---- --fail-on -----------------------------------------------------------------

# What a run or a report can be made to fail on (exit status FAIL_STATUS), and
# what each means; shared by `lowwater run --fail-on` and `lowwater report --fail-on`.
FAIL_ON = {
    "leak": "the leak verdict is `leak`",
    "critical": "the budget reached critical (a `mem` record at critical, or a critical event)",
    "drops": "any chunk was dropped",
    "errors": "any `err` record (e.g. a MemoryError the loop survived)",
}


def fail_on(choices: dict[str, str] | None = None):
    """A converter for --fail-on LIST: comma-separated names from `choices` (FAIL_ON
    by default), `all` for every one. Returns a tuple of names, in table order."""
    table = FAIL_ON if choices is None else choices

    def convert(text: str) -> tuple[str, ...]:
        names = [n.strip().lower() for n in text.split(",") if n.strip()]
        if not names:
            raise ArgumentTypeError(f"expected a list such as {','.join(table)}, got {_shown(text)}")
        if "all" in names:
            return tuple(table)
        bad = [n for n in names if n not in table]
        if bad:
            raise ArgumentTypeError(f"unknown condition {_shown(bad[0])}; choose from {', '.join(table)}, all")
        return tuple(n for n in table if n in names)

    convert.__name__ = "fail_on"
    return convert


def fail_on_help(choices: dict[str, str] | None = None) -> str:
    table = FAIL_ON if choices is None else choices
    return f"exit status {FAIL_STATUS} when any of these holds (comma-separated, or all): " + "; ".join(
        f"{k}: {v}" for k, v in table.items()
    )


def failed_conditions(result: dict, wanted: tuple[str, ...]) -> list[str]:
    """The --fail-on conditions that hold, each as a short reason ([] when none of
    `wanted` holds). `result` is a telemetry summary (lw1.Summary.result()) or a
    report (telemetry/report.build()); `leak` is read from result["leak"], a
    report.leak() dict or a verdict string."""
    out = []
    if "leak" in wanted:
        lk = result.get("leak")
        verdict = lk.get("verdict") if isinstance(lk, dict) else lk
        if verdict == "leak":
            slope = lk.get("slope") if isinstance(lk, dict) else None
            out.append("leak" + (f" ({slope:+.1f} B live heap per 1000 chunks)" if isinstance(slope, float) else ""))
    if "critical" in wanted:
        n = (result.get("checks") or {}).get("critical") or 0
        if n or result.get("low_water_level") == "critical" or result.get("last_level") == "critical":
            out.append(f"critical ({n} budget check(s) at critical, low-water {result.get('low_water')} B)")
    if "drops" in wanted and _positive(result.get("dropped")):
        out.append(f"drops ({result['dropped']} chunk(s) dropped)")
    if "errors" in wanted:
        n = max(
            _int_or_0(result.get("errors")),
            _int_or_0(result.get("err_records")),
            _int_or_0(result.get("memory_errors")),
        )
        if n:
            out.append(f"errors ({n} error(s) reported by the firmware)")
    return out


def _int_or_0(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _positive(v) -> bool:
    return _int_or_0(v) > 0
