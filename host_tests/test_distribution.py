"""Distribution: mip package files, the freeze manifest, .mpy builds and the size budget."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lowwater_tools import cli
from lowwater_tools.boardio import mpybuild
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


# ---- package.json (mip) ------------------------------------------------------


def test_package_json_lists_exactly_the_library_files():
    pkg = json.loads((ROOT / "package.json").read_text())
    targets = [t for t, _ in pkg["urls"]]
    assert sorted(targets) == LIB_FILES  # every .py of lib/, nothing else, no duplicates
    for target, url in pkg["urls"]:
        assert url == "lib/" + target  # relative: mip resolves it against the package.json's folder
        assert (ROOT / url).is_file()
    assert pkg["deps"] == []
    assert pkg["version"] == LIB_VERSION


def test_package_files_are_up_to_date():
    # Regenerate with `lowwater mpy --package-json` after adding or removing a module.
    assert (ROOT / "package.json").read_text() == mpybuild.dumps(mpybuild.package_json())
    assert (ROOT / "package-firmware.json").read_text() == mpybuild.dumps(mpybuild.firmware_json())


def test_firmware_package_lists_boot_and_main():
    pkg = json.loads((ROOT / "package-firmware.json").read_text())
    assert pkg["urls"] == [["boot.py", "firmware/boot.py"], ["main.py", "firmware/main.py"]]
    assert all((ROOT / url).is_file() for _, url in pkg["urls"])
    assert sorted(p.name for p in FIRMWARE.glob("*.py")) == ["boot.py", "main.py"]


# ---- manifest.py (freezing) ---------------------------------------------------


class _Options:
    def defaults(self, **kw):
        for k, v in kw.items():
            if not hasattr(self, k):
                setattr(self, k, v)


def _run_manifest(**options) -> dict:
    """Execute manifest.py with stand-ins for MicroPython's manifestfile functions."""
    got: dict = {"metadata": {}, "packages": [], "modules": [], "requires": [], "includes": []}
    opts = _Options()
    for k, v in options.items():
        setattr(opts, k, v)

    def package(package_path, files=None, base_path=".", opt=None):
        got["packages"].append((package_path, files, base_path, opt))

    def module(module_path, base_path=".", opt=None):
        got["modules"].append((module_path, base_path, opt))

    def require(name, version=None, **kw):
        got["requires"].append(name)

    def include(path, **kw):
        got["includes"].append(path)

    def metadata(**kw):
        got["metadata"].update(kw)

    env = {
        "package": package,
        "module": module,
        "require": require,
        "include": include,
        "metadata": metadata,
        "options": opts,
    }
    src = (ROOT / "manifest.py").read_text()
    exec(compile(src, "manifest.py", "exec"), env)
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
    out += [m for m, _, _ in got["modules"]]
    return sorted(out)


def test_manifest_freezes_exactly_the_library():
    got = _run_manifest()
    assert got["packages"] == [("lowwater", None, "lib", None)]
    assert _frozen_files(got) == LIB_FILES
    assert got["requires"] == []  # no micropython-lib dependencies
    assert got["metadata"]["version"] == LIB_VERSION
    assert got["metadata"]["description"]


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
