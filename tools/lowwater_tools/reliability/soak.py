"""Long runs that prove the firmware's reliability promises (docs/reliability.md).

memory_soak(): the firmware on the MicroPython unix port with the board's
tight heap for a long bounded run (default one million chunks): low-water drift,
gc pause percentiles, leak slope, accounting (produced = processed + dropped),
and the flash log it wrote read back intact.

powerloss(): the firmware on the virtual board (its flash a littlefs2 image),
killed with SIGKILL at seeded random moments while it logs, restarted each time:
every record acknowledged durable (`LW1 log seq=N durable=1`) before a kill is
read back intact, no corrupt record is ever returned, seqs stay monotonic and
contiguous, and the log keeps working.

Both read the firmware's telemetry with lowwater_tools.telemetry (Parser) and
the flash log with lowwater_tools.reliability.log (the device's own Scanner).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from lowwater_tools import args as targs, boards
from lowwater_tools.reliability import log as logread
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, device_module
from lowwater_tools.telemetry.lw1 import Parser, Record, Summary, percentile
import sys

app = device_module("app")
window = device_module("window")

# Power-loss run defaults: small log files so that rotation (and deletion of the
# oldest file) happens under 200 kills while most acknowledged records stay
# on the image to be verified there; a flush every 2 windows.
PL_LOG = {"log_every": 2, "log_file_bytes": 8192, "log_files": 4}
PL_MAX_DELAY = 0.3  # s: a kill lands uniformly in [0, this] after the board booted...
PL_EARLY = 0.25  # ...or, with this probability, in [0, PL_EARLY_WINDOW]: during import and recovery
PL_EARLY_WINDOW = 0.04
# A late kill's delay counts from the life's PL_LATE_ACKS-th acknowledged flush,
# not from its boot: on a loaded machine each life still logs (and the log
# rotates) before it dies, so what the run covers does not depend on CPU speed.
PL_LATE_ACKS = 2
LOG_PATH = "/log"
WARMUP = 0.25  # fraction of the budget checks before drift and leak are measured (as `lowwater report`)


def _percentiles(values: list) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


# ---------------------------------------------------------------- window records


def check_window_record(seq: int, data: bytes) -> str | None:
    """Why this flash-log payload is not the firmware's window record `seq`
    (lowwater.window: format in docs/reliability.md), or None when it is."""
    try:
        rseq, produced, processed, dropped, _errors, lo, hi, mean = window.unpack(data)
    except ValueError as e:
        return str(e)
    if rseq != seq:
        return f"payload seq {rseq}"
    if processed + dropped > produced:
        return "accounting"
    if not (lo <= mean <= hi or (lo == hi == mean == 0)):
        return "statistics"
    return None


@dataclass
class LogCheck:
    """A flash log read back from a folder or an image."""

    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    files: int = 0
    corrupt: list = field(default_factory=list)  # (seq, why)
    seq_errors: list = field(default_factory=list)  # (previous, seq): not +1
    skipped_bytes: int = 0
    crc_errors: int = 0
    seqs: set = field(default_factory=set)
    reports: list = field(default_factory=list)  # logread.FileReport per file, oldest first


def rotation_problem(reports: list, log_files: int, log_file_bytes: int) -> str | None:
    """Did rotation delete more than it may? The log's files are consecutive
    (file indices, wrapping after 99999999) and, once more than log_files were
    created, log_files of them are retained; one fewer only while a rotation is
    under way (it deletes the oldest before it creates the next file: a kill in
    between), i.e. when the newest file could not take another record (full,
    or ending in a torn tail, or holding none). Else None."""
    idx = [device_module("flashlog").file_index(Path(r.file.rsplit(":", 1)[-1]).name) for r in reports]
    if not idx:
        return None
    for a, b in zip(idx, idx[1:]):
        if b != (a + 1) % 100_000_000:
            return f"log files {a:08d} and {b:08d} are not consecutive: rotation deleted a file that was not the oldest"
    created = idx[-1] if idx[-1] >= idx[0] else None  # files 1..newest, unless the indices wrapped
    want = log_files if created is None else min(log_files, created)
    if len(idx) >= want:
        return None
    new = reports[-1]
    biggest = max((r.record_bytes // r.records for r in reports if r.records), default=0)
    rotating = not new.records or new.skipped_bytes or new.size + biggest > log_file_bytes
    if len(idx) == want - 1 and rotating:
        return None
    return f"rotation deleted too much: {len(idx)} log files retained, {want} expected (log_files={log_files})"


def check_log(target, fs_size: int | None = None, log_path: str = LOG_PATH) -> LogCheck:
    reports: list = []
    out = LogCheck()
    prev = None
    for ev in logread.read(target, 0, fs_size, log_path, reports):
        if not isinstance(ev, logread.Record):
            continue
        out.records += 1
        why = check_window_record(ev.seq, ev.data)
        if why:
            out.corrupt.append((ev.seq, why))
        if prev is not None and ev.seq != prev + 1:
            out.seq_errors.append((prev, ev.seq))
        if out.first_seq is None:
            out.first_seq = ev.seq
        out.last_seq = ev.seq
        out.seqs.add(ev.seq)
        prev = ev.seq
    out.files = len(reports)
    out.reports = reports
    out.skipped_bytes = sum(r.skipped_bytes for r in reports)
    out.crc_errors = sum(r.crc_errors for r in reports)
    return out


# ---------------------------------------------------------------- memory soak


@dataclass
class MemorySoak:
    board: str
    heap: int
    chunks_asked: int
    chunks: int | None = None
    processed: int | None = None
    dropped: int | None = None
    errors: int | None = None
    accounting_ok: bool = False
    low_water: int | None = None
    lw_start: int | None = None  # lowest free in the tenth of the budget checks after the warm-up (first quarter)
    lw_end: int | None = None  # ... in the last tenth
    lw_drift: int | None = None  # lw_end - lw_start (negative: the low-water sank)
    gc_us: dict = field(default_factory=dict)
    leak_slope: float | None = None  # live bytes per 1000 chunks (after warm-up)
    leak_verdict: str = "unknown"
    checks: dict = field(default_factory=dict)
    memory_errors: int = 0
    log_records: int = 0
    log_corrupt: int = 0
    log_seq_errors: int = 0
    duration_s: float = 0.0
    chunks_per_s: float = 0.0
    exit_status: int | None = None
    problems: list = field(default_factory=list)


def memory_soak(
    board: str = boards.DEFAULT_BOARD,
    chunks: int = 1_000_000,
    heap: int | None = None,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> MemorySoak:
    """Run firmware/main.py on the unix port (`-X heapsize=heap`, default the board's
    heap mapped to 64-bit) for `chunks` chunks, logging to a temporary folder.
    lib/ runs as .mpy (mpy-cross for the unix port), as a board should run it:
    compiled from source in the same heap, the firmware no longer leaves room
    to compile flashlog.py, and would run without a log."""
    from lowwater_tools import launch
    from lowwater_tools.boardio import mpybuild
    from lowwater_tools.boardio.run import firmware_command, firmware_env

    if chunks <= 0:
        raise UserError("--chunks must be > 0")
    prof = boards.load(board)
    heap = heap or boards.unix_heap(prof)
    if heap <= 0:
        raise UserError("--heap must be > 0")
    res = MemorySoak(prof["name"], heap, chunks)
    timeout = timeout if timeout is not None else 120 + chunks / 2000
    tmp = tempfile.mkdtemp(prefix="lowwater-soak-")
    try:
        env = firmware_env(boards.profile_path(board), chunks)
        arch = mpybuild.decode_mpy(unix_port_mpy())[2]
        mpybuild.build(Path(tmp) / "lib", arch=arch)
        env["MICROPYPATH"] = launch.micropypath([], Path(tmp) / "lib")
        env["LOWWATER_LOG"] = str(Path(tmp) / "log")
        parser = Parser()
        records: list[Record] = []
        noise: list[str] = []
        parser.on_noise = lambda line: noise.append(line.decode("utf-8", "replace")) if len(noise) < 200 else None
        t0 = time.monotonic()
        proc = subprocess.Popen(
            firmware_command(FIRMWARE / "main.py", heap),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        killed = False
        try:
            timer = threading.Timer(timeout, lambda: _killpg(proc.pid))
            timer.start()
            last = t0
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                records += parser.feed(chunk)
                now = time.monotonic()
                if progress and now - last > 5:
                    last = now
                    done = next((r.get("chunks") for r in reversed(records) if r.kind == "stat"), 0)
                    progress(f"memory soak: {done}/{chunks} chunks")
            records += parser.close()
            killed = not timer.is_alive()
            timer.cancel()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                _killpg(proc.pid)
                proc.wait(timeout=10)
            proc.stdout.close()
        res.duration_s = round(time.monotonic() - t0, 2)
        res.exit_status = proc.returncode
        if killed:
            res.problems.append(f"the run did not finish within {timeout:g} s")
        elif proc.returncode:
            last = next((n.strip() for n in reversed(noise) if n.strip()), "no output")
            res.problems.append(f"the firmware exited with status {proc.returncode} ({last})")
        _memory_figures(res, records, prof)
        log_dir = Path(tmp) / "log"
        if log_dir.is_dir() and any(log_dir.iterdir()):
            lc = check_log(log_dir)
            res.log_records = lc.records
            res.log_corrupt = len(lc.corrupt)
            res.log_seq_errors = len(lc.seq_errors)
            if lc.corrupt or lc.seq_errors:
                res.problems.append(f"flash log: {len(lc.corrupt)} corrupt records, {len(lc.seq_errors)} seq gaps")
            why = rotation_problem(lc.reports, prof.get("log_files", 4), prof.get("log_file_bytes", 16384))
            if why:
                res.problems.append(f"flash log: {why}")
        else:
            res.problems.append("the firmware wrote no flash log")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _memory_figures(res: MemorySoak, records: list[Record], prof: dict) -> None:
    from lowwater_tools.telemetry.report import leak

    summ = Summary.of(records, prof)
    end = next((r for r in reversed(records) if r.kind == "end"), None)
    if end is None:
        res.problems.append("no end record")
    else:
        f = end.fields
        res.chunks, res.processed, res.dropped, res.errors = (
            f.get(k) for k in ("chunks", "processed", "dropped", "errors")
        )
        res.accounting_ok = res.chunks == res.processed + res.dropped and res.chunks == res.chunks_asked
        if not res.accounting_ok:
            res.problems.append(
                f"accounting: chunks={res.chunks} processed={res.processed} dropped={res.dropped} "
                f"(asked {res.chunks_asked})"
            )
    mems = [r for r in records if r.kind == "mem" and isinstance(r.get("free"), int)]
    res.low_water = summ.get("low_water")
    res.checks = summ.get("checks") or {}
    res.memory_errors = summ.get("memory_errors") or 0
    if mems:
        # After the warm-up (the store fills, the log rotates once): the tenth
        # of the checks that follows it against the last tenth.
        k = max(1, len(mems) // 10)
        w = int(len(mems) * WARMUP)
        w = min(w, len(mems) - k)
        res.lw_start = min(r.get("free") for r in mems[w : w + k])
        res.lw_end = min(r.get("free") for r in mems[-k:])
        res.lw_drift = res.lw_end - res.lw_start
    res.gc_us = _percentiles([r.get("gc_us") for r in mems if isinstance(r.get("gc_us"), int)])
    lk = leak(records)
    res.leak_slope = lk.get("slope")
    res.leak_verdict = lk.get("verdict", "unknown")
    if res.leak_verdict == "leak":
        res.problems.append(f"leak: live heap grows {res.leak_slope} B per 1000 chunks")
    if res.memory_errors:
        res.problems.append(f"{res.memory_errors} MemoryError records")
    if res.duration_s and res.chunks:
        res.chunks_per_s = round(res.chunks / res.duration_s)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- power loss


class PortReader:
    """Reads a (virtual) board's port on a thread: LW1 records with arrival times."""

    def __init__(self, port: str):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.parser = Parser()
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name="soak-port", daemon=True)
        self.thread.start()

    def _loop(self):
        import select

        while not self._stop:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                break
            if data:
                recs = self.parser.feed(data)
                now = time.monotonic()
                for rec in recs:
                    rec.host_time = now
                with self.lock:
                    self.records += recs

    def snapshot(self) -> list[Record]:
        with self.lock:
            return list(self.records)

    def wait_for(self, predicate, timeout: float, what: str) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.snapshot()
            if predicate(recs):
                return recs
            if time.monotonic() > deadline:
                raise UserError(f"power-loss run: no {what} within {timeout:g} s")
            time.sleep(0.01)

    def close(self):
        self._stop = True
        self.thread.join(2)
        os.close(self.fd)


@dataclass
class Life:
    """One boot of the firmware between two kills, as its telemetry tells it."""

    boot_at: float | None = None
    open_seq: int | None = None  # logopen: last seq recovered
    open_us: int | None = None  # logopen: FlashLog open + recovery time
    torn: int = 0
    acks: list = field(default_factory=list)  # seqs of `log ... durable=1`
    reset_cause: str | None = None


def lives(records: list[Record]) -> list[Life]:
    """Split a board's records into lives at each `boot` record."""
    out: list[Life] = []
    for r in records:
        if r.kind == "boot":
            out.append(Life(boot_at=r.host_time))
        elif not out:
            continue
        elif r.kind == "reset":
            out[-1].reset_cause = r.get("cause")
        elif r.kind == "logopen":
            out[-1].open_seq, out[-1].open_us, out[-1].torn = r.get("seq"), r.get("us"), r.get("torn") or 0
        elif r.kind == "log" and r.get("durable") == 1 and isinstance(r.get("seq"), int):
            out[-1].acks.append(r.get("seq"))
    return out


@dataclass
class PowerLoss:
    board: str
    seed: int
    kills: int = 0
    lives: int = 0  # boots seen (kills + 1 when every life printed its boot record)
    kills_before_logopen: int = 0  # kills during boot, import or log recovery (no logopen record yet)
    acked: int = 0  # distinct seqs acknowledged durable
    acked_verified: int = 0  # of those, read back intact from the image
    acked_rotated: int = 0  # of those, deleted by rotation (older than the retained files)
    lost_acked: list = field(default_factory=list)  # acknowledged, then missing: must be empty
    restart_regressions: list = field(default_factory=list)  # a restart resumed below an acked seq
    records_verified: int = 0  # records read back and checked on the image
    corrupt: list = field(default_factory=list)
    seq_errors: list = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    files: int = 0
    skipped_bytes: int = 0
    crc_errors: int = 0
    torn_bytes: int = 0
    recovery_us: dict = field(default_factory=dict)
    final_acks: int = 0  # acks of the last life: the log keeps working
    wdt_resets: int = 0
    duration_s: float = 0.0
    problems: list = field(default_factory=list)


def unix_port_mpy() -> int:
    """sys.implementation._mpy of the unix port (the virtual board's MicroPython)."""
    from lowwater_tools.paths import micropython_exe

    out = subprocess.run(
        [micropython_exe(), "-c", "import sys; print(sys.implementation._mpy)"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        return int(out.stdout.strip())
    except ValueError:
        raise UserError(f"cannot read sys.implementation._mpy of the unix port: {out.stdout!r}") from None


def prepare_image(
    img: str | os.PathLike,
    profile_path: str | os.PathLike,
    main_py: str | None = None,
    files: dict | None = None,
    mpy: bool = True,
    timeout: float = 20.0,
) -> None:
    """Make `img` a freshly formatted virtual-board image holding the deploy set of
    `lowwater deploy [--mpy]` (firmware/, lib/, the profile as /board.json). main_py
    replaces /main.py; files adds {"/path": bytes | str}. The board formats the
    image itself on its first boot (as a real board does); the files are then
    written with littlefs-python.

    mpy=True (default) deploys lib/ compiled with mpy-cross, as a board should
    run it: compiling flashlog.py on the board needs ~20 KB of transient heap
    that the unix profile's tight heap does not reliably have once the
    firmware's buffers are allocated (the firmware then runs without a log)."""
    from lowwater_tools.boardio.deploy import deploy_set, mpy_args_for
    from lowwater_tools.vboard import VirtualBoard
    from lowwater_tools.vboard import image as vimage

    with VirtualBoard(board=str(profile_path), image=img, fresh=True, timeout=timeout):
        pass  # first boot: formats the erased flash
    fs = vimage.open_fs(img)
    args = mpy_args_for(unix_port_mpy()) if mpy else None
    put = {it.remote: it.local.read_bytes() for it in deploy_set(str(profile_path), args)}
    if main_py is not None:
        put["/main.py"] = main_py.encode()
    for k, v in (files or {}).items():
        put[k] = v.encode() if isinstance(v, str) else v
    for remote, data in sorted(put.items()):
        parts = remote.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/" + "/".join(parts[:i])
            try:
                fs.mkdir(d)
            except Exception:  # exists
                pass
        with fs.open(remote, "wb") as f:
            f.write(data)
    vimage.save(fs, img)


def derived_profile(board: str, out_dir: str | os.PathLike, **over) -> Path:
    """A copy of a board's profile with keys replaced, as OUT_DIR/<name>-soak.json."""
    src = boards.profile_path(board)
    boards.load(board)
    p = json.loads(Path(src).read_text())
    p.update(over)
    path = Path(out_dir) / f"{p['name']}-soak.json"
    path.write_text(json.dumps(p, indent=2))
    boards.load(str(path))
    return path


def powerloss(
    board: str = boards.DEFAULT_BOARD,
    kills: int = 200,
    seed: int = 1,
    image: str | None = None,
    max_delay: float = PL_MAX_DELAY,
    log: dict | None = None,
    timeout: float = 20.0,
    progress: Callable[[str], None] | None = None,
) -> PowerLoss:
    """Kill the firmware on a virtual board `kills` times at seeded random moments
    while it logs; then verify the log on the image (see the module docstring).
    The kill schedule is reproducible from the seed; where each kill lands in the
    firmware's work depends on the machine's timing."""
    from lowwater_tools.vboard import VirtualBoard

    if kills < 1:
        raise UserError("--kills must be >= 1")
    rng = random.Random(seed)
    res = PowerLoss(boards.load(board)["name"], seed)
    tmp = tempfile.mkdtemp(prefix="lowwater-powerloss-")
    t0 = time.monotonic()
    try:
        prof_path = derived_profile(board, tmp, **(log or PL_LOG))
        prof = boards.load(str(prof_path))
        img = image or str(Path(tmp) / "flash.lfs")
        prepare_image(img, prof_path, timeout=timeout)
        vb = VirtualBoard(board=str(prof_path), image=img, timeout=timeout)
        reader = None
        try:
            vb.start()
            reader = PortReader(vb.port)
            last_pid = None
            last_kill_at = 0.0
            for k in range(kills):
                early = rng.random() < PL_EARLY
                delay = rng.uniform(0, PL_EARLY_WINDOW) if early else rng.uniform(0, max_delay)
                vb.wait(lambda b, old=last_pid: b.booted and b.pid is not None and b.pid != old, timeout)
                pid = vb.pid
                if not early:
                    reader.wait_for(
                        lambda recs, after=last_kill_at: _life_acked(lives(recs), after, PL_LATE_ACKS),
                        timeout,
                        f"{PL_LATE_ACKS} acknowledged flushes before kill {k + 1}",
                    )
                time.sleep(delay)
                if vb.pid != pid:
                    res.problems.append(f"kill {k + 1}: the board reset by itself")
                    continue
                _killpg(pid)
                last_kill_at = time.monotonic()
                last_pid = pid
                res.kills += 1
                if progress and (k + 1) % 20 == 0:
                    progress(f"power loss: {k + 1}/{kills} kills")
            # The last life must boot, recover and log on.
            vb.wait(lambda b: b.booted and b.pid != last_pid, timeout)
            # (The dead life's output is relayed before the next boot, so the last
            # life in the stream that booted after the last kill is the new one.)
            reader.wait_for(
                lambda recs: _final_life_ok(lives(recs), last_kill_at),
                timeout,
                "two acknowledged flushes after the last restart",
            )
            res.wdt_resets = vb.wdt_reset_count
            if vb.error:
                res.problems.append(f"virtual board: {vb.error}")
        finally:
            if reader is not None:
                time.sleep(0.05)
                reader.close()
            vb.close()
        records = reader.snapshot() if reader is not None else []
        _powerloss_figures(res, records, img, prof)
    finally:
        res.duration_s = round(time.monotonic() - t0, 2)
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _life_acked(ls: list, after: float, n: int) -> bool:
    """The life that booted after `after` has acknowledged n flushes."""
    return bool(ls) and (ls[-1].boot_at or 0) > after and len(ls[-1].acks) >= n


def _final_life_ok(ls: list, after: float) -> bool:
    return bool(ls) and (ls[-1].boot_at or 0) > after and ls[-1].open_seq is not None and len(ls[-1].acks) >= 2


def _powerloss_figures(res: PowerLoss, records: list[Record], img: str, prof: dict) -> None:
    ls = lives(records)
    res.lives = len(ls)  # a kill before the boot record leaves no life behind
    acked: set = set()
    max_ack = 0
    opens = []
    # Lives killed after their logopen record; every other kill came before it
    # (also those before the boot record, which leave no life in the stream).
    opened = len([life for life in ls[:-1] if life.open_seq is not None])
    res.kills_before_logopen = max(0, res.kills - opened)
    for i, life in enumerate(ls):
        if life.open_seq is None:
            continue
        opens.append(life.open_us)
        res.torn_bytes += life.torn
        if life.open_seq < max_ack:
            res.restart_regressions.append((i, life.open_seq, max_ack))
        prev = life.open_seq
        for a in life.acks:
            if a <= prev:
                res.restart_regressions.append((i, a, prev))
            prev = a
        if life.acks:
            acked.update(range(life.open_seq + 1, max(life.acks) + 1))
            max_ack = max(max_ack, max(life.acks))
    res.recovery_us = _percentiles([u for u in opens if isinstance(u, int)])
    res.final_acks = len(ls[-1].acks) if ls else 0
    res.acked = len(acked)
    lc = check_log(img, prof["fs_size"])
    res.records_verified = lc.records
    res.corrupt = lc.corrupt
    res.seq_errors = lc.seq_errors
    res.first_seq, res.last_seq = lc.first_seq, lc.last_seq
    res.files, res.skipped_bytes, res.crc_errors = lc.files, lc.skipped_bytes, lc.crc_errors
    first = lc.first_seq or 1
    res.acked_rotated = len([s for s in acked if s < first])
    res.lost_acked = sorted(s for s in acked if s >= first and s not in lc.seqs)
    res.acked_verified = len([s for s in acked if s in lc.seqs])
    if res.lost_acked:
        res.problems.append(f"{len(res.lost_acked)} acknowledged records lost: {res.lost_acked[:10]}")
    if res.restart_regressions:
        res.problems.append(f"seq went back below an acknowledged record: {res.restart_regressions[:5]}")
    if res.corrupt:
        res.problems.append(f"{len(res.corrupt)} corrupt records returned: {res.corrupt[:5]}")
    if res.seq_errors:
        res.problems.append(f"seq not contiguous: {res.seq_errors[:5]}")
    if res.files > prof.get("log_files", 4):
        res.problems.append(f"{res.files} log files, more than log_files")
    why = rotation_problem(lc.reports, prof.get("log_files", 4), prof.get("log_file_bytes", 16384))
    if why:
        res.problems.append(why)
    if res.final_acks < 2:
        res.problems.append("the log did not keep working after the last restart")
    if res.wdt_resets:
        res.problems.append(f"{res.wdt_resets} watchdog resets during the run")
    if not acked:
        res.problems.append("no record was ever acknowledged")


def as_dict(obj) -> dict:
    """A result as JSON-ready data (sets become sorted lists)."""
    return json.loads(json.dumps(asdict(obj), default=lambda v: sorted(v) if isinstance(v, set) else str(v)))


# The command: `lowwater soak`: a long memory run, then a power-loss run (make soak). docs/reliability.md.
HELP = "long memory run (drift, gc pauses, leak slope, accounting) then SIGKILL power-loss run on the virtual board"


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--chunks",
        type=targs.count(),
        default=1_000_000,
        metavar="N",
        help="chunks of the memory run (default 1000000; 0 skips it)",
    )
    p.add_argument(
        "--heap",
        type=targs.byte_size,
        default=None,
        metavar="BYTES",
        help="unix-port heap of the memory run (default: the board's heap mapped to 64-bit)",
    )
    p.add_argument(
        "--kills",
        type=targs.count(),
        default=200,
        metavar="K",
        help="SIGKILLs of the power-loss run (default 200; 0 skips it)",
    )
    p.add_argument(
        "--seed", type=targs.count(0, 2**31 - 1), default=1, metavar="S", help="seed of the kill schedule (default 1)"
    )
    p.add_argument(
        "--max-delay",
        type=targs.seconds,
        default=PL_MAX_DELAY,
        metavar="S",
        help=f"latest kill after a boot, in seconds (default {PL_MAX_DELAY})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with every figure")


def _progress(msg: str) -> None:
    print(f"lowwater: {msg}", file=sys.stderr, flush=True)


def _fmt_mem(m: MemorySoak) -> list[str]:
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


def _fmt_pl(r: PowerLoss) -> list[str]:
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
        m = memory_soak(args.board, args.chunks, args.heap, progress=_progress)
        out["memory"] = as_dict(m)
        problems += [f"memory soak: {p}" for p in m.problems]
        if not args.json:
            print("\n".join(_fmt_mem(m)), flush=True)
    if args.kills:
        _progress(f"power loss: {args.kills} kills on the virtual board")
        r = powerloss(args.board, args.kills, args.seed, max_delay=args.max_delay, progress=_progress)
        out["powerloss"] = as_dict(r)
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
