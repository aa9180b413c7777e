"""`lowwater check --board B`: validate a board profile with the device's own code."""

from __future__ import annotations

from lowwater_tools import boards

HELP = "validate a board profile (the same checks the firmware runs at start)"


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")


def run(args) -> int:
    prof = boards.load(args.board)
    heap = boards.unix_heap(prof)
    print(
        f"{prof['name']}: ok ({prof['chip']}, heap {prof['heap']} B, warn_free {prof['warn_free']} B, "
        f"min_free {prof['min_free']} B, ring {prof['chunk_size']}x{prof['chunk_count']} B; "
        f"unix-port heap {heap} B)"
    )
    return 0
