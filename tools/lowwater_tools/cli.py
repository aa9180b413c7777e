"""The `lowwater` command: a table of subcommands, one module each.

Each command module `lowwater_tools.cmd_<name>` defines
    HELP = "one line"
    def add_arguments(parser): ...
    def run(args) -> int | None
User mistakes raise UserError, caught once here: `lowwater: <message>` on
stderr, exit status 1, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import UserError

# Order is the order of `lowwater --help`. A module that is not present is skipped.
COMMANDS = (
    "run",
    "check",
    "vboard",
    "deploy",
    "flash",
    "monitor",
    "fit",
    "plot",
    "report",
    "log",
    "soak",
    "bench",
    "mpy",
    "size",
)


def _modules():
    for name in COMMANDS:
        modname = f"{__package__}.cmd_{name}"
        try:
            yield name, importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowwater",
        description="Host tools for lowwater: run, deploy, flash and monitor MicroPython firmware under a memory budget.",
    )
    parser.add_argument("--version", action="version", version=f"lowwater {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _modules():
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
