"""Host driver of `lowwater bench`: runs the benchmark scripts, turns raw times
into side-by-side ratios, prints one table and writes the JSON results.

Method (docs/performance.md): every ratio compares variants measured in the
same process, in rotated order within each repetition (ABC, BCA, CAB, ...), so
machine noise hits them alike. A repetition gives one ratio per pair; a row
shows the median over repetitions and the min-max spread. Heap figures are
micropython.mem_total() deltas (every heap request, freed or not), which are
deterministic and need no repetition.
"""

from __future__ import annotations

import json
import math
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import boards, launch
from ..errors import UserError
from ..paths import LIB, ROOT, micropython_exe

HERE = Path(__file__).resolve().parent
PORTABLE = ROOT / "host_tests" / "portable"  # firstfit.py, ptest.py
LWTEST = ROOT / "tools" / "lowwater_tools" / "testing" / "mp"  # lwtest.py, which ptest.py imports
DEFAULT_JSON = ROOT / "build" / "bench" / "results.json"

CAPS = (4096, 16384)
CHUNKS = (64, 256, 1024)
FILLS = (0.1, 0.5, 0.9)
POOL_HEAP = 1 << 21  # the pool benchmark's unix heap: three 16-33 KB arenas side by side, and bytearray garbage
IMPORT_HEAP = 1 << 20  # heap for the import-cost cases (bytes retained do not depend on it)
COLD_PY_EXTRA = 32768  # cold start from .py when its compile peak does not fit the board heap
RING_HEAP = 1 << 19  # the ring benchmark's: six variants of a 16 KiB ring side by side
LOOP_HEAP = 1 << 18  # mp_loop.py's: three firmwares side by side

# Settings: (default, quick). reps=N on the command line scales the repetitions.
SETTINGS = {
    "default": {
        # short samples, many repetitions: on a shared machine noise comes in
        # bursts, and a burst then spoils a few repetitions, not the median
        "reps": 31,
        "ring": {"per_sample": 2048, "hrounds": 20, "ops": 1000, "reps_factor": 3},
        "loop": {"loop_chunks": 256, "heap_chunks": 4096, "heap_checks": 20, "reps_factor": 2},
        "gc": {"samples": 200, "gap": 16},
        "pool": {"ops_ff": 50, "ops_pool": 2000, "reps_factor": 2},
        "cold": {"reps_div": 2},
        "cg": {"n": 4096, "warm": 512},
        "tutorial": {"n": 2000, "reps": 4},
    },
    "quick": {
        "reps": 3,
        "ring": {"per_sample": 512, "hrounds": 4, "ops": 200, "reps_factor": 1},
        "loop": {"loop_chunks": 256, "heap_chunks": 512, "heap_checks": 4, "reps_factor": 1},
        "gc": {"samples": 20, "gap": 4},
        "pool": {"ops_ff": 10, "ops_pool": 200, "reps_factor": 1},
        "cold": {"reps_div": 1},
        "cg": {"n": 256, "warm": 512},
        "tutorial": {"n": 300, "reps": 2},
    },
}

# Goals of issue 7; each is checked on the rows whose id is listed.
GOAL_VIPER_256 = 0.40
GOAL_VIPER_64 = 0.25
GOAL_TWIN_256 = 0.20
GOAL_BUDGET = 1.03  # monitored / unmonitored loop time
GOAL_PATTERN = {"viper": 0.40, "twin": 0.20}  # every access pattern and chunk size (issue 12)
GOAL_BUDGET_PCT = 3.0  # monitor overhead in instructions (issue 12)
GOAL_STEP = 1.6  # Firmware.step / minimal loop, instructions (issue 12)
CG_HEAPS = (131072, 524288, 2097152)  # the budget overhead's heaps
CG_WARN_FREE = 16384  # mp_cg.py: levels stay OK on a 128 KiB heap after its imports

# ByteRing / ChunkRing operations measured one call at a time (mp_rings.per_op)
OPS = {
    "viper": ("write", "peekinto", "readinto", "len", "space"),
    "twin": ("write", "peekinto", "readinto", "len", "space"),
    "chunk": ("claim", "commit", "oldest", "oldest_len", "release", "len"),
}

VARIANT_NAMES = {
    "viper": "ByteRing, viper path",
    "twin": "ByteRing, plain twin (fast=False)",
    "chunk": "ChunkRing claim/commit/oldest/release",
    "deque": "collections.deque of bytes",
    "list": "list of bytes (append/pop(0))",
    "ringio": "micropython.RingIO",
}


# -- statistics -------------------------------------------------------------


def median(xs):
    s = sorted(xs)
    n = len(s)
    if not n:
        raise ValueError("no samples")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(xs)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def ratios(num, den):
    """Per-repetition ratios num[i] / den[i] (the same repetition: side by side)."""
    return [a / b for a, b in zip(num, den) if b > 0]


def summary(rs):
    return {
        "median": median(rs),
        "min": min(rs),
        "max": max(rs),
        "n": len(rs),
        "q1": percentile(rs, 25),
        "q3": percentile(rs, 75),
    }


# -- running the scripts -----------------------------------------------------


def _parse(out: str, what: str) -> dict:
    for line in reversed(out.splitlines()):
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    tail = "\n".join(out.splitlines()[-15:])
    raise UserError(f"benchmark {what} failed:\n{tail}")


class _CfgFile:
    """The configuration as a temporary JSON file, named on the command line:
    the PyPI unix port dies (FATAL: uncaught NLR) on an argument of 256+
    characters."""

    def __init__(self, cfg: dict):
        fd, self.path = tempfile.mkstemp(prefix="lowwater-bench-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        os.unlink(self.path)


def _run(cmd_head: list[str], env: dict, script: str, cfg: dict, timeout: float, where: str) -> dict:
    # One benchmark script in a fresh process; its BENCH result, or a UserError.
    try:
        with _CfgFile(cfg) as cfg_path:
            p = subprocess.run(
                [*cmd_head, str(HERE / script), cfg_path],
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
    except subprocess.TimeoutExpired:
        raise UserError(f"benchmark {script}{where} timed out after {timeout:.0f} s") from None
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode:
        raise UserError(f"benchmark {script}{where} failed (exit {p.returncode}):\n{out[-2000:]}")
    return _parse(out, script)


def run_mp(script: str, cfg: dict, heap: int, timeout: float, path=(), env_lib=None) -> dict:
    """Run bench/<script> on the unix port with -X heapsize=heap; its BENCH result."""
    env = launch.env([HERE, *path], env_lib or LIB)
    return _run(launch.command([], heap), env, script, cfg, timeout, "")


def _cg_run(cfg: dict, heap: int, timeout: float, lib=None, script: str = "mp_cg.py") -> int:
    """Total instructions of one mp_cg.py case (or mp_rings.py's cg mode) under callgrind."""
    from .. import launch

    what = cfg.get("case") or "ring {variant} {pattern} {chunk}".format(**cfg.get("cg", {}))

    with _CfgFile(cfg) as cfg_path, tempfile.TemporaryDirectory(prefix="lowwater-cg-") as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/cg.out",
            *launch.command([str(HERE / script), cfg_path], heap),
        ]
        env = launch.env([HERE], lib=lib or LIB, extra={"PYTHONHASHSEED": "0"})
        try:
            p = subprocess.run(
                cmd,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"callgrind case {what} timed out after {timeout:.0f} s") from None
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode:
        raise UserError(f"callgrind case {what} failed (exit {p.returncode}):\n{err[-2000:]}")
    for line in err.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.split(":")[1].strip().replace(",", ""))
    raise UserError(f"callgrind case {cfg['case']} failed (exit {p.returncode}):\n{err[-2000:]}")


def run_cpython(script: str, cfg: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LIB), str(PORTABLE)])
    return _run([sys.executable], env, script, cfg, timeout, " (CPython)")


def cg_chunks(quick):
    """Chunk sizes of the callgrind rows (--quick: 256 B only)."""
    return (256,) if quick else CHUNKS


def cg_heaps(quick):
    """Heaps of the monitor-overhead rows (--quick: 128 KiB only)."""
    return CG_HEAPS[:1] if quick else CG_HEAPS


def _order(variants, rep):
    k = rep % len(variants)
    return variants[k:] + variants[:k]


def mp_version() -> tuple[str, int]:
    """("1.29.0-preview", sys.implementation._mpy) of the unix port."""
    code = (
        "import sys; v = sys.implementation.version; print('%d.%d.%d%s %d' % (v[0], v[1], v[2], "
        "'-' + v[3] if len(v) > 3 and v[3] else '', sys.implementation._mpy))"
    )
    try:
        p = subprocess.run(
            [micropython_exe(), "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=30,
        )
        ver, mpy = p.stdout.decode("utf-8", "replace").split()
        return ver, int(mpy)
    except (subprocess.TimeoutExpired, ValueError):
        raise UserError("cannot read the unix port's version (micropython -c ...)") from None


def build_mpy(mpy_field: int, out: Path) -> Path:
    """Compile lib/lowwater to out/lowwater/*.mpy for the unix port's arch
    (the same build as `make mpy`: lowwater_tools.boardio.mpybuild)."""
    from ..boardio import mpybuild

    mpybuild.build(out, arch=mpybuild.decode_mpy(mpy_field)[2])
    return out


# -- the benchmarks -----------------------------------------------------------


class Bench:
    def __init__(self, quick=False, reps=None, log=None):
        self.quick = quick
        self.s = SETTINGS["quick" if quick else "default"]
        self.reps = reps or self.s["reps"]
        self.timeout = 120 if quick else 600
        self.log = log or (lambda msg: None)
        self.rows: list[dict] = []
        self.raw: dict = {}
        prof = boards.load(boards.DEFAULT_BOARD)
        self.profile_path = boards.profile_path(boards.DEFAULT_BOARD)
        self.heap = boards.unix_heap(prof)

    def _mpy(self):
        """lib/ compiled to .mpy for the unix port, once per run (a temporary folder)."""
        if getattr(self, "_mpy_dir", None) is None:
            self._mpy_tmp = tempfile.TemporaryDirectory(prefix="lowwater-bench-mpy-")
            self._mpy_dir = build_mpy(mp_version()[1], Path(self._mpy_tmp.name))
        return self._mpy_dir

    # rows --------------------------------------------------------------
    def row(self, id, section, figure, value, unit, detail="", goal=None, met=None, lo=None, hi=None, **extra):
        r = {
            "id": id,
            "section": section,
            "figure": figure,
            "value": value,
            "unit": unit,
            "min": lo,
            "max": hi,
            "detail": detail,
            "goal": goal,
            "met": met,
        }
        r.update(extra)
        self.rows.append(r)
        return r

    def ratio_row(self, id, section, figure, rs, goal=None, at_least=None, at_most=None, detail=""):
        st = summary(rs)
        met = None
        if at_least is not None:
            met = st["median"] >= at_least
        if at_most is not None:
            met = st["median"] <= at_most
        spread = f"{st['min']:.2f}-{st['max']:.2f}"
        return self.row(
            id,
            section,
            figure,
            st["median"],
            "x",
            detail=(spread + ("; " + detail if detail else "")),
            goal=goal,
            met=met,
            lo=st["min"],
            hi=st["max"],
            n=st["n"],
            q1=st["q1"],
            q3=st["q3"],
        )

    # sections --------------------------------------------------------------
    def rings(self):
        cfg = {
            "caps": list(CAPS),
            "chunks": list(CHUNKS),
            "reps": self.reps * self.s["ring"]["reps_factor"],
            "op_chunk": 256,
            "op_cap": 4096,
            "pattern_cap": 4096,
            **self.s["ring"],
        }
        self.log("rings on the unix port")
        mp = run_mp("mp_rings.py", cfg, RING_HEAP, self.timeout)
        self.log("rings on CPython")
        cp = run_cpython("mp_rings.py", cfg, self.timeout)
        self.raw["rings_mp"] = mp
        self.raw["rings_cpython"] = cp
        for runtime, res, base in (("mp", mp, "ringio"), ("py", cp, "deque")):
            where = "unix port" if runtime == "mp" else "CPython"
            section = f"Ring throughput, {where}: write+readinto, relative to {VARIANT_NAMES[base]} (higher is faster)"
            for v in res["variants"]:
                if v == base:
                    continue
                for cfgres in res["throughput"]:
                    cap, k = cfgres["cap"], cfgres["chunk"]
                    t = cfgres["times_us"]
                    rs = ratios(t[base], t[v])
                    mbs = cfgres["chunks"] * k / median(t[v])  # bytes/us = MB/s
                    goal = at_least = None
                    if runtime == "mp" and v == "viper" and k in (64, 256):
                        at_least = GOAL_VIPER_256 if k == 256 else GOAL_VIPER_64
                    if runtime == "mp" and v == "twin" and k == 256:
                        at_least = GOAL_TWIN_256
                    if at_least is not None:
                        goal = f">= {at_least:.2f}x"
                    self.ratio_row(
                        f"ring.{runtime}.{v}.{cap}.{k}",
                        section,
                        f"{VARIANT_NAMES[v]}, {cap // 1024} KiB ring, {k} B chunks",
                        rs,
                        goal=goal,
                        at_least=at_least,
                        detail=f"{mbs:.0f} MB/s",
                    )
        # access patterns (unix port): stream and odd, byte rings vs RingIO
        section = (
            "Ring access patterns, unix port, relative to micropython.RingIO (higher is faster): "
            "fill-drain is the throughput above; stream keeps half the ring resident and reads "
            "each chunk back in two reads of other sizes; odd writes/reads k-1 bytes at odd offsets"
        )
        for pr in mp.get("patterns", []):
            t = pr["times_us"]
            k = pr["chunk"]
            for v in ("viper", "twin"):
                if v not in t or "ringio" not in t:
                    continue
                goal = GOAL_PATTERN[v]
                self.ratio_row(
                    f"ring.pattern.{pr['pattern']}.{v}.{k}",
                    section,
                    f"{VARIANT_NAMES[v]}, {pr['pattern']}, {k} B chunks, {pr['cap'] // 1024} KiB ring",
                    ratios(t["ringio"], t[v]),
                    goal=f">= {goal:.2f}x",
                    at_least=goal,
                )
        # heap per chunk in the throughput loop (unix port)
        section = "Heap bytes per chunk, unix port (micropython.mem_total delta; write + read of one chunk)"
        for v in mp["variants"]:
            per = {(c["cap"], c["chunk"]): c["heap_per_chunk"][v] for c in mp["throughput"]}
            worst = max(per.values())
            detail = ", ".join(f"{k} B: {per[(CAPS[0], k)]:g}" for k in CHUNKS) + f" ({CAPS[0] // 1024} KiB ring)"
            goal = "0" if v in ("viper", "chunk", "ringio") else None
            self.row(
                f"heap.ring.{v}",
                section,
                VARIANT_NAMES[v],
                worst,
                "B",
                detail=detail,
                goal=goal,
                met=(worst == 0) if goal else None,
            )
        ops = mp["per_op"]
        section = (
            "Heap bytes per call, unix port (steady pattern that wraps: 4 KiB ring, 256 B chunks; "
            "calibration: an empty call)"
        )
        self.row(
            "heap.op.calibration",
            section,
            "empty function (harness check)",
            ops["calibration"],
            "B",
            goal="0",
            met=ops["calibration"] == 0,
        )
        for path in ("viper", "twin", "chunk"):
            if path not in ops:
                continue
            for op in OPS[path]:
                b = ops[path][op]
                name = {"viper": "ByteRing viper", "twin": "ByteRing twin", "chunk": "ChunkRing"}[path]
                goal = None if path == "twin" else "0"
                self.row(
                    f"heap.op.{path}.{op}", section, f"{name}.{op}", b, "B", goal=goal, met=(b == 0) if goal else None
                )

    def loop(self):
        cfg = {
            "mode": "loop",
            "profile": str(self.profile_path),
            "reps": self.reps * self.s["loop"]["reps_factor"],
            **self.s["loop"],
        }
        self.log("firmware loop: heap per chunk, budget overhead")
        # lib as .mpy, as on a board, and LOOP_HEAP: three firmwares side by
        # side do not fit the unix board's 128 KiB heap (one does: test_app_defaults)
        res = run_mp("mp_loop.py", cfg, LOOP_HEAP, self.timeout, env_lib=self._mpy())
        self.raw["loop"] = res
        section = (
            f"Firmware loop (Firmware.step, unix board profile, SimSensor, telemetry off, lib as .mpy, "
            f"{LOOP_HEAP // 1024} KiB heap: three firmwares side by side)"
        )
        b = res["heap_per_chunk_nocheck"]
        self.row(
            "heap.loop.nocheck",
            section,
            "heap bytes per chunk, no periodic check (check_every huge)",
            b,
            "B",
            goal="0",
            met=b == 0,
        )
        b = res["heap_per_chunk_default"]
        self.row(
            "heap.loop.default",
            section,
            "heap bytes per chunk, default cadence (check_every 256), amortised",
            b,
            "B",
            detail=f"over {res['heap_chunks_default']} chunks; Budget.check + Firmware._window included",
            goal="0",
            met=b == 0,
        )
        self.row(
            "heap.loop.check",
            section,
            "heap bytes per Budget.check() (one mem_free walk; collect when warranted)",
            res["heap_per_check"],
            "B",
            goal="0",
            met=res["heap_per_check"] == 0,
        )
        self.row(
            "heap.loop.window",
            section,
            "heap bytes per Firmware._window() (window summary stored, flash log off)",
            res["heap_per_window"],
            "B",
            detail="a preallocated summary array into the WeakStore",
            goal="0",
            met=res["heap_per_window"] == 0,
        )
        t = res["times_us"]
        rs = ratios(t["monitor"], t["no_monitor"])
        st = summary(rs)
        us_chunk = median(t["no_monitor"]) / res["loop_chunks"]
        cost = median([a - b for a, b in zip(t["monitor"], t["no_monitor"])]) / res["loop_chunks"]
        r = self.ratio_row(
            "budget.overhead",
            section,
            "loop time with Budget (due per window: a walk per 256 chunks) / with Budget.due a no-op (wall)",
            rs,
            goal=f"<= {GOAL_BUDGET:.2f}x (3%)",
            at_most=GOAL_BUDGET,
            detail=(f"{(st['median'] - 1) * 100:+.1f}%; {us_chunk:.1f} us/chunk without, monitor {cost:+.2f} us/chunk"),
        )
        self.ratio_row(
            "budget.control",
            section,
            "A/A control: a second monitored loop / the first (noise floor)",
            ratios(t["monitor_control"], t["monitor"]),
            detail="ideal 1.00",
        )
        r["overhead_pct"] = (st["median"] - 1) * 100

    def callgrind(self):
        """Instruction counts (valgrind --tool=callgrind; repeatable on a noisy
        machine): per chunk = (run with n chunks - run with 0) / n. lib/ as
        .mpy, as a board runs it (compiling the sources would not fit 128 KiB)."""
        if shutil.which("valgrind") is None:
            raise UserError("valgrind not found: run `make sysdeps` (it installs it)")
        mpy = self._mpy()
        self._callgrind(mpy)
        self._callgrind_rings(mpy)

    def _callgrind_rings(self, mpy):
        # The ring access patterns in instructions (mp_rings.py's cg mode; docs/ring.md):
        # per round (one chunk written and read back) = (run with n rounds - run with 0) / n.
        n = 512
        section = (
            "Ring access patterns in instructions (callgrind), unix port, 4 KiB ring: RingIO's instructions "
            "per round / the ring's (higher is faster); fill-drain, stream (half the ring resident, two reads "
            "of other sizes), odd (k-1 bytes at odd offsets)"
        )
        self.log("callgrind: ring access patterns")
        raw = self.raw.setdefault("callgrind_rings", {})
        for pattern in ("fill", "stream", "odd"):
            for k in cg_chunks(self.quick):
                per = {}
                for v in ("ringio", "viper", "twin"):
                    cfg = {"variant": v, "pattern": pattern, "chunk": k}
                    a = _cg_run({"cg": {**cfg, "n": n}}, RING_HEAP, self.timeout, mpy, "mp_rings.py")
                    b = _cg_run({"cg": {**cfg, "n": 0}}, RING_HEAP, self.timeout, mpy, "mp_rings.py")
                    per[v] = (a - b) / n
                    raw[f"{pattern}.{v}.{k}"] = {"n": n, "ir_n": a, "ir_0": b, "per_round": per[v]}
                for v in ("viper", "twin"):
                    r = per["ringio"] / per[v]
                    goal = GOAL_PATTERN[v]
                    name = "fill-drain" if pattern == "fill" else pattern
                    self.row(
                        f"cg.ring.{pattern}.{v}.{k}",
                        section,
                        f"{VARIANT_NAMES[v]}, {name}, {k} B chunks",
                        r,
                        "x",
                        detail=f"{per[v]:,.0f} vs RingIO {per['ringio']:,.0f} instructions per round",
                        goal=f">= {goal:.2f}x",
                        met=r >= goal,
                        lo=r,
                        hi=r,
                    )

    def _callgrind(self, mpy):
        q = self.s["cg"]
        n, warm = q["n"], q["warm"]
        section = (
            "Instructions per chunk (callgrind), C-speed sensor (ReplaySensor: one slice copy per chunk), "
            f"unix profile defaults but warn_free {CG_WARN_FREE} B (level OK), telemetry off, lib as .mpy"
        )
        self.raw["callgrind"] = {}

        def cfg_of(case, k, warm=warm):
            return {
                "case": case,
                "chunk": k,
                "warm": warm,
                "profile": str(self.profile_path),
                "warn_free": CG_WARN_FREE,
                "min_free": CG_WARN_FREE // 2,
            }

        def per_chunk(case, k, heap, n=n, warm=warm):
            key = f"{case}.{k}.{heap}" + ("" if n == q["n"] else f".n{n}")
            if key in self.raw["callgrind"]:
                return self.raw["callgrind"][key]["per_chunk"]
            cfg = cfg_of(case, k, warm)
            a = _cg_run({**cfg, "n": n}, heap, self.timeout, mpy)
            b = _cg_run({**cfg, "n": 0}, heap, self.timeout, mpy)
            v = (a - b) / n
            self.raw["callgrind"][key] = {"n": n, "ir_n": a, "ir_0": b, "per_chunk": v}
            return v

        self.log("callgrind: minimal loop vs firmware step")
        for k in cg_chunks(self.quick):
            mini = per_chunk("minimal", k, self.heap)
            step = per_chunk("step", k, self.heap)
            self.row(
                f"cg.step_ratio.{k}",
                section,
                f"Firmware.step / minimal loop, {k} B chunks",
                step / mini,
                "x",
                detail=f"step {step / 1000:.1f}k, minimal {mini / 1000:.1f}k instructions per chunk",
                goal=f"<= {GOAL_STEP:.1f}x",
                met=step / mini <= GOAL_STEP,
                lo=step / mini,
                hi=step / mini,
            )
        self.log("callgrind: budget monitor overhead at three heaps")
        for heap in cg_heaps(self.quick):
            # Over whole walk intervals (walk_every x check_every chunks; 5,888 at
            # 2 MiB): a run shorter than one may hold no walk at all.
            walk = run_mp("mp_cg.py", {**cfg_of("step", 256), "n": 0}, heap, self.timeout, env_lib=mpy)["walk_chunks"]
            nh = walk * -(-n // walk)
            on = per_chunk("step", 256, heap, n=nh)
            off = per_chunk("nomon", 256, heap, n=nh)
            pct = (on - off) / off * 100
            self.row(
                f"cg.budget.{heap}",
                section,
                f"budget monitor overhead, {heap // 1024} KiB heap, 256 B chunks (step / step with Budget.due a no-op)",
                pct,
                "%",
                detail=f"{on / 1000:.2f}k vs {off / 1000:.2f}k instructions per chunk, over {nh} chunks "
                f"({nh // walk} heap walks, one per {walk} chunks)",
                goal=f"<= {GOAL_BUDGET_PCT:.0f}%",
                met=pct <= GOAL_BUDGET_PCT,
                lo=pct,
                hi=pct,
            )
        self.log("callgrind: tutorial loop vs firmware step")
        # The tutorial loop dies of fragmentation after a few hundred chunks on
        # the board heap (see its own rows): its instructions are counted on a
        # 1 MiB heap over 512 chunks, no warm-up (it keeps growing anyway).
        tut = per_chunk("tutorial", 256, POOL_HEAP, n=min(n, 512), warm=0)
        step = self.raw["callgrind"][f"step.256.{self.heap}"]["per_chunk"]
        self.row(
            "cg.tutorial",
            section,
            "tutorial loop (new buffer per read, built-ins, mem_free printed, dict of results; 1 MiB heap) / Firmware.step, 256 B",
            tut / step,
            "x",
            detail=f"tutorial {tut / 1000:.1f}k, step {step / 1000:.1f}k instructions per chunk",
            lo=tut / step,
            hi=tut / step,
        )

    def tutorial(self):
        """The tutorial loop against the firmware (mp_tutorial.py): one process
        per variant and repetition, rotated, at the unix board heap, lib as .mpy."""
        mpy = self._mpy()
        self.log("tutorial loop vs firmware")
        runs = {"tutorial": [], "firmware": []}
        n = self.s["tutorial"]["n"]
        for rep in range(self.s["tutorial"]["reps"]):
            for v in _order(["tutorial", "firmware"], rep):
                cfg = {"variant": v, "n": n, "profile": str(self.profile_path)}
                runs[v].append(run_mp("mp_tutorial.py", cfg, self.heap, self.timeout, env_lib=mpy))
        self.raw["tutorial"] = runs
        section = (
            f"Tutorial loop (new buffer per read, built-in min/max/mean, gc.mem_free() printed, results in a dict) "
            f"vs the firmware step, SimSensor, {runs['firmware'][0]['chunk']} B chunks, unix board heap {self.heap} B"
        )
        rate = {v: [r["timed"]["chunks"] / r["timed"]["us"] * 1e6 for r in runs[v]] for v in runs}
        self.ratio_row(
            "tutorial.speed",
            section,
            "chunks/s, firmware / tutorial loop (wall, side by side)",
            ratios(rate["firmware"], rate["tutorial"]),
            detail=f"firmware {median(rate['firmware']):.0f}/s, tutorial {median(rate['tutorial']):.0f}/s",
        )
        for v in ("firmware", "tutorial"):
            t = [r["timed"] for r in runs[v]]
            c = [r["counting"] for r in runs[v]]
            chunks = median([x["chunks"] for x in t])
            died = [x for x in t if x["error"]]
            self.row(
                f"tutorial.{v}.heap",
                section,
                f"{v}: heap bytes per chunk (mem_total, from the first chunk)",
                median([x["heap"] / max(1, x["chunks"]) for x in t]),
                "B",
                detail=(
                    f"{chunks:g} chunks"
                    + (
                        f"; MemoryError after {min(x['chunks'] for x in died)}-{max(x['chunks'] for x in died)} chunks"
                        if died
                        else ""
                    )
                ),
            )
            self.row(
                f"tutorial.{v}.collections",
                section,
                f"{v}: collections per 1,000 chunks (gc.mem_alloc() fell)",
                median([1000 * x["collections"] / max(1, x["chunks"]) for x in c]),
                "/1000",
                detail=f"slowest chunk with a collection {max(x['pause_us'] for x in c)} us",
            )
            self.row(
                f"tutorial.{v}.low_water",
                section,
                f"{v}: lowest free heap seen",
                min(x["low_water"] for x in c),
                "B",
            )

    def gc_pauses(self):
        section = "gc.collect() pause in the firmware's steady state, per board-shaped unix heap"
        self.raw["gc"] = {}
        for name in boards.names():
            prof = boards.load(name)
            heap = boards.unix_heap(prof)
            warm = prof["check_every"] * (2 if self.quick else prof["store_items"] + 2)
            cfg = {"mode": "gc", "profile": str(boards.profile_path(name)), "warmup": warm, **self.s["gc"]}
            self.log(f"gc pauses: {name} (heap {heap} B)")
            res = run_mp("mp_loop.py", cfg, heap, self.timeout, env_lib=self._mpy())
            self.raw["gc"][name] = res
            ps = res["pauses_us"]
            p50, p99, mx = median(ps), percentile(ps, 99), max(ps)
            self.row(
                f"gc.{name}",
                section,
                f"{name}: heap {heap} B, {res['mem_alloc']} B live",
                p50,
                "us",
                detail=f"p99 {p99} us, max {mx} us ({len(ps)} collections)",
                p50=p50,
                p99=p99,
                max_us=mx,
                lo=min(ps),
                hi=mx,
            )

    def pools(self):
        cfg = {
            "size": 64,
            "blocks": 256,
            "fills": list(FILLS),
            "reps": self.reps * self.s["pool"]["reps_factor"],
            **self.s["pool"],
        }
        self.log("pools against FirstFit")
        res = run_mp("mp_pool.py", cfg, POOL_HEAP, self.timeout, path=[PORTABLE, LWTEST])
        self.raw["pool"] = res
        section = (
            f"Allocators: alloc+free of a {res['size']} B block, arena of {res['blocks']} blocks; "
            "FirstFit time / pool time (higher: the pool is faster)"
        )
        heap_section = (
            f"Allocators: MicroPython's own allocator (bytearray({res['size']}) per alloc, dropped; "
            "gc cost amortised) time / pool time (below 1: the heap is faster)"
        )
        for lvl in res["levels"]:
            t = lvl["us_per_pair"]
            pct = round(lvl["fill"] * 100)
            for pool, name in (("blockpool", "BlockPool"), ("sizeclass", "SizeClassPool")):
                self.ratio_row(
                    f"pool.{pool}.{pct}",
                    section,
                    f"{name} at {pct}% full",
                    ratios(t["firstfit"], t[pool]),
                    detail=(
                        f"FirstFit {median(t['firstfit']):.1f} us, scans {lvl['ff_scanned']:g} headers;"
                        f" {name} {median(t[pool]):.2f} us; heap/op "
                        f"{lvl['heap_per_pair'].get(pool, 0):g} B"
                    ),
                )
        for lvl in res["levels"]:
            t = lvl["us_per_pair"]
            pct = round(lvl["fill"] * 100)
            self.ratio_row(
                f"pool.heap.{pct}",
                heap_section,
                f"bytearray({res['size']}) vs BlockPool at {pct}% full",
                ratios(t["heap"], t["blockpool"]),
                detail=(
                    f"bytearray {median(t['heap']):.2f} us, BlockPool {median(t['blockpool']):.2f} us per pair; "
                    f"heap/op {lvl['heap_per_pair'].get('heap', 0):g} B vs 0 B"
                ),
            )

    def cold(self):
        # .mpy files in a private directory: runs side by side never share one
        with tempfile.TemporaryDirectory(prefix="lowwater-bench-mpy-") as tmp:
            self._cold(build_mpy(mp_version()[1], Path(tmp)))

    def _cold(self, mpy):
        self.log("cold start (.py and .mpy)")
        section = "Cold start, unix port (unix board heap)"
        n = max(2, self.reps // self.s["cold"]["reps_div"])
        start_cfg = {"mode": "start", "profile": str(self.profile_path)}
        wall = {"py": [], "mpy": [], "bare": []}
        inproc = {"py": [], "mpy": []}
        # From .py the compiler's peak may not fit the board heap (boards get
        # .mpy: `make run`, deploy --mpy); then .py is timed on a larger heap,
        # and the rows say so.
        heap = {"py": self.heap, "mpy": self.heap}
        with _CfgFile(start_cfg) as cfg_path:
            try:
                self._spawn_time([str(HERE / "mp_cold.py"), cfg_path], LIB, "FIRST")
            except UserError as e:
                if "MemoryError" not in str(e):
                    raise
                heap["py"] = self.heap + COLD_PY_EXTRA
        for rep in range(n):
            for v in ("bare", "py", "mpy")[rep % 3 :] + ("bare", "py", "mpy")[: rep % 3]:
                if v == "bare":
                    wall[v].append(self._spawn_time(["-c", "pass"], None, None))
                else:
                    lib = LIB if v == "py" else mpy
                    with _CfgFile(start_cfg) as cfg_path:
                        w, res = self._spawn_time([str(HERE / "mp_cold.py"), cfg_path], lib, "FIRST", heap[v])
                    wall[v].append(w)
                    inproc[v].append(res)
        self.raw["cold"] = {"wall_s": wall, "inproc": inproc, "heap": heap}
        for v, label in (("py", ".py sources"), ("mpy", ".mpy (mpy-cross)")):
            if heap[v] != self.heap:
                label += f"; MemoryError at the board heap {self.heap} B, timed at {heap[v]} B"
            ins = inproc[v]
            first = median([r["first_chunk_us"] for r in ins]) / 1000
            lo = min(r["first_chunk_us"] for r in ins) / 1000
            hi = max(r["first_chunk_us"] for r in ins) / 1000
            self.row(
                f"cold.first_chunk.{v}",
                section,
                f"script start to first chunk processed, {label}",
                first,
                "ms",
                detail=(
                    f"{lo:.1f}-{hi:.1f}; imports {median([r['imports_us'] for r in ins]) / 1000:.1f} ms, "
                    f"Firmware() {median([r['init_us'] for r in ins]) / 1000:.2f} ms, first step "
                    f"{median([r['step_us'] for r in ins]):.0f} us"
                ),
                lo=lo,
                hi=hi,
            )
        for v, label in (("py", ".py"), ("mpy", ".mpy")):
            if heap[v] != self.heap:
                label += f", {heap[v]} B heap"
            rs = ratios(wall[v], wall["bare"])
            self.ratio_row(
                f"cold.wall.{v}",
                section,
                f"process wall time, spawn to first chunk ({label}) / `micropython -c pass`",
                rs,
                detail=f"{median(wall[v]) * 1000:.0f} ms vs {median(wall['bare']) * 1000:.0f} ms",
            )
        self.row(
            "cold.heap_first_chunk",
            section,
            "heap in use after the first chunk (gc.mem_alloc), .py",
            median([r["heap_after"] for r in inproc["py"]]),
            "B",
        )
        # heap after imports: a fresh interpreter per case
        subs = sorted(p.stem for p in (LIB / "lowwater").glob("*.py") if p.stem != "__init__")
        cases = {
            "package": ({"names": ["lowwater"]}, "`import lowwater` (package only)"),
            "lazy_ring": ({"names": ["lowwater"], "attrs": ["ring"]}, "`import lowwater; lowwater.ring` (lazy)"),
            "firmware": ({"names": ["lowwater.app"]}, "`from lowwater.app import Firmware` (what main.py needs)"),
            "eager_all": ({"names": ["lowwater." + s for s in subs]}, f"all {len(subs)} submodules (eager)"),
        }
        heaps = {}
        self.raw["cold"]["imports"] = {}
        for key, (cfg, label) in cases.items():
            for v, lib in (("py", LIB), ("mpy", mpy)):
                # a large heap: the figure is the bytes retained, and compiling
                # every .py at once may not fit a board heap (checked below)
                res = run_mp("mp_cold.py", {"mode": "imports", **cfg}, IMPORT_HEAP, self.timeout, env_lib=lib)
                heaps[(key, v)] = res
                self.raw["cold"]["imports"][f"{key}.{v}"] = res
            py, m = heaps[(key, "py")], heaps[(key, "mpy")]
            detail = f".mpy {m['heap']} B; import time {py['us'] / 1000:.1f} ms (.py), {m['us'] / 1000:.2f} ms (.mpy)"
            if key in ("firmware", "eager_all"):
                fits = {}
                for v, lib in (("py", LIB), ("mpy", mpy)):
                    try:
                        run_mp("mp_cold.py", {"mode": "imports", **cfg}, self.heap, self.timeout, env_lib=lib)
                        fits[v] = "fits"
                    except UserError as e:
                        fits[v] = "FAILS" + (" (MemoryError)" if "MemoryError" in str(e) else "")
                self.raw["cold"]["imports"][f"{key}.fits_board_heap"] = fits
                detail += "; at the unix board heap: " + ", ".join(f"{v} {how}" for v, how in fits.items())
            self.row(f"cold.heap.{key}", section, f"heap after {label}", py["heap"], "B", detail=detail)
        lazy = heaps[("lazy_ring", "py")]["heap"]
        eager = heaps[("eager_all", "py")]["heap"]
        self.row(
            "cold.lazy_ratio",
            section,
            "lazy __getattr__: heap for ring alone / all submodules eagerly",
            lazy / eager,
            "x",
            detail=f"saves {eager - lazy} B when only lowwater.ring is used",
            lo=lazy / eager,
            hi=lazy / eager,
        )

    def _spawn_time(self, args, lib, marker, heap=None):
        env = launch.env(lib=lib or LIB)
        cmd = launch.command(args, heap or self.heap)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            if marker is None:
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    raise UserError("`micropython -c pass` timed out") from None
                return time.perf_counter() - t0
            first = None
            buf = b""
            deadline = t0 + 60
            fd = proc.stdout.fileno()
            while True:  # every wait bounded by the deadline
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    break
                data = os.read(fd, 65536)
                if not data:
                    break
                buf += data
                if first is None and (marker.encode() + b"\n") in buf:
                    first = time.perf_counter() - t0
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            proc.stdout.close()
        if first is None:
            tail = buf.decode("utf-8", "replace")[-2000:]
            raise UserError("cold-start script did not reach its first chunk:\n" + tail)
        return first, _parse(buf.decode("utf-8", "replace"), "mp_cold.py")

    # all ---------------------------------------------------------------------
    def run(self) -> dict:
        t0 = time.time()
        try:
            self._run_all()
        finally:
            if getattr(self, "_mpy_tmp", None) is not None:
                self._mpy_tmp.cleanup()
        goals = [r for r in self.rows if r["met"] is not None]
        return self._result(t0, goals)

    def _run_all(self):
        self.rings()
        self.callgrind()
        self.tutorial()
        self.loop()
        self.gc_pauses()
        self.pools()
        self.cold()

    def _result(self, t0, goals):
        return {
            "meta": {
                "quick": self.quick,
                "reps": self.reps,
                "seconds": round(time.time() - t0, 1),
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "micropython": mp_version()[0],
                "cpython": sys.version.split()[0],
                "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
                "unix_heap": self.heap,
                "settings": self.s,
            },
            "goals": {"met": sum(1 for r in goals if r["met"]), "missed": [r["id"] for r in goals if not r["met"]]},
            "rows": self.rows,
            "raw": self.raw,
        }


def run(quick=False, reps=None, log=None) -> dict:
    return Bench(quick=quick, reps=reps, log=log).run()


# -- output ------------------------------------------------------------------


def _fmt_value(r) -> str:
    v, u = r["value"], r["unit"]
    if u == "x":
        return f"{v:.2f}x" if r["id"] != "budget.overhead" else f"{v:.3f}x"
    if u == "B":
        return f"{v:g} B" if v == int(v) else f"{v:.2f} B"
    if u == "ms":
        return f"{v:.1f} ms"
    if u == "us":
        return f"{v:g} us"
    if u == "/1000":
        return f"{v:.1f} /1000"
    if u == "%":
        return f"{v:+.2f} %"
    return f"{v}"


def _fmt_goal(r) -> str:
    if r["goal"] is None:
        return ""
    return f"{r['goal']} {'met' if r['met'] else '**MISSED**'}"


def format_table(res: dict) -> str:
    """The results as one Markdown table (sections as bold rows)."""
    lines = ["| figure | value | spread (min-max) / detail | goal |", "|---|---|---|---|"]
    section = None
    for r in res["rows"]:
        if r["section"] != section:
            section = r["section"]
            lines.append(f"| **{section}** | | | |")
        lines.append(f"| {r['figure']} | {_fmt_value(r)} | {r['detail']} | {_fmt_goal(r)} |")
    m = res["meta"]
    g = res["goals"]
    lines.append("")
    lines.append(
        f"{g['met']} goals met, {len(g['missed'])} missed"
        + (": " + ", ".join(g["missed"]) if g["missed"] else "")
        + f". {m['reps']} repetitions, {m['seconds']} s; MicroPython {m['micropython']} (unix port); "
        f"CPython {m['cpython']}; {m['machine']}."
    )
    return "\n".join(lines)


def write_json(res: dict, path: Path) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1) + "\n")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
