"""`lowwater bench`: the benchmark suite (make bench), one table and a JSON file.

Every figure is a ratio of variants timed side by side in one process (rotated
order within each repetition), median over repetitions with the min-max
spread, or a deterministic heap count (micropython.mem_total). Method and
results: docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lowwater_tools import args as targs
from lowwater_tools.errors import UserError

HELP = "run the benchmark suite: rings, firmware loop, budget, gc pauses, pools, cold start"


def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="few repetitions, small samples (seconds; for tests)")
    p.add_argument(
        "--json",
        metavar="OUT",
        type=targs.output_file,
        default=None,
        help="results file (default build/bench/results.json)",
    )
    p.add_argument(
        "--reps",
        type=targs.count(1, 100_000),
        default=None,
        metavar="N",
        help="repetitions (default 31, 3 with --quick; the rings take 3x, the loop and pools 2x)",
    )


def run(args) -> int:
    from lowwater_tools.bench import driver

    if args.reps is not None and args.reps < 1:
        raise UserError("--reps must be >= 1")
    out = Path(args.json) if args.json else driver.DEFAULT_JSON
    if out.exists() and out.is_dir():
        raise UserError(f"--json {out} is a directory")

    def log(msg):
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    res = driver.run(quick=args.quick, reps=args.reps, log=log)
    print(driver.format_table(res))
    driver.write_json(res, out)
    print(f"\nresults: {out}", file=sys.stderr)
    return 0
