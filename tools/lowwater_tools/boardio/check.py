"""`lowwater check --board B`: validate a board profile with the device's own code.

`lowwater check --no-alloc MODULE:NAME [--path DIR]`: run the user's stage
(a class with process(src, n, dst)), sensor driver (a class with
readinto(buf)) or function f(src, n, dst) on MicroPython (the unix port, and
the 32-bit runtime when it is built) and say whether and where it allocates:
bytes per call by micropython.mem_total() (which also sees frames that go on
the heap), and the first call that raised MemoryError under
micropython.heap_lock() with its traceback. docs/pipeline.md.
"""

from __future__ import annotations

from pathlib import Path

from lowwater_tools import args as A
from lowwater_tools import boards
from lowwater_tools.errors import UserError

HELP = (
    "validate a board profile (the same checks the firmware runs at start); --no-alloc: prove a stage allocates nothing"
)

PROBE_TIMEOUT = 120  # s: one MicroPython run of the probe
PROBE_ROOM = 65536  # heap bytes for the probe itself and the module compiled from source


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--no-alloc",
        metavar="MODULE:NAME",
        help="run this stage class, sensor class or function f(src, n, dst) on MicroPython and report its allocations",
    )
    p.add_argument(
        "--path",
        action="append",
        default=[],
        type=_folder,
        help="with --no-alloc: a folder holding MODULE (repeatable; lib/ is always there)",
    )
    p.add_argument(
        "--runtime",
        choices=("all", "unix", "wasm32"),
        default="all",
        help="with --no-alloc: unix (64-bit), wasm32 (32-bit), or all (wasm32 when built)",
    )
    p.add_argument(
        "--calls", type=A.count(1, 100000), default=100, help="with --no-alloc: measured calls (default 100)"
    )


def _folder(text: str) -> str:
    if not text:
        raise A.ArgumentTypeError("expected a folder, got an empty name")
    if not Path(text).is_dir():
        raise A.ArgumentTypeError(f"{text} is not a folder")
    return str(Path(text).resolve())


def run(args) -> int:
    prof = boards.load(args.board)
    if getattr(args, "no_alloc", None):
        return no_alloc(prof, args.no_alloc, args.path, args.runtime, args.calls)
    heap = boards.unix_heap(prof)
    print(
        f"{prof['name']}: ok ({prof['chip']}, heap {prof['heap']} B, warn_free {prof['warn_free']} B, "
        f"min_free {prof['min_free']} B, ring {prof['chunk_size']}x{prof['chunk_count']} B; "
        f"unix-port heap {heap} B)"
    )
    return 0


# ---- --no-alloc ----------------------------------------------------------------

# Runs on MicroPython. CFG is filled in by the host. Prints LW: lines only.
_PROBE = """\
import sys, micropython
CFG = {cfg}


def out(*a):
    print("LW:" + " ".join([str(x) for x in a]))


def fail(msg):
    out("error", msg)
    raise SystemExit(0)


mod, name = CFG["module"], CFG["name"]
try:
    m = __import__(mod, None, None, (name,))
except ImportError as e:
    fail("cannot import module %s (%s); --path names the folder that holds %s.py" % (mod, e, mod))
except SyntaxError as e:
    fail("module %s does not compile: %s" % (mod, e))
obj = getattr(m, name, None)
if obj is None:
    fail("module %s has no %s" % (mod, name))
from lowwater.pipeline import Context, Events
from lowwater.sensor import SimSensor
from lowwater.telemetry import Telemetry


class Sink:
    def __init__(self):
        self.n = 0

    def write(self, s):
        self.n += 1
        return len(s)


K = CFG["chunk"]
SRC = memoryview(bytearray(K))
DST = memoryview(bytearray(K))
SimSensor(1, CFG["width"]).readinto(SRC)
N = K
SINK = Sink()
EV = Events(Telemetry(SINK), CFG["spec"].get("name") or name)
if type(obj) is type and hasattr(obj, "process"):
    kind = "stage"
    CALL = obj(CFG["spec"], Context(K, CFG["width"], CFG["rate_hz"], EV)).process
elif type(obj) is type and hasattr(obj, "readinto"):
    kind = "sensor"
    CALL = obj(CFG["spec"]).readinto
elif callable(obj) and type(obj) is not type:
    kind = "function"
    CALL = obj
else:
    fail("%s:%s is not a stage (a class with process), a sensor (a class with readinto) or a function" % (mod, name))
out("kind", kind)


def one():
    if kind == "sensor":
        return CALL(DST)
    return CALL(SRC, N, DST)


def measure(n):
    t = micropython.mem_total()
    while n:
        one()
        n -= 1
    return micropython.mem_total() - t


def locked(n):
    micropython.heap_lock()
    try:
        while n:
            one()
            n -= 1
    finally:
        micropython.heap_unlock()


try:
    r = one()
    one()
    one()
except Exception as e:
    out("raised")
    sys.print_exception(e)
    raise SystemExit(0)
out("returns", r if type(r) is int else type(r).__name__)
calls = CFG["calls"]
out("bytes", measure(calls), calls)
try:
    locked(calls)
    out("locked", "ok")
except MemoryError as e:
    out("locked", "raised")
    sys.print_exception(e)
out("events", EV.count, SINK.n)
"""


def _spec_of(prof: dict, module: str, name: str) -> dict:
    """The profile's own entry for module:name (sensor or a stage), else {}."""
    s = prof.get("sensor", {})
    if s.get("module") == module and s.get("class") == name:
        return dict(s)
    for st in prof.get("stages", []):
        if st.get("module") == module and st.get("class") == name:
            return dict(st)
    return {}


def _runtimes(which: str) -> list[tuple[str, str | None]]:
    """[(runtime, None or why it is left out)]."""
    from lowwater_tools import runtime32

    out: list[tuple[str, str | None]] = []
    if which in ("all", "unix"):
        out.append(("unix", None))
    if which in ("all", "wasm32"):
        if runtime32.available():
            out.append(("wasm32", None))
        elif which == "wasm32":
            raise UserError("the 32-bit runtime is not built: run `make wasm32`")
        else:
            out.append(("wasm32", "not built (make wasm32)"))
    return out


def probe(prof: dict, spec: str, path: list[str], runtime: str, calls: int) -> dict:
    """One probe run: {kind, returns, bytes, calls, locked, trace, events} or a UserError."""
    from lowwater_tools import launch

    module, _, name = spec.partition(":")
    cfg = {
        "module": module,
        "name": name,
        "chunk": prof["chunk_size"],
        "width": prof["sensor"]["width"],
        "rate_hz": prof["sensor"]["rate_hz"],
        "calls": calls,
        "spec": _spec_of(prof, module, name),
    }
    heap = launch.board_heap(prof, runtime) + PROBE_ROOM
    code = _PROBE.format(cfg=repr(cfg))
    r = launch.run(["-c", code], heap, path, timeout=PROBE_TIMEOUT, runtime=runtime, dirs=path)
    res: dict = {"runtime": runtime, "trace": [], "heap": heap}
    tail: list[str] | None = None
    for line in r.out.splitlines():
        if line.startswith("LW:"):
            key, *rest = line[3:].split(" ", 1)
            val = rest[0] if rest else ""
            if key == "error":
                raise UserError(f"check --no-alloc {spec}: {val}")
            if key == "bytes":
                b, c = val.split()
                res["bytes"], res["calls"] = int(b), int(c)
            else:
                res[key] = val
            tail = res["trace"] if key == "raised" or (key == "locked" and val == "raised") else None
        elif tail is not None:
            tail.append(line)
    if "raised" in res:
        raise UserError(f"check --no-alloc {spec}: the call raised on {runtime}: {' / '.join(res['trace'][-2:])}")
    if r.returncode != 0 or "bytes" not in res:
        raise UserError(f"check --no-alloc {spec} failed on {runtime} (exit {r.returncode}): {r.out.strip()[-400:]}")
    return res


def no_alloc(prof: dict, spec: str, path: list[str], which: str, calls: int) -> int:
    module, sep, name = spec.partition(":")
    if (
        not sep
        or not module
        or not name
        or not all(p.isidentifier() for p in module.split("."))
        or not name.isidentifier()
    ):
        raise UserError(f"--no-alloc expects MODULE:NAME (e.g. myfilter:HighPass), got {spec!r}")
    bad = False
    print(f"{spec}: {prof['chunk_size']} B chunks of {prof['sensor']['width']}-byte samples ({prof['name']} profile)")
    results = []
    for rt, why in _runtimes(which):
        if why:
            print(f"  {rt:7s} skipped: {why}")
            continue
        res = probe(prof, spec, path, rt, calls)
        results.append(res)
        per = res["bytes"] / res["calls"]
        ok = res["bytes"] == 0 and res["locked"] == "ok"
        bad |= not ok
        verdict = "allocates nothing" if ok else "ALLOCATES"
        print(
            f"  {rt:7s} {res['kind']}: {verdict}: {per:g} B per call (mem_total over {res['calls']} calls), "
            f"heap_lock: {'no MemoryError' if res['locked'] == 'ok' else 'MemoryError'}; returns {res['returns']}"
        )
        events = int(res.get("events", "0").split()[0])
        if events:
            print(f"          events: {events} `evt` records during the calls")
        if res["locked"] != "ok":
            where = [ln.strip() for ln in res["trace"] if ln.strip().startswith("File ")]
            if where:
                print(f"          first allocation under heap_lock: {where[-1]}")
        elif res["bytes"]:
            print("          heap_lock saw nothing: a heap-allocated frame (too many locals + stack: docs/pipeline.md)")
    return A.FAIL_STATUS if bad else 0
