"""The lowwater packages (base plus opt-in, micropython-lib style) and their files.

One table says which package installs each module of lib/lowwater: `MODULES`
in lib/lowwater/_packages.py (the board reads it too, when an import fails, to
tell an unknown name from an opt-in module that is not installed and name its
package). From it this module derives, and
`lowwater mpy --package-json` writes:

- package.json + manifest.py: the base package `lowwater` (mip's default file,
  so `mpremote mip install github:OWNER/lowwater` gets the base);
- package-X.json + manifest-X.py: each opt-in package `lowwater-X` (its own
  files only; its manifest includes the base's);
- package-firmware.json + manifest-firmware.py: boot.py and main.py plus every
  package the firmware imports (found by reading the imports, transitively).

host_tests/test_distribution.py checks the files are up to date and that every
.py under lib/lowwater is in exactly one package. docs/distribution.md.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, ROOT

BASE = "lowwater"
PKG_DIR = LIB / "lowwater"
INIT = PKG_DIR / "__init__.py"
TABLE = PKG_DIR / "_packages.py"
LICENSE = "MIT"


@dataclass
class Package:
    name: str  # "lowwater", "lowwater-prof", ...
    modules: list[str]  # top-level module names of lowwater in it
    files: list[Path] = field(default_factory=list)  # sources under lib/, sorted

    @property
    def short(self) -> str:
        """ "" for the base, "prof" for lowwater-prof."""
        return "" if self.name == BASE else self.name[len(BASE) + 1 :]

    @property
    def json_path(self) -> Path:
        return ROOT / ("package.json" if not self.short else f"package-{self.short}.json")

    @property
    def manifest_path(self) -> Path:
        return ROOT / ("manifest.py" if not self.short else f"manifest-{self.short}.py")


def table(path: Path | None = None) -> dict[str, str]:
    """{module: package} from `MODULES = {...}` in lib/lowwater/_packages.py
    ("" in the source means the base package), read without importing it."""
    path = path or TABLE
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets):
            raw = ast.literal_eval(node.value)
            return {m: (p or BASE) for m, p in raw.items()}
    raise UserError(f"{path} has no MODULES table")


def _module_files(name: str) -> list[Path]:
    single = PKG_DIR / f"{name}.py"
    sub = PKG_DIR / name
    out = [single] if single.is_file() else []
    if sub.is_dir():
        out += sorted(p for p in sub.rglob("*.py") if "__pycache__" not in p.parts)
    return out


def packages() -> list[Package]:
    """The packages, base first then opt-in ones by name, with their files.
    Raises UserError when lib/lowwater and the table disagree."""
    tab = table()
    problems = []
    by_name: dict[str, Package] = {BASE: Package(BASE, [], [INIT])}
    for mod, pkg in sorted(tab.items()):
        if not (pkg == BASE or pkg.startswith(BASE + "-")):
            problems.append(f"module {mod!r}: package {pkg!r} is not lowwater-NAME")
        files = _module_files(mod)
        if not files:
            problems.append(f"module {mod!r} is in the table but lib/lowwater has no {mod}.py or {mod}/")
        p = by_name.setdefault(pkg, Package(pkg, []))
        p.modules.append(mod)
        p.files += files
    listed = {f for p in by_name.values() for f in p.files}
    for f in sorted(p for p in PKG_DIR.rglob("*.py") if "__pycache__" not in p.parts):
        if f not in listed:
            rel = f.relative_to(PKG_DIR).parts[0].removesuffix(".py")
            problems.append(
                f"lowwater/{f.relative_to(PKG_DIR).as_posix()} is in no package: add {rel!r} to MODULES in lowwater/_packages.py"
            )
    if problems:
        raise UserError("package table: " + "; ".join(problems))
    for p in by_name.values():
        p.files.sort()
    return [by_name[BASE]] + [by_name[n] for n in sorted(by_name) if n != BASE]


def get(name: str) -> Package:
    for p in packages():
        if name in (p.name, p.short):
            return p
    raise UserError(f"no package {name!r}: " + ", ".join(p.name for p in packages()))


# ---- what the firmware imports --------------------------------------------------

_IMPORT = re.compile(
    r"^\s*(?:from\s+lowwater\s+import\s+([\w ,()]+)|from\s+lowwater\.(\w+)|import\s+lowwater\.(\w+))", re.M
)


def imported_modules(path: Path) -> set[str]:
    """Top-level lowwater modules a source file imports (anywhere in it: the
    firmware imports some modules only when a profile asks for them)."""
    out: set[str] = set()
    for names, frm, imp in _IMPORT.findall(path.read_text()):
        if names:
            out |= {n.split(" as ")[0].strip() for n in names.strip("()").split(",") if n.strip()}
        out.add(frm or imp)
    out.discard("")
    out.discard("__version__")
    return out


def firmware_modules() -> set[str]:
    """Every lowwater module the firmware (firmware/*.py) can import, transitively."""
    tab = table()
    todo = sorted(FIRMWARE.glob("*.py"))
    seen_files: set[Path] = set()
    mods: set[str] = set()
    while todo:
        f = todo.pop()
        if f in seen_files:
            continue
        seen_files.add(f)
        for m in imported_modules(f):
            if m in tab and m not in mods:
                mods.add(m)
                todo += _module_files(m)
    return mods


def firmware_packages() -> list[Package]:
    """The packages the firmware needs: the base and those of the modules it imports."""
    tab = table()
    need = {BASE} | {tab[m] for m in firmware_modules()}
    return [p for p in packages() if p.name in need]


# ---- the files written ------------------------------------------------------------


def version() -> str:
    """lowwater.__version__, read from lib/lowwater/__init__.py without importing it."""
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', INIT.read_text(), re.M)
    if not m:
        raise UserError("lib/lowwater/__init__.py has no __version__")
    return m.group(1)


def package_json(pkg: Package) -> dict:
    """mip's package.json: the package's own files, relative URLs (mip resolves
    them against the package file's own location, on GitHub or on disk). No
    deps: mip cannot name a sibling file of the same repository without its
    owner, so an opt-in package is installed after the base (docs/distribution.md)."""
    urls = [[p.relative_to(LIB).as_posix(), p.relative_to(ROOT).as_posix()] for p in pkg.files]
    return {"urls": urls, "deps": [], "version": version()}


def firmware_json() -> dict:
    """package-firmware.json, for `mip install --target /`: boot.py and main.py,
    and lib/... for every file of the packages the firmware imports."""
    urls = [[p.name, p.relative_to(ROOT).as_posix()] for p in sorted(FIRMWARE.glob("*.py"))]
    for pkg in firmware_packages():
        urls += [[p.relative_to(ROOT).as_posix()] * 2 for p in pkg.files]
    return {"urls": urls, "deps": [], "version": version()}


_MANIFEST_HEAD = """\
# {file}: freeze {what}
# into a MicroPython firmware image. Generated by `lowwater mpy --package-json`
# from the table in lib/lowwater/_packages.py: do not edit by hand
# (host_tests/test_distribution.py checks it is up to date).
#
# In a port's board manifest (e.g. ports/rp2/boards/RPI_PICO/manifest.py or your
# own FROZEN_MANIFEST), after the port's own include:
#     include("$(PORT_DIR)/boards/manifest.py")
#     include("/path/to/lowwater/{file}")
# The port's mpy-cross compiles the files for the board's arch (lowwater/_viper.py
# gets native code for that chip). Frozen modules run from flash: their bytecode
# costs no heap. boot.py, main.py and board.json stay on the filesystem
# (lowwater deploy, or mip with package-firmware.json). docs/distribution.md.
"""


def _package_call(pkg: Package) -> str:
    # package(...) laid out as `ruff format` lays it out (one file per line).
    rel = [p.relative_to(PKG_DIR).as_posix() for p in pkg.files]
    files = "".join(f'        "{r}",\n' for r in rel)
    return f'package(\n    "lowwater",\n    files=[\n{files}    ],\n    base_path="lib",\n)\n'


def manifest(pkg: Package) -> str:
    """manifest.py (base) or manifest-X.py (opt-in: includes the base's first)."""
    mods = ", ".join("lowwater." + m for m in pkg.modules)
    if not pkg.short:
        what = "the base package lowwater"
        desc = "Sensor acquisition under a hard memory budget"
    else:
        what = f"the opt-in package {pkg.name} and the base"
        desc = f"{pkg.name}: {mods} (opt-in part of lowwater)"
    out = _MANIFEST_HEAD.format(file=pkg.manifest_path.name, what=what)
    out += f"#\n# {pkg.name}: {mods}\n"
    if pkg.short:
        out += 'include("manifest.py")\n'
    out += f'metadata(\n    description="{desc}",\n    version="{version()}",\n    license="{LICENSE}",\n)\n'
    out += _package_call(pkg)
    return out


def firmware_manifest() -> str:
    """manifest-firmware.py: every package the firmware imports."""
    pkgs = firmware_packages()
    out = _MANIFEST_HEAD.format(file="manifest-firmware.py", what="the packages firmware/main.py imports")
    out += "#\n# " + ", ".join(p.name for p in pkgs) + "\n"
    out += "".join(f'include("{p.manifest_path.name}")\n' for p in pkgs)
    return out


def dumps(obj: dict) -> str:
    """The exact text written to a package file: one file per line (diff-friendly)."""
    import json

    lines = ["{", '  "urls": [']
    urls = obj["urls"]
    for i, pair in enumerate(urls):
        lines.append("    " + json.dumps(pair) + ("," if i < len(urls) - 1 else ""))
    lines.append("  ],")
    lines.append(f'  "deps": {json.dumps(obj["deps"])},')
    lines.append(f'  "version": {json.dumps(obj["version"])}')
    lines.append("}")
    return "\n".join(lines) + "\n"


FIRMWARE_JSON = ROOT / "package-firmware.json"
FIRMWARE_MANIFEST = ROOT / "manifest-firmware.py"


def expected() -> dict[Path, str]:
    """{path: text} of every generated package file."""
    out = {}
    for pkg in packages():
        out[pkg.json_path] = dumps(package_json(pkg))
        out[pkg.manifest_path] = manifest(pkg)
    out[FIRMWARE_JSON] = dumps(firmware_json())
    out[FIRMWARE_MANIFEST] = firmware_manifest()
    return out


def write_all() -> list[Path]:
    """(Re)write every package file; -> the paths written."""
    files = expected()
    for path, text in files.items():
        path.write_text(text)
    return list(files)


def stale() -> list[Path]:
    """Generated files that are missing or differ from what the table gives,
    and package-*.json / manifest-*.py files no package owns."""
    files = expected()
    out = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    for p in sorted([*ROOT.glob("package-*.json"), *ROOT.glob("manifest-*.py")]):
        if p not in files:
            out.append(p)
    return out


def mpy_bytes(build_dir: Path) -> dict[str, int]:
    """{package: bytes of its .mpy files} in a build of lib/ (mpybuild.build's
    output, which mirrors lib/); a file the build left out counts 0."""
    out = {}
    for pkg in packages():
        files = [build_dir / p.relative_to(LIB).with_suffix(".mpy") for p in pkg.files]
        out[pkg.name] = sum(f.stat().st_size for f in files if f.is_file())
    return out
