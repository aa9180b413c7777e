"""Starting MicroPython on the host: the one place that builds its command line.

Every tool and test that runs code on the unix port goes through `command()` and
`env()` (or `run()` / `popen()` on top of them): the `-X heapsize=` flag, the
interpreter's path and MICROPYPATH are built here and nowhere else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .paths import LIB, ROOT, micropython_exe


def micropypath(path: Iterable[Path | str] = (), lib: Path | str | None = LIB) -> str:
    """MICROPYPATH for `path` then `lib` (None: no lib), then frozen modules."""
    parts = [str(p) for p in path]
    if lib is not None:
        parts.append(str(lib))
    parts.append(".frozen")
    return ":".join(parts)


def command(args: Iterable[str], heap: int) -> list[str]:
    """`micropython -X heapsize=HEAP ARGS`: the unix port with a board-shaped heap."""
    if int(heap) <= 0:
        raise ValueError("heap must be > 0")
    return [micropython_exe(), "-X", f"heapsize={int(heap)}", *[str(a) for a in args]]


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
) -> Result:
    """Run MicroPython to the end (stdout and stderr together), bounded by `timeout`;
    a timeout gives returncode -9 and the output so far plus a note."""
    try:
        p = subprocess.run(
            command(args, heap),
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
    **kwargs,
) -> subprocess.Popen:
    """Start MicroPython and return the process (the caller bounds and reaps it)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(command(args, heap), env=env(path, lib, extra_env), cwd=str(cwd or ROOT), **kwargs)
