"""`lowwater soak`: a long memory run, then a power-loss run (make soak). docs/reliability.md.

1. Memory soak: firmware/main.py on the MicroPython unix port with the board's
   heap (--heap to tighten it) for --chunks chunks, logging to a temporary
   folder. The unix port directly, not the virtual board: a bounded run needs
   LOWWATER_CHUNKS (a board has no environment) and ends with its `end` record;
   the heap is the same (the virtual board adds only what its stand-ins take).
   Reports low-water drift, gc pause percentiles, leak slope, accounting.
2. Power loss: the firmware on the virtual board (littlefs image), killed with
   SIGKILL --kills times at seeded random moments; the log is verified.
Exit status 1 (one `lowwater:` line) when any check fails.
"""

from __future__ import annotations

import json
import sys

from . import boards, soak
from .errors import UserError

HELP = "long memory run (drift, gc pauses, leak slope, accounting) then SIGKILL power-loss run on the virtual board"


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--chunks",
        type=int,
        default=1_000_000,
        metavar="N",
        help="chunks of the memory run (default 1000000; 0 skips it)",
    )
    p.add_argument(
        "--heap",
        type=int,
        default=None,
        metavar="BYTES",
        help="unix-port heap of the memory run (default: the board's heap mapped to 64-bit)",
    )
    p.add_argument(
        "--kills", type=int, default=200, metavar="K", help="SIGKILLs of the power-loss run (default 200; 0 skips it)"
    )
    p.add_argument("--seed", type=int, default=1, metavar="S", help="seed of the kill schedule (default 1)")
    p.add_argument(
        "--max-delay",
        type=float,
        default=soak.PL_MAX_DELAY,
        metavar="S",
        help=f"latest kill after a boot, in seconds (default {soak.PL_MAX_DELAY})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with every figure")


def _progress(msg: str) -> None:
    print(f"lowwater: {msg}", file=sys.stderr, flush=True)


def _fmt_mem(m: soak.MemorySoak) -> list[str]:
    g = m.gc_us or {}
    drift = "n/a" if m.lw_drift is None else f"{m.lw_drift:+d} B"
    return [
        f"memory soak: board {m.board}, unix heap {m.heap} B, {m.chunks} of {m.chunks_asked} chunks "
        f"in {m.duration_s:.1f} s ({m.chunks_per_s:.0f} chunks/s)",
        f"  accounting: produced {m.chunks} = processed {m.processed} + dropped {m.dropped}: "
        f"{'ok' if m.accounting_ok else 'FAILED'} (errors {m.errors})",
        f"  low-water: {m.low_water} B; after warm-up {m.lw_start} B, last tenth {m.lw_end} B, drift {drift}",
        f"  gc pause (us): p50 {g.get('p50')} p90 {g.get('p90')} p99 {g.get('p99')} max {g.get('max')} "
        f"over {g.get('n', 0)} checks",
        f"  leak slope: {m.leak_slope} B live heap per 1000 chunks ({m.leak_verdict})",
        f"  flash log: {m.log_records} records read back, {m.log_corrupt} corrupt, {m.log_seq_errors} seq gaps",
    ]


def _fmt_pl(r: soak.PowerLoss) -> list[str]:
    u = r.recovery_us or {}
    return [
        f"power loss: board {r.board} (virtual, littlefs image), seed {r.seed}: {r.kills} SIGKILLs "
        f"in {r.duration_s:.1f} s ({r.kills_before_logopen} before the log was open)",
        f"  acknowledged durable: {r.acked} records; read back intact {r.acked_verified}, "
        f"rotated away {r.acked_rotated}, lost {len(r.lost_acked)}",
        f"  image: {r.records_verified} records verified (seq {r.first_seq}..{r.last_seq}, {r.files} files), "
        f"{len(r.corrupt)} corrupt, {len(r.seq_errors)} seq gaps, {r.skipped_bytes} bytes skipped, "
        f"{r.crc_errors} CRC errors",
        f"  recovery (FlashLog open after restart, us): p50 {u.get('p50')} p90 {u.get('p90')} max {u.get('max')} "
        f"over {u.get('n', 0)} restarts; torn bytes found {r.torn_bytes}",
        f"  after the last restart: {r.final_acks} acknowledged flushes (the log keeps working)",
    ]


def run(args) -> int:
    if args.chunks < 0:
        raise UserError("--chunks must be >= 0")
    if args.kills < 0:
        raise UserError("--kills must be >= 0")
    if args.heap is not None and args.heap <= 0:
        raise UserError("--heap must be > 0")
    if args.max_delay <= 0:
        raise UserError("--max-delay must be > 0")
    if not args.chunks and not args.kills:
        raise UserError("nothing to do: --chunks 0 and --kills 0")
    boards.load(args.board)  # a bad board fails before anything runs
    out: dict = {}
    problems: list[str] = []
    if args.chunks:
        _progress(f"memory soak: {args.chunks} chunks on the unix port")
        m = soak.memory_soak(args.board, args.chunks, args.heap, progress=_progress)
        out["memory"] = soak.as_dict(m)
        problems += [f"memory soak: {p}" for p in m.problems]
        if not args.json:
            print("\n".join(_fmt_mem(m)), flush=True)
    if args.kills:
        _progress(f"power loss: {args.kills} kills on the virtual board")
        r = soak.powerloss(args.board, args.kills, args.seed, max_delay=args.max_delay, progress=_progress)
        out["powerloss"] = soak.as_dict(r)
        problems += [f"power loss: {p}" for p in r.problems]
        if not args.json:
            print("\n".join(_fmt_pl(r)), flush=True)
    out["ok"] = not problems
    if args.json:
        print(json.dumps(out))
    if problems:
        raise UserError("; ".join(problems))
    if not args.json:
        print("soak: ok")
    return 0
