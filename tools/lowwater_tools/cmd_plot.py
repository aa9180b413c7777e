"""`lowwater plot LOG -o mem.png`: free heap, low-water, budget, gc pauses and events over time."""

from __future__ import annotations

from pathlib import Path

from . import boards
from .errors import UserError
from .telemetry import read_log

HELP = "plot a telemetry log: free heap, low-water, budget lines, gc pauses, events"


def add_arguments(p):
    p.add_argument("log", help="telemetry log: a raw capture or a CSV of run/monitor")
    p.add_argument("-o", "--output", help="image file, .png/.svg/.pdf (default: LOG with .png)")
    p.add_argument("--board", help="board profile for the budget lines when the log has no boot record")


def run(args) -> int:
    from .plot import plot

    records, _ = read_log(args.log)
    if not records:
        raise UserError(f"{args.log}: no telemetry records (LW1 lines) found")
    profile = boards.load(args.board) if args.board else None
    out = Path(args.output) if args.output else Path(args.log).with_suffix(".png")
    plot(records, out, profile=profile)
    print(out)
    return 0
