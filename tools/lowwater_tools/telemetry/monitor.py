"""`lowwater monitor --port P`: read a board's serial output, show its telemetry live, save it.

The port is any pyserial URL (serial.serial_for_url): /dev/ttyUSB0, /dev/pts/N,
socket://host:port, rfc2217://... When the port drops (board reset on native
USB, cable, relay restart) it is reopened with backoff until --duration ends or
Ctrl-C; --no-reconnect stops instead. The CSV is flushed per record and the raw
capture per read, so a crash loses nothing.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import select
import time

import serial

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.live import StopSignals, render_summary
from lowwater_tools.telemetry.session import Session

HELP = "read a board's serial REPL: telemetry live, CSV and raw capture, reconnecting"

# Reads are non-blocking (timeout 0: one os.read/recv per call) and we wait for
# data ourselves: with a timeout, pyserial's read() loops and, when the line drops
# mid-call, raises and throws away what it had already read in that call.
WAIT = 0.1  # s: longest wait for data; bounds the reaction to Ctrl-C and --duration
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0


def add_arguments(p):
    p.add_argument(
        "--port",
        required=True,
        help="serial port or pyserial URL (/dev/ttyUSB0, socket://host:port), or auto: the one board attached",
    )
    p.add_argument("--baud", type=targs.baud, default=115200, help="baud rate (default 115200)")
    p.add_argument(
        "--board",
        default=None,
        help="board profile: the budget to show when the boot record was missed, and for --plot",
    )
    p.add_argument("--csv", type=targs.output_file, metavar="FILE", help="save the records as CSV (flushed per record)")
    p.add_argument("--capture", type=targs.output_file, metavar="FILE", help="save the raw bytes received (everything)")
    p.add_argument(
        "--plot",
        type=targs.plot_file,
        metavar="FILE",
        help="plot the records to FILE at the end (lowwater_tools.telemetry.plot)",
    )
    p.add_argument("--duration", type=targs.seconds, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--no-reconnect", action="store_true", help="stop when the port drops instead of reopening it")
    p.add_argument("--quiet", action="store_true", help="no live view or record lines: only the summary")
    p.add_argument(
        "--reset",
        action="store_true",
        help="soft-reset the board once attached (Ctrl-C, Ctrl-D at the REPL), so its boot record is seen",
    )
    p.add_argument(
        "--reset-timeout",
        type=targs.seconds,
        default=10.0,
        metavar="S",
        help="with --reset: wait S s for the REPL prompt",
    )
    p.add_argument(
        "--unix-port",
        action="store_true",
        help="the board is a virtual board (64-bit unix port): figures are unix-port heap bytes; "
        "the profile's budget is scaled to them",
    )


def open_port(port: str, baud: int):
    """Open a pyserial URL for reading; UserError with a hint when it cannot be opened."""
    try:
        return _serial_open(port, baud)
    except ValueError as e:  # bad URL, bad baud rate
        raise UserError(f"cannot open {port}: {e}") from None
    except (serial.SerialException, OSError) as e:
        raise UserError(f"cannot open {port}: {explain_open_error(e)}") from None


def _serial_open(url: str, baud: int):
    ser = serial.serial_for_url(url, baudrate=baud, timeout=0, exclusive=True, do_not_open=True)
    # pyserial's socket:// open() ends with reset_input_buffer(), which throws away
    # what the peer sent while we connected (often the boot banner and `boot`
    # record). A monitor keeps every byte. (Device ports flush with a private
    # method before any data of interest can arrive; they are left as they are.)
    ser.reset_input_buffer = lambda: None
    try:
        ser.open()
    finally:
        del ser.reset_input_buffer
    return ser


def explain_open_error(e: Exception) -> str:
    code = getattr(e, "errno", None)
    inner = e.__context__ if isinstance(e.__context__, OSError) else None
    if code is None and inner is not None:
        code = inner.errno
    text = str(e)
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "busy" in text.lower():
        return "port busy: is another program using it? (mpremote, a serial terminal, another monitor)"
    if code == errno.ENOENT or "No such file" in text:
        return "no such port (is the board plugged in? `python -m serial.tools.list_ports` lists the ports)"
    if code == errno.EACCES or "Permission denied" in text:
        return "permission denied (on Linux add yourself to the dialout group, then log in again)"
    if code == errno.ECONNREFUSED or "refused" in text.lower():
        return "connection refused (is the relay or board server running?)"
    return (inner.strerror if inner is not None and inner.strerror else text) or type(e).__name__


def _plot_module():
    try:
        found = importlib.util.find_spec(f"{__package__}.plot")
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UserError("plotting not available (lowwater_tools.telemetry.plot is missing)")
    mod = importlib.import_module(f"{__package__}.plot")
    if not hasattr(mod, "plot"):
        raise UserError("plotting not available (lowwater_tools.telemetry.plot has no plot())")
    return mod


class _SoftReset:
    """Soft-reset the board through the monitor's own connection, so the monitor is
    attached before the board boots and sees its `boot` record: Ctrl-C twice and
    Ctrl-B to reach the friendly REPL, then Ctrl-D at its prompt (boot.py and
    main.py run). Bounded: gives up with a note after `timeout` seconds."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.tail = b""
        self.done = False
        self.failed = False

    def start(self, ser, view) -> None:
        if not self._write(ser, view, b"\r\x03\x03"):
            return
        time.sleep(0.05)
        self._write(ser, view, b"\r\x02")

    def seen(self, ser, view, data: bytes) -> None:
        if self.done:
            return
        self.tail = (self.tail + data)[-64:]
        if b">>> " in self.tail:
            if self._write(ser, view, b"\x04"):
                self.done = True
        elif time.monotonic() > self.deadline:
            self.done = self.failed = True
            view.note(f"no REPL prompt within {self.timeout:g} s: the board was not reset")

    def _write(self, ser, view, data: bytes) -> bool:
        try:
            ser.write(data)
            ser.flush()
            return True
        except (serial.SerialException, OSError) as e:
            self.done = self.failed = True
            view.note(f"cannot reset the board: {e}")
            return False


def run(args) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be > 0")
    prof = boards.load(args.board) if args.board else None
    plot_mod = _plot_module() if args.plot else None  # fail before watching, not after
    series = plot_mod.Series() if plot_mod is not None else None  # bounded, however long the session
    port = _resolve_port(args)
    ser = open_port(port, args.baud)
    status = 0
    reason = None
    try:
        ses = Session(
            capture=args.capture,
            csv=args.csv,
            profile=prof,
            quiet=args.quiet,
            title=f"lowwater monitor {port}",
            word_bits=64 if args.unix_port else None,
            plot_series=series,
        )
    except BaseException:
        _close(ser)
        raise
    view = ses.view
    reset = _SoftReset(args.reset_timeout) if args.reset else None
    start = time.monotonic()
    deadline = start + args.duration if args.duration else None
    try:
        with StopSignals() as stop, ses:

            def done():
                return stop.count > 0 or (deadline is not None and time.monotonic() >= deadline)

            if reset is not None:
                ses.hold = True  # the run being watched starts at the boot record
                reset.start(ser, view)
            while not done():
                try:
                    data = ser.read(65536)
                    if not data:
                        if reset is not None:
                            reset.seen(ser, view, b"")
                            if reset.failed:
                                ses.release()
                        _wait_readable(ser, WAIT)
                        continue
                except (serial.SerialException, OSError) as e:
                    ses.flush()  # a partial line must not join the next connection's
                    _close(ser)
                    ser = None
                    view.note(f"port lost: {e}")
                    if args.no_reconnect:
                        status = 1
                        reason = "the port dropped (--no-reconnect)"
                        break
                    ser = _reconnect(args, port, view, done)
                    if ser is None:
                        break
                    view.note("reconnected", style="green")
                    continue
                ses.feed(data)
                if reset is not None:
                    reset.seen(ser, view, data)
                    if reset.failed:
                        ses.release()
            ses.flush()
            if ses.hold:  # no boot record came after all: show what there was
                view.note("no boot record after the reset: showing the records seen before it")
                ses.release()
            if reason is None:
                took = time.monotonic() - start
                if stop.count:
                    reason = f"after {took:.0f} s (Ctrl-C)"
                else:
                    reason = f"after {args.duration:g} s (time limit)"
    finally:
        _close(ser)
    result = ses.result()
    render_summary(result, console=view.console, plain=view.plain, title=f"lowwater monitor: {port}", stopped=reason)
    if not result["records"]:
        view.note(f"no telemetry seen on {port} ({ses.parser.stats.bytes} bytes read)")
    if plot_mod is not None:
        plot_mod.plot(series, args.plot, profile=prof)
    if status:
        view.note("the port dropped and --no-reconnect was given")
    return status


def _resolve_port(args) -> str:
    from lowwater_tools.boardio import devices

    return devices.resolve_port(args.port) or args.port


def _reconnect(args, port, view, done):
    """Reopen the port with backoff; None when stopped (Ctrl-C, --duration) first."""
    wait = BACKOFF_MIN
    view.note(f"reconnecting to {port} ...")
    while not done():
        try:
            return _serial_open(port, args.baud)
        except (serial.SerialException, OSError, ValueError):
            pass
        end = time.monotonic() + wait
        while time.monotonic() < end and not done():
            time.sleep(0.05)
        wait = min(BACKOFF_MAX, wait * 2)
    return None


def _wait_readable(ser, timeout: float):
    try:
        fd = ser.fileno()
    except Exception:  # a URL handler without a file descriptor: poll
        time.sleep(min(timeout, 0.02))
        return
    try:
        select.select([fd], [], [], timeout)
    except (OSError, ValueError):
        time.sleep(min(timeout, 0.02))


def _close(ser):
    if ser is not None:
        try:
            ser.close()
        except Exception:
            pass
