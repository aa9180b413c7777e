"""`lowwater run --board B`: run the firmware on the MicroPython unix port, show its telemetry live.

Runs `micropython -X heapsize=<board's unix heap> firmware/main.py` with lib/ on
MICROPYPATH (compiled to .mpy in build/mpy-x64, as deployed; --source: the .py), LOWWATER_BOARD=<profile json> and LOWWATER_CHUNKS=<N, 0 = until
Ctrl-C>. Ctrl-C (or --duration) is forwarded to the firmware as one SIGINT; it
prints its `end` record and exits; if it has not exited within a few seconds it
is killed. Exit status 0 only when the firmware exited cleanly and printed `end`.
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools import launch
from lowwater_tools.boardio import mpybuild
from lowwater_tools.paths import FIRMWARE, LIB
from lowwater_tools.telemetry.live import StopSignals, render_summary
from lowwater_tools.telemetry.report import LeakFit, leak
from lowwater_tools.telemetry.session import Session

HELP = "run the firmware on the MicroPython unix port with a board-shaped heap, telemetry live"

STOP_TIMEOUT = 5.0  # seconds the firmware gets to print `end` after SIGINT


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--chunks",
        type=targs.count(0),
        default=0,
        metavar="N",
        help="stop after N chunks (default 0: run until Ctrl-C)",
    )
    p.add_argument(
        "--heap",
        type=targs.byte_size,
        default=None,
        metavar="BYTES",
        help="unix-port heap (default: the board's heap mapped to the 64-bit unix port)",
    )
    p.add_argument(
        "--duration", type=targs.seconds, default=None, metavar="S", help="stop after S seconds, as Ctrl-C does"
    )
    p.add_argument(
        "--capture",
        type=targs.output_file,
        metavar="FILE",
        help="save the raw output bytes (everything, noise included)",
    )
    p.add_argument(
        "--csv", type=targs.output_file, metavar="FILE", help="save the parsed records as CSV (flushed per record)"
    )
    p.add_argument("--quiet", action="store_true", help="no live view or record lines: only the summary")
    p.add_argument(
        "--source",
        action="store_true",
        help="import lib/ as .py source, compiled on the heap (default: lib/ compiled with mpy-cross, as "
        "`lowwater deploy --mpy` puts it on a board; compiling from source needs far more heap at import)",
    )
    p.add_argument("--fail-on", type=targs.fail_on(), default=(), metavar="LIST", help=targs.fail_on_help())
    # For tests and firmware development: another main script, a shorter grace period.
    p.add_argument("--main", default=None, help=argparse.SUPPRESS)
    p.add_argument("--stop-timeout", type=targs.seconds, default=STOP_TIMEOUT, help=argparse.SUPPRESS)


def firmware_command(main: Path, heap: int) -> list[str]:
    return launch.command([str(main)], heap)


def firmware_env(profile_path: Path, chunks: int, lib: Path = LIB) -> dict:
    extra = {"LOWWATER_BOARD": str(Path(profile_path).resolve()), "LOWWATER_CHUNKS": str(chunks)}
    return launch.env(lib=lib, extra=extra)


def run(args) -> int:
    if args.chunks < 0:
        raise UserError("--chunks must be >= 0")
    if args.heap is not None and args.heap <= 0:
        raise UserError("--heap must be > 0")
    prof = boards.load(args.board)
    ppath = boards.profile_path(args.board)
    heap = args.heap or boards.unix_heap(prof)
    main = Path(args.main) if args.main else FIRMWARE / "main.py"
    if not main.is_file():
        raise UserError(f"{main} not found")
    cmd = firmware_command(main, heap)
    env = firmware_env(ppath, args.chunks, LIB if args.source else mpybuild.host_lib("x64"))

    noise = collections.deque(maxlen=40)  # last lines that were not records (tracebacks)
    fit = LeakFit() if "leak" in args.fail_on else None
    ses = Session(
        capture=args.capture,
        csv=args.csv,
        profile=prof,
        quiet=args.quiet,
        title="lowwater run",
        word_bits=64,  # the unix port's bytes: the profile's budget scaled as the firmware scales it
        on_noise=lambda line: noise.append(line.rstrip(b"\r").decode("utf-8", "replace")),
        plot_series=fit,  # every record also goes to the leak fit (bounded memory) for --fail-on leak
    )
    view = ses.view
    killed = False
    with StopSignals() as stop, ses:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            killed = _pump(proc, ses, stop, args)
        finally:
            if proc.poll() is None:  # an exception in the loop: never leave it running
                _kill(proc)
                proc.wait(timeout=5)
            proc.stdout.close()
        ses.flush()

    result = view.summary.result()
    render_summary(result, console=view.console, plain=view.plain, title=f"lowwater run: {prof['name']}")
    status = _verdict(proc.returncode, result, noise, killed, heap, args.stop_timeout)
    if args.fail_on:
        failed = targs.failed_conditions(
            dict(result, leak=leak(fit, check_every=prof.get("check_every")) if fit else None), args.fail_on
        )
        if failed:
            print(f"lowwater: --fail-on: {'; '.join(failed)}", file=sys.stderr)
            return status or targs.FAIL_STATUS
    return status


def _pump(proc, ses, stop, args):
    """Read the firmware's output until EOF; forward the first stop request as SIGINT."""
    view = ses.view
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + args.duration if args.duration else None
    sent_at = None  # when SIGINT was forwarded
    killed = False
    eof = False
    while not eof:
        now = time.monotonic()
        if sent_at is None and (stop.count or (deadline is not None and now >= deadline)):
            if proc.poll() is None:
                view.note("stopping: Ctrl-C sent to the firmware")
                _signal(proc, signal.SIGINT)
            sent_at = now
        if (
            sent_at is not None
            and proc.poll() is None
            and not killed
            and (stop.count >= 2 or now - sent_at > args.stop_timeout)
        ):
            view.note(f"firmware did not stop within {args.stop_timeout:g} s: killed", style="red")
            _kill(proc)
            killed = True
        try:
            ready, _, _ = select.select([fd], [], [], 0.1)
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            eof = True
            break
        ses.feed(data)
    # stdout closed: the firmware has exited or is about to.
    try:
        proc.wait(timeout=args.stop_timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        killed = True
        proc.wait(timeout=5)
    return killed


def _signal(proc, sig):
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only it
    except (ProcessLookupError, PermissionError):
        _signal(proc, signal.SIGKILL)


def _verdict(rc, result, noise, killed, heap, stop_timeout) -> int:
    """0 for a clean run with an `end` record; else explain on stderr and return 1."""
    tail = [line for line in noise if line.strip()]
    mem_error = next((line for line in reversed(tail) if "MemoryError" in line), None)
    problems = []
    if killed:
        problems.append(f"the firmware did not stop within {stop_timeout:g} s after Ctrl-C and was killed")
    elif rc is not None and rc < 0:
        problems.append(f"the firmware was killed by signal {-rc}")
    elif rc:
        problems.append(f"the firmware crashed (exit status {rc})")
    if not result["ended"]:
        problems.append("it printed no end record" if problems else "the firmware printed no end record")
    lw = result.get("low_water")
    if mem_error and problems:
        problems.append(
            f"MemoryError: the firmware ran out of heap ({heap} B unix heap"
            + (f", low-water {lw} B" if lw is not None else "")
            + f"): {mem_error.strip()}"
        )
    elif mem_error:
        print(
            f"lowwater: warning: the firmware printed a MemoryError and went on: {mem_error.strip()}", file=sys.stderr
        )
    if result.get("memory_errors"):
        print(
            f"lowwater: warning: {result['memory_errors']} chunk(s) failed with MemoryError "
            "(err records); the loop went on",
            file=sys.stderr,
        )
    if not problems:
        return 0
    if tail:
        print("--- firmware output (last lines that were not records):", file=sys.stderr)
        for line in tail[-20:]:
            print(line, file=sys.stderr)
    print("lowwater: " + "; ".join(problems), file=sys.stderr)
    return 1
