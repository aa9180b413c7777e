"""Distribution: mip package files, the freeze manifest, .mpy builds and the size budget."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lowwater_tools import cli
from lowwater_tools.boardio import mpybuild, packages
from lowwater_tools.boardio import size as cmd_size
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, ROOT, micropython_exe

LIB_FILES = sorted(p.relative_to(LIB).as_posix() for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)
LIB_VERSION = mpybuild.version()


def mp(code: str, path, timeout: float = 60) -> str:
    env = dict(os.environ, MICROPYPATH=f"{path}:.frozen")
    r = subprocess.run(
        [micropython_exe(), "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


# ---- packages: base + opt-in, from one table (boardio/packages.py) -------------


def _json(path) -> dict:
    return json.loads(path.read_text())


def test_every_library_file_is_in_exactly_one_package():
    pkgs = packages.packages()
    files = [f.relative_to(LIB).as_posix() for p in pkgs for f in p.files]
    assert sorted(files) == LIB_FILES  # all of lib/, nothing twice
    names = [p.name for p in pkgs]
    assert names[0] == "lowwater" and {"lowwater-prof", "lowwater-flashlog"} <= set(names)
    base = pkgs[0]
    assert {"app", "ring", "budget", "store", "pool", "telemetry", "config", "sensor", "process", "_compat"} <= set(
        base.modules
    )
    assert "prof" not in base.modules and "flashlog" not in base.modules


def test_each_package_json_lists_its_own_files_with_relative_urls():
    for pkg in packages.packages():
        data = _json(pkg.json_path)
        assert [t for t, _ in data["urls"]] == [f.relative_to(LIB).as_posix() for f in pkg.files]
        for target, url in data["urls"]:
            assert url == "lib/" + target  # relative: mip resolves it against the package file's folder
            assert (ROOT / url).is_file()
        assert data["deps"] == []
        assert data["version"] == LIB_VERSION
    # The root package.json is the base: `mpremote mip install github:OWNER/lowwater`.
    assert packages.packages()[0].json_path == ROOT / "package.json"
    assert [t for t, _ in _json(ROOT / "package-prof.json")["urls"]][0] == "lowwater/prof/__init__.py"
    assert _json(ROOT / "package-flashlog.json")["urls"] == [["lowwater/flashlog.py", "lib/lowwater/flashlog.py"]]


def test_package_files_are_up_to_date():
    # Regenerate with `lowwater mpy --package-json` after adding, moving or removing a module.
    assert packages.stale() == []
    assert (ROOT / "package.json").read_text() == mpybuild.dumps(mpybuild.package_json())  # the old entry point


def test_firmware_package_brings_what_the_firmware_imports_and_nothing_test_only():
    mods = packages.firmware_modules()
    assert {"app", "flashlog"} <= mods
    assert "prof" not in mods and "faults" not in mods  # profiler and fault injection stay off boards
    needed = [p.name for p in packages.firmware_packages()]
    assert needed[:2] == ["lowwater", "lowwater-flashlog"] and "lowwater-prof" not in needed
    data = _json(ROOT / "package-firmware.json")
    assert data["urls"][:2] == [["boot.py", "firmware/boot.py"], ["main.py", "firmware/main.py"]]
    want = [f.relative_to(ROOT).as_posix() for p in packages.firmware_packages() for f in p.files]
    assert [t for t, _ in data["urls"][2:]] == want  # installed with --target /: lib/lowwater/...
    assert all(t == u and (ROOT / u).is_file() for t, u in data["urls"][2:])
    assert sorted(p.name for p in FIRMWARE.glob("*.py")) == ["boot.py", "main.py"]


def test_imported_modules_reads_every_import_form(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "from lowwater import app, ring as r\n"
        "import lowwater.store\n"
        "def g():\n"
        "    from lowwater.flashlog import FlashLog\n"
        "    from lowwater import __version__\n"
        "import lowwaterx\n"
    )
    assert packages.imported_modules(f) == {"app", "ring", "store", "flashlog"}


def test_a_module_missing_from_the_table_is_an_error(tmp_path, monkeypatch):
    pkg = tmp_path / "lowwater"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('__version__ = "9"\n')
    (pkg / "_packages.py").write_text('MODULES = {"_packages": "", "ring": "", "extra": "lowwater-extra"}\n')
    (pkg / "ring.py").write_text("")
    (pkg / "stray.py").write_text("")
    monkeypatch.setattr(packages, "PKG_DIR", pkg)
    monkeypatch.setattr(packages, "INIT", pkg / "__init__.py")
    monkeypatch.setattr(packages, "TABLE", pkg / "_packages.py")
    with pytest.raises(UserError) as e:
        packages.packages()
    assert "'extra' is in the table but" in str(e.value)
    assert "lowwater/stray.py is in no package: add 'stray'" in str(e.value)
    (pkg / "extra.py").write_text("")
    (pkg / "stray.py").unlink()
    got = {p.name: [f.name for f in p.files] for p in packages.packages()}
    assert got == {"lowwater": ["__init__.py", "_packages.py", "ring.py"], "lowwater-extra": ["extra.py"]}


# ---- manifests (freezing) -------------------------------------------------------


class _Options:
    def defaults(self, **kw):
        for k, v in kw.items():
            if not hasattr(self, k):
                setattr(self, k, v)


def _run_manifest(name: str = "manifest.py", got: dict | None = None) -> dict:
    """Execute a manifest with stand-ins for MicroPython's manifestfile functions;
    include() runs the included manifest (once, as manifestfile does)."""
    if got is None:
        got = {"metadata": {}, "packages": [], "modules": [], "requires": [], "includes": [], "visited": set()}
    if name in got["visited"]:
        return got
    got["visited"].add(name)

    def package(package_path, files=None, base_path=".", opt=None):
        got["packages"].append((package_path, files, base_path, opt))

    def module(module_path, base_path=".", opt=None):
        got["modules"].append((module_path, base_path, opt))

    def require(req, version=None, **kw):
        got["requires"].append(req)

    def include(path, **kw):
        got["includes"].append(path)
        _run_manifest(path, got)

    def metadata(**kw):
        got["metadata"].update(kw)

    env = {
        "package": package,
        "module": module,
        "require": require,
        "include": include,
        "metadata": metadata,
        "options": _Options(),
    }
    src = (ROOT / name).read_text()
    exec(compile(src, name, "exec"), env)
    return got


def _frozen_files(got: dict) -> list[str]:
    """What manifestfile's package()/module() would freeze, as module paths."""
    out = []
    for package_path, files, base_path, _ in got["packages"]:
        base = ROOT / base_path
        if files is None:
            out += [
                p.relative_to(base).as_posix()
                for p in (base / package_path).rglob("*.py")
                if "__pycache__" not in p.parts
            ]
        else:
            out += [f"{package_path}/{f}" for f in files]
            assert all((base / package_path / f).is_file() for f in files)
    out += [m for m, _, _ in got["modules"]]
    assert len(out) == len(set(out))  # nothing frozen twice
    return sorted(out)


def _rel(files) -> list[str]:
    return sorted(f.relative_to(LIB).as_posix() for f in files)


def test_each_manifest_freezes_its_package_and_the_base():
    pkgs = packages.packages()
    base = pkgs[0]
    got = _run_manifest("manifest.py")
    assert _frozen_files(got) == _rel(base.files)
    assert got["requires"] == []  # no micropython-lib dependencies
    assert got["metadata"]["version"] == LIB_VERSION
    assert got["metadata"]["description"]
    for pkg in pkgs[1:]:
        got = _run_manifest(pkg.manifest_path.name)
        assert got["includes"] == ["manifest.py"]
        assert _frozen_files(got) == _rel(base.files + pkg.files)
        assert got["metadata"]["description"].startswith(pkg.name)
    got = _run_manifest("manifest-firmware.py")
    want = [f for p in packages.firmware_packages() for f in p.files]
    assert _frozen_files(got) == _rel(want)
    assert "lowwater/prof/__init__.py" not in _frozen_files(got)


# ---- .mpy builds ---------------------------------------------------------------


@pytest.fixture(scope="module")
def x64_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpy-x64")
    return out, mpybuild.build(out, arch="x64")


def test_build_mirrors_lib_with_the_arch_and_version_asked(x64_build):
    out, files = x64_build
    assert sorted(f.relative_to(out).with_suffix(".py").as_posix() for f in files) == LIB_FILES
    ver, sub = mpybuild.mpy_cross_version()
    for f in files:
        v, s, arch = mpybuild.read_header(f)
        assert v == ver
        if mpybuild.needs_arch(LIB / f.relative_to(out).with_suffix(".py")):
            assert (s, arch) == (sub, "x64")
        else:
            assert arch is None  # bytecode only: loads on any board of version `ver`


def test_unix_port_loads_the_x64_build_viper_included(x64_build):
    out, _ = x64_build
    # The unix port's sys.implementation._mpy is what the build targeted.
    mpy_value = int(mp("import sys; print(sys.implementation._mpy)", out).strip())
    assert mpybuild.decode_mpy(mpy_value) == (*mpybuild.mpy_cross_version(), "x64")
    text = mp(
        "import lowwater, lowwater._compat as c\n"
        "from lowwater import app\n"
        "print(lowwater.__file__, app.__file__, c.VIPER is not None)",
        out,
    )
    init, app, viper = text.split()
    assert init.endswith("lowwater/__init__.mpy") and app.endswith("lowwater/app.mpy")
    assert viper == "True"


def test_build_without_arch_leaves_native_modules_out_and_plain_twins_run(tmp_path):
    files = mpybuild.build(tmp_path)
    native = [p.relative_to(LIB).as_posix() for p in mpybuild.skipped(None)]
    assert "lowwater/_viper.py" in native
    built = sorted(f.relative_to(tmp_path).with_suffix(".py").as_posix() for f in files)
    assert built == sorted(set(LIB_FILES) - set(native))
    assert all(mpybuild.read_header(f)[2] is None for f in files)
    text = mp("import lowwater._compat as c; from lowwater import app; print(c.VIPER)", tmp_path)
    assert text.strip() == "None"


def test_build_removes_stale_mpy_and_only_in_its_packages(tmp_path):
    (tmp_path / "lowwater").mkdir()
    stale = tmp_path / "lowwater" / "gone.mpy"
    stale.write_bytes(b"M\x06\x00\x1f")
    other = tmp_path / "other.mpy"
    other.write_bytes(b"x")
    mpybuild.build(tmp_path, arch="armv6m")
    assert not stale.exists()
    assert other.exists()


def test_host_lib_cache_survives_parallel_builders(tmp_path, monkeypatch):
    """pytest workers and `make run` share build/mpy-<arch>: builders that find it
    stale at once must neither fail nor leave a partial tree (one builds, the
    others wait for it and find it fresh)."""
    import threading

    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    for i in range(12):
        (lib / "pkg" / f"m{i}.py").write_text(f"X = {i}\n")
    monkeypatch.setattr(mpybuild, "LIB", lib)
    monkeypatch.setattr(mpybuild, "ROOT", tmp_path)
    builds, errors = [], []
    real_build = mpybuild.build
    monkeypatch.setattr(mpybuild, "build", lambda *a, **k: builds.append(1) or real_build(*a, base=lib, **k))

    def one():
        try:
            mpybuild.host_lib("x64")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(builds) == 1
    out = tmp_path / "build" / "mpy-x64" / "pkg"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"m{i}.mpy" for i in range(12))


def test_build_with_an_older_bytecode_version(tmp_path):
    lib = tmp_path / "src"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "m.py").write_text("def f(x):\n    return x + 1\n")
    (out,) = mpybuild.build(tmp_path / "out", mpy_version=5, base=lib)
    assert mpybuild.read_header(out)[0] == 5
    (out,) = mpybuild.build(tmp_path / "out6", mpy_version="6.1", arch="armv6m", base=lib)
    assert mpybuild.read_header(out)[0] == 6


def test_build_refuses_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="unknown arch"):
        mpybuild.build(tmp_path, arch="z80")
    with pytest.raises(UserError, match="bad .mpy version"):
        mpybuild.build(tmp_path, mpy_version="six")
    with pytest.raises(UserError, match="cannot emit"):
        mpybuild.build(tmp_path, mpy_version=99)


def test_decode_and_parse_versions():
    assert mpybuild.decode_mpy(0xB06) == (6, 3, "x64")
    assert mpybuild.decode_mpy(10 << 10 | 3 << 8 | 6) == (6, 3, "xtensawin")
    assert mpybuild.decode_mpy(6) == (6, 0, None)
    assert mpybuild.parse_version(6) == (6, None)
    assert mpybuild.parse_version("v6.3") == (6, 3)


def test_cli_mpy_builds_and_checks_the_version(tmp_path, capsys):
    out = tmp_path / "mpy"
    assert cli.main(["mpy", "--out", str(out), "--board", "rp2040"]) == 0
    text = capsys.readouterr().out
    assert "arch armv6m" in text
    assert mpybuild.read_header(out / "lowwater" / "_viper.mpy")[2] == "armv6m"
    ver = "%d.%d" % mpybuild.mpy_cross_version()
    assert cli.main(["mpy", "--out", str(out), "--check-version", ver]) == 0
    assert "left out lib/lowwater/_viper.py" in capsys.readouterr().out
    assert cli.main(["mpy", "--out", str(out), "--check-version", "99"]) == 1
    assert "lowwater: mpy-cross emits .mpy v" in capsys.readouterr().err


# ---- the size budget -----------------------------------------------------------


@pytest.fixture(scope="module")
def figures():
    return cmd_size.measure()


def test_library_is_within_its_size_budget(figures):
    budget = cmd_size.load_budget()
    # Over budget? Shrink the library, or raise tools/lowwater_tools/size_budget.json
    # on purpose (docs/distribution.md), in the change that explains why.
    assert cmd_size.over_budget(figures, budget) == []


def test_size_measures_the_firmware_imports(figures):
    assert {"lowwater", "lowwater.app", "lowwater.ring", "lowwater.budget"} <= set(figures["modules"])
    assert set(figures["mpy_bytes"]) == {"armv6m", "xtensawin", "x64"}
    assert 0 < figures["mpy_bytes_max"] < figures["py_bytes"]
    # .mpy bytes per package: the packages share lib/ out between them exactly.
    for arch, total in figures["mpy_bytes"].items():
        per = figures["package_mpy_bytes"][arch]
        assert list(per) == [p.name for p in packages.packages()]
        assert sum(per.values()) == total and all(n > 0 for n in per.values())


def test_mpy_import_skips_the_compiler_peak_and_holds_the_same_code(figures):
    # A .py import compiles on the board: the compiler's working memory is the
    # difference, and it decides whether a small board can import at all.
    assert figures["peak_saved"] == figures["peak_py"] - figures["peak_mpy"]
    assert figures["peak_saved"] > figures["peak_py"] // 4
    # What stays is the bytecode either way (unless frozen): about the same heap.
    assert abs(figures["heap_saved"]) < figures["heap_py"] // 10
    assert figures["heap_mpy"] > 0


def test_over_budget_names_each_figure():
    fig = {"mpy_bytes_max": 100, "heap_py": 50, "heap_mpy": 10}
    assert cmd_size.over_budget(fig, {"mpy_bytes": 100, "heap_py": 50, "heap_mpy": 10}) == []
    over = cmd_size.over_budget(fig, {"mpy_bytes": 99, "heap_py": 50, "heap_mpy": 9})
    assert [line.split()[0] for line in over] == ["mpy_bytes", "heap_mpy"]


def test_cli_size_json_and_exit_status(figures, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cmd_size, "measure", lambda: figures)
    assert cli.main(["size", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["heap_py"] == figures["heap_py"] and data["over"] == []
    tight = tmp_path / "budget.json"
    tight.write_text(json.dumps({"mpy_bytes": 1, "heap_py": 10**9, "heap_mpy": 10**9}))
    monkeypatch.setattr(cmd_size, "BUDGET_FILE", tight)
    assert cli.main(["size"]) == 1
    cap = capsys.readouterr()
    assert "OVER" in cap.out and "mpy_bytes" in cap.err


def test_bad_budget_file_is_a_user_error(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('{"mpy_bytes": 0}')
    with pytest.raises(UserError, match="mpy_bytes"):
        cmd_size.load_budget(bad)
