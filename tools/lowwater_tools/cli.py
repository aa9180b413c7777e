"""The `lowwater` command: an explicit table of subcommands, one module each.

Each command module defines
    HELP = "one line"
    def add_arguments(parser): ...
    def run(args) -> int | None
and lives in the room of its concern as `<room>/<command>.py` (docs/architecture.md):
its arguments, its run() and the logic only it uses are in that one file; what
several commands share is a module of the room named for what it is (lw1, mpybuild,
uf2). The modules are imported here by name, so a missing one is an ImportError.
User mistakes raise UserError, caught once here: `lowwater: <message>` on stderr,
exit status 1, no traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys

from lowwater_tools import __version__
from lowwater_tools.bench import bench
from lowwater_tools.boardio import check, deploy, devices, fit, flash, mpy, run, size, vboard
from lowwater_tools.errors import UserError
from lowwater_tools.fleet import fleet
from lowwater_tools.reliability import log, soak
from lowwater_tools.telemetry import monitor, plot, report

# name -> module, in the order of `lowwater --help`.
COMMANDS = {
    "run": run,
    "check": check,
    "vboard": vboard,
    "deploy": deploy,
    "flash": flash,
    "devices": devices,
    "monitor": monitor,
    "fleet": fleet,
    "fit": fit,
    "plot": plot,
    "report": report,
    "log": log,
    "soak": soak,
    "bench": bench,
    "mpy": mpy,
    "size": size,
}


class Parser(argparse.ArgumentParser):
    """argparse with the one-line contract: a mistake in the arguments prints
    `lowwater: <command>: <message>` (argument names and human type words, from
    the converters of args.py) and exits with status 1, no usage block.
    Subcommand parsers are made of this class too (add_subparsers keeps it)."""

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        message = message.replace("\n", " ")
        # Converters still given as bare int/float (none should be): human words.
        m = re.search(r"invalid (int|float) value: (.*)$", message)
        if m:
            words = {"int": "a whole number", "float": "a number"}[m.group(1)]
            message = message[: m.start()] + f"expected {words}, got {m.group(2)}"
        self.exit(1, f"lowwater: {where}{message}\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: `finally` blocks run, so the
    tools a command started (mpremote, esptool, the firmware) are stopped too."""


def _on_sigterm(signum, frame):
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lowwater",
        description="Host tools for lowwater: run, deploy, flash and monitor MicroPython firmware under a memory budget.",
    )
    parser.add_argument("--version", action="version", version=f"lowwater {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMANDS.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    old = None
    try:
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a test's thread)
        pass
    try:
        if isinstance(getattr(args, "port", None), str):  # --port auto: the one board attached (boardio/devices.py)
            args.port = devices.resolve_port(args.port)
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, inside the contract
        return status
    except UserError as e:
        print(f"lowwater: {e}", file=sys.stderr)
        return 1
    except Terminated:
        print("lowwater: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("lowwater: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return 0
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS):
            raise
        # Writing the output failed (stdout on a full disk, `> /dev/full`): one line.
        _drop_stdout()
        what = f"cannot write {e.filename}" if e.filename else "cannot write the output"
        print(f"lowwater: {what}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the exit-time flush of what is left cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
