"""`lowwater deploy --port P`: copy lib/, firmware/ and the board profile to a board."""

from __future__ import annotations

from . import boards, deploy

HELP = "copy lib/, firmware/ and the board profile to a board (only what changed), then soft-reset"


def add_arguments(p):
    p.add_argument(
        "--port",
        help="serial port or URL of the board (e.g. /dev/ttyUSB0, the /dev/pts/N "
        "`lowwater vboard` prints, socket://HOST:PORT)",
    )
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile copied as :/board.json (default: unix)")
    p.add_argument("--mpy", action="store_true", help="compile lib/ with mpy-cross for the board's .mpy version")
    p.add_argument(
        "--tool", choices=deploy.TOOLS, default="mpremote", help="what talks to the board (default: mpremote)"
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be copied and removed; change nothing")
    p.add_argument("--no-reset", dest="reset", action="store_false", help="do not soft-reset at the end")
    p.add_argument("--timeout", type=float, default=60.0, help="bound for each tool call in seconds (default 60)")


def run(args) -> int:
    deploy.deploy(
        args.port,
        board=args.board,
        mpy=args.mpy,
        tool=args.tool,
        dry_run=args.dry_run,
        reset=args.reset,
        timeout=args.timeout,
    )
    return 0
