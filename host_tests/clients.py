"""Serial clients driven from the tests, each call bounded by a timeout."""

from __future__ import annotations

import subprocess
import sys

from lowwater_tools.paths import tool_exe

T = 90  # s: default bound for one tool call (a bound, not a pace: generous for a loaded host)


def run(*argv: str, ok: bool = True, timeout: float = T):
    """Run a client to the end; with ok, assert exit 0 and return stdout, else the
    CompletedProcess."""
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout
    return r


def mpr(target, *args: str, ok: bool = True, timeout: float = T):
    """`mpremote connect PORT ARGS` against a port name or anything with `.port`
    (a VirtualBoard)."""
    port = target if isinstance(target, str) else target.port
    return run(tool_exe("mpremote"), "connect", port, *args, ok=ok, timeout=timeout)


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """`lowwater ARGS` in a fresh process (this venv's Python), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
