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
import sys

from lowwater_tools import __version__
from lowwater_tools.bench import bench
from lowwater_tools.boardio import check, deploy, fit, flash, mpy, run, size, vboard
from lowwater_tools.errors import UserError
from lowwater_tools.reliability import log, soak
from lowwater_tools.telemetry import monitor, plot, report

# name -> module, in the order of `lowwater --help`.
COMMANDS = {
    "run": run,
    "check": check,
    "vboard": vboard,
    "deploy": deploy,
    "flash": flash,
    "monitor": monitor,
    "fit": fit,
    "plot": plot,
    "report": report,
    "log": log,
    "soak": soak,
    "bench": bench,
    "mpy": mpy,
    "size": size,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"lowwater: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lowwater: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
